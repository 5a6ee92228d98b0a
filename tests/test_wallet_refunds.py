"""Refunds take back everything they gave (issue 9, items 5 and 6): plan gifts on a cash refund of
stored value, points by what was earned at the time, levels reached by the refunded spend."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger.models import Entry
from members.models import AuditEvent, Level
from members.services import update_owner
from tests.factories import make_owner
from tests.wallet_helpers import load_plan, make_shop, spend_stored_value
from wallet import models as wallet_models
from wallet import selectors, services
from wallet.models import CashRefund, Grant, RechargePlan, StoredValueCard, VipMembership

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.UTC)  # 10:00 in Shanghai


# The worked examples use plans giving up to their whole price in bonus and gifts (the ceiling of the
# merchant's plan limit, docs/wallet.md §4), so that the gifts weigh heavily against the payout.
GENEROUS_PLANS = {"max_plan_free_value_bp": 10_000}


def codes(exc: pytest.ExceptionInfo) -> dict[str, set[str]]:
    return {field: {e.code for e in errors} for field, errors in exc.value.error_dict.items()}


def at(moment: datetime.datetime):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def gift_plan(shop, pay_fen: int = 300_000, bonus_fen: int = 30_000) -> RechargePlan:
    """充3000送300 with gifts worth ¥1,899 at list price: 2 car-wash coupons (¥200 for 10 each), the
    cleaning package (¥500 for 5) and a year VIP card (¥999)."""
    return RechargePlan.objects.create(
        merchant=shop.merchant, name="充3000送好礼", pay_fen=pay_fen, bonus_fen=bonus_fen,
        gift_coupon=shop.car_wash_coupon, gift_coupon_quantity=2, gift_package=shop.cleaning_package,
        gift_vip=shop.vip_year,
    )  # fmt: skip


def load(shop, plan, member=None):
    return services.recharge(member=member or shop.member, store=shop.store, payment_method="wechat", actor=None,
                             items=[services.RechargeItem(kind="plan", plan=plan)])  # fmt: skip


def use(shop, grant, service):
    return services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=service, grant=grant)]).lines.get()  # fmt: skip


def held_uses(member) -> int:
    return sum(h.balance for h in selectors.member_benefits(member).grants)


# ---------------------------------------------------------------- item 5: plan gifts go back with the principal


def test_worked_example_cash_refund_takes_back_plan_gifts_and_charges_the_used_ones():
    """docs/wallet.md §2.6, worked example: ¥3,000 + ¥300 bonus with ¥1,899 of gifts; 3 car washes, 1
    cleaning and ¥1,100 of stored value used; refunded 31 days later. The payout is the principal left
    (¥2,000) less the used gifts at list price: ¥60 + ¥100 + 31 of 365 VIP days (¥84.85) = ¥244.85."""
    shop = make_shop("proportional", **GENEROUS_PLANS)
    plan = gift_plan(shop)
    with at(T0):
        load(shop, plan)
    coupons = list(Grant.objects.filter(member=shop.member, kind="coupon").order_by("pk"))
    cleaning = Grant.objects.get(member=shop.member, kind="entitlement")
    assert [g.paid_fen for g in [*coupons, cleaning]] == [0, 0, 0]
    with at(T0 + datetime.timedelta(days=1)):
        car_wash_lines = [use(shop, coupons[0], shop.car_wash) for _ in range(3)]
        use(shop, cleaning, shop.cleaning)
        spend_stored_value(shop, 110_000)  # proportional: ¥1,000 principal + ¥100 bonus
    assert selectors.member_benefits(shop.member).principal_fen == 200_000
    assert VipMembership.objects.get(member=shop.member).status == "active"

    with at(T0 + datetime.timedelta(days=31)):
        refund = services.cash_refund_stored_value(member=shop.member, payment_method="wechat", reason="退卡",
                                                   actor=None)  # fmt: skip
    assert refund.gifts_charged_fen == 6_000 + 10_000 + 8_485
    assert refund.paid_out_fen == 200_000 - 24_485 == 175_515
    assert refund.forfeited_bonus_fen == 20_000

    # Nothing of the gifts is left to use: lots closed, uses back to issuance, VIP ended at the refund.
    assert held_uses(shop.member) == 0
    assert set(Grant.objects.filter(member=shop.member).values_list("status", flat=True)) == {"revoked"}
    vip = VipMembership.objects.get(member=shop.member)
    assert (vip.status, vip.ends_at) == ("revoked", T0 + datetime.timedelta(days=31))
    assert selectors.member_benefits(shop.member).vip == []
    with pytest.raises(ValidationError) as exc:
        use(shop, coupons[1], shop.car_wash)
    assert codes(exc) == {"items[0].grant": {"grant_not_active"}}  # taken back: revoked
    # A used gift cannot be "refunded" back onto the closed lot: its use was charged by the cash refund.
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[car_wash_lines[0]], reason="x", actor=None)
    assert codes(exc) == {"lines": {"grant_revoked"}}

    # The refund's entry: principal out = cash paid + used gifts now earned as revenue.
    entry = Entry.objects.get(pk=refund.entry_id)
    legs = {(leg.account.purpose, leg.account.unit): leg.amount for leg in entry.legs.select_related("account")
            if leg.account.purpose in ("principal", "cash", "revenue", "breakage", "bonus")}  # fmt: skip
    assert legs == {("principal", "CNY"): 200_000, ("cash", "CNY"): -175_515, ("revenue", "CNY"): -24_485,
                    ("bonus", "CNY"): 20_000, ("breakage", "CNY"): -20_000}  # fmt: skip
    for unit in (shop.car_wash_coupon.unit, f"ENT:{shop.cleaning.pk}"):
        issuance = ledger_selectors.find_account(shop.merchant, "issuance", unit)
        assert ledger_selectors.balance(issuance) == 0  # no use of the gifts is still out with the member
    assert AuditEvent.objects.filter(action="stored_value.gifts_taken_back").count() == 1
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_unused_gifts_go_back_free_and_the_whole_principal_is_paid():
    shop = make_shop(**GENEROUS_PLANS)
    with at(T0):
        load(shop, gift_plan(shop))
        refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert (refund.paid_out_fen, refund.gifts_charged_fen) == (300_000, 0)
    assert held_uses(shop.member) == 0
    assert VipMembership.objects.get(member=shop.member).status == "revoked"


def test_refund_refused_while_used_gifts_are_worth_more_than_the_principal_left():
    shop = make_shop("principal_first", **GENEROUS_PLANS)
    with at(T0):
        load(shop, gift_plan(shop, pay_fen=220_000, bonus_fen=0))
        coupon = Grant.objects.filter(member=shop.member, kind="coupon").first()
        for _ in range(4):
            use(shop, coupon, shop.car_wash)  # ¥80 of gifts used
        spend_stored_value(shop, 215_000)  # ¥50 of principal left
        before = (Entry.objects.count(), held_uses(shop.member), CashRefund.objects.count())
        with pytest.raises(ValidationError) as exc:
            services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert codes(exc) == {"stored_value": {"gifts_exceed_refund"}}
    assert (
        "¥80.00" in exc.value.message_dict["stored_value"][0] and "¥50.00" in exc.value.message_dict["stored_value"][0]
    )
    assert (Entry.objects.count(), held_uses(shop.member), CashRefund.objects.count()) == before
    assert StoredValueCard.objects.get(member=shop.member).status == "active"


def test_gifted_vip_months_come_off_the_end_of_a_bought_membership():
    """The member bought a year, the plan gave another: the refund takes the gifted year off the end and
    charges nothing while the member is still inside the year bought."""
    shop = make_shop(**GENEROUS_PLANS)
    plan = RechargePlan.objects.create(merchant=shop.merchant, name="送年卡", pay_fen=100_000, gift_vip=shop.vip_year)
    with at(T0):
        services.purchase_vip(member=shop.member, vip_type=shop.vip_year, payment_method="cash", store=shop.store,
                              actor=None)  # fmt: skip
        load(shop, plan)
    assert VipMembership.objects.get(member=shop.member).ends_at == datetime.datetime(
        2028, 3, 1, 2, tzinfo=datetime.UTC
    )
    with at(T0 + datetime.timedelta(days=100)):
        refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    vip = VipMembership.objects.get(member=shop.member)
    assert (vip.status, vip.ends_at) == ("active", datetime.datetime(2027, 3, 1, 2, tzinfo=datetime.UTC))
    assert (refund.paid_out_fen, refund.gifts_charged_fen) == (100_000, 0)


def test_gifts_bought_not_given_are_not_taken_back():
    """Only what the plan recharges gave for nothing goes back: a coupon bought in its own recharge stays."""
    shop = make_shop()
    load_plan(shop)
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert Grant.objects.get(member=shop.member).status == "active" and held_uses(shop.member) == 10


# ---------------------------------------------------------------- item 6: points and levels, by what was earned


def test_points_for_buying_stored_value_go_back_after_the_setting_was_turned_off():
    shop = make_shop("principal_first", points_on_stored_value_purchase=True)
    load_plan(shop)
    assert selectors.member_totals(shop.member).points_balance == 1_000
    shop.merchant.wallet_settings.points_on_stored_value_purchase = False
    shop.merchant.wallet_settings.save()
    refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert refund.paid_out_fen == 100_000
    totals = selectors.member_totals(shop.member)
    assert (totals.points_balance, totals.points_earned) == (0, 0)


def test_points_of_the_purchase_that_expired_do_not_block_the_cash_refund():
    """Expired purchase points left the member without benefit: the refund takes back only what is still
    owed after them, and is never refused for points that are gone."""
    shop = make_shop("principal_first", points_on_stored_value_purchase=True)
    load_plan(shop)  # ¥1,000 principal earns 1,000 points this year
    services.expire_due_benefits(now=timezone.now() + datetime.timedelta(days=366 * 3))
    assert selectors.member_totals(shop.member).points_balance == 0
    refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert refund.paid_out_fen == 100_000
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_turning_the_setting_on_later_takes_back_no_points_that_were_not_given():
    shop = make_shop("principal_first")
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    assert line.points == 100  # spend earned points, the purchase did not
    shop.merchant.wallet_settings.points_on_stored_value_purchase = True
    shop.merchant.wallet_settings.save()
    services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert selectors.member_totals(shop.member).points_balance == 100


def test_line_refund_returns_the_points_recorded_on_the_line_whatever_the_rate_now():
    shop = make_shop("principal_first")
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    shop.merchant.wallet_settings.points_per_yuan = 3
    shop.merchant.wallet_settings.save()
    services.refund_consumption_lines(member=shop.member, lines=[line], reason="x", actor=None)
    assert line.points == 100 and selectors.member_totals(shop.member).points_balance == 0


def _levels(shop):
    base = Level.objects.create(merchant=shop.merchant, name="普通", rank=0)
    silver = Level.objects.create(merchant=shop.merchant, name="银卡", rank=1, upgrade_spend_fen=20_000)
    gold = Level.objects.create(merchant=shop.merchant, name="金卡", rank=2, upgrade_spend_fen=50_000)
    return base, silver, gold


def _spend_direct(shop, member, fen):
    service = wallet_models.Service.objects.create(merchant=shop.merchant, category=shop.massage.category,
                                              name=f"s{fen}", list_price_fen=fen, member_price_fen=fen)  # fmt: skip
    return services.consume(member=member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=service, direct_fen=fen,
                                                            payment_method="cash")]).lines.get()  # fmt: skip


def test_level_reached_by_the_refunded_spend_is_taken_back_to_what_the_rest_reaches():
    shop = make_shop()
    base, silver, gold = _levels(shop)
    member = make_owner(shop.merchant)
    _spend_direct(shop, member, 30_000)
    big = _spend_direct(shop, member, 40_000)
    member.refresh_from_db()
    assert member.level == gold  # ¥700 consumed
    services.refund_consumption_lines(member=member, lines=[big], reason="退", actor=None)
    member.refresh_from_db()
    assert member.level == silver  # ¥300 left: silver (¥200), not gold (¥500)
    event = AuditEvent.objects.filter(action="owner.changed", object_id=str(member.pk)).first()
    assert event.after == {"level": silver.pk} and event.reason.startswith("automatic downgrade")
    assert "¥300.00" in event.reason


def test_level_set_by_hand_is_kept_after_a_refund_with_an_audit_event():
    shop = make_shop()
    base, silver, gold = _levels(shop)
    member = make_owner(shop.merchant)
    update_owner(member, actor=None, level=gold, reason="店长特批")
    line = _spend_direct(shop, member, 10_000)
    services.refund_consumption_lines(member=member, lines=[line], reason="退", actor=None)
    member.refresh_from_db()
    assert member.level == gold
    kept = AuditEvent.objects.get(action="owner.level_kept", object_id=str(member.pk))
    assert "set by hand" in kept.reason
