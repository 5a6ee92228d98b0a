"""Admin for the wallet catalog (editable) and its business records (read-only: they change only
through the services)."""

from django.contrib import admin
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from core.forms import YuanField, grouped_yuan
from members.admin import MerchantScopedAdmin, ReadOnlyScopedAdmin, ScopedTabularInline

from .models import (
    ActivityPointsRule,
    CashRefund,
    CommissionKind,
    CommissionRule,
    Consumption,
    ConsumptionLine,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    PackageItem,
    Recharge,
    RechargeLine,
    RechargePlan,
    Service,
    ServiceCategory,
    ServiceRecord,
    StoredValueCard,
    VipCardType,
    VipMembership,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)


@admin.register(WalletSettings)
class WalletSettingsAdmin(MerchantScopedAdmin):
    list_display = ("merchant", "spending_policy", "points_per_yuan", "points_on_bonus_spend", "points_valid_years")


@admin.register(ActivityPointsRule)
class ActivityPointsRuleAdmin(MerchantScopedAdmin):
    list_display = ("code", "name", "points", "is_active", "merchant")


@admin.register(ServiceCategory)
class ServiceCategoryAdmin(MerchantScopedAdmin):
    list_display = ("name", "tax_rate_bp", "merchant")
    search_fields = ("name",)


def commission_display(kind: str, value: int) -> str:
    """A commission as people read it: ¥12.00 per unit, 12.5%, or nothing."""
    if kind == CommissionKind.FIXED:
        return f"¥{grouped_yuan(value)}"
    if kind == CommissionKind.PERCENT:
        return f"{value / 100:g}%"
    return "—"


class CommissionValueMixin:
    """A commission value is fen per unit (fixed) or basis points (percentage): both are hundredths, so
    one input takes yuan or percent with up to two decimals ("12.50" = ¥12.50 or 12.5%) and stores ×100."""

    commission_value_fields = ("commission_value", "value")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in self.commission_value_fields:
            return YuanField(
                label=capfirst(db_field.verbose_name),
                help_text=_("Fixed amount: yuan per unit, e.g. 12.50. Percentage: percent of the payable amount, "
                            "e.g. 12.5."),
                initial=db_field.get_default() if db_field.has_default() else None,
                required=not db_field.has_default(),
            )  # fmt: skip
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if self.has_change_permission(request, obj):
            return fields
        # Read-only: the value as ¥ or %, by its kind.
        return [self.commission_attr if name in self.commission_value_fields else name for name in fields]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not self.has_change_permission(request, obj):
            readonly.append(self.commission_attr)
        return readonly

    commission_attr = "commission"

    @admin.display(description=_("commission"))
    def commission(self, obj) -> str:
        if isinstance(obj, CommissionRule):
            return commission_display(obj.kind, obj.value)
        return commission_display(obj.commission_kind, obj.commission_value)


class CommissionRuleInline(CommissionValueMixin, ScopedTabularInline):
    model = CommissionRule
    extra = 0


@admin.register(Service)
class ServiceAdmin(CommissionValueMixin, MerchantScopedAdmin):
    list_display = (
        "name",
        "category",
        "list_price_fen",
        "member_price_fen",
        "commission",
        "is_active",
    )

    list_filter = ("category", "is_active", "commission_kind")
    search_fields = ("name",)
    inlines = [CommissionRuleInline]


@admin.register(CouponTemplate)
class CouponTemplateAdmin(MerchantScopedAdmin):
    list_display = ("name", "uses", "price_fen", "valid_days", "per_member_limit", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)
    filter_horizontal = ("services",)


class PackageItemInline(ScopedTabularInline):
    model = PackageItem
    extra = 1


@admin.register(EntitlementPackage)
class EntitlementPackageAdmin(MerchantScopedAdmin):
    list_display = ("name", "price_fen", "valid_days", "is_active")
    inlines = [PackageItemInline]


@admin.register(VoucherTemplate)
class VoucherTemplateAdmin(MerchantScopedAdmin):
    list_display = ("name", "amount_fen", "price_fen", "valid_days", "is_active")


@admin.register(VipCardType)
class VipCardTypeAdmin(MerchantScopedAdmin):
    list_display = ("name", "period", "price_fen", "is_active")
    filter_horizontal = ("services",)


@admin.register(RechargePlan)
class RechargePlanAdmin(MerchantScopedAdmin):
    list_display = (
        "name",
        "pay_fen",
        "bonus_fen",
        "gift_coupon",
        "gift_coupon_quantity",
        "gift_package",
        "gift_vip",
        "is_active",
    )


RecordAdmin = ReadOnlyScopedAdmin  # business records change only through the services


class RecordInline(ScopedTabularInline):
    """Lines of a business record: shown (money in yuan), never added, changed or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RechargeLineInline(RecordInline):
    model = RechargeLine


@admin.register(Recharge)
class RechargeAdmin(RecordAdmin):
    list_display = (
        "number",
        "member",
        "paid_total_fen",
        "bonus_total_fen",
        "payment_method",
        "store",
        "operator",
        "created_at",
    )
    list_filter = ("payment_method", "store")
    search_fields = ("number", "member__name", "member__mobile", "member__member_number")
    date_hierarchy = "created_at"
    inlines = [RechargeLineInline]


class ConsumptionLineInline(RecordInline):
    model = ConsumptionLine
    fk_name = "consumption"


@admin.register(Consumption)
class ConsumptionAdmin(RecordAdmin):
    list_display = ("number", "member", "payable_total_fen", "store", "operator", "created_at")
    list_filter = ("store",)
    search_fields = ("number", "member__name", "member__mobile", "member__member_number")
    date_hierarchy = "created_at"
    inlines = [ConsumptionLineInline]


@admin.register(ServiceRecord)
class ServiceRecordAdmin(RecordAdmin):
    list_display = ("number", "member", "staff", "store", "created_at")
    search_fields = ("number", "member__name", "notes")
    list_filter = ("store", "tags")


@admin.register(EntitlementRefund)
class EntitlementRefundAdmin(RecordAdmin):
    list_display = ("number", "member", "total_fen", "reason", "operator", "created_at")
    search_fields = ("number", "member__name", "reason")


@admin.register(CashRefund)
class CashRefundAdmin(RecordAdmin):
    list_display = ("number", "member", "kind", "paid_out_fen", "forfeited_bonus_fen", "payment_method", "created_at")
    list_filter = ("kind", "payment_method")
    search_fields = ("number", "member__name", "reason")


@admin.register(Grant)
class GrantAdmin(RecordAdmin):
    list_display = (
        "__str__",
        "member",
        "kind",
        "coupon_template",
        "service",
        "uses_total",
        "paid_fen",
        "valid_until",
        "status",
    )
    list_filter = ("kind", "status")
    search_fields = ("member__name", "member__mobile", "source_ref")


@admin.register(Voucher)
class VoucherAdmin(RecordAdmin):
    list_display = ("__str__", "member", "template", "face_value_fen", "paid_fen", "valid_until", "status")
    list_filter = ("status",)


@admin.register(VipMembership)
class VipMembershipAdmin(RecordAdmin):
    list_display = ("member", "card_type", "starts_at", "ends_at", "status")
    list_filter = ("status", "card_type")


@admin.register(StoredValueCard)
class StoredValueCardAdmin(RecordAdmin):
    list_display = ("member", "status", "opened_at", "closed_at")
    list_filter = ("status",)
