"""Catalog, benefit templates, benefits held by members, and the business records of operations.

No balance is stored here: every amount a member holds is a ledger account (see docs/wallet.md).
Money is integer fen.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Merchant, Owner, Staff, Store

fen_field = models.BigIntegerField  # money in fen; validators set per use


class PaymentMethod(models.TextChoices):
    CASH = "cash", _("Cash")
    WECHAT = "wechat", _("WeChat Pay")
    ALIPAY = "alipay", _("Alipay")
    UNIONPAY = "unionpay", _("UnionPay card")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")


class WalletSettings(models.Model):
    """Per-merchant wallet rules. Defaults are documented in docs/wallet.md."""

    class SpendingPolicy(models.TextChoices):
        PROPORTIONAL = "proportional", _("In proportion to principal and bonus balances")
        PRINCIPAL_FIRST = "principal_first", _("Principal first")
        BONUS_FIRST = "bonus_first", _("Bonus first")

    merchant = models.OneToOneField(Merchant, on_delete=models.PROTECT, related_name="wallet_settings")
    spending_policy = models.CharField(
        max_length=16, choices=SpendingPolicy.choices, default=SpendingPolicy.PROPORTIONAL
    )
    points_per_yuan = models.PositiveIntegerField(_("points per yuan spent"), default=1)
    points_on_bonus_spend = models.BooleanField(_("bonus-funded spend earns points"), default=False)
    points_on_voucher_spend = models.BooleanField(_("voucher-funded spend earns points"), default=False)
    points_on_stored_value_purchase = models.BooleanField(_("buying stored value earns points"), default=False)
    points_valid_years = models.PositiveSmallIntegerField(
        _("points stay valid until the end of the year earned plus"), default=1
    )

    def __str__(self) -> str:
        return f"wallet settings of {self.merchant}"


class ActivityPointsRule(models.Model):
    """Points awarded for an activity (sign-up, review, birthday…), besides points per yuan spent."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="activity_points_rules")
    code = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)
    points = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "code"], name="activity_points_rule_unique")]

    def __str__(self) -> str:
        return f"{self.name} (+{self.points})"


# ---------------------------------------------------------------- catalog


class ServiceCategory(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="service_categories")
    name = models.CharField(_("name"), max_length=50)
    tax_rate_bp = models.PositiveIntegerField(
        _("tax rate (basis points)"), default=600, validators=[MaxValueValidator(10000)]
    )
    tax_category_code = models.CharField(_("tax category code"), max_length=32, blank=True)

    class Meta:
        verbose_name_plural = "service categories"
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_category_unique")]

    def __str__(self) -> str:
        return self.name


class CommissionKind(models.TextChoices):
    NONE = "none", _("No commission")
    FIXED = "fixed", _("Fixed amount per unit (fen)")
    PERCENT = "percent", _("Percentage of the payable amount (basis points)")


class Service(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="services")
    category = models.ForeignKey(ServiceCategory, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(_("name"), max_length=100)
    unit_label = models.CharField(_("unit"), max_length=10, default="次")
    list_price_fen = fen_field(_("list price (fen)"), validators=[MinValueValidator(0)])
    member_price_fen = fen_field(_("member price (fen)"), validators=[MinValueValidator(0)])
    commission_kind = models.CharField(max_length=8, choices=CommissionKind.choices, default=CommissionKind.NONE)
    commission_value = models.PositiveIntegerField(default=0, help_text=_("fen per unit, or basis points"))
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_name_unique")]

    def __str__(self) -> str:
        return self.name


class CommissionRule(models.Model):
    """A per-staff-level override of a service's commission."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="commission_rules")
    staff_level = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=8, choices=CommissionKind.choices)
    value = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "staff_level"], name="commission_rule_unique")]


# ---------------------------------------------------------------- templates


class VoucherTemplate(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="voucher_templates")
    name = models.CharField(max_length=100)
    amount_fen = fen_field(_("face value (fen)"), validators=[MinValueValidator(1)])
    price_fen = fen_field(_("price (fen)"), default=0, validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(default=90)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class CouponTemplate(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="coupon_templates")
    name = models.CharField(max_length=100)
    uses = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price_fen = fen_field(_("price (fen)"), default=0, validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(default=365)
    per_member_limit = models.PositiveIntegerField(default=0, help_text=_("0 = no limit"))
    services = models.ManyToManyField(Service, related_name="coupon_templates")
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name

    @property
    def unit(self) -> str:
        return f"CPN:{self.pk}"


class EntitlementPackage(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="entitlement_packages")
    name = models.CharField(max_length=100)
    price_fen = fen_field(_("price (fen)"), validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(null=True, blank=True, help_text=_("empty = no expiry"))
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class PackageItem(models.Model):
    package = models.ForeignKey(EntitlementPackage, on_delete=models.CASCADE, related_name="items")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        constraints = [models.UniqueConstraint(fields=["package", "service"], name="package_item_unique")]


class VipCardType(models.Model):
    class Period(models.TextChoices):
        YEAR = "year", _("Year")
        QUARTER = "quarter", _("Quarter")
        MONTH = "month", _("Month")

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="vip_card_types")
    name = models.CharField(max_length=100)
    period = models.CharField(max_length=8, choices=Period.choices)
    price_fen = fen_field(_("price (fen)"), validators=[MinValueValidator(0)])
    services = models.ManyToManyField(Service, blank=True, related_name="vip_card_types")
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class RechargePlan(models.Model):
    """ "Pay X, get bonus Y" and/or gifts: coupons, an entitlement package, a VIP card."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="recharge_plans")
    name = models.CharField(max_length=100)
    pay_fen = fen_field(_("pay (fen)"), validators=[MinValueValidator(1)])
    bonus_fen = fen_field(_("bonus (fen)"), default=0, validators=[MinValueValidator(0)])
    gift_coupon = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gift_coupon_quantity = models.PositiveIntegerField(default=0)
    gift_package = models.ForeignKey(
        EntitlementPackage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    gift_vip = models.ForeignKey(VipCardType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------- benefits held by members


class StoredValueCard(models.Model):
    """The member's stored-value card (储值卡). Its balances are the principal and bonus ledger accounts;
    a cash refund closes it for good."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CLOSED = "closed", _("Closed by cash refund")

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    member = models.OneToOneField(Owner, on_delete=models.PROTECT, related_name="stored_value_card")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)


class Voucher(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="vouchers")
    template = models.ForeignKey(VoucherTemplate, on_delete=models.PROTECT, related_name="vouchers")
    face_value_fen = fen_field()
    paid_fen = fen_field(default=0)
    valid_from = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["status", "valid_until"], name="voucher_expiry_idx")]

    @property
    def account_detail(self) -> str:
        return f"v{self.pk}"


class Grant(models.Model):
    """One lot of counted uses a member holds: a coupon (uses of a template) or an entitlement (uses of
    one service). Each grant is its own ledger account, so it expires or is refunded on its own, at the
    price that was actually paid for it."""

    class Kind(models.TextChoices):
        COUPON = "coupon", _("Coupon")
        ENTITLEMENT = "entitlement", _("Entitlement")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        REFUNDED = "refunded", _("Refunded in cash")
        REVOKED = "revoked", _("Taken back by a cash refund of stored value")

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="grants")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    coupon_template = models.ForeignKey(
        CouponTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="grants"
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, null=True, blank=True, related_name="grants")
    package = models.ForeignKey(EntitlementPackage, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    uses_total = models.PositiveIntegerField()
    paid_fen = fen_field(default=0)
    valid_until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["status", "valid_until"], name="grant_expiry_idx"),
            models.Index(fields=["member", "kind", "status"], name="grant_member_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="coupon", coupon_template__isnull=False, service__isnull=True))
                | (models.Q(kind="entitlement", service__isnull=False, coupon_template__isnull=True)),
                name="grant_kind_matches_target",
            )
        ]

    def __str__(self) -> str:
        target = self.coupon_template if self.kind == self.Kind.COUPON else self.service
        return f"{self.get_kind_display()} {target} ×{self.uses_total}"

    @property
    def unit(self) -> str:
        return f"CPN:{self.coupon_template_id}" if self.kind == self.Kind.COUPON else f"ENT:{self.service_id}"

    @property
    def account_detail(self) -> str:
        return f"g{self.pk}"

    @property
    def purpose(self) -> str:
        return "coupon" if self.kind == self.Kind.COUPON else "entitlement"

    def covers(self, service: Service) -> bool:
        if self.kind == self.Kind.ENTITLEMENT:
            return self.service_id == service.pk
        return self.coupon_template.services.filter(pk=service.pk).exists()


class VipMembership(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        REVOKED = "revoked", _("Taken back by a cash refund of stored value")

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="vip_memberships")
    card_type = models.ForeignKey(VipCardType, on_delete=models.PROTECT, related_name="memberships")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member", "card_type"], condition=models.Q(status="active"), name="one_active_vip_per_type"
            )
        ]


# ---------------------------------------------------------------- operations (numbered business records)


class Operation(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=24, editable=False)
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="+")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.number


def _number_constraints(name: str) -> list:
    return [
        models.UniqueConstraint(fields=["merchant", "number"], name=f"{name}_number_unique"),
        models.UniqueConstraint(fields=["merchant", "idempotency_key"], name=f"{name}_idempotency_unique"),
    ]


class Recharge(Operation):
    payment_method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    list_total_fen = fen_field(_("goods total (商品总额)"))
    paid_total_fen = fen_field(_("amount paid (充值金额)"))
    bonus_total_fen = fen_field(default=0)
    entry_id = models.BigIntegerField(null=True, editable=False)

    class Meta:
        constraints = _number_constraints("recharge")
        ordering = ["-created_at", "-id"]


class RechargeLine(models.Model):
    class Kind(models.TextChoices):
        STORED_VALUE = "stored_value", _("Stored value")
        PLAN = "plan", _("Recharge plan")
        COUPON = "coupon", _("Coupon")
        PACKAGE = "package", _("Entitlement package")
        VOUCHER = "voucher", _("Voucher")
        VIP = "vip", _("VIP card")

    recharge = models.ForeignKey(Recharge, on_delete=models.PROTECT, related_name="lines")
    line_no = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    plan = models.ForeignKey(RechargePlan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    coupon_template = models.ForeignKey(
        CouponTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    package = models.ForeignKey(EntitlementPackage, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    voucher_template = models.ForeignKey(
        VoucherTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    vip_type = models.ForeignKey(VipCardType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price_fen = fen_field()
    discount_bp = models.PositiveIntegerField(default=10000)
    amount_fen = fen_field(help_text="quantity × unit price × discount, rounded half up to the fen")
    bonus_fen = fen_field(default=0)


class ServiceTag(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=30)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_tag_unique")]

    def __str__(self) -> str:
        return self.name


class ServiceRecord(Operation):
    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="service_records")
    notes = models.TextField(blank=True)
    tags = models.ManyToManyField(ServiceTag, blank=True)

    class Meta:
        constraints = _number_constraints("service_record")
        ordering = ["-created_at", "-id"]


class Consumption(Operation):
    service_record = models.ForeignKey(
        ServiceRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="consumptions"
    )
    payable_total_fen = fen_field()

    class Meta:
        constraints = _number_constraints("consumption")
        ordering = ["-created_at", "-id"]


class EntitlementRefund(Operation):
    reason = models.CharField(max_length=200)
    total_fen = fen_field()

    class Meta:
        constraints = _number_constraints("entitlement_refund")
        ordering = ["-created_at", "-id"]


class ConsumptionLine(models.Model):
    class Status(models.TextChoices):
        NORMAL = "normal", _("无")
        REFUNDED = "refunded", _("已退费")

    consumption = models.ForeignKey(Consumption, on_delete=models.PROTECT, related_name="lines")
    line_no = models.PositiveSmallIntegerField()
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price_fen = fen_field()
    payable_fen = fen_field()
    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, null=True, blank=True, related_name="consumption_lines")
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment_method = models.CharField(max_length=16, choices=PaymentMethod.choices, blank=True)
    principal_fen = fen_field(default=0)
    bonus_fen = fen_field(default=0)
    voucher_fen = fen_field(default=0)
    direct_fen = fen_field(default=0)
    uses = models.PositiveIntegerField(default=0)
    deferred_fen = fen_field(default=0, help_text="prepaid revenue recognised by the uses")
    commission_fen = fen_field(default=0)
    points = models.BigIntegerField(default=0)
    entry_id = models.BigIntegerField(null=True, editable=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NORMAL)
    refund = models.ForeignKey(EntitlementRefund, on_delete=models.PROTECT, null=True, blank=True, related_name="lines")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consumption", "line_no"], name="consumption_line_unique")]

    @property
    def cash_funded_fen(self) -> int:
        """The invoiceable part: principal-funded or paid directly."""
        return self.principal_fen + self.direct_fen


class CashRefund(Operation):
    class Kind(models.TextChoices):
        STORED_VALUE = "stored_value", _("Stored value (unused principal)")
        GRANT = "grant", _("Unused coupon / entitlement uses")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment_method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    paid_out_fen = fen_field()
    forfeited_bonus_fen = fen_field(default=0)
    gifts_charged_fen = fen_field(
        default=0, help_text="used plan gifts charged against the principal at list price (docs/wallet.md §2.6)"
    )
    uses_refunded = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=200)
    entry_id = models.BigIntegerField(null=True, editable=False)

    class Meta:
        constraints = _number_constraints("cash_refund")
        ordering = ["-created_at", "-id"]
