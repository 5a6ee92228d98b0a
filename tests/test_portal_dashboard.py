"""The portal's dashboards (issue 11, item 5): figures for today, this week and this month from a known
dataset, the chart's data per day and store (page context and JSON endpoint), each role's page, the
scope (stores, merchants), the menu, and a query count that does not grow with the records."""

from __future__ import annotations

import datetime
import json
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from members import selectors as member_selectors
from portal import dashboard
from tests.portal_helpers import World, days_ago, make_world, new_member, spend, stored_value
from wallet import selectors, services

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def world() -> World:
    return make_world()


def login(client, who):
    client.force_login(getattr(who, "user", who))
    return client


def figure(body: str, key: str) -> list[int]:
    """The today / week / month values of a row of the figures table, as rendered (data-value)."""
    row = re.search(rf'<tr data-figure="{key}">(.*?)</tr>', body, re.S).group(1)
    return [int(v) for v in re.findall(r'data-value="(-?\d+)"', row)]


# ---------------------------------------------------------------- periods


def test_periods_are_local_today_week_from_monday_and_month():
    now = datetime.datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)  # a Wednesday
    got = {name: (start.date(), end.date()) for name, (start, end) in dashboard.periods(now).items()}
    assert got == {
        "today": (datetime.date(2026, 3, 4), datetime.date(2026, 3, 5)),
        "week": (datetime.date(2026, 3, 2), datetime.date(2026, 3, 9)),
        "month": (datetime.date(2026, 3, 1), datetime.date(2026, 4, 1)),
    }
    december = dashboard.periods(datetime.datetime(2026, 12, 31, 23, 30, tzinfo=SHANGHAI))
    assert december["month"][1] == datetime.datetime(2027, 1, 1, tzinfo=SHANGHAI)
    # 00:30 in Shanghai is still the previous day in UTC: the day is the local one.
    early = dashboard.periods(datetime.datetime(2026, 3, 5, 0, 30, tzinfo=SHANGHAI))
    assert early["today"][0] == datetime.datetime(2026, 3, 5, tzinfo=SHANGHAI)


# ---------------------------------------------------------------- figures of a known dataset


def test_activity_figures_of_a_known_dataset(world):
    a = world.a
    p = (days_ago(10, hour=0), days_ago(0, hour=23))  # the last ten days
    periods = {"p": p, "all": (days_ago(100), days_ago(-1))}
    stored_value(a, world.s1, 10_000, at=days_ago(3))
    stored_value(a, world.s2, 25_000, at=days_ago(4))
    stored_value(a, world.s1, 70_000, at=days_ago(30))  # outside p
    stored_value(world.b, world.b.store, 99_900, at=days_ago(3))  # another merchant
    c1 = spend(a, world.s1, 3_000, at=days_ago(2))
    spend(a, world.s2, 4_000, at=days_ago(2))
    services.refund_consumption_lines(member=a.member, lines=list(c1.lines.all()), reason="退", actor=None,
                                      store=world.s1)  # fmt: skip
    coupon = services.recharge(member=a.member, store=world.s2, payment_method="cash", actor=None,
                               items=[services.RechargeItem(kind="coupon", coupon_template=a.car_wash_coupon)])  # fmt: skip
    services.consume(member=a.member, store=world.s1, actor=None, items=[services.ConsumptionItem(
        service=a.car_wash, grant=a.member.grants.get(source_ref=coupon.number), quantity=2)])  # fmt: skip
    services.issue_coupons(template=a.car_wash_coupon, member_ids=[new_member(a).pk], actor=None, reason="新会员礼")
    grant = a.member.grants.get(source_ref=coupon.number)
    services.cash_refund_grant(grant=grant, payment_method="cash", reason="退", actor=None, store=world.s2)

    merchant_a = member_selectors.RecordScope((a.merchant.pk,), None)
    figures = selectors.activity_figures(merchant_a, periods)["p"]
    assert (figures.recharges, figures.recharged_fen) == (3, 10_000 + 25_000 + 20_000)  # two stored value, one coupon
    # Payable counts what was consumed at its price, whatever paid for it (2 car washes from the coupon: ¥60).
    assert (figures.consumptions, figures.consumed_fen) == (3, 3_000 + 4_000 + 6_000)
    assert (figures.entitlement_refunds, figures.entitlement_refunded_fen) == (1, 3_000)
    assert figures.cash_refunds == 1 and figures.cash_refunded_fen > 0
    assert figures.coupons_issued == 2  # one sold at store 2, one given by batch (no store)
    assert figures.coupon_uses == 2
    assert figures.service_records == 2
    assert figures.new_owners == 2  # the shop's member and the coupon batch's member, joined today

    store_1 = member_selectors.RecordScope((a.merchant.pk,), (world.s1.pk,))
    at_1 = selectors.activity_figures(store_1, periods)["p"]
    assert (at_1.recharges, at_1.recharged_fen) == (1, 10_000)
    assert (at_1.consumptions, at_1.consumed_fen, at_1.coupon_uses) == (2, 3_000 + 6_000, 2)
    assert at_1.coupons_issued == 0 and at_1.cash_refunds == 0 and at_1.entitlement_refunds == 1
    at_2 = selectors.activity_figures(member_selectors.RecordScope((a.merchant.pk,), (world.s2.pk,)), periods)["p"]
    assert at_2.coupons_issued == 1  # the lot sold at store 2; the batch belongs to no store
    everything = selectors.activity_figures(merchant_a, periods)["all"]
    assert (everything.recharges, everything.recharged_fen) == (4, 125_000)
    nothing = selectors.activity_figures(member_selectors.RecordScope((), ()), periods)["all"]
    assert nothing == selectors.PeriodFigures()


def test_dashboard_page_shows_the_figures_of_today_week_and_month(client, world):
    a = world.a
    now = timezone.now()
    stored_value(a, world.s1, 10_000, at=now)
    stored_value(a, world.s2, 20_000, at=now)
    stored_value(a, world.s1, 40_000, at=days_ago(40))  # before this month and this week, whatever today is
    stored_value(world.b, world.b.store, 80_000, at=now)
    spend(a, world.s1, 3_000, at=now)
    body = login(client, world.admin).get(reverse("dashboard:index")).content.decode()
    assert figure(body, "recharges") == [2, 2, 2]
    assert figure(body, "recharged_fen") == [30_000, 30_000, 30_000]
    assert figure(body, "consumptions") == [1, 1, 1] and figure(body, "consumed_fen") == [3_000] * 3
    assert figure(body, "service_records") == [1, 1, 1]
    assert 'id="owner-count">1<' in body  # merchant A's one member
    assert "¥300.00" in body  # amounts in yuan
    # A store manager of store 2 counts store 2's records only.
    body = login(client, world.manager2).get(reverse("dashboard:index")).content.decode()
    assert figure(body, "recharges") == [1, 1, 1] and figure(body, "recharged_fen") == [20_000] * 3
    assert figure(body, "consumptions") == [0, 0, 0]
    # Merchant B sees its own only.
    body = login(client, world.b_op).get(reverse("dashboard:index")).content.decode()
    assert figure(body, "recharged_fen") == [80_000] * 3


def test_large_figures_show_in_wan(client, world):
    stored_value(world.a, world.s1, 12_345_600, at=timezone.now())  # ¥123,456.00
    from django.utils import translation

    with translation.override("zh-hans"):
        body = login(client, world.admin).get(reverse("dashboard:index"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    text = body.content.decode()
    assert "¥12.35万" in text and 'title="¥123,456.00"' in text


# ---------------------------------------------------------------- the chart


@pytest.fixture
def chart_data(world):
    a = world.a
    stored_value(a, world.s1, 10_000, at=days_ago(2))
    stored_value(a, world.s1, 5_000, at=days_ago(2, hour=20))
    stored_value(a, world.s2, 30_000, at=days_ago(1))
    stored_value(a, None, 7_000, at=days_ago(1))
    spend(a, world.s1, 2_500, at=days_ago(1))
    stored_value(a, world.s1, 60_000, at=days_ago(45))  # outside the default 30 days
    stored_value(world.b, world.b.store, 90_000, at=days_ago(1))
    return world


def _series(data: dict, kind: str) -> dict[str, list[str]]:
    return {s["store"]: s["amounts"] for s in data[kind]}


def test_chart_data_per_day_and_store_in_context_and_json(client, chart_data):
    world = chart_data
    login(client, world.admin)
    response = client.get(reverse("dashboard:index"))
    context = response.context["chart"]
    data = client.get(reverse("dashboard:chart")).json()
    assert data == json.loads(json.dumps(context))  # the page and the endpoint say the same
    today = timezone.localdate()
    assert data["end"] == today.isoformat() and len(data["days"]) == 30
    two, one = data["days"].index(days_ago(2).date().isoformat()), data["days"].index(days_ago(1).date().isoformat())
    recharges = _series(data, "recharges")
    assert set(recharges) == {"北店", "南店", "No store"} or set(recharges) == {"北店", "南店", "无门店"}
    assert recharges["北店"][two] == "150.00" and recharges["北店"][one] == "0.00"
    assert recharges["南店"][one] == "300.00" and sum(float(v) for v in recharges["南店"]) == 300
    consumptions = _series(data, "consumptions")
    assert set(consumptions) == set(recharges)  # the same stores (and colours) in both charts
    assert consumptions["北店"] == ["0.00"] * one + ["25.00"] + ["0.00"] * (29 - one)
    assert consumptions["南店"] == ["0.00"] * 30
    assert data["totals"] == {"recharges": "520.00", "consumptions": "25.00"}
    assert '<script id="dashboard-chart-data" type="application/json">' in response.content.decode()
    assert "portal/vendor/chartjs/chart.umd.min.js" in response.content.decode()


def test_chart_range_and_store_choice(client, chart_data):
    world = chart_data
    login(client, world.admin)
    url = reverse("dashboard:chart")
    start = days_ago(50).date().isoformat()
    wide = client.get(url, {"start": start, "end": days_ago(1).date().isoformat()}).json()
    assert len(wide["days"]) == 50 and wide["totals"]["recharges"] == "1120.00"
    only_2 = client.get(url, {"store": world.s2.pk}).json()
    assert [s["store"] for s in only_2["recharges"]] == ["南店"] and only_2["totals"]["recharges"] == "300.00"
    assert client.get(url, {"start": "2026-05-02", "end": "2026-05-01"}).status_code == 400
    assert client.get(url, {"start": "2024-01-01", "end": "2026-01-01"}).status_code == 400
    assert client.get(url, {"store": world.b.store.pk}).status_code == 400  # another merchant's store
    # A store role never narrows to a store it does not work at.
    login(client, world.op1)
    assert client.get(url, {"store": world.s2.pk}).status_code == 400
    mine = client.get(url).json()
    assert [s["store"] for s in mine["recharges"]] == ["北店"] and mine["totals"]["recharges"] == "150.00"


def test_platform_admin_chart_spans_merchants_and_narrows_to_one(client, chart_data):
    world = chart_data
    login(client, world.platform)
    url = reverse("dashboard:chart")
    assert client.get(url).json()["totals"]["recharges"] == "1420.00"
    assert client.get(url, {"merchant": world.b.merchant.pk}).json()["totals"]["recharges"] == "900.00"


# ---------------------------------------------------------------- each role's page


def _panels(body: str) -> list[str]:
    return re.findall(r'<section id="dashboard-(\w+)"', body)


def test_each_role_gets_its_work_surface(client, world):
    a = world.a
    now = timezone.now()
    stored_value(a, world.s1, 10_000, method="wechat", at=now)
    stored_value(a, world.s2, 20_000, method="cash", at=now)
    spend(a, world.s1, 3_000, staff=world.clerk, tags=["加急"], at=now)
    spend(a, world.s1, 1_000, at=now)  # served by another clerk
    spend(a, world.s1, 2_000, direct_method="alipay", at=now)

    def page(who) -> str:
        response = login(client, who).get(reverse("dashboard:index"))
        assert response.status_code == 200
        return response.content.decode()

    admin = page(world.admin)
    assert _panels(admin) == ["figures", "chart", "stores", "payments"]
    manager = page(world.manager2)
    assert _panels(manager) == ["figures", "chart", "stores"]
    stores = re.search(r'<table class="mdc-data-table__table" id="stores-table">(.*?)</table>', manager, re.S).group(1)
    assert "南店" in stores and "北店" not in stores and "¥200.00" in stores
    finance = page(world.finance)
    assert _panels(finance) == ["payments", "figures", "chart"]
    payments = re.search(r'id="payments-table">(.*?)</table>', finance, re.S).group(1)
    rows = dict(re.findall(r'<tr data-method="(\w+)"><td>[^<]*</td><td[^>]*>([^<]*)</td>', payments))
    assert rows == {"wechat": "¥100.00", "alipay": "¥20.00"}  # store 1 only: store 2's cash is not finance's
    operator = page(world.op1)
    assert _panels(operator) == ["figures", "today", "chart"]
    today = re.search(r'id="today-recharges">(.*?)</table>', operator, re.S).group(1)
    assert "¥100.00" in today and "¥200.00" not in today
    clerk = page(world.clerk)
    assert _panels(clerk) == ["mine"]
    assert re.search(r'id="my-records-today">1<', clerk)
    assert "加急" in clerk  # the tag of the record they served
    assert client.get(reverse("dashboard:chart")).status_code == 403
    platform = page(world.platform)
    assert _panels(platform) == ["figures", "chart", "stores", "payments"]
    assert 'id="payments-choose-merchant"' in platform
    chosen = login(client, world.platform).get(reverse("dashboard:index"), {"merchant": a.merchant.pk})
    assert 'id="payments-table"' in chosen.content.decode()


def test_clerk_commission_is_their_ledger_balance(client, world):
    a = world.a
    stored_value(a, world.s1, 100_000)
    services.consume_with_service_record(
        member=a.member, staff=world.clerk, store=world.s1, actor=None,
        items=[services.ConsumptionItem(service=a.cleaning, stored_value_fen=10_000, staff=world.clerk)],
    )  # fmt: skip
    body = login(client, world.clerk).get(reverse("dashboard:index")).content.decode()
    assert re.search(r'id="my-commission">¥10\.00<', body)  # 洁牙 pays ¥10 fixed commission per use


def test_the_dashboard_is_once_in_the_menu(client, world):
    body = login(client, world.admin).get(reverse("dashboard:index")).content.decode()
    menu = body[body.index("vf-page__menu") : body.index("vf-page__body")]
    assert menu.count(f'href="{reverse("dashboard:index")}"') == 1
    assert (
        f'href="{reverse("records:recharges")}"'
        in login(client, world.admin).get(reverse("records:recharges")).content.decode()
    )


def test_dashboard_needs_a_login_and_a_stranger_gets_an_empty_page(client, django_user_model):
    assert client.get(reverse("dashboard:index")).status_code == 302
    assert client.get(reverse("dashboard:chart")).status_code == 302
    stranger = django_user_model.objects.create_user("stranger", password="pw-12345678")
    body = login(client, stranger).get(reverse("dashboard:index")).content.decode()
    assert 'id="dashboard-empty"' in body
    assert client.get(reverse("dashboard:chart")).status_code == 403


def test_dashboard_queries_do_not_grow_with_records(client, world, django_assert_max_num_queries):
    a = world.a
    login(client, world.admin)
    url = reverse("dashboard:index")

    def make(count: int) -> None:
        for n in range(count):
            member = new_member(a)
            store = world.s1 if n % 2 else world.s2
            stored_value(a, store, 10_000, member=member, at=days_ago(n % 20))
            spend(a, store, 1_000, member=member, at=days_ago(n % 20))

    make(1)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    make(29)
    with django_assert_max_num_queries(len(one.captured_queries)):
        client.get(url)
    with django_assert_max_num_queries(30):
        client.get(url, {"store": world.s1.pk, "start": days_ago(60).date().isoformat()})
