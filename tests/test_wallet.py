import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger.models import Entry
from members.models import Level
from tests.factories import MerchantFactory, make_owner, make_staff
from tests.wallet_helpers import load_plan, make_shop, spend_stored_value
from wallet import rules, selectors, services
from wallet.models import (
    CashRefund,
    Consumption,
    ConsumptionLine,
    Grant,
    Recharge,
    StoredValueCard,
    VipMembership,
    Voucher,
)

pytestmark = pytest.mark.django_db


def balances(member):
    b = selectors.member_benefits(member)
    return b.principal_fen, b.bonus_fen


def grant_balance(grant):
    return sum(h.balance for h in selectors.member_benefits(grant.member).grants if h.obj.pk == grant.pk)


def codes(exc: pytest.ExceptionInfo) -> dict[str, set[str]]:
    """field → codes of a refusal: what the API returns and clients branch on (never the English text)."""
    return {field: {e.code for e in errors} for field, errors in exc.value.error_dict.items()}


def cash_paid_out(merchant):
    return sum(r.paid_out_fen for r in CashRefund.objects.filter(merchant=merchant))


# ---------------------------------------------------------------- worked examples of the issue


def test_recharge_1000_plus_200_spend_600_proportionally_then_cash_refund():
    shop = make_shop("proportional")
    recharge = load_plan(shop)
    assert recharge.number.startswith("cz") and recharge.paid_total_fen == 100_000
    assert balances(shop.member) == (100_000, 20_000)
    consumption = spend_stored_value(shop, 60_000)
    line = consumption.lines.get()
    assert (line.principal_fen, line.bonus_fen) == (50_000, 10_000)
    assert balances(shop.member) == (50_000, 10_000)
    refund = services.cash_refund_stored_value(member=shop.member, payment_method="wechat", reason="退卡", actor=None)
    assert refund.number.startswith("txj")
    assert (refund.paid_out_fen, refund.forfeited_bonus_fen) == (50_000, 10_000)
    assert balances(shop.member) == (0, 0)
    breakage = ledger_selectors.find_account(shop.merchant, "breakage", "CNY")
    assert ledger_selectors.balance(breakage) == 10_000
    totals = selectors.member_totals(shop.member)
    assert (totals.recharge_total_fen, totals.consumed_total_fen, totals.refunded_cash_fen) == (100_000, 60_000, 50_000)
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_entitlement_five_for_500_use_two_refund_one():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="package", package=shop.cleaning_package)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member, kind="entitlement")
    assert (grant.uses_total, grant.paid_fen) == (5, 50_000)
    first = services.consume(member=shop.member, store=shop.store, actor=None,
                             items=[services.ConsumptionItem(service=shop.cleaning, grant=grant, staff=shop.staff)])  # fmt: skip
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.cleaning, grant=grant, staff=shop.staff)])  # fmt: skip
    assert grant_balance(grant) == 3
    commission = ledger_selectors.find_account(shop.merchant, "commission", "CNY", staff=shop.staff)
    assert ledger_selectors.balance(commission) == 2_000
    line = first.lines.get()
    assert (line.uses, line.deferred_fen, line.commission_fen) == (1, 10_000, 1_000)
    refund = services.refund_consumption_lines(member=shop.member, lines=[line], reason="不满意", actor=None)
    assert refund.number.startswith("tqy") and refund.total_fen == line.payable_fen
    assert grant_balance(grant) == 4
    assert ledger_selectors.balance(commission) == 1_000  # that use's commission reversed
    line.refresh_from_db()
    assert line.status == ConsumptionLine.Status.REFUNDED and line.refund == refund
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_coupon_ten_uses_for_200_three_used_cash_refund_140():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="alipay", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member, kind="coupon")
    for _ in range(3):
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)])  # fmt: skip
    refund = services.cash_refund_grant(grant=grant, payment_method="alipay", reason="搬家", actor=None)
    assert (refund.paid_out_fen, refund.uses_refunded) == (14_000, 7)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REFUNDED and grant_balance(grant) == 0
    deferred = ledger_selectors.find_account(shop.merchant, "deferred_revenue", "CNY", detail=grant.account_detail)
    assert ledger_selectors.balance(deferred) == 0  # 200 in = 60 recognised + 140 paid back
    with pytest.raises(ValidationError) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)])  # fmt: skip
    assert codes(exc) == {"items[0].grant": {"grant_not_active"}}  # refunded in cash: closed


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("proportional", (50_000, 10_000)), ("principal_first", (60_000, 0)), ("bonus_first", (40_000, 20_000))],
)
def test_the_same_spend_under_each_policy(policy, expected):
    shop = make_shop(policy)
    load_plan(shop)
    line = spend_stored_value(shop, 60_000).lines.get()
    assert (line.principal_fen, line.bonus_fen) == expected
    assert balances(shop.member) == (100_000 - expected[0], 20_000 - expected[1])


# ---------------------------------------------------------------- rules


def test_split_rounding_is_deterministic_and_never_overdraws():
    assert rules.split_stored_value(100, 1_000, 300, "proportional") == (76, 24)
    assert rules.split_stored_value(1, 1, 1, "proportional") == (0, 1)
    assert rules.split_stored_value(1_300, 1_000, 300, "proportional") == (1_000, 300)
    assert rules.split_stored_value(50, 0, 300, "principal_first") == (0, 50)
    with pytest.raises(ValueError):
        rules.split_stored_value(1_301, 1_000, 300, "proportional")


def test_value_of_uses_sums_to_what_was_paid():
    deferred, left, parts = 1_000, 3, []
    for _ in range(3):
        value = rules.value_of_uses(deferred, left, 1)
        parts.append(value)
        deferred, left = deferred - value, left - 1
    assert parts == [333, 333, 334] and sum(parts) == 1_000
    assert rules.value_of_uses(14_000, 7, 7) == 14_000
    assert rules.value_of_uses(20_000, 10, 1) == 2_000


def test_add_months_clamps_to_month_end():
    jan31 = datetime.datetime(2026, 1, 31, 12, tzinfo=datetime.UTC)
    assert rules.add_months(jan31, 1).date() == datetime.date(2026, 2, 28)
    assert rules.add_months(jan31, 12).date() == datetime.date(2027, 1, 31)


# ---------------------------------------------------------------- commission, points, levels


def test_consumption_credits_commission_points_and_upgrades_level():
    shop = make_shop()
    Level.objects.create(merchant=shop.merchant, name="普通", rank=0)
    gold = Level.objects.create(merchant=shop.merchant, name="金卡", rank=2, points_multiplier_pct=200,
                                upgrade_spend_fen=50_000, discount_rate_bp=9_000)  # fmt: skip
    member = make_owner(shop.merchant)
    assert member.level.name == "普通"
    consumption = services.consume(
        member=member, store=shop.store, actor=None,
        items=[services.ConsumptionItem(service=shop.car_wash, quantity=2, staff=shop.staff, direct_fen=6_000,
                                        payment_method="cash")],
    )  # fmt: skip
    line = consumption.lines.get()
    assert line.commission_fen == 600  # 10% of ¥60
    assert line.points == 60  # ¥60 × 1 point per yuan × 1.00
    member.refresh_from_db()
    assert member.level == shop.merchant.levels.get(rank=0)
    services.consume(member=member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.massage, quantity=3, direct_fen=60_000,
                                                     payment_method="wechat")])  # fmt: skip
    member.refresh_from_db()
    assert member.level == gold  # ¥660 consumed ≥ ¥500 threshold
    # Gold: 90% member price and double points.
    assert services.unit_price_for(member, shop.massage) == 18_000
    third = services.consume(member=member, store=shop.store, actor=None,
                             items=[services.ConsumptionItem(service=shop.massage, direct_fen=18_000,
                                                             payment_method="cash")])  # fmt: skip
    assert third.lines.get().points == 360


def test_bonus_funded_spend_earns_no_points_by_default_but_can():
    shop = make_shop("bonus_first")
    load_plan(shop)
    line = spend_stored_value(shop, 30_000).lines.get()
    assert (line.principal_fen, line.bonus_fen, line.points) == (10_000, 20_000, 100)
    shop2 = make_shop("bonus_first", points_on_bonus_spend=True)
    load_plan(shop2)
    assert spend_stored_value(shop2, 30_000).lines.get().points == 300


def test_per_level_commission_rule_overrides_service_rule():
    shop = make_shop()
    senior = make_staff(shop.merchant, "clerk", level=3)
    shop.cleaning.commission_rules.create(staff_level=3, kind="percent", value=2_000)
    line = services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=shop.cleaning, staff=senior, direct_fen=10_000,
                                                            payment_method="cash")]).lines.get()  # fmt: skip
    assert line.commission_fen == 2_000


def test_entitlement_refund_reverses_points_and_restores_exact_split():
    shop = make_shop("proportional")
    load_plan(shop)
    line = spend_stored_value(shop, 60_000).lines.get()
    assert line.points == 500  # principal part only
    services.refund_consumption_lines(member=shop.member, lines=[line], reason="投诉", actor=None)
    assert balances(shop.member) == (100_000, 20_000)
    assert selectors.member_totals(shop.member).points_balance == 0
    assert selectors.member_totals(shop.member).consumed_total_fen == 0


# ---------------------------------------------------------------- bad input


def _state():
    return Entry.objects.count(), Recharge.objects.count(), Consumption.objects.count(), Grant.objects.count()


@pytest.mark.parametrize(
    ("amount", "code"),
    [(0, "amount_zero"), (-100, "amount_negative"), (1.5, "amount_format"), ("100", "amount_format")],
)
def test_bad_recharge_amounts_refused(amount, code):
    shop = make_shop()
    before = _state()
    with pytest.raises(ValidationError) as exc:
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="stored_value", amount_fen=amount)])  # fmt: skip
    assert codes(exc) == {"items[0].amount_fen": {code}}
    assert _state() == before


def test_recharge_paid_from_stored_value_refused():
    shop = make_shop()
    load_plan(shop)
    before = _state()
    with pytest.raises(ValidationError) as exc:
        services.recharge(member=shop.member, store=shop.store, payment_method="stored_value", actor=None,
                          items=[services.RechargeItem(kind="plan", plan=shop.plan)])  # fmt: skip
    assert codes(exc) == {"payment_method": {"recharge_from_stored_value"}}
    assert _state() == before


def test_overdraft_of_stored_value_refused():
    shop = make_shop()
    load_plan(shop)
    before = _state()
    with pytest.raises(ValidationError) as exc:
        spend_stored_value(shop, 120_001)
    assert codes(exc) == {"items[0].stored_value_fen": {"stored_value_insufficient"}}
    assert _state()[0] == before[0] and balances(shop.member) == (100_000, 20_000)


def test_expired_coupon_refused():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    later = timezone.now() + datetime.timedelta(days=31)
    with mock.patch("django.utils.timezone.now", return_value=later), pytest.raises(ValidationError) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)])  # fmt: skip
    assert codes(exc) == {"items[0].grant": {"grant_expired"}}


def test_another_merchants_coupon_or_member_refused():
    shop, other = make_shop(), make_shop()
    services.recharge(member=other.member, store=other.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=other.car_wash_coupon)])  # fmt: skip
    foreign_grant = Grant.objects.get(member=other.member)
    with pytest.raises(ValidationError) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, grant=foreign_grant)])  # fmt: skip
    assert codes(exc) == {"items[0].grant": {"other_merchant"}}
    with pytest.raises(ValidationError) as exc:  # coupon template of another merchant
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="coupon", coupon_template=other.car_wash_coupon)])  # fmt: skip
    assert codes(exc) == {"items[0].coupon_template": {"other_merchant"}}
    with pytest.raises(ValidationError) as exc:  # member of another merchant at this store
        load_plan(shop, member=other.member)
    assert codes(exc) == {"store": {"other_merchant"}}


def test_refund_of_more_than_consumed_and_second_refund_refused():
    shop = make_shop()
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    services.refund_consumption_lines(member=shop.member, lines=[line], reason="退", actor=None)
    before = _state()
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="再退", actor=None)
    assert codes(exc) == {"lines": {"line_already_refunded"}}
    assert _state() == before
    assert balances(shop.member) == (100_000, 20_000)
    other_member = make_owner(shop.merchant)
    load_plan(shop, member=other_member)
    other_line = spend_stored_value(shop, 1_000, member=other_member).lines.get()
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[other_line], reason="x", actor=None)
    assert codes(exc) == {"lines": {"line_of_other_member"}}


def test_coupon_line_on_uncovered_service_refused():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    with pytest.raises(ValidationError) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.massage, grant=grant)])  # fmt: skip
    assert codes(exc) == {"items[0].grant": {"grant_not_covering"}}


def test_deduction_larger_than_payable_refused():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="voucher", voucher_template=shop.voucher)])  # fmt: skip
    voucher = Voucher.objects.get(member=shop.member)
    with pytest.raises(ValidationError) as exc:  # ¥50 voucher against a ¥30 car wash
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=5_000)])  # fmt: skip
    assert codes(exc) == {"items[0].voucher_fen": {"deduction_over_payable"}}
    assert "¥50.00" in exc.value.message_text and "¥30.00" in exc.value.message_text  # yuan, never fen
    with pytest.raises(ValidationError) as exc:  # and a line not fully paid
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=2_000)])  # fmt: skip
    assert codes(exc) == {"items[0]": {"payment_mismatch"}}
    # Partial use works: ¥30 from the voucher, ¥20 left on it.
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=3_000)])  # fmt: skip
    assert selectors.member_benefits(shop.member).vouchers[0].balance == 2_000


def test_card_unusable_after_cash_refund_closed_it():
    shop = make_shop()
    load_plan(shop)
    services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退卡", actor=None)
    assert StoredValueCard.objects.get(member=shop.member).status == "closed"
    with pytest.raises(ValidationError) as exc:
        spend_stored_value(shop, 100)
    assert codes(exc) == {"stored_value": {"card_closed"}}
    with pytest.raises(ValidationError) as exc:
        load_plan(shop)
    assert codes(exc) == {"stored_value": {"card_closed"}}
    with pytest.raises(ValidationError) as exc:
        services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="again", actor=None)
    assert codes(exc) == {"stored_value": {"card_closed"}}


def test_refund_of_line_paid_by_closed_card_refused():
    shop = make_shop()
    load_plan(shop)
    line = spend_stored_value(shop, 1_000).lines.get()
    services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退卡", actor=None)
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="x", actor=None)
    assert codes(exc) == {"lines": {"card_closed"}}


def test_refund_refused_when_earned_points_were_spent():
    shop = make_shop("principal_first")
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    assert line.points == 100
    # The member spends the points elsewhere (e.g. the points mall).
    from ledger import services as ledger

    lot = ledger_selectors.member_balances(shop.member)
    points_acct = next(r.account for r in lot if r.account.purpose == "points")
    issuance = ledger_selectors.find_account(shop.merchant, "issuance", "POINT")
    ledger.post_entry(merchant=shop.merchant, legs=[ledger.decrease(points_acct, 100), ledger.decrease(issuance, 100)],
                      operation_type="points_exchange", operation_ref="mall-1", idempotency_key="mall-1", actor=None)  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="x", actor=None)
    assert codes(exc) == {"lines": {"line_points_spent"}}
    line.refresh_from_db()
    assert line.status == "normal" and balances(shop.member) == (90_000, 20_000)


def test_frozen_member_refused():
    shop = make_shop()
    from members.services import set_owner_status

    set_owner_status(shop.member, "frozen", actor=None, reason="挂失")
    shop.member.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        load_plan(shop)
    assert codes(exc) == {"member": {"member_not_active"}}


def test_idempotency_key_returns_the_first_operation():
    shop = make_shop()
    first = load_plan(shop, idempotency_key="req-1")
    again = load_plan(shop, idempotency_key="req-1")
    assert first.pk == again.pk and Recharge.objects.count() == 1
    assert balances(shop.member) == (100_000, 20_000)


# ---------------------------------------------------------------- VIP, vouchers, coupons issuance, expiry


def test_vip_purchase_and_renewal_extends_from_current_end():
    shop = make_shop()
    start = datetime.datetime(2026, 3, 15, 10, tzinfo=datetime.UTC)
    with mock.patch("django.utils.timezone.now", return_value=start):
        services.purchase_vip(
            member=shop.member, vip_type=shop.vip_year, payment_method="wechat", store=shop.store, actor=None
        )
    with mock.patch("django.utils.timezone.now", return_value=start + datetime.timedelta(days=200)):
        services.purchase_vip(
            member=shop.member, vip_type=shop.vip_year, payment_method="wechat", store=shop.store, actor=None
        )
    membership = VipMembership.objects.get(member=shop.member)
    assert membership.ends_at == datetime.datetime(2028, 3, 15, 10, tzinfo=datetime.UTC)
    revenue = ledger_selectors.find_account(shop.merchant, "revenue", "CNY")
    assert ledger_selectors.balance(revenue) == 2 * 99_900


def test_coupon_issuance_respects_per_member_limit():
    shop = make_shop()
    shop.car_wash_coupon.per_member_limit = 1
    shop.car_wash_coupon.save()
    members = [make_owner(shop.merchant) for _ in range(4)]
    result = services.issue_coupons(template=shop.car_wash_coupon, member_ids=[m.pk for m in members], actor=None,
                                    reason="新会员礼")  # fmt: skip
    assert result.issued == 4 and result.skipped_at_limit == []
    again = services.issue_coupons(template=shop.car_wash_coupon, member_ids=[members[0].pk], actor=None, reason="重复")
    assert again.issued == 0 and again.skipped_at_limit == [members[0].pk]
    assert Grant.objects.filter(coupon_template=shop.car_wash_coupon).count() == 4
    issuance = ledger_selectors.find_account(shop.merchant, "issuance", shop.car_wash_coupon.unit)
    assert ledger_selectors.balance(issuance) == 40
    with pytest.raises(ValidationError) as exc:
        services.issue_coupons(template=shop.car_wash_coupon, member_ids=[make_owner(MerchantFactory()).pk],
                               actor=None, reason="x")  # fmt: skip
    assert codes(exc) == {"member_ids": {"other_merchant"}}


def test_expiry_job_posts_breakage_and_is_idempotent():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon),
                             services.RechargeItem(kind="voucher", voucher_template=shop.voucher),
                             services.RechargeItem(kind="vip", vip_type=shop.vip_year)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)])  # fmt: skip
    spend_points = services.consume(member=shop.member, store=shop.store, actor=None,
                                    items=[services.ConsumptionItem(service=shop.massage, direct_fen=20_000,
                                                                    payment_method="cash")])  # fmt: skip
    assert spend_points.lines.get().points == 200
    far = timezone.now() + datetime.timedelta(days=800)
    first = services.expire_due_benefits(now=far)
    assert (first.vouchers, first.grants, first.points_lots, first.vip_memberships) == (1, 1, 1, 1)
    breakage = ledger_selectors.find_account(shop.merchant, "breakage", "CNY")
    # 9 unused car washes worth 9 × ¥20 and the untouched ¥50 voucher.
    assert ledger_selectors.balance(breakage) == 18_000 + 5_000
    assert selectors.member_totals(shop.member).points_balance == 0
    entries = Entry.objects.count()
    second = services.expire_due_benefits(now=far)
    assert (second.vouchers, second.grants, second.points_lots, second.vip_memberships) == (0, 0, 0, 0)
    assert Entry.objects.count() == entries
    assert ledger_selectors.reconcile(shop.merchant).clean


@pytest.mark.parametrize(
    ("policy", "spend"), [("proportional", 119_999), ("principal_first", 60_000), ("bonus_first", 119_999)]
)
def test_cash_paid_out_never_exceeds_principal_paid_in(policy, spend):
    shop = make_shop(policy)
    load_plan(shop)  # ¥1,000 principal + ¥200 bonus
    line = spend_stored_value(shop, spend).lines.get()
    principal_left, bonus_left = balances(shop.member)
    assert (principal_left, bonus_left) == (100_000 - line.principal_fen, 20_000 - line.bonus_fen)
    assert principal_left + bonus_left == 120_000 - spend
    refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    # Exactly the principal left is paid; the bonus left is forfeited, never paid.
    assert (refund.paid_out_fen, refund.forfeited_bonus_fen) == (principal_left, bonus_left)
    assert cash_paid_out(shop.merchant) + line.principal_fen == 100_000  # paid out + spent = paid in
    cash = ledger_selectors.find_account(shop.merchant, "cash", "CNY", detail="cash")
    assert ledger_selectors.balance(cash) == -principal_left  # the payout left the till, and nothing more
    breakage = ledger_selectors.find_account(shop.merchant, "breakage", "CNY")
    assert ledger_selectors.balance(breakage) == bonus_left


# ---------------------------------------------------------------- edge cases found in review


def test_refund_of_a_use_on_an_expired_coupon_goes_to_breakage():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    line = services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)]).lines.get()  # fmt: skip
    later = timezone.now() + datetime.timedelta(days=40)
    services.expire_due_benefits(now=later)
    with mock.patch("django.utils.timezone.now", return_value=later):
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="投诉", actor=None)
    deferred = ledger_selectors.find_account(shop.merchant, "deferred_revenue", "CNY", detail=grant.account_detail)
    assert ledger_selectors.balance(deferred) == 0
    assert grant_balance(grant) == 0
    breakage = ledger_selectors.find_account(shop.merchant, "breakage", "CNY")
    assert ledger_selectors.balance(breakage) == 20_000  # 9 uses at expiry + the refunded one
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_refunding_an_early_use_never_pays_out_more_than_was_paid():
    shop = make_shop()
    shop.car_wash_coupon.uses, shop.car_wash_coupon.price_fen = 3, 1_000
    shop.car_wash_coupon.save()
    # ¥10 for 3 uses of a ¥30 service would give ¥80 away (over the plan share): list the wash at ¥3.
    type(shop.car_wash).objects.filter(pk=shop.car_wash.pk).update(list_price_fen=300, member_price_fen=300)
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    lines = [
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)]).lines.get()
        for _ in range(3)
    ]  # fmt: skip
    assert [line.deferred_fen for line in lines] == [333, 333, 334]
    services.refund_consumption_lines(member=shop.member, lines=[lines[0]], reason="x", actor=None)
    refund = services.cash_refund_grant(grant=grant, payment_method="cash", reason="退", actor=None)
    assert refund.paid_out_fen == 333
    revenue = ledger_selectors.find_account(shop.merchant, "revenue", "CNY")
    assert ledger_selectors.balance(revenue) + refund.paid_out_fen == 1_000
    deferred = ledger_selectors.find_account(shop.merchant, "deferred_revenue", "CNY", detail=grant.account_detail)
    assert ledger_selectors.balance(deferred) == 0


def test_refund_after_the_points_lot_expired_leaves_points_out():
    shop = make_shop("principal_first")
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    assert line.points == 100
    two_years = timezone.now() + datetime.timedelta(days=800)
    services.expire_due_benefits(now=two_years)
    with mock.patch("django.utils.timezone.now", return_value=two_years):
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="x", actor=None)
    assert balances(shop.member) == (100_000, 20_000)
    assert selectors.member_totals(shop.member).points_balance == 0
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_coupon_limit_counts_lines_and_plan_gifts_of_the_same_recharge():
    # Plans may give their whole price, so the plan with two gift coupons below is refused for the coupon
    # limit, not for its free value (which the default limit refused first, unnoticed by a field check).
    shop = make_shop(max_plan_free_value_bp=10_000)
    shop.car_wash_coupon.per_member_limit = 1
    shop.car_wash_coupon.save()
    item = services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)
    with pytest.raises(ValidationError) as exc:
        services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None, items=[item, item])
    assert codes(exc) == {"items[1].quantity": {"coupon_limit"}}
    shop.plan.gift_coupon, shop.plan.gift_coupon_quantity = shop.car_wash_coupon, 2
    shop.plan.save()
    with pytest.raises(ValidationError) as exc:
        load_plan(shop)
    assert codes(exc) == {"items[0].plan": {"coupon_limit"}}
    assert Grant.objects.count() == 0


def test_points_for_buying_stored_value_are_not_earned_twice_and_go_back_on_cash_refund():
    shop = make_shop("principal_first", points_on_stored_value_purchase=True)
    load_plan(shop)
    assert selectors.member_totals(shop.member).points_balance == 1_000
    line = spend_stored_value(shop, 40_000).lines.get()
    assert line.points == 0  # the principal earned its points when it was bought
    refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退卡", actor=None)
    assert refund.paid_out_fen == 60_000
    assert selectors.member_totals(shop.member).points_balance == 400  # 600 of 1000 points went back


def test_expired_grant_is_not_refunded_in_cash():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    later = timezone.now() + datetime.timedelta(days=40)
    with mock.patch("django.utils.timezone.now", return_value=later), pytest.raises(ValidationError) as exc:
        services.cash_refund_grant(grant=grant, payment_method="cash", reason="x", actor=None)
    assert codes(exc) == {"grant": {"grant_expired"}}


def test_request_key_of_another_member_is_refused():
    shop = make_shop()
    other = make_owner(shop.merchant)
    load_plan(shop, idempotency_key="tok-1")
    with pytest.raises(ValidationError) as exc:
        load_plan(shop, member=other, idempotency_key="tok-1")
    assert codes(exc) == {"idempotency_key": {"idempotency_conflict"}}


def test_activity_points_are_awarded_once_per_occasion():
    from wallet.models import ActivityPointsRule

    shop = make_shop()
    rule = ActivityPointsRule.objects.create(merchant=shop.merchant, code="signup", name="活动报名", points=50)
    first = services.award_activity_points(member=shop.member, rule=rule, occasion="activity-7", actor=None)
    again = services.award_activity_points(member=shop.member, rule=rule, occasion="activity-7", actor=None)
    services.award_activity_points(member=shop.member, rule=rule, occasion="activity-8", actor=None)
    assert first.pk == again.pk
    assert selectors.member_totals(shop.member).points_balance == 100
    other_rule = ActivityPointsRule.objects.create(merchant=make_shop().merchant, code="x", name="x", points=1)
    with pytest.raises(ValidationError) as exc:
        services.award_activity_points(member=shop.member, rule=other_rule, occasion="a", actor=None)
    assert codes(exc) == {"rule": {"other_merchant"}}


# ---------------------------------------------------------------- one price rule (issue 10, item 4)


def test_funded_item_prices_by_the_rule_consume_charges_and_splits_the_funding():
    shop = make_shop()
    gold = Level.objects.create(merchant=shop.merchant, name="金卡", rank=2, discount_rate_bp=9_000)
    member = make_owner(shop.merchant)
    member.level = gold
    member.save()
    load_plan(shop, member=member)
    price = services.price_line(member, shop.massage, 3)
    assert (price.unit_price_fen, price.payable_fen) == (18_000, 54_000)  # ¥200 at 90 %, × 3

    item = services.funded_item(member, shop.massage, 3, funding="stored_value", staff=shop.staff)
    assert (item.stored_value_fen, item.direct_fen, item.voucher_fen, item.staff) == (54_000, 0, 0, shop.staff)
    line = services.consume(member=member, store=shop.store, actor=None, items=[item]).lines.get()
    assert (line.unit_price_fen, line.payable_fen, line.principal_fen + line.bonus_fen) == (18_000, 54_000, 54_000)

    direct = services.funded_item(member, shop.massage, 1, funding="direct", payment_method="alipay")
    assert (direct.direct_fen, direct.payment_method, direct.stored_value_fen) == (18_000, "alipay", 0)
    services.recharge(member=member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="voucher", voucher_template=shop.voucher)])  # fmt: skip
    voucher = Voucher.objects.get(member=member)
    # A ¥50 voucher on a ¥27 car wash (¥30 at 90 %): ¥20 from it, the rest paid directly or from stored value.
    part = services.funded_item(member, shop.car_wash, 1, funding="voucher", voucher=voucher, voucher_fen=2_000,
                                payment_method="cash")  # fmt: skip
    assert (part.voucher_fen, part.direct_fen, part.payment_method, part.stored_value_fen) == (2_000, 700, "cash", 0)
    rest = services.funded_item(member, shop.car_wash, 1, funding="voucher", voucher=voucher, voucher_fen=2_000)
    assert (rest.voucher_fen, rest.direct_fen, rest.stored_value_fen) == (2_000, 0, 700)
    whole = services.funded_item(member, shop.car_wash, 1, funding="voucher", voucher=voucher)
    assert (whole.voucher, whole.voucher_fen, whole.stored_value_fen) == (voucher, 2_700, 0)
    line = services.consume(member=member, store=shop.store, actor=None, items=[part]).lines.get()
    assert (line.voucher_fen, line.direct_fen, line.payable_fen) == (2_000, 700, 2_700)

    grant_item = services.funded_item(member, shop.car_wash, 2, funding="grant", grant=None)
    assert (grant_item.quantity, grant_item.stored_value_fen, grant_item.direct_fen) == (2, 0, 0)
    with pytest.raises(ValidationError) as exc:
        services.funded_item(member, shop.car_wash, 1, funding="points")
    assert codes(exc) == {"funding": {"funding_unknown"}}
