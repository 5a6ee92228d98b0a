"""Issue 9, items 2, 3, 4, 9 (services) and 13: no staff member creates value beyond the merchant's
limits, commission never exceeds what a line earned, amounts have ceilings, every related object is the
operation's merchant's, and a replayed request key must carry the same content."""

from __future__ import annotations

import dataclasses
import inspect
import threading
import typing
from collections.abc import Callable
from contextlib import contextmanager

import pytest
from django.core.exceptions import ValidationError
from django.db import models
from django.forms import modelform_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from ledger import selectors as ledger_selectors
from ledger.models import Entry
from tests.factories import make_staff
from tests.wallet_helpers import Shop, load_plan, make_shop
from wallet import accounts as wallet_accounts
from wallet import rules, services
from wallet.models import (
    ActivityPointsRule,
    CashRefund,
    CommissionKind,
    CommissionRule,
    Consumption,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    PackageItem,
    Recharge,
    RechargePlan,
    Service,
    ServiceRecord,
    VipMembership,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)

pytestmark = pytest.mark.django_db

RECORDS = (Entry, Recharge, Consumption, ServiceRecord, EntitlementRefund, CashRefund, Grant, Voucher, VipMembership)


def _counts() -> dict:
    return {model.__name__: model.objects.count() for model in RECORDS}


@contextmanager
def refused(code: str):
    """The block raises a DomainError with `code` and leaves no record, grant, voucher or ledger entry."""
    before = _counts()
    with pytest.raises(DomainError) as exc:
        yield exc
    assert exc.value.code == code, exc.value
    assert _counts() == before


def clean_codes(obj: models.Model) -> set[str]:
    """The codes of what the model's validation (as run by the admin's ModelForm) refuses."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        return {error.code for errors in exc.error_dict.values() for error in errors}
    return set()


def stored_value(shop: Shop, amount: int, bonus: int = 0, quantity: int = 1, **kwargs) -> Recharge:
    return services.recharge(
        member=shop.member, store=shop.store, payment_method="cash", actor=None,
        items=[services.RechargeItem(kind="stored_value", amount_fen=amount, bonus_fen=bonus, quantity=quantity)],
        **kwargs,
    )  # fmt: skip


def priced_service(shop: Shop, fen: int, **kwargs) -> Service:
    return Service.objects.create(merchant=shop.merchant, category=shop.massage.category,
                                  name=f"s{fen}-{Service.objects.count()}", list_price_fen=fen, member_price_fen=fen,
                                  **kwargs)  # fmt: skip


# ---------------------------------------------------------------- item 2: bonus and free value are bounded


def test_plan_paying_one_fen_for_a_million_bonus_is_refused_at_the_catalog():
    shop = make_shop()
    form_class = modelform_factory(RechargePlan, fields="__all__")  # what the admin's ModelForm runs
    form = form_class({"merchant": shop.merchant.pk, "name": "刷单", "pay_fen": 1, "bonus_fen": 100_000_000,
                       "gift_coupon_quantity": 0, "is_active": True})  # fmt: skip
    assert not form.is_valid()
    assert form.errors.as_data()["bonus_fen"][0].code == "free_value_over_limit"
    assert "¥1,000,000.00" in form.errors["bonus_fen"][0]
    # Gifts count too (at list value): a ¥100 plan gifting a ¥500 package (and 3 coupons).
    plan = RechargePlan(merchant=shop.merchant, name="礼包", pay_fen=10_000, gift_package=shop.cleaning_package,
                        gift_coupon=shop.car_wash_coupon, gift_coupon_quantity=3)  # fmt: skip
    assert clean_codes(plan) == {"free_value_over_limit"}
    assert clean_codes(shop.plan) == set()  # the configured 充1000送200 is fine


def test_plan_row_saved_around_the_admin_is_refused_at_recharge():
    shop = make_shop()
    bad = RechargePlan.objects.create(merchant=shop.merchant, name="坏", pay_fen=1, bonus_fen=999_999_999_999_999)
    with refused("free_value_over_limit") as exc:
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="plan", plan=bad)])  # fmt: skip
    assert exc.value.field == "items[0].plan"
    # A merchant that allows a higher share may sell it (the limit is the merchant's setting).
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_plan_free_value_bp=10_000)
    generous = RechargePlan.objects.create(merchant=shop.merchant, name="充100送100", pay_fen=10_000, bonus_fen=10_000)
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="plan", plan=generous)])  # fmt: skip


def test_one_fen_paid_for_trillions_of_manual_bonus_is_refused():
    shop = make_shop()
    with refused("free_value_over_limit") as exc:
        stored_value(shop, 1, bonus=999_999_999_999_999)  # ¥0.01 paid, ¥9,999,999,999,999.99 bonus asked
    assert exc.value.field == "items[0].bonus_fen"
    assert "¥10,000.00" in exc.value.message_text
    with refused("free_value_over_limit"):  # 20 % of ¥1,000 is ¥200: ¥200.01 is over
        stored_value(shop, 100_000, bonus=20_001)
    with refused("free_value_over_limit"):  # the absolute cap: ¥10,000 per recharge, over several lines
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="stored_value", amount_fen=4_000_000, bonus_fen=800_000),
                                 services.RechargeItem(kind="stored_value", amount_fen=4_000_000, bonus_fen=800_000)])  # fmt: skip
    stored_value(shop, 100_000, bonus=20_000)
    assert ledger_selectors.balance(wallet_accounts.stored_value_accounts(shop.member)[1]) == 20_000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(1, 10_000_000), bonus=st.integers(0, 3_000_000), quantity=st.integers(1, 3))
def test_manual_bonus_is_accepted_exactly_within_the_limits(amount, bonus, quantity):
    shop = make_shop()
    limits = WalletSettings.objects.get(merchant=shop.merchant)
    total_bonus, total_paid = bonus * quantity, amount * quantity
    within = (
        total_bonus <= total_paid * limits.max_manual_bonus_bp // 10000
        and total_bonus <= limits.max_manual_bonus_fen
        and total_paid <= limits.max_recharge_fen
    )
    try:
        stored_value(shop, amount, bonus=bonus, quantity=quantity)
    except DomainError as exc:
        assert not within and exc.code in ("free_value_over_limit", "amount_over_ceiling")
        assert Entry.objects.filter(merchant=shop.merchant).count() == 0
        return
    assert within
    _principal, bonus_account = wallet_accounts.stored_value_accounts(shop.member)
    assert ledger_selectors.balance(bonus_account) == total_bonus


def test_manual_discount_on_a_recharge_line_is_bounded():
    shop = make_shop()
    with refused("free_value_over_limit"):  # a ¥500 package for 5 fen
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="package", package=shop.cleaning_package, discount_bp=1)])  # fmt: skip
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="package", package=shop.cleaning_package, discount_bp=7000)])  # fmt: skip


def test_free_templates_sold_for_nothing_are_bounded_like_gifts():
    shop = make_shop()
    big = VoucherTemplate.objects.create(merchant=shop.merchant, name="万元券", amount_fen=1_000_000, price_fen=0)
    with refused("free_value_over_limit"):  # "sold" at 0 next to a 1-fen stored-value line
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="stored_value", amount_fen=1),
                                 services.RechargeItem(kind="voucher", voucher_template=big)])  # fmt: skip
    cheap = VoucherTemplate.objects.create(merchant=shop.merchant, name="万元券", amount_fen=1_000_000, price_fen=1)
    assert clean_codes(cheap) == {"free_value_over_limit"}  # the catalog refuses a voucher sold far below face
    with refused("free_value_over_limit"):  # and so does the sale if the row got in anyway
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="voucher", voucher_template=cheap)])  # fmt: skip


def test_free_voucher_coupon_and_activity_points_are_bounded():
    shop = make_shop()
    big_voucher = VoucherTemplate.objects.create(merchant=shop.merchant, name="千元券", amount_fen=100_000)
    with refused("free_value_over_limit"):
        services.issue_voucher(template=big_voucher, member=shop.member, actor=None, reason="送")
    services.issue_voucher(template=shop.voucher, member=shop.member, actor=None, reason="生日礼")  # ¥50: fine

    # A free coupon template is worth its uses at the covered service's list price: 100 × ¥30 > ¥500.
    free_coupon = CouponTemplate.objects.create(merchant=shop.merchant, name="百次洗车", uses=100, price_fen=0)
    free_coupon.services.add(shop.car_wash)
    with refused("free_value_over_limit"):
        services.issue_coupons(template=free_coupon, member_ids=[shop.member.pk], actor=None, reason="送")
    with refused("free_value_over_limit"):
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="stored_value", amount_fen=1),
                                 services.RechargeItem(kind="coupon", coupon_template=free_coupon)])  # fmt: skip

    rule = ActivityPointsRule(merchant=shop.merchant, code="big", name="大奖", points=1_000_000)
    assert clean_codes(rule) == {"free_value_over_limit"}
    rule.save()  # saved around the admin: the award still refuses it
    with refused("free_value_over_limit"):
        services.award_activity_points(member=shop.member, rule=rule, occasion="x", actor=None)


# ---------------------------------------------------------------- item 3: commission never exceeds the line


def test_fixed_commission_above_the_price_is_refused_at_the_catalog():
    shop = make_shop()
    service = Service(merchant=shop.merchant, category=shop.massage.category, name="1分服务", list_price_fen=1,
                      member_price_fen=1, commission_kind=CommissionKind.FIXED, commission_value=2_000_000_000)  # fmt: skip
    assert clean_codes(service) == {"commission_over_price"}
    with pytest.raises(ValidationError) as exc:
        service.full_clean()
    assert "¥20,000,000.00" in exc.value.message_dict["commission_value"][0]
    service.commission_kind, service.commission_value = CommissionKind.PERCENT, 10_001
    assert clean_codes(service) == {"commission_over_price"}
    service.commission_value = 10_000
    assert clean_codes(service) == set()
    rule = CommissionRule(service=shop.cleaning, staff_level=2, kind=CommissionKind.FIXED, value=10_001)
    assert clean_codes(rule) == {"commission_over_price"}  # more than the ¥100 member price


def test_one_fen_service_with_twenty_million_commission_owes_at_most_what_was_paid():
    shop = make_shop()
    bad = priced_service(shop, 1, commission_kind=CommissionKind.FIXED, commission_value=2_000_000_000)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=bad, quantity=100, staff=shop.staff,
                                                                   direct_fen=100, payment_method="cash")])  # fmt: skip
    line = consumption.lines.get()
    assert line.commission_fen == 100  # ¥1.00 paid, ¥1.00 at most (not ¥2,000,000,000)
    commission = ledger_selectors.find_account(shop.merchant, "commission", "CNY", staff=shop.staff)
    assert ledger_selectors.balance(commission) == 100
    # A per-level rule row is capped the same way.
    CommissionRule.objects.create(service=shop.car_wash, staff_level=shop.staff.level, kind="percent", value=90_000)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.car_wash, staff=shop.staff,
                                                                   direct_fen=3_000, payment_method="cash")])  # fmt: skip
    assert consumption.lines.get().commission_fen == 3_000


def test_commission_on_gifted_uses_is_capped_at_the_value_they_recognise():
    shop = make_shop()
    free = CouponTemplate.objects.create(merchant=shop.merchant, name="体验", uses=1, price_fen=0)
    free.services.add(shop.car_wash)
    services.issue_coupons(template=free, member_ids=[shop.member.pk], actor=None, reason="体验")
    grant = Grant.objects.get(member=shop.member, coupon_template=free)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.car_wash, grant=grant,
                                                                   staff=shop.staff)])  # fmt: skip
    assert consumption.lines.get().commission_fen == 0  # nothing was paid for a gift


@given(
    kind=st.sampled_from(["fixed", "percent", "none"]),
    value=st.integers(0, 2**31 - 1),
    unit=st.integers(0, 10**12),
    quantity=st.integers(1, 10_000),
    earned_share=st.floats(0, 1),
)
def test_commission_never_exceeds_what_the_line_earned(kind, value, unit, quantity, earned_share):
    payable = unit * quantity
    earned = int(payable * earned_share)
    commission = rules.commission_for(kind, value, payable, quantity, earned)
    assert 0 <= commission <= earned


# ---------------------------------------------------------------- item 4: amount ceilings and overflow


def test_ninety_nine_billion_cash_recharge_is_refused_naming_the_ceiling():
    shop = make_shop()
    with refused("amount_over_ceiling") as exc:
        stored_value(shop, 9_999_999_999_900)
    assert "¥500,000.00" in exc.value.message_text and "¥99,999,999,999.00" in exc.value.message_text
    stored_value(shop, 50_000_000)  # exactly the ceiling is fine
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_recharge_fen=100_000_000)
    stored_value(shop, 100_000_000)


def test_consumption_above_the_ceiling_is_refused():
    shop = make_shop()
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_recharge_fen=10**12)
    stored_value(shop, 20_000_000)
    with refused("amount_over_ceiling") as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=priced_service(shop, 10_000_001),
                                                         stored_value_fen=10_000_001)])  # fmt: skip
    assert "¥100,000.00" in exc.value.message_text


@pytest.mark.parametrize("quantity", [2**31, 2**40, 2**63, 2**64 + 1])
def test_huge_quantities_are_refused_cleanly(quantity):
    shop = make_shop()
    load_plan(shop)
    with refused("quantity_too_large"):
        stored_value(shop, 1, quantity=quantity)
    with refused("quantity_too_large"):
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon,
                                                       quantity=quantity)])  # fmt: skip
    with refused("quantity_too_large"):
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, quantity=quantity,
                                                         stored_value_fen=3_000 * quantity)])  # fmt: skip


def test_plan_gifts_cannot_multiply_past_the_benefit_limit():
    shop = make_shop()
    free = CouponTemplate.objects.create(merchant=shop.merchant, name="0元券", uses=1, price_fen=0)
    plan = RechargePlan.objects.create(merchant=shop.merchant, name="送海量", pay_fen=100, gift_coupon=free,
                                       gift_coupon_quantity=2**31 - 1)  # fmt: skip
    with refused("quantity_too_large"):
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="plan", plan=plan)])  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quantity=st.integers(1, 2**70), price=st.integers(1, 2**62), amount=st.integers(0, 2**70))
def test_any_quantity_and_amount_is_accepted_or_refused_with_a_code(quantity, price, amount):
    shop = make_shop()
    service = priced_service(shop, price)
    for call in (
        lambda: stored_value(shop, amount, quantity=quantity),
        lambda: services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=service, quantity=quantity,
                                                                 direct_fen=amount, payment_method="cash")]),
    ):  # fmt: skip
        try:
            call()
        except DomainError as exc:
            assert exc.code in {
                "quantity_too_large",
                "amount_too_large",
                "amount_over_ceiling",
                "payment_mismatch",
                "deduction_over_payable",
                "amount_zero",
            }


# ---------------------------------------------------------------- item 9: every related object is re-checked


def _fk_plan(a: Shop, b: Shop, **gift) -> RechargePlan:
    return RechargePlan.objects.create(merchant=a.merchant, name=f"跨{list(gift)[0]}", pay_fen=100_000, **gift)


def _bought_grant(shop: Shop) -> Grant:
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    return Grant.objects.filter(member=shop.member).latest("pk")


def _recharge(a: Shop, **item):
    store = item.pop("store", a.store)
    kind = item.pop("kind")
    return lambda: services.recharge(member=a.member, store=store, payment_method="cash", actor=None,
                                     items=[services.RechargeItem(kind=kind, **item)])  # fmt: skip


def _consume(a: Shop, fn=services.consume, store=None, service_record=None, **item):
    item.setdefault("service", a.car_wash)
    if "grant" not in item:
        item.setdefault("stored_value_fen", 3_000)
    kwargs = {"staff": a.staff} if fn is services.consume_with_service_record else {"service_record": service_record}
    kwargs.update(item.pop("call", {}))
    return lambda: fn(member=a.member, store=store or a.store, actor=None,
                      items=[services.ConsumptionItem(**item)], **kwargs)  # fmt: skip


def _a_line(shop: Shop):
    return services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)]).lines.get()  # fmt: skip


def _package_with_other_service(a: Shop, b: Shop):
    package = EntitlementPackage.objects.create(merchant=a.merchant, name="跨商户包", price_fen=1_000)
    PackageItem.objects.create(package=package, service=b.cleaning, quantity=1)
    return _recharge(a, kind="package", package=package)


def _items_cases(fn) -> dict:
    return {
        (fn.__name__, "items[].service"): lambda a, b: _consume(a, fn, service=b.car_wash),
        (fn.__name__, "items[].staff"): lambda a, b: _consume(a, fn, staff=b.staff),
        (fn.__name__, "items[].grant"): lambda a, b: _consume(a, fn, grant=_bought_grant(b)),
        (fn.__name__, "items[].voucher"): lambda a, b: _consume(
            a,
            fn,
            voucher=services.issue_voucher(template=b.voucher, member=b.member, actor=None, reason="x"),
            stored_value_fen=0,
            voucher_fen=3_000,
        ),
        (fn.__name__, "store"): lambda a, b: _consume(a, fn, store=b.store),
    }


# (operation, parameter) → setup(a, b) returning the call that must be refused. `a` is the member's merchant,
# `b` another one. Setup runs before the "nothing posted" snapshot.
CROSS_MERCHANT_CASES: dict[tuple[str, str], Callable[[Shop, Shop], Callable]] = {
    ("recharge", "store"): lambda a, b: _recharge(a, kind="stored_value", amount_fen=100, store=b.store),
    ("recharge", "items[].plan"): lambda a, b: _recharge(a, kind="plan", plan=b.plan),
    ("recharge", "items[].plan.gift_coupon"): lambda a, b: _recharge(
        a, kind="plan", plan=_fk_plan(a, b, gift_coupon=b.car_wash_coupon, gift_coupon_quantity=1)
    ),
    ("recharge", "items[].plan.gift_package"): lambda a, b: _recharge(
        a, kind="plan", plan=_fk_plan(a, b, gift_package=b.cleaning_package)
    ),
    ("recharge", "items[].plan.gift_vip"): lambda a, b: _recharge(
        a, kind="plan", plan=_fk_plan(a, b, gift_vip=b.vip_year)
    ),
    ("recharge", "items[].coupon_template"): lambda a, b: _recharge(
        a, kind="coupon", coupon_template=b.car_wash_coupon
    ),
    ("recharge", "items[].package"): lambda a, b: _recharge(a, kind="package", package=b.cleaning_package),
    ("recharge", "items[].package.items.service"): _package_with_other_service,
    ("recharge", "items[].voucher_template"): lambda a, b: _recharge(a, kind="voucher", voucher_template=b.voucher),
    ("recharge", "items[].vip_type"): lambda a, b: _recharge(a, kind="vip", vip_type=b.vip_year),
    ("purchase_vip", "vip_type"): lambda a, b: (
        lambda: services.purchase_vip(
            member=a.member, vip_type=b.vip_year, payment_method="cash", store=a.store, actor=None
        )
    ),
    ("purchase_vip", "store"): lambda a, b: (
        lambda: services.purchase_vip(
            member=a.member, vip_type=a.vip_year, payment_method="cash", store=b.store, actor=None
        )
    ),
    ("issue_coupons", "member_ids"): lambda a, b: (
        lambda: services.issue_coupons(template=a.car_wash_coupon, member_ids=[b.member.pk], actor=None, reason="x")
    ),
    ("issue_voucher", "template"): lambda a, b: (
        lambda: services.issue_voucher(template=b.voucher, member=a.member, actor=None, reason="x")
    ),
    ("award_activity_points", "rule"): lambda a, b: (
        lambda: services.award_activity_points(
            member=a.member,
            rule=ActivityPointsRule.objects.create(merchant=b.merchant, code="b", name="b", points=1),
            occasion="x",
            actor=None,
        )
    ),
    ("record_service", "staff"): lambda a, b: (
        lambda: services.record_service(member=a.member, staff=b.staff, store=a.store, actor=None)
    ),
    ("record_service", "store"): lambda a, b: (
        lambda: services.record_service(member=a.member, staff=a.staff, store=b.store, actor=None)
    ),
    ("consume", "service_record"): lambda a, b: _consume(
        a, service_record=services.record_service(member=b.member, staff=b.staff, store=b.store, actor=None)
    ),
    **_items_cases(services.consume),
    **_items_cases(services.consume_with_service_record),
    ("consume_with_service_record", "staff"): lambda a, b: _consume(
        a, services.consume_with_service_record, call={"staff": b.staff}
    ),
    ("refund_consumption_lines", "lines"): lambda a, b: (
        lambda line: lambda: services.refund_consumption_lines(member=a.member, lines=[line], reason="x", actor=None)
    )(_a_line(b)),
    ("refund_consumption_lines", "store"): lambda a, b: (
        lambda line: (
            lambda: services.refund_consumption_lines(
                member=a.member, lines=[line], reason="x", actor=None, store=b.store
            )
        )
    )(_a_line(a)),
    ("cash_refund_stored_value", "store"): lambda a, b: (
        lambda: services.cash_refund_stored_value(
            member=a.member, payment_method="cash", reason="x", actor=None, store=b.store
        )
    ),
    ("cash_refund_grant", "store"): lambda a, b: (
        lambda grant: (
            lambda: services.cash_refund_grant(
                grant=grant, payment_method="cash", reason="x", actor=None, store=b.store
            )
        )
    )(_bought_grant(a)),
}

# The object an operation takes its merchant from: not "another merchant's" by definition.
ROOTS = {"member", "grant:cash_refund_grant", "template:issue_coupons"}
# Catalog rows a line names whose own foreign keys the service must follow too.
FOLLOWED = {RechargePlan}


def _merchant_scoped(model) -> bool:
    return (
        isinstance(model, type)
        and issubclass(model, models.Model)
        and any(f.name == "merchant" for f in model._meta.get_fields())
    )


def _models_in(hint) -> list:
    """Model classes in a hint: X, X | None, Sequence[X]."""
    if _merchant_scoped(hint):
        return [hint]
    return [m for arg in typing.get_args(hint) for m in _models_in(arg)]


def _dataclasses_in(hint) -> list:
    if dataclasses.is_dataclass(hint):
        return [hint]
    return [d for arg in typing.get_args(hint) for d in _dataclasses_in(arg)]


def operations() -> dict[str, Callable]:
    """Every public wallet operation: the service functions that take an actor."""
    return {
        name: fn
        for name, fn in inspect.getmembers(services, inspect.isfunction)
        if not name.startswith("_")
        and fn.__module__.startswith(services.__name__ + ".")
        and "actor" in inspect.signature(fn).parameters
    }


def related_parameters() -> set[tuple[str, str]]:
    """(operation, parameter path) for every merchant-scoped object an operation receives: parameters,
    fields of its line items, and the foreign keys of the catalog rows in FOLLOWED."""
    found = set()
    for name, fn in operations().items():
        hints = typing.get_type_hints(fn)
        for param in inspect.signature(fn).parameters:
            if param in ("actor", "idempotency_key") or param in ROOTS or f"{param}:{name}" in ROOTS:
                continue
            hint = hints.get(param)
            if _models_in(hint):
                found.add((name, param))
            for item_class in _dataclasses_in(hint):
                item_hints = typing.get_type_hints(item_class)
                for field in dataclasses.fields(item_class):
                    for model in _models_in(item_hints[field.name]):
                        found.add((name, f"{param}[].{field.name}"))
                        if model in FOLLOWED:
                            for fk in model._meta.get_fields():
                                if fk.many_to_one and fk.name != "merchant" and _merchant_scoped(fk.related_model):
                                    found.add((name, f"{param}[].{field.name}.{fk.name}"))
    return found


def test_every_related_parameter_of_every_operation_has_a_cross_merchant_case():
    missing = related_parameters() - set(CROSS_MERCHANT_CASES)
    assert not missing, f"add a case to CROSS_MERCHANT_CASES for {sorted(missing)}"


@pytest.mark.parametrize("case", sorted(CROSS_MERCHANT_CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_another_merchants_object_is_refused_and_nothing_is_posted(case):
    a, b = make_shop(), make_shop()
    load_plan(a)
    load_plan(b)
    call = CROSS_MERCHANT_CASES[case](a, b)
    with refused("other_merchant"):
        call()


def test_catalog_rows_pointing_at_another_merchant_are_refused():
    a, b = make_shop(), make_shop()
    plan = RechargePlan(merchant=a.merchant, name="跨", pay_fen=100_000, gift_coupon=b.car_wash_coupon,
                        gift_coupon_quantity=1)  # fmt: skip
    assert "other_merchant" in clean_codes(plan)
    assert clean_codes(PackageItem(package=a.cleaning_package, service=b.massage, quantity=1)) == {"other_merchant"}
    service = Service(merchant=a.merchant, category=b.massage.category, name="x", list_price_fen=1, member_price_fen=1)
    assert clean_codes(service) == {"other_merchant"}


# ---------------------------------------------------------------- item 13: a replay must match the request


def _replay_cases(shop: Shop) -> dict[str, tuple[Callable, Callable]]:
    """operation → (call with key k, the same operation with other content and key k)."""
    s = shop

    def line_of(consumption):
        return list(consumption.lines.all())

    def spend(q):
        return services.consume(member=s.member, store=s.store, actor=None,
                                items=[services.ConsumptionItem(service=s.car_wash, quantity=q,
                                                                stored_value_fen=3_000 * q)])  # fmt: skip

    first_line, second_line = line_of(spend(1)), line_of(spend(1))
    grant = _bought_grant(s)

    def consume_ws(q, key):
        return services.consume_with_service_record(
            member=s.member, staff=s.staff, store=s.store, actor=None, idempotency_key=key,
            items=[services.ConsumptionItem(service=s.car_wash, quantity=q, stored_value_fen=3_000 * q)],
        )  # fmt: skip

    return {
        "recharge": (lambda k: stored_value(s, 10_000, idempotency_key=k),
                     lambda k: stored_value(s, 99_999, idempotency_key=k)),
        "purchase_vip": (
            lambda k: services.purchase_vip(member=s.member, vip_type=s.vip_year, payment_method="cash",
                                            store=s.store, actor=None, idempotency_key=k),
            lambda k: services.purchase_vip(member=s.member, vip_type=s.vip_year, payment_method="wechat",
                                            store=s.store, actor=None, idempotency_key=k),
        ),
        "consume": (
            lambda k: services.consume(member=s.member, store=s.store, actor=None, idempotency_key=k,
                                       items=[services.ConsumptionItem(service=s.car_wash, stored_value_fen=3_000)]),
            lambda k: services.consume(member=s.member, store=s.store, actor=None, idempotency_key=k,
                                       items=[services.ConsumptionItem(service=s.car_wash, quantity=2,
                                                                       stored_value_fen=6_000)]),
        ),
        "consume_with_service_record": (lambda k: consume_ws(1, k), lambda k: consume_ws(2, k)),
        "record_service": (
            lambda k: services.record_service(member=s.member, staff=s.staff, store=s.store, actor=None,
                                              notes="洗车", idempotency_key=k),
            lambda k: services.record_service(member=s.member, staff=s.staff, store=s.store, actor=None,
                                              notes="洁牙", idempotency_key=k),
        ),
        "refund_consumption_lines": (
            lambda k: services.refund_consumption_lines(member=s.member, lines=first_line, reason="不满意",
                                                        actor=None, idempotency_key=k),
            lambda k: services.refund_consumption_lines(member=s.member, lines=second_line, reason="不满意",
                                                        actor=None, idempotency_key=k),
        ),
        "cash_refund_grant": (
            lambda k: services.cash_refund_grant(grant=grant, payment_method="cash", reason="退", actor=None,
                                                 idempotency_key=k),
            lambda k: services.cash_refund_grant(grant=grant, payment_method="alipay", reason="退", actor=None,
                                                 idempotency_key=k),
        ),
        "cash_refund_stored_value": (
            lambda k: services.cash_refund_stored_value(member=s.member, payment_method="cash", reason="搬走",
                                                        actor=None, idempotency_key=k),
            lambda k: services.cash_refund_stored_value(member=s.member, payment_method="wechat", reason="搬走",
                                                        actor=None, idempotency_key=k),
        ),
    }  # fmt: skip


REPLAYED = [
    "recharge", "purchase_vip", "consume", "consume_with_service_record", "record_service",
    "refund_consumption_lines", "cash_refund_grant", "cash_refund_stored_value",
]  # fmt: skip


def test_every_operation_taking_a_key_has_a_replay_case():
    keyed = {name for name, fn in operations().items() if "idempotency_key" in inspect.signature(fn).parameters}
    assert keyed == set(REPLAYED)


@pytest.mark.parametrize("operation", REPLAYED)
def test_replay_with_the_same_content_answers_the_first_record(operation):
    shop = make_shop()
    load_plan(shop)
    first, _other = _replay_cases(shop)[operation]
    record = first("form-token-1")
    before = _counts()
    assert first("form-token-1").pk == record.pk
    assert _counts() == before
    assert len(record.request_hash) == 64


@pytest.mark.parametrize("operation", REPLAYED)
def test_replay_with_different_content_is_refused_as_a_conflict(operation):
    shop = make_shop()
    load_plan(shop)
    first, other = _replay_cases(shop)[operation]
    record = first("form-token-1")
    with refused("idempotency_conflict") as exc:
        other("form-token-1")
    assert exc.value.field == "idempotency_key"
    assert record.number in exc.value.message_text
    if not operation.startswith("cash_refund"):  # a cash refund closes what it refunds
        assert other("form-token-2").pk != record.pk  # the other content is itself a valid request


def test_replayed_form_token_with_another_amount_is_not_answered_recorded():
    shop = make_shop()
    first = stored_value(shop, 10_000, idempotency_key="tok")
    with refused("idempotency_conflict"):
        stored_value(shop, 1_000_000, idempotency_key="tok")
    assert Recharge.objects.get(pk=first.pk).paid_total_fen == 10_000


def test_records_from_before_fingerprints_are_answered_as_before():
    shop = make_shop()
    first = stored_value(shop, 10_000, idempotency_key="old")
    Recharge.objects.filter(pk=first.pk).update(request_hash="")
    assert stored_value(shop, 20_000, idempotency_key="old").pk == first.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_replays_with_different_amounts_record_one_and_refuse_the_others():
    from tests.test_ledger_postgres import run_threads

    shop = make_shop()
    results: list[str] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        try:
            record = stored_value(shop, 10_000 + (i % 2), idempotency_key="race-1")
            outcome = f"ok:{record.paid_total_fen}"
        except DomainError as exc:
            outcome = exc.code
        with lock:
            results.append(outcome)

    assert run_threads(8, submit) == []
    assert Recharge.objects.filter(merchant=shop.merchant).count() == 1
    winner = Recharge.objects.get(merchant=shop.merchant).paid_total_fen
    assert sorted(results) == sorted([f"ok:{winner}"] * 4 + ["idempotency_conflict"] * 4)


def test_staff_of_another_merchant_is_refused_when_recording_a_visit():
    a, b = make_shop(), make_shop()
    with refused("other_merchant"):
        services.record_service(member=a.member, staff=make_staff(b.merchant, "clerk"), store=a.store, actor=None)


# ---------------------------------------------------------------- the same through the portal's forms


@pytest.fixture
def portal(client):
    from members import roles

    shop = make_shop()
    client.force_login(make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store]).user)
    return client, shop


def test_portal_recharge_with_huge_bonus_shows_the_limit_and_records_nothing(portal):
    from tests.test_portal_wallet import post_recharge

    client, shop = portal
    response = post_recharge(client, shop, amount="0.01", bonus="9999999999999.99")
    assert response.status_code == 200
    body = response.content.decode()
    assert "¥10,000.00" in body and "Use a recharge plan" in body
    assert not Recharge.objects.filter(member=shop.member).exists() and not Entry.objects.exists()
    response = post_recharge(client, shop, amount="99999999999", bonus="0")
    assert "¥500,000.00" in response.content.decode()
    response = post_recharge(client, shop, amount="1", bonus="0", quantity=str(2**40))
    assert response.status_code == 200
    assert not Recharge.objects.filter(member=shop.member).exists()


def test_portal_form_token_replayed_with_another_amount_is_a_conflict(portal):
    from tests.test_portal_wallet import post_recharge

    client, shop = portal
    post_recharge(client, shop, token="0b7c2a64-3d4b-4c55-9e8e-1f2a3b4c5d6e", amount="100.00", bonus="0")
    first = Recharge.objects.get(member=shop.member)
    response = post_recharge(client, shop, token="0b7c2a64-3d4b-4c55-9e8e-1f2a3b4c5d6e", amount="900.00", bonus="0")
    body = response.content.decode()
    assert "different content" in body and f"Recharge {first.number} recorded" not in body
    assert Recharge.objects.filter(member=shop.member).count() == 1
    assert Recharge.objects.get(pk=first.pk).paid_total_fen == 10_000
