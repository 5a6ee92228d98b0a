"""Races of issue 9 on PostgreSQL with real threads: refunds against refunds (item 7) and the
per-member coupon limit on every path that grants coupons (item 8)."""

import threading

import pytest
from django.core.exceptions import ValidationError

from ledger import selectors as ledger_selectors
from tests.factories import make_owner
from tests.test_ledger_postgres import run_threads
from tests.wallet_helpers import make_shop
from wallet import accounts as wallet_accounts
from wallet import models as wallet_models
from wallet import services
from wallet.models import ConsumptionLine, Grant

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def _assert_nothing_stranded(grant: Grant) -> None:
    """A refunded or revoked lot holds nothing; an active one holds what its uses are worth."""
    grant.refresh_from_db()
    uses = ledger_selectors.balance(wallet_accounts.grant_account(grant))
    deferred = ledger_selectors.balance(wallet_accounts.grant_deferred_account(grant))
    if grant.status != Grant.Status.ACTIVE:
        assert (uses, deferred) == (0, 0), f"{grant.status} grant still holds {uses} uses and {deferred} fen"
    else:
        assert deferred == 0 or uses > 0, "deferred money with no use left to spend or refund it"


@pytest.mark.parametrize("trial", range(6))
def test_cash_refund_of_a_coupon_racing_the_refund_of_a_line_that_used_it(trial):
    """Item 7: cash refund of the coupon and refund of the consumption line that used two of its uses
    at the same moment. One of two outcomes, never money stranded on a closed lot: line first (uses
    back on the lot, then all paid out) or coupon first (the line refund is refused)."""
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.car_wash, grant=grant, quantity=2)])  # fmt: skip
    line = consumption.lines.get()
    outcome: dict[str, object] = {}
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            if i == 0:
                result = services.cash_refund_grant(grant=grant, payment_method="cash", reason="退券", actor=None)
            else:
                result = services.refund_consumption_lines(member=shop.member, lines=[line], reason="退", actor=None)
        except ValidationError as exc:
            result = exc
        with lock:
            outcome[("cash", "line")[i]] = result

    assert run_threads(2, worker) == []
    cash, line_refund = outcome["cash"], outcome["line"]
    assert not isinstance(cash, ValidationError), cash  # the coupon can always be refunded in cash
    line.refresh_from_db()
    if isinstance(line_refund, ValidationError):
        assert _codes(line_refund) == {"grant_refunded"}
        assert line.status == ConsumptionLine.Status.NORMAL
        assert cash.paid_out_fen == 16_000  # 8 unused uses of ¥20
    else:
        assert line.status == ConsumptionLine.Status.REFUNDED
        assert cash.paid_out_fen == 20_000  # the 2 uses came back first: all 10 paid out
    _assert_nothing_stranded(grant)
    assert ledger_selectors.reconcile(shop.merchant).clean


def _limit_one(shop):
    shop.car_wash_coupon.per_member_limit = 1
    shop.car_wash_coupon.save()
    return shop.car_wash_coupon


def test_twenty_parallel_batch_issues_respect_a_limit_of_one_per_member():
    """Item 8: 20 batches of the same template for the same member, each with its own batch ref (so no
    shared number row serialises them): exactly one coupon."""
    shop = make_shop()
    template = _limit_one(shop)
    others = [make_owner(shop.merchant) for _ in range(3)]

    def issue(i: int) -> None:
        # Different member sets in different orders: the locks are taken in id order whatever is asked.
        ids = [shop.member.pk] + [m.pk for m in (others if i % 2 else reversed(others))]
        services.issue_coupons(template=template, member_ids=ids, actor=None, reason="活动", batch_ref=f"batch-{i}")

    assert run_threads(20, issue) == []
    for member in [shop.member, *others]:
        assert Grant.objects.filter(member=member, coupon_template=template).count() == 1
    issuance = ledger_selectors.find_account(shop.merchant, "issuance", template.unit)
    assert ledger_selectors.balance(issuance) == 4 * template.uses
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_limit_holds_across_batch_issue_recharge_line_and_plan_gift():
    """Item 8: the same template reaching one member through every path at once."""
    shop = make_shop()
    template = _limit_one(shop)
    shop.plan.gift_coupon, shop.plan.gift_coupon_quantity = template, 1
    shop.plan.save()
    refused: list[ValidationError] = []
    lock = threading.Lock()

    def path(i: int) -> None:
        try:
            if i % 3 == 0:
                services.issue_coupons(template=template, member_ids=[shop.member.pk], actor=None, reason="x",
                                       batch_ref=f"b{i}")  # fmt: skip
            elif i % 3 == 1:
                services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                                  items=[services.RechargeItem(kind="coupon", coupon_template=template)])  # fmt: skip
            else:
                services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                                  items=[services.RechargeItem(kind="plan", plan=shop.plan)])  # fmt: skip
        except ValidationError as exc:
            with lock:
                refused.append(exc)

    assert run_threads(12, path) == []
    assert Grant.objects.filter(member=shop.member, coupon_template=template).count() == 1
    assert all(_codes(exc) == {"coupon_limit"} for exc in refused), refused
    assert ledger_selectors.reconcile(shop.merchant).clean


@pytest.mark.parametrize("trial", range(3))
def test_cash_refund_of_stored_value_racing_uses_and_refunds_of_its_plan_gifts(trial):
    """Item 5 under concurrency, and the lock order: the cash refund of the card, a use of a gift coupon,
    the refund of an earlier gift use and a stored-value spend at once. No deadlock; afterwards every
    gift lot is closed with nothing left on it, and the charge is exactly the gift uses still used."""
    shop = make_shop(max_plan_free_value_bp=10_000)  # plan gifts weighing up to its price
    shop.plan.gift_coupon, shop.plan.gift_coupon_quantity = shop.car_wash_coupon, 1
    shop.plan.bonus_fen = 10_000  # ¥100 bonus + gifts worth ¥900 at list value: within the plan limit
    shop.plan.gift_package = shop.cleaning_package
    shop.plan.save()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="plan", plan=shop.plan)])  # fmt: skip
    coupon = Grant.objects.get(member=shop.member, kind="coupon")
    earlier = services.consume(member=shop.member, store=shop.store, actor=None,
                               items=[services.ConsumptionItem(service=shop.car_wash, grant=coupon)]).lines.get()  # fmt: skip
    refused: list[tuple[int, ValidationError]] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            if i == 0:
                services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退卡", actor=None)
            elif i == 1:
                services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=shop.car_wash, grant=coupon)])  # fmt: skip
            elif i == 2:
                services.refund_consumption_lines(member=shop.member, lines=[earlier], reason="退", actor=None)
            else:
                services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=shop.massage, stored_value_fen=20_000)])  # fmt: skip
        except ValidationError as exc:
            with lock:
                refused.append((i, exc))

    assert run_threads(4, worker) == []
    refund = wallet_models.CashRefund.objects.get(member=shop.member)
    gifts = Grant.objects.filter(member=shop.member)
    assert set(gifts.values_list("status", flat=True)) == {"revoked"}
    for grant in gifts:
        _assert_nothing_stranded(grant)
    used = ConsumptionLine.objects.filter(grant=coupon, status="normal").count()
    assert refund.gifts_charged_fen == used * 2_000  # ¥20 a car wash at the coupon's list price
    # Each worker refused only for what the cash refund (which always succeeds) did first: the coupon is
    # taken back (its use refused; its earlier use not refunded onto it), the card is closed.
    why = {0: set(), 1: {"grant_not_active"}, 2: {"grant_revoked"}, 3: {"card_closed"}}
    assert all(_codes(exc) == why[i] for i, exc in refused), refused
    assert ledger_selectors.reconcile(shop.merchant).clean
