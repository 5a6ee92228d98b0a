"""The members' level tallies (wallet.accounts: spend, points_earned) are the totals member_totals used to
sum from the member's legs, kept by the ledger: every operation that counts moves them, reversals take
them back, and the opening migration brings existing members to the old sums."""

import datetime
import importlib
from unittest import mock

import pytest
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import Entry
from members.models import Level
from tests.factories import make_owner
from tests.wallet_helpers import load_plan, make_shop, spend_stored_value
from wallet import selectors, services
from wallet.models import ActivityPointsRule, Grant, Voucher

pytestmark = pytest.mark.django_db

opening = importlib.import_module("wallet.migrations.0007_level_tallies")


def old_sums(member) -> tuple[int, int]:
    """(consumed, points earned) by the formulas member_totals used before the tallies."""
    return opening.old_level_totals(member.merchant_id).get(member.pk, (0, 0))


def assert_tallies_match(member) -> None:
    totals = selectors.member_totals(member)
    assert selectors.level_totals(member) == old_sums(member)
    assert (totals.consumed_total_fen, totals.points_earned) == old_sums(member)


def test_every_kind_of_operation_moves_the_tallies_as_the_old_sums():
    shop = make_shop("principal_first", points_on_stored_value_purchase=True, points_on_voucher_spend=True)
    member, store = shop.member, shop.store
    assert selectors.level_totals(member) == (0, 0)  # nothing counted yet: no tally account either
    load_plan(shop)  # points on the stored value bought
    assert_tallies_match(member)
    assert selectors.level_totals(member) == (0, 1_000)

    grant_recharge = services.recharge(
        member=member, store=store, payment_method="cash", actor=None,
        items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon),
               services.RechargeItem(kind="voucher", voucher_template=shop.voucher)],
    )  # fmt: skip
    grant = Grant.objects.get(member=member, source_ref=grant_recharge.number)
    voucher = Voucher.objects.get(member=member)
    consumption = services.consume(
        member=member, store=store, actor=None,
        items=[
            services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000, staff=shop.staff),
            services.ConsumptionItem(service=shop.car_wash, grant=grant),
            services.ConsumptionItem(service=shop.massage, voucher=voucher, voucher_fen=5_000, direct_fen=15_000,
                                     payment_method="wechat"),
        ],
    )  # fmt: skip
    assert_tallies_match(member)
    # stored value ¥100 + the coupon use's prepaid ¥20 + voucher ¥50 + cash ¥150
    assert selectors.level_totals(member)[0] == 10_000 + 2_000 + 5_000 + 15_000

    rule = ActivityPointsRule.objects.create(merchant=shop.merchant, code="signup", name="报名", points=50)
    services.award_activity_points(member=member, rule=rule, occasion="a-1", actor=None)
    assert_tallies_match(member)

    lines = list(consumption.lines.order_by("line_no"))
    services.refund_consumption_lines(member=member, lines=[lines[0], lines[2]], reason="退", actor=None)
    assert_tallies_match(member)
    assert selectors.level_totals(member)[0] == 2_000  # only the coupon use is still counted

    services.cash_refund_stored_value(member=member, payment_method="cash", reason="退卡", actor=None)
    assert_tallies_match(member)  # the stored value's points were taken back
    services.cash_refund_grant(grant=grant, payment_method="cash", reason="退券", actor=None)
    assert_tallies_match(member)
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_points_that_expired_before_the_refund_stay_earned():
    shop = make_shop("principal_first")
    load_plan(shop)
    line = spend_stored_value(shop, 10_000).lines.get()
    assert selectors.level_totals(shop.member) == (10_000, 100)
    two_years = timezone.now() + datetime.timedelta(days=800)
    services.expire_due_benefits(now=two_years)
    assert_tallies_match(shop.member)
    with mock.patch("django.utils.timezone.now", return_value=two_years):
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="x", actor=None)
    # The reversal left the lapsed points out, as the old sums did: spend goes back, points stay earned.
    assert selectors.level_totals(shop.member) == (0, 100)
    assert_tallies_match(shop.member)


def test_upgrade_reads_the_tallies_and_a_refund_takes_the_level_back():
    shop = make_shop("principal_first")
    gold = Level.objects.create(merchant=shop.merchant, name="金卡", rank=2, upgrade_spend_fen=30_000)
    Level.objects.create(merchant=shop.merchant, name="银卡", rank=1, upgrade_points=200)
    load_plan(shop)
    first = spend_stored_value(shop, 20_000).lines.get()
    shop.member.refresh_from_db()
    assert shop.member.level.name == "银卡"  # 200 points earned
    second = spend_stored_value(shop, 10_000).lines.get()
    shop.member.refresh_from_db()
    assert shop.member.level == gold  # ¥300 spent
    services.refund_consumption_lines(member=shop.member, lines=[second], reason="x", actor=None)
    shop.member.refresh_from_db()
    assert shop.member.level.name == "银卡"
    services.refund_consumption_lines(member=shop.member, lines=[first], reason="x", actor=None)
    shop.member.refresh_from_db()
    assert shop.member.level is None or shop.member.level.name != "金卡"
    assert_tallies_match(shop.member)


def _legacy_consumption(shop, member, fen: int, points: int, key: str) -> Entry:
    """A consumption entry as the wallet posted it before the tallies (no tally legs)."""
    principal, _bonus = (
        ledger.get_or_create_account(shop.merchant, p, "CNY", member=member) for p in ("principal", "bonus")
    )
    lot = ledger.get_or_create_account(shop.merchant, "points", "POINT", member=member, detail="exp2099")
    return ledger.post_entry(
        merchant=shop.merchant, operation_type="consumption", operation_ref=key, idempotency_key=key, actor=None,
        member=member,
        legs=[ledger.decrease(principal, fen), ledger.increase(ledger.get_or_create_account(shop.merchant, "revenue", "CNY"), fen),
              ledger.increase(lot, points), ledger.increase(ledger.get_or_create_account(shop.merchant, "issuance", "POINT"), points)],
    )  # fmt: skip


def test_opening_migration_brings_existing_histories_to_the_old_sums_once():
    shop = make_shop("principal_first")
    members = [shop.member, make_owner(shop.merchant), make_owner(shop.merchant)]
    for member in members[:2]:
        load_plan(shop, member=member)  # the tallies are already kept from here on
    # History from before the tallies: two consumptions of the first member, one reversed, one of the second.
    old = _legacy_consumption(shop, members[0], 3_000, 30, "old-1")
    _legacy_consumption(shop, members[0], 2_000, 20, "old-2")
    _legacy_consumption(shop, members[1], 5_000, 50, "old-3")
    ledger.reverse_entry(old, idempotency_key="old-1-refund", actor=None, operation_type="consumption_refund")
    spend_stored_value(shop, 1_000, member=members[1])  # and one with the tallies
    assert selectors.level_totals(members[0]) == (0, 0)
    assert selectors.level_totals(members[1]) == (1_000, 10)

    assert opening.post_openings({shop.merchant.pk}) == 1
    assert selectors.level_totals(members[0]) == (2_000, 20) == old_sums(members[0])
    assert selectors.level_totals(members[1]) == (6_000, 60) == old_sums(members[1])
    assert selectors.level_totals(members[2]) == (0, 0)
    assert opening.post_openings({shop.merchant.pk}) == 0  # nothing left to open
    assert ledger_selectors.reconcile(shop.merchant).clean
