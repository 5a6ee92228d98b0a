"""Query budgets of the wallet's operations and of the member page (issue 10, Speed).

Each operation is counted in steady state (its accounts exist: a first operation of the same kind ran
before) with an operator as actor, as the portal calls it. Counts are every statement on Django's
connection, the ledger's own prepared cursor included (it logs where Django's debug cursor logs:
ledger.services._PreparedCursor), transaction control (BEGIN/COMMIT or SAVEPOINT/RELEASE) included.
Not counted: the business number, which PostgreSQL allocates on a connection of its own
(members.numbering); on SQLite it is one of the counted statements.

Budgets are exact: one more query fails the test, and a query per line or per row shown fails it ten or
thirty times over. The ledger writes an entry with one statement on PostgreSQL (ledger_post_entry())
and with several on SQLite (a savepoint, the balance rows, the entry, its legs), so the budgets are per
database; a consumption or refund posts one entry per line, and the 10-line budget is the 1-line budget
plus 9 entries, nothing else per line.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from members import roles
from portal.wallet_views import TABS
from tests.factories import make_owner, make_staff
from tests.wallet_helpers import Shop, make_shop
from wallet import services
from wallet.models import ConsumptionLine, Grant

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"


# Queries of each tab of the member page, whatever the number of rows (the same on both databases).
# One of them is the site menu's unread-notifications badge of the approvals area, on every page.
MEMBER_PAGE = {
    "overview": 18,
    "service_records": 14,
    "recharges": 15,
    "consumptions": 15,
    "refunds": 16,
    "statement": 16,
    "audit": 12,
}


def budget(postgres: int, sqlite: int) -> int:
    return postgres if POSTGRES else sqlite


@pytest.fixture
def shop() -> Shop:
    return make_shop()


@pytest.fixture
def actor(shop):
    return make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store]).user


def count(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured.captured_queries)


def recharge(shop, actor):
    return services.recharge(member=shop.member, store=shop.store, payment_method="wechat", actor=actor,
                             items=[services.RechargeItem(kind="plan", plan=shop.plan)])  # fmt: skip


def consume(shop, actor, lines: int):
    cycle = [shop.cleaning, shop.car_wash, shop.massage]
    items = [
        services.ConsumptionItem(service=cycle[i % 3], staff=shop.staff, stored_value_fen=cycle[i % 3].member_price_fen)
        for i in range(lines)
    ]
    return services.consume(member=shop.member, store=shop.store, actor=actor, items=items)


def test_recharge(shop, actor, django_assert_max_num_queries):
    recharge(shop, actor)
    with django_assert_max_num_queries(budget(12, 18)):
        recharge(shop, actor)


def test_consumption_of_one_and_of_ten_lines(shop, actor, django_assert_max_num_queries):
    recharge(shop, actor)
    recharge(shop, actor)
    consume(shop, actor, 10)
    one = budget(12, 18)
    # One more entry per line: on PostgreSQL one call of ledger_post_entry(); on SQLite a savepoint (2),
    # the bounded balances (a SELECT and a batched UPDATE for more than 4), the entry and its legs.
    per_entry = budget(1, 6)
    with django_assert_max_num_queries(one):
        consume(shop, actor, 1)
    with django_assert_max_num_queries(one + 9 * per_entry):
        consume(shop, actor, 10)


def test_consumption_with_a_coupon(shop, actor, django_assert_max_num_queries):
    services.recharge(member=shop.member, store=shop.store, payment_method="wechat", actor=actor,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=shop.member)
    item = services.ConsumptionItem(service=shop.car_wash, staff=shop.staff, grant=grant)
    services.consume(member=shop.member, store=shop.store, actor=actor, items=[item])
    with django_assert_max_num_queries(budget(15, 22)):
        services.consume(member=shop.member, store=shop.store, actor=actor, items=[item])


def test_refund_of_consumption_lines(shop, actor, django_assert_max_num_queries):
    recharge(shop, actor)
    recharge(shop, actor)
    lines = list(ConsumptionLine.objects.filter(consumption=consume(shop, actor, 12)).order_by("line_no"))
    services.refund_consumption_lines(member=shop.member, lines=lines[:1], reason="退", actor=actor, store=shop.store)
    one = budget(16, 22)
    # Per line: its entry reversed (the original locked, the legs of it and its reversals, the post: 3 on
    # PostgreSQL, 7 on SQLite, see above) and the line marked refunded.
    per_line = budget(4, 9)
    with django_assert_max_num_queries(one):
        services.refund_consumption_lines(member=shop.member, lines=lines[1:2], reason="退", actor=actor,
                                          store=shop.store)  # fmt: skip
    with django_assert_max_num_queries(one + 9 * per_line):
        services.refund_consumption_lines(member=shop.member, lines=lines[2:12], reason="退", actor=actor,
                                          store=shop.store)  # fmt: skip


def test_cash_refund_of_stored_value(shop, actor, django_assert_max_num_queries):
    first = Shop(**{**vars(shop), "member": make_owner(shop.merchant)})  # the merchant's accounts exist
    recharge(first, actor)
    services.cash_refund_stored_value(member=first.member, payment_method="wechat", reason="退卡", actor=actor)
    recharge(shop, actor)
    consume(shop, actor, 1)
    with django_assert_max_num_queries(budget(15, 21)):
        services.cash_refund_stored_value(member=shop.member, payment_method="wechat", reason="退卡", actor=actor,
                                          store=shop.store)  # fmt: skip


def test_cash_refund_of_a_coupon(shop, actor, django_assert_max_num_queries):
    services.recharge(member=shop.member, store=shop.store, payment_method="wechat", actor=actor,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon, quantity=2)])  # fmt: skip
    first, second = Grant.objects.filter(member=shop.member).order_by("pk")
    services.cash_refund_grant(grant=first, payment_method="wechat", reason="退券", actor=actor, store=shop.store)
    with django_assert_max_num_queries(budget(13, 18)):
        services.cash_refund_grant(grant=second, payment_method="wechat", reason="退券", actor=actor, store=shop.store)


def _member_with_records(shop, actor, n: int) -> None:
    """n recharges, n consumptions of a line each, n line refunds, n service records."""
    for _ in range(n):
        recharge(shop, actor)
    for _ in range(n):
        record = services.record_service(member=shop.member, staff=shop.staff, store=shop.store, actor=actor,
                                         notes="ok", tags=["护理"])  # fmt: skip
        consumption = services.consume(member=shop.member, store=shop.store, actor=actor, service_record=record,
                                       items=[services.ConsumptionItem(service=shop.car_wash, staff=shop.staff,
                                                                       stored_value_fen=3_000)])  # fmt: skip
        services.refund_consumption_lines(member=shop.member, lines=list(consumption.lines.all()), reason="退",
                                          actor=actor, store=shop.store)  # fmt: skip
    services.recharge(member=shop.member, store=shop.store, payment_method="wechat", actor=actor,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon, quantity=n)])  # fmt: skip


@pytest.mark.parametrize("tab", [name for name, _label in TABS])
def test_member_page_costs_the_same_with_one_and_with_thirty_records(tab, django_assert_max_num_queries):
    """Each tab of the member page (member 360) with 1 and with 30 records of every kind shown."""
    counts = []
    for n in (1, 30):
        shop = make_shop()
        actor = make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store]).user
        client = Client()
        client.force_login(actor)
        _member_with_records(shop, actor, n)
        url = reverse("members:member", kwargs={"pk": shop.member.pk})
        client.get(url, {"tab": tab})  # the session and caches warm
        with django_assert_max_num_queries(MEMBER_PAGE[tab]):
            response = client.get(url, {"tab": tab})
        assert response.status_code == 200
        counts.append(count(lambda url=url, client=client: client.get(url, {"tab": tab})))
    assert counts[0] == counts[1], f"{tab}: {counts} queries with 1 and with 30 records of each kind"
