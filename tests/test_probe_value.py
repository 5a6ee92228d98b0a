"""Adversarial probes of issue 9, items 2, 3, 4, 9 (wallet-service re-checks) and 13: free value through
paths other than the manual bonus, commission on value nobody paid for, ceilings and sizes, bad argument
types and strings reaching a column, idempotency keys that are empty, too long or not text."""

from __future__ import annotations

import pytest

from core.money import MAX_FEN
from tests.test_wallet_limits import refused, stored_value
from tests.wallet_helpers import Shop, load_plan, make_shop
from wallet import services
from wallet.models import (
    CommissionKind,
    Consumption,
    CouponTemplate,
    EntitlementPackage,
    PackageItem,
    Recharge,
    Service,
    VoucherTemplate,
    WalletSettings,
)

pytestmark = pytest.mark.django_db


def service(shop: Shop, fen: int, list_fen: int | None = None, **kwargs) -> Service:
    return Service.objects.create(merchant=shop.merchant, category=shop.massage.category,
                                  name=f"p{fen}-{Service.objects.count()}", list_price_fen=list_fen or fen,
                                  member_price_fen=fen, **kwargs)  # fmt: skip


def sell(shop: Shop, **item) -> Recharge:
    kind = item.pop("kind")
    return services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                             items=[services.RechargeItem(kind=kind, **item)])  # fmt: skip


# ---------------------------------------------------------------- idempotency keys (item 13)


def test_an_empty_key_is_no_key_and_never_collides():
    """ "" and None both mean "no key": two operations without a key are two records, never a unique
    key violation (a 500) on the second."""
    shop = make_shop()
    first = stored_value(shop, 10_000, idempotency_key="")
    second = stored_value(shop, 10_000, idempotency_key="")
    assert first.pk != second.pk
    load_plan(shop)
    spend = [services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)]
    one = services.consume(member=shop.member, store=shop.store, actor=None, items=spend, idempotency_key="")
    two = services.consume(member=shop.member, store=shop.store, actor=None, items=spend, idempotency_key="")
    assert one.pk != two.pk
    r1 = services.record_service(member=shop.member, staff=shop.staff, store=shop.store, actor=None,
                                 idempotency_key="")  # fmt: skip
    r2 = services.record_service(member=shop.member, staff=shop.staff, store=shop.store, actor=None,
                                 idempotency_key="")  # fmt: skip
    assert r1.pk != r2.pk


@pytest.mark.parametrize(
    "key, code",
    [("k" * 129, "text_too_long"), ("to\x00ken", "text_nul"), (12345, "key_not_text"), (b"bytes", "key_not_text"),
     (True, "key_not_text"), (["k"], "key_not_text")],
)  # fmt: skip
def test_a_key_that_cannot_be_stored_is_a_field_error(key, code):
    """A key longer than its column or with a NUL was a database error on PostgreSQL (a 500); a key that
    is not text was stored as its str() and could answer another request."""
    shop = make_shop()
    with refused(code) as exc:
        stored_value(shop, 10_000, idempotency_key=key)
    assert exc.value.field == "idempotency_key"


# ---------------------------------------------------------------- free value by selling below list value (item 2)


def test_coupon_template_priced_one_fen_cannot_sell_thousands_of_list_value():
    """A free template (price 0) is bounded as a gift; the same template priced 1 fen was not bounded at
    all: ¥0.01 bought 1,000 uses of a ¥200 service (¥200,000 at list price)."""
    shop = make_shop()
    template = CouponTemplate.objects.create(merchant=shop.merchant, name="一分券", uses=1_000, price_fen=1)
    template.services.add(shop.massage)
    with refused("free_value_over_limit") as exc:
        sell(shop, kind="coupon", coupon_template=template)
    assert exc.value.field == "items[0].coupon_template"
    # ... and bought by the hundred: the bound is per unit, so quantity does not help.
    with refused("free_value_over_limit"):
        sell(shop, kind="coupon", coupon_template=template, quantity=100)
    # The shop's own 洗车10次卡 (10 × ¥30 for ¥200: ¥100 below list, 50 % of the price) still sells.
    sell(shop, kind="coupon", coupon_template=shop.car_wash_coupon)


def test_package_priced_one_fen_cannot_sell_its_services_free():
    shop = make_shop()
    package = EntitlementPackage.objects.create(merchant=shop.merchant, name="一分礼包", price_fen=1)
    PackageItem.objects.create(package=package, service=shop.massage, quantity=500)
    with refused("free_value_over_limit") as exc:
        sell(shop, kind="package", package=package)
    assert exc.value.field == "items[0].package"
    sell(shop, kind="package", package=shop.cleaning_package)  # ¥600 list for ¥500: fine


def test_the_merchants_share_decides_what_a_cheap_template_may_give():
    shop = make_shop()
    template = CouponTemplate.objects.create(merchant=shop.merchant, name="半价券", uses=2, price_fen=20_000)
    template.services.add(shop.massage)  # 2 × ¥200 = ¥400 for ¥200: ¥200 below list, 100 % of the price
    with refused("free_value_over_limit"):
        sell(shop, kind="coupon", coupon_template=template)
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_plan_free_value_bp=10_000)
    sell(shop, kind="coupon", coupon_template=template)


def test_catalog_refuses_a_coupon_template_or_package_far_below_its_list_value():
    from tests.test_wallet_limits import clean_codes

    shop = make_shop()
    template = CouponTemplate.objects.create(merchant=shop.merchant, name="一分券", uses=1_000, price_fen=1)
    template.services.add(shop.massage)
    assert clean_codes(template) == {"free_value_over_limit"}
    package = EntitlementPackage.objects.create(merchant=shop.merchant, name="一分礼包", price_fen=1)
    PackageItem.objects.create(package=package, service=shop.massage, quantity=500)
    assert clean_codes(package) == {"free_value_over_limit"}
    assert clean_codes(shop.car_wash_coupon) == set() and clean_codes(shop.cleaning_package) == set()


# ---------------------------------------------------------------- commission on value nobody paid (item 3)


def test_commission_on_a_free_voucher_is_not_paid_out_of_nothing():
    """A ¥500 voucher given free, spent on a service paying 100 % commission: the staff member would be
    owed ¥500 of cash for a sale that brought in nothing. Commission is capped at what was paid for the
    line: the money (principal, direct) and the paid share of a voucher or grant; a gift earns none."""
    shop = make_shop()
    rich = service(shop, 50_000, commission_kind=CommissionKind.PERCENT, commission_value=10_000)
    free = VoucherTemplate.objects.create(merchant=shop.merchant, name="赠券", amount_fen=50_000, price_fen=0)
    voucher = services.issue_voucher(template=free, member=shop.member, actor=None, reason="新会员")
    consumption = services.consume(member=shop.member, store=shop.store, actor=None, items=[
        services.ConsumptionItem(service=rich, staff=shop.staff, voucher=voucher, voucher_fen=50_000)])  # fmt: skip
    assert consumption.lines.get().commission_fen == 0


def test_commission_on_bonus_is_capped_at_the_principal_it_came_with():
    shop = make_shop(policy="bonus_first")
    load_plan(shop)  # ¥1,000 principal + ¥200 bonus
    rich = service(shop, 20_000, commission_kind=CommissionKind.PERCENT, commission_value=10_000)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None, items=[
        services.ConsumptionItem(service=rich, staff=shop.staff, stored_value_fen=20_000)])  # fmt: skip
    line = consumption.lines.get()
    assert (line.principal_fen, line.bonus_fen) == (0, 20_000)
    assert line.commission_fen == 0


def test_commission_on_a_bought_voucher_is_capped_at_what_it_cost():
    shop = make_shop()
    sell(shop, kind="voucher", voucher_template=shop.voucher)  # ¥50 for ¥40
    voucher = shop.member.vouchers.get()
    rich = service(shop, 5_000, commission_kind=CommissionKind.PERCENT, commission_value=10_000)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None, items=[
        services.ConsumptionItem(service=rich, staff=shop.staff, voucher=voucher, voucher_fen=5_000)])  # fmt: skip
    assert consumption.lines.get().commission_fen == 4_000


# ---------------------------------------------------------------- sizes: nothing overflows a column (item 4)


def test_a_ceiling_set_beyond_what_a_column_holds_still_bounds_amounts():
    """A merchant's ceiling set to the largest integer let a discounted line's list total pass 2^63 (a
    database error, a 500): every ceiling is at most core.money.MAX_FEN whatever the setting says."""
    shop = make_shop()
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_recharge_fen=2**63 - 1,
                                                                 max_consumption_fen=2**63 - 1)  # fmt: skip
    shop.vip_year.price_fen = 10**15
    shop.vip_year.save(update_fields=["price_fen"])
    with refused("amount_over_ceiling"):
        sell(shop, kind="vip", vip_type=shop.vip_year, quantity=10_000, discount_bp=7_000)
    with refused("amount_over_ceiling"):
        stored_value(shop, MAX_FEN, quantity=2)
    big = service(shop, MAX_FEN)
    with refused("amount_over_ceiling"):
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=big, quantity=2, direct_fen=2 * MAX_FEN,
                                                         payment_method="cash")])  # fmt: skip


# ---------------------------------------------------------------- text arguments reaching a column


@pytest.mark.parametrize("bad, code", [("x" * 201, "text_too_long"), ("a\x00b", "text_nul")])
def test_a_note_or_reason_that_cannot_be_stored_is_a_field_error(bad, code):
    """Through the services (as the API will call them) a note or reason over 200 characters or with a
    NUL reached the column: a database error on PostgreSQL (a 500)."""
    shop = make_shop()
    load_plan(shop)
    with refused(code) as exc:
        stored_value(shop, 10_000, note=bad)
    assert exc.value.field == "note"
    with refused(code) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None, note=bad,
                         items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)])  # fmt: skip
    assert exc.value.field == "note"
    line = list(services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)])
                .lines.all())  # fmt: skip
    with refused(code) as exc:
        services.refund_consumption_lines(member=shop.member, lines=line, reason=bad, actor=None)
    assert exc.value.field == "reason"
    with refused(code) as exc:
        services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason=bad, actor=None)
    assert exc.value.field == "reason"
    if code == "text_nul":  # the notes of a visit have no length limit; a tag is cut to 30 characters
        for text in ({"notes": bad}, {"tags": ["ok", bad]}):
            with refused(code):
                services.record_service(member=shop.member, staff=shop.staff, store=shop.store, actor=None, **text)
    assert Consumption.objects.count() == 1


# ---------------------------------------------------------------- more free value


def test_a_service_listed_at_zero_does_not_make_its_coupons_worthless():
    """List value took the services' list price only: a service listed at ¥0 but charged ¥200 to members
    made a 1-fen template of 1,000 uses (and a free one) pass every bound."""
    shop = make_shop()
    cheap_listed = service(shop, 20_000)
    Service.objects.filter(pk=cheap_listed.pk).update(list_price_fen=0)
    template = CouponTemplate.objects.create(merchant=shop.merchant, name="一分券", uses=1_000, price_fen=1)
    template.services.add(cheap_listed)
    with refused("free_value_over_limit"):
        sell(shop, kind="coupon", coupon_template=template)
    package = EntitlementPackage.objects.create(merchant=shop.merchant, name="一分礼包", price_fen=1)
    PackageItem.objects.create(package=package, service=cheap_listed, quantity=500)
    with refused("free_value_over_limit"):
        sell(shop, kind="package", package=package)
    free = CouponTemplate.objects.create(merchant=shop.merchant, name="赠券", uses=1_000, price_fen=0)
    free.services.add(cheap_listed)
    with refused("free_value_over_limit"):
        sell(shop, kind="coupon", coupon_template=free)


def test_free_templates_bought_by_the_thousand_for_one_fen_are_bounded_as_a_whole():
    """A template priced 0 sold in a recharge was bounded per unit only: 10,000 free ¥500 vouchers (and
    free coupons) rode on a 1-fen stored-value line, ¥5,000,000 of free value."""
    shop = make_shop()
    voucher = VoucherTemplate.objects.create(merchant=shop.merchant, name="赠券", amount_fen=50_000, price_fen=0)
    coupon = CouponTemplate.objects.create(merchant=shop.merchant, name="赠洗车", uses=1, price_fen=0)
    coupon.services.add(shop.car_wash)
    penny = services.RechargeItem(kind="stored_value", amount_fen=1)
    for items in (
        [services.RechargeItem(kind="voucher", voucher_template=voucher, quantity=2), penny],
        [services.RechargeItem(kind="voucher", voucher_template=voucher), penny,
         services.RechargeItem(kind="voucher", voucher_template=voucher)],
        [services.RechargeItem(kind="coupon", coupon_template=coupon, quantity=17), penny],
    ):  # fmt: skip
        with refused("free_value_over_limit"):
            services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None, items=items)
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="voucher", voucher_template=voucher), penny])  # fmt: skip
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=coupon, quantity=16), penny])  # fmt: skip


def test_items_that_are_not_lines_are_refused():
    """Lines given as a generator were consumed by the request fingerprint (or the merchant check) and a
    consumption with no lines was recorded; a line of another type was an AttributeError (a 500)."""
    shop = make_shop()
    load_plan(shop)
    line = services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)
    for items, code in (([None], "line_wrong_type"), (["car wash"], "line_wrong_type"), ("abc", "lines_not_list"),
                        (line, "lines_not_list")):  # fmt: skip
        for key in (None, "k1"):
            with refused(code) as exc:
                services.consume(member=shop.member, store=shop.store, actor=None, items=items, idempotency_key=key)
            assert exc.value.field.startswith("items")
            with refused(code):
                services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                                  items=items, idempotency_key=key)  # fmt: skip
    assert not Consumption.objects.exists()
    for key in (None, "k2"):  # a generator is read once, whole
        consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                       items=(x for x in [line]), idempotency_key=key)  # fmt: skip
        assert consumption.lines.count() == 1 and consumption.payable_total_fen == 3_000


# ---------------------------------------------------------------- the actor is a related object too (item 9)


def test_staff_of_another_merchant_cannot_act_through_the_services():
    """The services re-checked every object but the actor: merchant B's operator recorded a recharge,
    a consumption, a refund and a free voucher for merchant A's member (as the future API would call
    them), signed with B's login in A's ledger. A platform admin and system jobs (no actor) still act."""
    from django.contrib.auth import get_user_model

    from members import roles
    from tests.factories import make_staff

    a, b = make_shop(), make_shop()
    load_plan(a)
    intruder = make_staff(b.merchant, roles.MERCHANT_ADMIN, stores=[b.store]).user
    free = VoucherTemplate.objects.create(merchant=a.merchant, name="赠券", amount_fen=1_000, price_fen=0)
    line = list(services.consume(member=a.member, store=a.store, actor=None,
                                 items=[services.ConsumptionItem(service=a.car_wash, stored_value_fen=3_000)])
                .lines.all())  # fmt: skip

    def sv(actor):
        return services.recharge(member=a.member, store=a.store, payment_method="cash", actor=actor,
                                 items=[services.RechargeItem(kind="stored_value", amount_fen=10_000)])  # fmt: skip

    calls = {
        "recharge": sv,
        "consume": lambda actor: services.consume(
            member=a.member, store=a.store, actor=actor,
            items=[services.ConsumptionItem(service=a.car_wash, stored_value_fen=3_000)]),
        "record_service": lambda actor: services.record_service(member=a.member, staff=a.staff, store=a.store,
                                                                actor=actor),
        "refund_consumption_lines": lambda actor: services.refund_consumption_lines(
            member=a.member, lines=line, reason="退", actor=actor),
        "issue_voucher": lambda actor: services.issue_voucher(template=free, member=a.member, actor=actor,
                                                              reason="赠"),
    }  # fmt: skip
    for name, call in calls.items():
        with refused("other_merchant") as exc:
            call(intruder)
        assert exc.value.field == "actor", name
    platform = get_user_model().objects.create_superuser("root-probe", "r@example.com", "pw-12345678")
    sv(platform)
    sv(make_staff(a.merchant, roles.OPERATOR, stores=[a.store]).user)


def test_free_value_reasons_and_occasions_that_cannot_be_stored_are_field_errors():
    """issue_voucher's reason and award_activity_points' occasion go into the ledger entry (memo,
    reference): a NUL there was a database error on PostgreSQL (a 500)."""
    from wallet.models import ActivityPointsRule

    shop = make_shop()
    free = VoucherTemplate.objects.create(merchant=shop.merchant, name="赠券", amount_fen=1_000, price_fen=0)
    rule = ActivityPointsRule.objects.create(merchant=shop.merchant, code="signup", name="注册", points=10)
    with refused("text_nul") as exc:
        services.issue_voucher(template=free, member=shop.member, actor=None, reason="新\x00会员")
    assert exc.value.field == "reason"
    with refused("text_nul") as exc:
        services.award_activity_points(member=shop.member, rule=rule, occasion="a\x00b", actor=None)
    assert exc.value.field == "occasion"
    with refused("text_too_long") as exc:
        services.award_activity_points(member=shop.member, rule=rule, occasion="o" * 65, actor=None)
    assert exc.value.field == "occasion"


def test_related_arguments_of_the_wrong_kind_are_field_errors():
    """A line naming an object of the wrong model (a voucher template as a coupon template, an id instead
    of a grant) reached the ORM: AttributeError, KeyError or ValueError (a 500), or another lot with the
    same id."""
    shop = make_shop()
    load_plan(shop)
    bad_recharge_lines = [
        {"kind": "coupon", "coupon_template": shop.voucher},
        {"kind": "voucher", "voucher_template": shop.car_wash_coupon},
        {"kind": "package", "package": shop.plan},
        {"kind": "vip", "vip_type": shop.cleaning_package},
        {"kind": "plan", "plan": shop.vip_year},
        {"kind": "coupon", "coupon_template": shop.car_wash_coupon.pk},
    ]
    for line in bad_recharge_lines:
        with refused("choose_kind") as exc:
            sell(shop, **line)
        assert exc.value.field.startswith("items[0]."), line
    bad_consumption_lines = [
        {"service": shop.car_wash.pk, "stored_value_fen": 3_000},
        {"service": shop.car_wash, "staff": shop.member, "stored_value_fen": 3_000},
        {"service": shop.car_wash, "grant": 1},
        {"service": shop.car_wash, "voucher": shop.voucher, "voucher_fen": 3_000},
    ]
    for line in bad_consumption_lines:
        with refused("choose_kind") as exc:
            services.consume(member=shop.member, store=shop.store, actor=None,
                             items=[services.ConsumptionItem(**line)])  # fmt: skip
        assert exc.value.field.startswith("items[0]."), line
    with refused("choose_kind") as exc:
        services.record_service(member=shop.member, staff=shop.member, store=shop.store, actor=None)
    assert exc.value.field == "staff"
    with refused("choose_kind") as exc:
        services.record_service(member=shop.member, staff=shop.staff, store=shop.staff, actor=None)
    assert exc.value.field == "store"


def test_rows_given_as_ids_or_other_models_are_field_errors_in_every_keyed_operation():
    """The request fingerprint and the operations read attributes of their rows: an id (as an API might
    pass) or another model's row was an AttributeError (a 500), e.g. a refund of lines=[5]."""
    shop = make_shop()
    load_plan(shop)
    line = services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)]
                            ).lines.get()  # fmt: skip
    calls = {  # field → the call (refused with choose_kind, or as lines that are not a list of lines)
        "lines[0]": lambda: services.refund_consumption_lines(member=shop.member, lines=[line.pk], reason="退",
                                                              actor=None, idempotency_key="k"),
        "lines": lambda: services.refund_consumption_lines(member=shop.member, lines=line, reason="退", actor=None),
        "grant": lambda: services.cash_refund_grant(grant=1, payment_method="cash", reason="退", actor=None),
        "member": lambda: services.cash_refund_stored_value(member=shop.member.pk, payment_method="cash",
                                                            reason="退", actor=None, idempotency_key="k"),
        "store": lambda: services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退",
                                                           actor=None, store=shop.staff),
        "service_record": lambda: services.consume(
            member=shop.member, store=shop.store, actor=None, service_record=line,
            items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)]),
    }  # fmt: skip
    for field, call in calls.items():
        with refused({"lines": "lines_not_list", "lines[0]": "line_wrong_type"}.get(field, "choose_kind")) as exc:
            call()
        assert exc.value.field == field


def test_issue_coupons_checks_its_actor_and_reason():
    from members import roles
    from tests.factories import make_staff

    a, b = make_shop(), make_shop()
    free = CouponTemplate.objects.create(merchant=a.merchant, name="赠洗车", uses=1, price_fen=0)
    free.services.add(a.car_wash)
    intruder = make_staff(b.merchant, roles.MERCHANT_ADMIN, stores=[b.store]).user
    with refused("other_merchant"):
        services.issue_coupons(template=free, member_ids=[a.member.pk], actor=intruder, reason="赠")
    with refused("text_nul"):
        services.issue_coupons(template=free, member_ids=[a.member.pk], actor=None, reason="赠\x00")
