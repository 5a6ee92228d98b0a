"""Read-only admin views of the ledger: it is written only through ledger.services. Balances come from
ledger.selectors, for a whole page of accounts at once."""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.translation import gettext_lazy as _

from core.money import yuan
from members.admin import ReadOnlyScopedAdmin as ReadOnlyAdmin
from members.admin import ScopedTabularInline
from members.models import AuditEvent

from . import labels, selectors
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
    list_display = ("holder_name", "purpose", "unit", "detail_name", "kind", "balance", "allow_negative")
    list_filter = ("purpose", "kind", "holder")
    list_select_related = ("merchant", "member", "staff")
    search_fields = ("unit", "detail", "member__name", "member__mobile", "member__member_number", "staff__name")
    exclude = ("holder_key", "detail")
    readonly_fields = ("holder_name", "detail_name", "current_balance")

    def get_changelist(self, request, **kwargs):
        return AccountChangeList

    @admin.display(description=_("holder"))
    def holder_name(self, obj: Account) -> str:
        holder = obj.member if obj.member_id else obj.staff if obj.staff_id else obj.merchant
        return str(holder)

    @admin.display(description=_("detail"), ordering="detail")
    def detail_name(self, obj: Account) -> str:
        return labels.detail_label(obj.purpose, obj.detail)

    @admin.display(description=_("balance"))
    def balance(self, obj: Account) -> str:
        return amount_display(getattr(obj, "page_balance", None), obj.unit)

    @admin.display(description=_("balance"))
    def current_balance(self, obj: Account) -> str:
        return amount_display(selectors.balance(obj), obj.unit)


class LegInline(ScopedTabularInline):
    """The legs of an entry, amounts in yuan (CNY) or counts."""

    model = Leg
    extra = 0
    can_delete = False
    fields = ("account", "amount_shown", "balance_after_shown")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account__merchant", "account__member", "account__staff")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("amount"))
    def amount_shown(self, obj: Leg) -> str:
        return amount_display(obj.amount, obj.unit)

    @admin.display(description=_("balance after"))
    def balance_after_shown(self, obj: Leg) -> str:
        return amount_display(obj.balance_after, obj.unit)


class OperationFilter(admin.SimpleListFilter):
    """Operation types by name (the column holds codes)."""

    title = _("operation")
    parameter_name = "operation"

    def lookups(self, request, model_admin):
        return list(labels.operation_labels().items())

    def queryset(self, request, queryset):
        return queryset.filter(operation_type=self.value()) if self.value() else queryset


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("posted_at", "operation", "operation_ref", "actor_name", "store", "reverses")
    list_filter = (OperationFilter, "store")
    list_select_related = ("actor", "store__merchant", "reverses")
    search_fields = ("operation_ref", "idempotency_key", "memo")
    date_hierarchy = "posted_at"
    # Codes shown by name (operation, actor); keys and fingerprints are for the services, not for people.
    exclude = ("fingerprint", "idempotency_key", "operation_type", "actor_label", "memo")
    readonly_fields = ("operation", "actor_name", "memo_shown")
    inlines = [LegInline]

    @admin.display(description=_("actor"))
    def actor_name(self, obj: Entry) -> str:
        return str(obj.actor) if obj.actor_id else AuditEvent.SYSTEM_ACTORS.get(obj.actor_label, obj.actor_label)

    @admin.display(description=_("operation"), ordering="operation_type")
    def operation(self, obj: Entry) -> str:
        return labels.operation_label(obj.operation_type)

    @admin.display(description=_("memo"))
    def memo_shown(self, obj: Entry) -> str:
        return labels.memo_label(obj.memo)
