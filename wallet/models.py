"""Catalog, benefit templates, benefits held by members, and the business records of operations.

No balance is stored here: every amount a member holds is a ledger account (see docs/wallet.md).
Money is integer fen.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from members.models import Merchant, Owner, Staff, Store, check_merchant_of

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

    merchant = models.OneToOneField(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="wallet_settings"
    )
    spending_policy = models.CharField(
        _("spending policy"),
        max_length=16,
        choices=SpendingPolicy.choices,
        default=SpendingPolicy.PROPORTIONAL,
    )
    points_per_yuan = models.PositiveIntegerField(_("points per yuan spent"), default=1)
    points_on_bonus_spend = models.BooleanField(_("bonus-funded spend earns points"), default=False)
    points_on_voucher_spend = models.BooleanField(_("voucher-funded spend earns points"), default=False)
    points_on_stored_value_purchase = models.BooleanField(_("buying stored value earns points"), default=False)
    points_valid_years = models.PositiveSmallIntegerField(
        _("points stay valid until the end of the year earned plus"), default=1
    )

    # Limits on value given away and on amounts (docs/wallet.md §4). Above a limit the operation is
    # refused; the approval workflow will route such cases to an approver.
    max_manual_bonus_bp = models.PositiveIntegerField(
        _("manual bonus at most (basis points of the stored value paid)"),
        default=2000,
        validators=[MaxValueValidator(10000)],
    )
    max_manual_bonus_fen = fen_field(
        _("manual bonus at most per recharge (yuan)"), default=1_000_000, validators=[MinValueValidator(0)]
    )
    max_manual_discount_bp = models.PositiveIntegerField(
        _("manual discount on a recharge line at most (basis points off)"),
        default=3000,
        validators=[MaxValueValidator(9999)],
    )
    max_plan_free_value_bp = models.PositiveIntegerField(
        _("a recharge plan's bonus and gifts at most (basis points of its price)"),
        default=5000,
        validators=[MaxValueValidator(10000)],
    )
    max_free_gift_fen = fen_field(
        _("a free voucher or coupon given outside a sale worth at most (yuan)"),
        default=50_000,
        validators=[MinValueValidator(0)],
    )
    max_activity_points = models.PositiveIntegerField(_("activity points per award at most"), default=10_000)
    max_recharge_fen = fen_field(
        _("amount paid per recharge at most (yuan)"), default=50_000_000, validators=[MinValueValidator(1)]
    )
    max_consumption_fen = fen_field(
        _("payable per consumption at most (yuan)"), default=10_000_000, validators=[MinValueValidator(1)]
    )
    # Not a limit: the portal asks the operator to confirm a second time above it (issue 11), since a
    # figure with one digit too many is easy to miss once. ¥10,000 by default.
    confirm_above_fen = fen_field(
        _("ask for a second confirmation above (yuan)"), default=1_000_000, validators=[MinValueValidator(0)]
    )

    class Meta:
        verbose_name = _("wallet settings")
        verbose_name_plural = _("wallet settings")

    def __str__(self) -> str:
        return _("Wallet settings of %(merchant)s") % {"merchant": self.merchant}

    @classmethod
    def of(cls, merchant_id: int | None) -> WalletSettings:
        """The merchant's settings, or the defaults (unsaved) when it has none yet: for checks that
        must not write (model validation)."""
        found = cls.objects.filter(merchant_id=merchant_id).first() if merchant_id else None
        return found or cls(merchant_id=merchant_id)


def _related(obj: models.Model, name: str):
    """The related row, or None when not chosen yet (model validation runs before required-field errors
    are final). A parent set by an inline form is returned even before it is saved."""
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def _other_merchant(field: str, owner_merchant_id: int | None, *related) -> None:
    """Refuse a catalog row pointing at another merchant's row (code other_merchant)."""
    for obj in related:
        check_merchant_of(obj, owner_merchant_id, field)


class SoldTermsFrozen:
    """A catalog row whose economic terms sales rely on: once sold or issued, a refund values what was
    given by these terms (a plan's gifts are taken back by the plan's gift links and list prices), so
    they cannot change afterwards. The merchant deactivates the row and creates a new one instead."""

    sold_terms: tuple[str, ...] = ()

    def is_sold(self) -> bool:  # pragma: no cover - every subclass answers
        raise NotImplementedError

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        """The terms a sale relies on (free value within the merchant's limits, same merchant), checked by
        clean() when the row is saved and again at every sale (wallet.services.checks.recheck_catalog),
        which passes the settings it already holds. Not the frozen-terms check: that one is about edits."""

    def clean(self) -> None:
        self.check_sold_terms()
        self.check_sale_terms()

    def check_sold_terms(self) -> None:
        if not self.pk or not self.sold_terms:
            return
        old = type(self).objects.filter(pk=self.pk).values(*self.sold_terms).first()
        if old is None:
            return
        changed = [name for name in self.sold_terms if old[name] != getattr(self, self._meta.get_field(name).attname)]
        if changed and self.is_sold():
            raise fail(
                changed[0], "terms_sold",
                _("This %(kind)s has been sold: its price and terms cannot change. Deactivate it and create a new "
                  "one."),
                kind=self._meta.verbose_name,
            )  # fmt: skip


class ActivityPointsRule(models.Model):
    """Points awarded for an activity (sign-up, review, birthday…), besides points per yuan spent."""

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="activity_points_rules"
    )
    code = models.SlugField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    points = models.PositiveIntegerField(_("points"), validators=[MinValueValidator(1)])
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("activity points rule")
        verbose_name_plural = _("activity points rules")
        constraints = [models.UniqueConstraint(fields=["merchant", "code"], name="activity_points_rule_unique")]

    def __str__(self) -> str:
        return f"{self.name} (+{self.points})"

    def clean(self) -> None:
        self.check_sale_terms()

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        limit = (wallet_settings or WalletSettings.of(self.merchant_id)).max_activity_points
        if self.points is not None and self.points > limit:
            raise fail(
                "points",
                "free_value_over_limit",
                _("At most %(limit)s points per award (wallet settings)."),
                limit=f"{limit:,}",
            )


# ---------------------------------------------------------------- catalog


class ServiceCategory(models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="service_categories"
    )
    name = models.CharField(_("name"), max_length=50)
    tax_rate_bp = models.PositiveIntegerField(
        _("tax rate (basis points)"), default=600, validators=[MaxValueValidator(10000)]
    )
    tax_category_code = models.CharField(_("tax category code"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("service category")
        verbose_name_plural = _("service categories")
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_category_unique")]

    def __str__(self) -> str:
        return self.name


class CommissionKind(models.TextChoices):
    NONE = "none", _("No commission")
    FIXED = "fixed", _("Fixed amount per unit")
    PERCENT = "percent", _("Percentage of the payable amount")


class Service(models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="services"
    )
    category = models.ForeignKey(
        ServiceCategory, verbose_name=_("service category"), on_delete=models.PROTECT, related_name="services"
    )
    name = models.CharField(_("name"), max_length=100)
    unit_label = models.CharField(_("unit"), max_length=10, default="次")
    list_price_fen = fen_field(_("list price (yuan)"), validators=[MinValueValidator(0)])
    member_price_fen = fen_field(_("member price (yuan)"), validators=[MinValueValidator(0)])
    commission_kind = models.CharField(
        _("commission kind"), max_length=8, choices=CommissionKind.choices, default=CommissionKind.NONE
    )
    commission_value = models.PositiveIntegerField(
        _("commission value"), default=0, help_text=_("Fixed: fen per unit; percentage: basis points.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("service")
        verbose_name_plural = _("services")
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_name_unique")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        _other_merchant("category", self.merchant_id, _related(self, "category"))
        check_commission(self.commission_kind, self.commission_value, self.member_price_fen, "commission_value")


def check_commission(kind: str, value: int | None, unit_price_fen: int | None, field: str) -> None:
    """A commission never exceeds what a unit sells for: a percentage at most 100 % (10000 bp), a fixed
    amount at most the member price. Consumption caps it again (docs/wallet.md §3)."""
    if value is None:
        return
    if kind == CommissionKind.PERCENT and value > 10000:
        raise fail(
            field, "commission_over_price", _("A percentage commission is at most 100 percent (10000 basis points).")
        )
    if kind == CommissionKind.FIXED and unit_price_fen is not None and value > unit_price_fen:
        raise fail(
            field, "commission_over_price", _("A fixed commission of %(value)s is more than the member price %(price)s."),
            value=yuan(value), price=yuan(unit_price_fen),
        )  # fmt: skip


class CommissionRule(models.Model):
    """A per-staff-level override of a service's commission."""

    service = models.ForeignKey(
        Service, verbose_name=_("service"), on_delete=models.CASCADE, related_name="commission_rules"
    )
    staff_level = models.PositiveSmallIntegerField(_("staff level"))
    kind = models.CharField(_("commission kind"), max_length=8, choices=CommissionKind.choices)
    value = models.PositiveIntegerField(_("commission value"))

    class Meta:
        verbose_name = _("commission rule")
        verbose_name_plural = _("commission rules")
        constraints = [models.UniqueConstraint(fields=["service", "staff_level"], name="commission_rule_unique")]

    def __str__(self) -> str:
        return _("%(service)s, staff level %(level)s") % {"service": self.service, "level": self.staff_level}

    def clean(self) -> None:
        service = _related(self, "service")
        check_commission(self.kind, self.value, service.member_price_fen if service else None, "value")


# ---------------------------------------------------------------- templates


class VoucherTemplate(SoldTermsFrozen, models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="voucher_templates"
    )
    name = models.CharField(_("name"), max_length=100)
    amount_fen = fen_field(_("face value (yuan)"), validators=[MinValueValidator(1)])
    price_fen = fen_field(_("price (yuan)"), default=0, validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(_("valid for (days)"), default=90)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("voucher template")
        verbose_name_plural = _("voucher templates")

    def __str__(self) -> str:
        return self.name

    sold_terms = ("amount_fen", "price_fen")

    def is_sold(self) -> bool:
        return Voucher.objects.filter(template_id=self.pk).exists()

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        # A voucher sold below its face value gives the difference away: at most the plan share of its
        # price. A price of 0 makes a free-only template, bounded when issued (max_free_gift_fen).
        if not self.price_fen or not self.amount_fen:
            return
        if self.price_fen > self.amount_fen:
            raise fail("price_fen", "voucher_price_over_face", _("A voucher is not sold for more than its face value."))
        share = (wallet_settings or WalletSettings.of(self.merchant_id)).max_plan_free_value_bp
        if self.amount_fen - self.price_fen > self.price_fen * share // 10000:
            raise fail(
                "amount_fen", "free_value_over_limit",
                _("Sold for %(price)s, the voucher gives away %(free)s: at most %(share)s%% of its price."),
                price=yuan(self.price_fen), free=yuan(self.amount_fen - self.price_fen), share=f"{share / 100:g}",
            )  # fmt: skip


def check_sold_below_list(template, field: str, wallet_settings: WalletSettings | None = None) -> None:
    """A coupon template or package sold for less than its list value (uses × the covered services'
    list price) gives the difference away: at most the merchant's plan share of its price, like a voucher
    sold below face. A price of 0 makes a free-only template, bounded as a gift (max_free_gift_fen).
    Counted from saved rows (services, package items), so it is checked again at every sale."""
    price = template.price_fen
    if not price or not template.pk:
        return
    free = template.list_value_fen() - price
    share = (wallet_settings or WalletSettings.of(template.merchant_id)).max_plan_free_value_bp
    if free > price * share // 10000:
        raise fail(
            field, "free_value_over_limit",
            _("Sold for %(price)s, %(name)s gives away %(free)s below its list value: at most %(share)s%% of its "
              "price."),
            price=yuan(price), name=str(template), free=yuan(free), share=f"{share / 100:g}",
        )  # fmt: skip


class CouponTemplate(SoldTermsFrozen, models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="coupon_templates"
    )
    name = models.CharField(_("name"), max_length=100)
    uses = models.PositiveIntegerField(_("uses"), validators=[MinValueValidator(1)])
    price_fen = fen_field(_("price (yuan)"), default=0, validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(_("valid for (days)"), default=365)
    per_member_limit = models.PositiveIntegerField(_("limit per member"), default=0, help_text=_("0 = no limit"))
    services = models.ManyToManyField(Service, verbose_name=_("services"), related_name="coupon_templates")
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("coupon template")
        verbose_name_plural = _("coupon templates")

    def __str__(self) -> str:
        return self.name

    sold_terms = ("uses", "price_fen")

    def is_sold(self) -> bool:
        return Grant.objects.filter(coupon_template_id=self.pk).exists()

    @property
    def unit(self) -> str:
        return f"CPN:{self.pk}"

    def list_value_fen(self) -> int:
        """What one coupon is worth when given away: its price, or what its uses can pay for at the
        covered services' list price, whichever is more (a free template is still worth its uses)."""
        # The higher of list and member price: a service listed below what members pay is worth what they pay.
        price = Greatest("list_price_fen", "member_price_fen")
        top = self.services.aggregate(m=models.Max(price))["m"] if self.pk else None
        return max(self.price_fen or 0, (self.uses or 0) * (top or 0))

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        check_sold_below_list(self, "price_fen", wallet_settings)


class EntitlementPackage(SoldTermsFrozen, models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="entitlement_packages"
    )
    name = models.CharField(_("name"), max_length=100)
    price_fen = fen_field(_("price (yuan)"), validators=[MinValueValidator(0)])
    valid_days = models.PositiveIntegerField(
        _("valid for (days)"), null=True, blank=True, help_text=_("empty = no expiry")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("entitlement package")
        verbose_name_plural = _("entitlement packages")

    def __str__(self) -> str:
        return self.name

    sold_terms = ("price_fen",)

    def is_sold(self) -> bool:
        return Grant.objects.filter(package_id=self.pk).exists()

    def list_value_fen(self) -> int:
        """Its price, or its services at list price (or member price if higher) × quantity, whichever is more."""
        listed = (
            sum(
                max(it.service.list_price_fen, it.service.member_price_fen) * it.quantity
                for it in self.items.select_related("service")
            )
            if self.pk
            else 0
        )
        return max(self.price_fen or 0, listed)

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        if self.pk:  # its services are this merchant's before their list prices count
            _other_merchant("__all__", self.merchant_id, *(it.service for it in self.items.select_related("service")))
        check_sold_below_list(self, "price_fen", wallet_settings)


class PackageItem(models.Model):
    package = models.ForeignKey(
        EntitlementPackage, verbose_name=_("entitlement package"), on_delete=models.CASCADE, related_name="items"
    )
    service = models.ForeignKey(Service, verbose_name=_("service"), on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])

    class Meta:
        verbose_name = _("package item")
        verbose_name_plural = _("package items")
        constraints = [models.UniqueConstraint(fields=["package", "service"], name="package_item_unique")]

    def __str__(self) -> str:
        return f"{self.service} ×{self.quantity}"

    def clean(self) -> None:
        package = _related(self, "package")
        _other_merchant("service", package.merchant_id if package else None, _related(self, "service"))
        if package is not None and package.pk and package.is_sold():
            old = PackageItem.objects.filter(pk=self.pk).values("service_id", "quantity").first() if self.pk else None
            if old != {"service_id": self.service_id, "quantity": self.quantity}:
                raise fail(
                    "__all__", "terms_sold",
                    _("This %(kind)s has been sold: its price and terms cannot change. Deactivate it and create a "
                      "new one."),
                    kind=EntitlementPackage._meta.verbose_name,
                )  # fmt: skip


class VipCardType(SoldTermsFrozen, models.Model):
    class Period(models.TextChoices):
        YEAR = "year", _("Year")
        QUARTER = "quarter", _("Quarter")
        MONTH = "month", _("Month")

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="vip_card_types"
    )
    name = models.CharField(_("name"), max_length=100)
    period = models.CharField(_("period"), max_length=8, choices=Period.choices)
    price_fen = fen_field(_("price (yuan)"), validators=[MinValueValidator(0)])
    services = models.ManyToManyField(Service, verbose_name=_("services"), blank=True, related_name="vip_card_types")
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("VIP card type")
        verbose_name_plural = _("VIP card types")

    sold_terms = ("period", "price_fen")

    def __str__(self) -> str:
        return self.name

    def is_sold(self) -> bool:
        return VipMembership.objects.filter(card_type_id=self.pk).exists()


class RechargePlan(SoldTermsFrozen, models.Model):
    """ "Pay X, get bonus Y" and/or gifts: coupons, an entitlement package, a VIP card."""

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="recharge_plans"
    )
    name = models.CharField(_("name"), max_length=100)
    pay_fen = fen_field(_("pay (yuan)"), validators=[MinValueValidator(1)])
    bonus_fen = fen_field(_("bonus (yuan)"), default=0, validators=[MinValueValidator(0)])
    gift_coupon = models.ForeignKey(
        CouponTemplate, verbose_name=_("gift coupon"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    gift_coupon_quantity = models.PositiveIntegerField(_("gift coupon quantity"), default=0)
    gift_package = models.ForeignKey(
        EntitlementPackage,
        verbose_name=_("gift entitlement package"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    gift_vip = models.ForeignKey(
        VipCardType, verbose_name=_("gift VIP card"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("recharge plan")
        verbose_name_plural = _("recharge plans")

    def __str__(self) -> str:
        return self.name

    sold_terms = ("pay_fen", "bonus_fen", "gift_coupon", "gift_coupon_quantity", "gift_package", "gift_vip")

    def is_sold(self) -> bool:
        return RechargeLine.objects.filter(plan_id=self.pk).exists()

    def check_sale_terms(self, wallet_settings: WalletSettings | None = None) -> None:
        gifts = [_related(self, name) for name in ("gift_coupon", "gift_package", "gift_vip")]
        _other_merchant("__all__", self.merchant_id or next((g.merchant_id for g in gifts if g), None), *gifts)
        if self.pay_fen is not None and self.pay_fen >= 1:
            self.check_free_value(wallet_settings or WalletSettings.of(self.merchant_id), "bonus_fen")

    def free_value_fen(self) -> int:
        """Bonus plus gifts at list value, per plan bought (docs/wallet.md §4)."""
        value = self.bonus_fen or 0
        if self.gift_coupon_id and self.gift_coupon_quantity:
            value += self.gift_coupon.list_value_fen() * self.gift_coupon_quantity
        if self.gift_package_id:
            value += self.gift_package.list_value_fen()
        if self.gift_vip_id:
            value += self.gift_vip.price_fen
        return value

    def check_free_value(self, wallet_settings: WalletSettings, field: str) -> None:
        """A plan gives away at most the merchant's share of its price (max_plan_free_value_bp)."""
        free, allowed = self.free_value_fen(), self.pay_fen * wallet_settings.max_plan_free_value_bp // 10000
        if free > allowed:
            raise fail(
                field, "free_value_over_limit",
                _("The plan gives %(free)s in bonus and gifts for %(pay)s paid; at most %(share)s%% of the price "
                  "(%(allowed)s) may be given."),
                free=yuan(free), pay=yuan(self.pay_fen), allowed=yuan(allowed),
                share=f"{wallet_settings.max_plan_free_value_bp / 100:g}",
            )  # fmt: skip


# ---------------------------------------------------------------- benefits held by members


class StoredValueCard(models.Model):
    """The member's stored-value card (储值卡). Its balances are the principal and bonus ledger accounts;
    a cash refund closes it for good."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CLOSED = "closed", _("Closed by cash refund")

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    member = models.OneToOneField(
        Owner, verbose_name=_("member"), on_delete=models.PROTECT, related_name="stored_value_card"
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("stored-value card")
        verbose_name_plural = _("stored-value cards")

    def __str__(self) -> str:
        return _("Stored-value card of %(member)s") % {"member": self.member}


class Voucher(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Owner, verbose_name=_("member"), on_delete=models.PROTECT, related_name="vouchers")
    template = models.ForeignKey(
        VoucherTemplate, verbose_name=_("voucher template"), on_delete=models.PROTECT, related_name="vouchers"
    )
    face_value_fen = fen_field(_("face value (yuan)"))
    paid_fen = fen_field(_("paid (yuan)"), default=0)
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    valid_until = models.DateTimeField(_("valid until"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(_("source"), max_length=64)

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        indexes = [models.Index(fields=["status", "valid_until"], name="voucher_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.template} {yuan(self.face_value_fen)}"

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

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Owner, verbose_name=_("member"), on_delete=models.PROTECT, related_name="grants")
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    coupon_template = models.ForeignKey(
        CouponTemplate,
        verbose_name=_("coupon template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="grants",
    )
    service = models.ForeignKey(
        Service, verbose_name=_("service"), on_delete=models.PROTECT, null=True, blank=True, related_name="grants"
    )
    package = models.ForeignKey(
        EntitlementPackage,
        verbose_name=_("entitlement package"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    uses_total = models.PositiveIntegerField(_("uses granted"))
    paid_fen = fen_field(_("paid (yuan)"), default=0)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(_("source"), max_length=64)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("coupon / entitlement held")
        verbose_name_plural = _("coupons and entitlements held")
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

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(
        Owner, verbose_name=_("member"), on_delete=models.PROTECT, related_name="vip_memberships"
    )
    card_type = models.ForeignKey(
        VipCardType, verbose_name=_("VIP card type"), on_delete=models.PROTECT, related_name="memberships"
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    source_ref = models.CharField(_("source"), max_length=64)

    class Meta:
        verbose_name = _("VIP membership")
        verbose_name_plural = _("VIP memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "card_type"], condition=models.Q(status="active"), name="one_active_vip_per_type"
            )
        ]

    def __str__(self) -> str:
        return _("%(card)s of %(member)s") % {"card": self.card_type, "member": self.member}


# ---------------------------------------------------------------- operations (numbered business records)


class Operation(models.Model):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    number = models.CharField(_("number"), max_length=24, editable=False)
    member = models.ForeignKey(Owner, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("operator"), on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    idempotency_key = models.CharField(_("request key"), max_length=128, null=True, blank=True)
    # Fingerprint of the request's content (wallet.services.idempotency.fingerprint): a replay of the key with
    # other content is refused as a conflict. Empty when recorded without a key.
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True, default="", editable=False)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.number


def _number_constraints(name: str) -> list:
    return [
        models.UniqueConstraint(fields=["merchant", "number"], name=f"{name}_number_unique"),
        models.UniqueConstraint(fields=["merchant", "idempotency_key"], name=f"{name}_idempotency_unique"),
    ]


def _time_indexes(name: str) -> list:
    """The orders records are read in, newest first: a merchant's list and dashboard periods
    (merchant, created_at) and a member's tab (member, merchant, created_at); the id breaks ties, so a
    page is read off the index instead of sorting the whole history."""
    return [
        models.Index(fields=["merchant", "created_at", "id"], name=f"{name}_merchant_time_idx"),
        models.Index(fields=["member", "merchant", "created_at", "id"], name=f"{name}_member_time_idx"),
    ]


class Recharge(Operation):
    payment_method = models.CharField(_("payment method"), max_length=16, choices=PaymentMethod.choices)
    list_total_fen = fen_field(_("goods total (yuan)"))
    paid_total_fen = fen_field(_("amount paid (yuan)"))
    bonus_total_fen = fen_field(_("bonus (yuan)"), default=0)
    entry_id = models.BigIntegerField(_("ledger entry"), null=True, editable=False)

    class Meta:
        verbose_name = _("recharge")
        verbose_name_plural = _("recharges")
        constraints = _number_constraints("recharge")
        indexes = _time_indexes("recharge")
        ordering = ["-created_at", "-id"]


class RechargeLine(models.Model):
    class Kind(models.TextChoices):
        STORED_VALUE = "stored_value", _("Stored value")
        PLAN = "plan", _("Recharge plan")
        COUPON = "coupon", _("Coupon")
        PACKAGE = "package", _("Entitlement package")
        VOUCHER = "voucher", _("Voucher")
        VIP = "vip", _("VIP card")

    recharge = models.ForeignKey(Recharge, verbose_name=_("recharge"), on_delete=models.PROTECT, related_name="lines")
    line_no = models.PositiveSmallIntegerField(_("line number"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    plan = models.ForeignKey(
        RechargePlan, verbose_name=_("recharge plan"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    coupon_template = models.ForeignKey(
        CouponTemplate,
        verbose_name=_("coupon template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    package = models.ForeignKey(
        EntitlementPackage,
        verbose_name=_("entitlement package"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    voucher_template = models.ForeignKey(
        VoucherTemplate,
        verbose_name=_("voucher template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    vip_type = models.ForeignKey(
        VipCardType, verbose_name=_("VIP card type"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price_fen = fen_field(_("unit price (yuan)"))
    discount_bp = models.PositiveIntegerField(_("price rate (basis points)"), default=10000)
    amount_fen = fen_field(
        _("amount (yuan)"), help_text=_("quantity × unit price × discount, rounded half up to the fen")
    )
    bonus_fen = fen_field(_("bonus (yuan)"), default=0)

    class Meta:
        verbose_name = _("recharge line")
        verbose_name_plural = _("recharge lines")

    def __str__(self) -> str:
        return f"{self.recharge}/{self.line_no}"


class ServiceTag(models.Model):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("name"), max_length=30)

    class Meta:
        verbose_name = _("service tag")
        verbose_name_plural = _("service tags")
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="service_tag_unique")]

    def __str__(self) -> str:
        return self.name


class ServiceRecord(Operation):
    staff = models.ForeignKey(
        Staff, verbose_name=_("served by"), on_delete=models.PROTECT, related_name="service_records"
    )
    notes = models.TextField(_("service notes"), blank=True)
    tags = models.ManyToManyField(ServiceTag, verbose_name=_("tags"), blank=True)

    class Meta:
        verbose_name = _("service record")
        verbose_name_plural = _("service records")
        constraints = _number_constraints("service_record")
        indexes = _time_indexes("servicerec")
        ordering = ["-created_at", "-id"]


class Consumption(Operation):
    service_record = models.ForeignKey(
        ServiceRecord,
        verbose_name=_("service record"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consumptions",
    )
    payable_total_fen = fen_field(_("payable (yuan)"))

    class Meta:
        verbose_name = _("consumption")
        verbose_name_plural = _("consumptions")
        constraints = _number_constraints("consumption")
        indexes = _time_indexes("consumption")
        ordering = ["-created_at", "-id"]


class EntitlementRefund(Operation):
    reason = models.CharField(_("reason"), max_length=200)
    total_fen = fen_field(_("refunded (yuan)"))

    class Meta:
        verbose_name = _("entitlement refund")
        verbose_name_plural = _("entitlement refunds")
        constraints = _number_constraints("entitlement_refund")
        indexes = _time_indexes("entrefund")
        ordering = ["-created_at", "-id"]


class ConsumptionLine(models.Model):
    class Status(models.TextChoices):
        NORMAL = "normal", _("Not refunded")
        REFUNDED = "refunded", _("Refunded")

    consumption = models.ForeignKey(
        Consumption, verbose_name=_("consumption"), on_delete=models.PROTECT, related_name="lines"
    )
    line_no = models.PositiveSmallIntegerField(_("line number"))
    service = models.ForeignKey(Service, verbose_name=_("service"), on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price_fen = fen_field(_("unit price (yuan)"))
    payable_fen = fen_field(_("payable (yuan)"))
    staff = models.ForeignKey(
        Staff,
        verbose_name=_("served by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consumption_lines",
    )
    grant = models.ForeignKey(
        Grant, verbose_name=_("coupon / entitlement"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    voucher = models.ForeignKey(
        Voucher, verbose_name=_("voucher"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment_method = models.CharField(_("payment method"), max_length=16, choices=PaymentMethod.choices, blank=True)
    principal_fen = fen_field(_("from principal (yuan)"), default=0)
    bonus_fen = fen_field(_("from bonus (yuan)"), default=0)
    voucher_fen = fen_field(_("from voucher (yuan)"), default=0)
    direct_fen = fen_field(_("paid directly (yuan)"), default=0)
    uses = models.PositiveIntegerField(_("uses"), default=0)
    deferred_fen = fen_field(
        _("deferred revenue recognised (yuan)"),
        default=0,
        help_text=_("prepaid revenue recognised by the uses"),
    )
    commission_fen = fen_field(_("commission (yuan)"), default=0)
    points = models.BigIntegerField(_("points"), default=0)
    entry_id = models.BigIntegerField(_("ledger entry"), null=True, editable=False)
    status = models.CharField(_("refund status"), max_length=8, choices=Status.choices, default=Status.NORMAL)
    refund = models.ForeignKey(
        EntitlementRefund,
        verbose_name=_("entitlement refund"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="lines",
    )

    class Meta:
        verbose_name = _("consumption line")
        verbose_name_plural = _("consumption lines")
        constraints = [models.UniqueConstraint(fields=["consumption", "line_no"], name="consumption_line_unique")]

    def __str__(self) -> str:
        return f"{self.consumption}/{self.line_no}"

    @property
    def cash_funded_fen(self) -> int:
        """The invoiceable part: principal-funded or paid directly."""
        return self.principal_fen + self.direct_fen


class CashRefund(Operation):
    class Kind(models.TextChoices):
        STORED_VALUE = "stored_value", _("Stored value (unused principal)")
        GRANT = "grant", _("Unused coupon / entitlement uses")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    grant = models.ForeignKey(
        Grant, verbose_name=_("coupon / entitlement"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment_method = models.CharField(_("payment method"), max_length=16, choices=PaymentMethod.choices)
    paid_out_fen = fen_field(_("paid out (yuan)"))
    forfeited_bonus_fen = fen_field(_("bonus forfeited (yuan)"), default=0)
    gifts_charged_fen = fen_field(
        _("gifts charged (yuan)"),
        default=0,
        help_text=_("used plan gifts charged against the principal at list price"),
    )
    uses_refunded = models.PositiveIntegerField(_("uses refunded"), default=0)
    reason = models.CharField(_("reason"), max_length=200)
    entry_id = models.BigIntegerField(_("ledger entry"), null=True, editable=False)

    class Meta:
        verbose_name = _("cash refund")
        verbose_name_plural = _("cash refunds")
        constraints = _number_constraints("cash_refund")
        indexes = _time_indexes("cashrefund")
        ordering = ["-created_at", "-id"]
