"""Read-only admin views of the ledger: it is written only through ledger.services. Balances come from
ledger.selectors, for a whole page of accounts at once."""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.translation import gettext_lazy as _

from core.money import yuan
from members.admin import ReadOnlyScopedAdmin as ReadOnlyAdmin
from members.admin import ScopedTabularInline

from . import operations, selectors
from .models import Account, Entry, Leg
from .services import CNY


def amount_display(amount: int | None, unit: str) -> str:
    """Yuan for CNY, a plain count for points and uses."""
    if amount is None:
        return "—"
    return yuan(amount) if unit == CNY else f"{amount:,}"


class AccountChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # Two queries for the whole page (ledger.selectors.balances), whatever the number of rows.
        found = selectors.balances(self.result_list)
        for account in self.result_list:
            account.page_balance = found.get(account.pk)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("holder_name", "purpose", "unit", "detail", "kind", "balance", "allow_negative")
    list_filter = ("purpose", "kind", "holder")
    list_select_related = ("merchant", "member", "staff")
    search_fields = ("unit", "detail", "member__name", "member__mobile", "member__member_number", "staff__name")
    exclude = ("holder_key",)
    readonly_fields = ("holder_name", "current_balance")

    def get_changelist(self, request, **kwargs):
        return AccountChangeList

    @admin.display(description=_("holder"))
    def holder_name(self, obj: Account) -> str:
        holder = obj.member if obj.member_id else obj.staff if obj.staff_id else obj.merchant
        return str(holder)

    @admin.display(description=_("balance"))
    def balance(self, obj: Account) -> str:
        return amount_display(getattr(obj, "page_balance", None), obj.unit)

    @admin.display(description=_("balance"))
    def current_balance(self, obj: Account) -> str:
        return amount_display(selectors.balance(obj), obj.unit)


class LegInline(ScopedTabularInline):
    model = Leg
    extra = 0
    can_delete = False
    fields = ("account", "amount_shown", "balance_after_shown")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account__merchant", "account__member", "account__staff")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=_("amount"))
    def amount_shown(self, obj: Leg) -> str:
        return amount_display(obj.amount, obj.unit)

    @admin.display(description=_("balance after"))
    def balance_after_shown(self, obj: Leg) -> str:
        return amount_display(obj.balance_after, obj.unit)


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("posted_at", "operation", "operation_ref", "actor", "actor_label", "store", "reverses")
    list_filter = ("operation_type", "store")
    list_select_related = ("actor", "store__merchant", "reverses")
    search_fields = ("operation_ref", "idempotency_key", "memo")
    date_hierarchy = "posted_at"
    exclude = ("fingerprint",)
    inlines = [LegInline]

    @admin.display(description=_("operation"), ordering="operation_type")
    def operation(self, obj: Entry) -> str:
        return operations.operation_label(obj.operation_type)
