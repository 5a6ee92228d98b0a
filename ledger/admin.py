"""Read-only admin views of the ledger: it is written only through ledger.services."""

from django.contrib import admin

from members.admin import ReadOnlyScopedAdmin as ReadOnlyAdmin
from members.admin import ScopedTabularInline

from .models import Account, Entry, Leg


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "holder_key", "purpose", "unit", "detail", "kind", "allow_negative", "merchant")
    list_filter = ("purpose", "kind", "holder", "merchant")
    search_fields = ("holder_key", "unit", "detail", "member__name", "member__mobile", "member__member_number")


class LegInline(ScopedTabularInline):
    model = Leg
    extra = 0
    can_delete = False
    fields = ("account", "unit", "amount", "balance_after")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "posted_at", "operation_type", "operation_ref", "actor", "actor_label", "store", "reverses")
    list_filter = ("operation_type", "merchant", "store")
    search_fields = ("operation_ref", "idempotency_key", "memo")
    date_hierarchy = "posted_at"
    inlines = [LegInline]
