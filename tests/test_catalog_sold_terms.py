"""Once a plan, template, package or VIP type has been sold or issued, its price and terms are frozen:
refunds value what was given by them (plan gifts are taken back by the plan's gift links at list
price), so a later edit would change what a refund takes. Names and the active flag stay editable."""

import pytest
from django.core.exceptions import ValidationError

from tests.wallet_helpers import load_plan, make_shop
from wallet import services
from wallet.models import CouponTemplate, EntitlementPackage, PackageItem, RechargePlan, VipCardType, VoucherTemplate


def _sell(shop, what: str) -> None:
    if what == "plan":
        load_plan(shop)
    elif what == "coupon":
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    elif what == "package":
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="package", package=shop.cleaning_package)])  # fmt: skip
    elif what == "vip":
        services.purchase_vip(member=shop.member, vip_type=shop.vip_year, payment_method="cash", store=shop.store,
                              actor=None)  # fmt: skip
    elif what == "voucher":
        services.issue_voucher(template=shop.voucher, member=shop.member, actor=None, reason="新会员礼")


CASES = [
    ("plan", lambda s: RechargePlan.objects.get(pk=s.plan.pk), "bonus_fen", 30_000),
    ("plan", lambda s: RechargePlan.objects.get(pk=s.plan.pk), "pay_fen", 50_000),
    ("plan", lambda s: RechargePlan.objects.get(pk=s.plan.pk), "gift_coupon_id", "COUPON"),
    ("coupon", lambda s: CouponTemplate.objects.get(pk=s.car_wash_coupon.pk), "uses", 12),
    ("coupon", lambda s: CouponTemplate.objects.get(pk=s.car_wash_coupon.pk), "price_fen", 25_000),
    ("package", lambda s: EntitlementPackage.objects.get(pk=s.cleaning_package.pk), "price_fen", 60_000),
    ("vip", lambda s: VipCardType.objects.get(pk=s.vip_year.pk), "price_fen", 1),
    ("vip", lambda s: VipCardType.objects.get(pk=s.vip_year.pk), "period", "month"),
    ("voucher", lambda s: VoucherTemplate.objects.get(pk=s.voucher.pk), "amount_fen", 4_500),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("what", "get", "field", "value"), CASES)
def test_terms_of_a_sold_catalog_row_cannot_change(what, get, field, value):
    shop = make_shop(max_plan_free_value_bp=10_000)
    row = get(shop)
    if value == "COUPON":
        value = shop.car_wash_coupon.pk
    setattr(row, field, value)
    row.clean()  # not sold yet: the same edit is accepted
    _sell(shop, what)
    row = get(shop)
    setattr(row, field, value)
    with pytest.raises(ValidationError) as exc:
        row.clean()
    assert exc.value.code == "terms_sold"
    fresh = get(shop)
    fresh.name, fresh.is_active = "改名", False
    fresh.clean()  # the name and the active flag stay editable


@pytest.mark.django_db
def test_items_of_a_sold_package_cannot_change():
    shop = make_shop()
    _sell(shop, "package")
    item = PackageItem.objects.get(package=shop.cleaning_package)
    item.quantity = 50
    with pytest.raises(ValidationError) as exc:
        item.clean()
    assert exc.value.code == "terms_sold"
    added = PackageItem(package=shop.cleaning_package, service=shop.car_wash, quantity=1)
    with pytest.raises(ValidationError):
        added.clean()
