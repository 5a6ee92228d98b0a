"""Wallet concurrency claims on PostgreSQL with real threads."""

import threading

import pytest
from django.core.exceptions import ValidationError

from ledger import selectors as ledger_selectors
from tests.test_ledger_postgres import run_threads
from tests.wallet_helpers import load_plan, make_shop
from wallet import models as wallet_models
from wallet import selectors, services
from wallet.models import Grant

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_parallel_consumptions_of_a_ten_use_coupon():
    shop = make_shop()
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    ok, refused = [], []
    lock = threading.Lock()

    def checkout(i: int) -> None:
        try:
            services.consume(member=shop.member, store=shop.store, actor=None,
                             items=[services.ConsumptionItem(service=shop.car_wash, grant=grant)])  # fmt: skip
            with lock:
                ok.append(i)
        except ValidationError:
            with lock:
                refused.append(i)

    assert run_threads(20, checkout) == []
    assert (len(ok), len(refused)) == (10, 10)
    held = [h for h in selectors.member_benefits(shop.member).grants if h.obj.pk == grant.pk]
    assert held == []  # no uses left
    deferred = ledger_selectors.find_account(shop.merchant, "deferred_revenue", "CNY", detail=grant.account_detail)
    assert ledger_selectors.balance(deferred) == 0  # all ¥200 recognised, exactly
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_parallel_recharges_and_spends_on_one_card_end_at_the_right_balance():
    shop = make_shop("proportional")
    load_plan(shop)  # 1000 + 200
    spend_service = wallet_models.Service.objects.create(
        merchant=shop.merchant, category=shop.massage.category, name="小额", list_price_fen=700, member_price_fen=700
    )

    def worker(i: int) -> None:
        if i % 2:
            load_plan(shop)
        else:
            for _ in range(5):
                services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=spend_service, stored_value_fen=700)])  # fmt: skip

    assert run_threads(10, worker) == []
    benefits = selectors.member_benefits(shop.member)
    # 6 plans loaded (1 + 5), 5 × 5 spends of ¥7.
    assert benefits.principal_fen + benefits.bonus_fen == 6 * 120_000 - 25 * 700
    assert selectors.member_totals(shop.member).consumed_total_fen == 25 * 700
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_the_same_request_racing_from_eight_threads_records_one_recharge():
    shop = make_shop()
    numbers = []

    def submit(i: int) -> None:
        numbers.append(load_plan(shop, idempotency_key="double-click-1").number)

    assert run_threads(8, submit) == []
    assert len(numbers) == 8 and len(set(numbers)) == 1
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (100_000, 20_000)
