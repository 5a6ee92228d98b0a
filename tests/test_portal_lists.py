"""The portal's back-office lists (issue 11, item 4): filters narrow, columns sort, pages page, exports
hold exactly the filtered and scoped rows (never another merchant's), stores scope what a store role
reads, and each page issues a bounded number of queries that does not grow with its rows."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from members.models import Level, Owner
from tests.factories import StoreFactory
from tests.portal_helpers import World, days_ago, make_world, new_member, spend, stored_value
from wallet import services
from wallet.models import Recharge

pytestmark = pytest.mark.django_db

LISTS = ["records:recharges", "records:consumptions", "records:entitlement_refunds", "records:cash_refunds",
         "records:service_records", "members:index"]  # fmt: skip


@pytest.fixture
def world() -> World:
    return make_world()


def login(client, who) -> object:
    client.force_login(getattr(who, "user", who))
    return client


def rows(response) -> list:
    """The objects of the page, in order."""
    return [obj for obj, _cells in response.context["rows"]]


def numbers(response) -> list[str]:
    return [obj.number for obj in rows(response)]


def export_rows(client, url: str, params: dict, kind: str) -> list[list[str]]:
    """The rows of an export (header first), as text."""
    response = client.get(url, {**params, "export": kind})
    assert response.status_code == 200
    if kind == "csv":
        assert response["Content-Type"].startswith("text/csv")
        text = b"".join(response.streaming_content).decode("utf-8")
        assert text.startswith("\ufeff")
        return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(response.content)).active
    return [[("" if v is None else v) for v in row] for row in sheet.iter_rows(values_only=True)]


# ---------------------------------------------------------------- recharges: filters, scope, export


@pytest.fixture
def recharges(world: World) -> dict[str, Recharge]:
    a = world.a
    other = new_member(a, name="李四")
    return {
        "s1_wechat_old": stored_value(a, world.s1, 10_000, method="wechat", actor=world.op1.user, at=days_ago(20)),
        "s1_cash_new": stored_value(a, world.s1, 20_000, method="cash", member=other, at=days_ago(2)),
        "s2_wechat": stored_value(a, world.s2, 30_000, method="wechat", actor=world.op2.user, at=days_ago(5)),
        "nowhere": stored_value(a, None, 40_000, method="alipay", at=days_ago(1)),
        "b": stored_value(world.b, world.b.store, 50_000, method="wechat", at=days_ago(2)),
    }


def test_merchant_admin_sees_every_recharge_of_the_merchant_newest_first(client, world, recharges):
    response = login(client, world.admin).get(reverse("records:recharges"))
    assert response.status_code == 200
    expected = ["nowhere", "s1_cash_new", "s2_wechat", "s1_wechat_old"]
    assert numbers(response) == [recharges[k].number for k in expected]
    body = response.content.decode()
    assert recharges["b"].number not in body
    assert "¥400.00" in body and "¥200.00" in body  # money in yuan with two places


def test_a_store_role_reads_the_records_of_its_stores_only(client, world, recharges):
    assert numbers(login(client, world.op1).get(reverse("records:recharges"))) == [
        recharges["s1_cash_new"].number, recharges["s1_wechat_old"].number,
    ]  # fmt: skip
    assert numbers(login(client, world.manager2).get(reverse("records:recharges"))) == [recharges["s2_wechat"].number]
    assert numbers(login(client, world.b_op).get(reverse("records:recharges"))) == [recharges["b"].number]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"payment_method": "wechat"}, ["s2_wechat", "s1_wechat_old"]),
        ({"payment_method": "cash"}, ["s1_cash_new"]),
        ({"store": "s1"}, ["s1_cash_new", "s1_wechat_old"]),
        ({"store": "s2", "payment_method": "cash"}, []),
        ({"date_from": 6}, ["nowhere", "s1_cash_new", "s2_wechat"]),
        ({"date_from": 6, "date_to": 2}, ["s1_cash_new", "s2_wechat"]),
        ({"operator": "op1"}, ["s1_wechat_old"]),
        ({"q": "李四"}, ["s1_cash_new"]),
    ],
)
def test_recharge_filters_narrow(client, world, recharges, params, expected):
    params = _resolve(world, params)
    response = login(client, world.admin).get(reverse("records:recharges"), params)
    assert response.status_code == 200
    assert numbers(response) == [recharges[k].number for k in expected]
    assert response.context["paginator"].count == len(expected)


def _resolve(world: World, params: dict) -> dict:
    """Test shorthand → query values: store names to ids, staff to user ids, days back to dates."""
    resolved = {}
    for key, value in params.items():
        if key == "store":
            value = {"s1": world.s1.pk, "s2": world.s2.pk}[value]
        elif key == "operator":
            value = getattr(world, value).user.pk
        elif key in ("date_from", "date_to"):
            value = days_ago(value).date().isoformat()
        resolved[key] = value
    return resolved


def test_a_filter_outside_the_scope_is_refused_and_shows_no_rows(client, world, recharges):
    # Store 2 is not operator 1's; merchant B's store is nobody's at A: an invalid choice, no rows.
    for store in (world.s2, world.b.store):
        response = login(client, world.op1).get(reverse("records:recharges"), {"store": store.pk})
        assert response.status_code == 200
        assert rows(response) == [] and response.context["filterset"].errors
        assert "store" in response.context["filterset"].errors
    export = export_rows(client, reverse("records:recharges"), {"store": world.b.store.pk}, "csv")
    assert export[1:] == []


def test_store_choices_are_the_users_stores(client, world, recharges):
    response = login(client, world.op1).get(reverse("records:recharges"))
    choices = list(response.context["filterset"].form.fields["store"].queryset)
    assert choices == [world.s1]
    assert "merchant" not in response.context["filterset"].form.fields  # one merchant: no merchant filter


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_export_holds_exactly_the_filtered_rows(client, world, recharges, kind):
    url = reverse("records:recharges")
    login(client, world.admin)
    table = export_rows(client, url, {"payment_method": "wechat"}, kind)
    header, body = table[0], table[1:]
    keys = [h["column"].key for h in client.get(url).context["headers"]]
    assert len(header) == len(keys)  # the export has the page's columns, in the page's order
    assert [row[keys.index("number")] for row in body] == [
        recharges["s2_wechat"].number, recharges["s1_wechat_old"].number,
    ]  # fmt: skip
    # Amounts in yuan: a plain decimal in CSV, a number shown with separators in Excel.
    paid = [row[keys.index("paid_total")] for row in body]
    if kind == "csv":
        assert paid == ["300.00", "100.00"]
    else:
        assert [Decimal(str(v)) for v in paid] == [Decimal("300"), Decimal("100")]
        sheet = load_workbook(io.BytesIO(client.get(url, {"export": "xlsx"}).content)).active
        assert sheet.cell(row=2, column=keys.index("paid_total") + 1).number_format == "#,##0.00"
    # Unfiltered, the export is the whole list of the merchant, never merchant B's.
    everything = [row[0] for row in export_rows(client, url, {}, kind)[1:]]
    assert sorted(everything) == sorted(r.number for k, r in recharges.items() if k != "b")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_exports_of_each_merchant_never_hold_the_others_rows(client, world, recharges, kind):
    url = reverse("records:recharges")
    mine_a = {r.number for k, r in recharges.items() if k != "b"}
    got_a = {row[0] for row in export_rows(login(client, world.admin), url, {}, kind)[1:]}
    got_b = {row[0] for row in export_rows(login(client, world.b_op), url, {}, kind)[1:]}
    assert got_a == mine_a and got_b == {recharges["b"].number}
    # A store role's export is its stores' rows only.
    got_op1 = {row[0] for row in export_rows(login(client, world.op1), url, {}, kind)[1:]}
    assert got_op1 == {recharges["s1_wechat_old"].number, recharges["s1_cash_new"].number}


def test_platform_admin_reads_every_merchant_with_a_merchant_column_and_filter(client, world, recharges):
    login(client, world.platform)
    response = client.get(reverse("records:recharges"))
    assert set(numbers(response)) == {r.number for r in recharges.values()}
    assert response.context["headers"][0]["column"].key == "merchant"
    only_b = client.get(reverse("records:recharges"), {"merchant": world.b.merchant.pk})
    assert numbers(only_b) == [recharges["b"].number]
    table = export_rows(client, reverse("records:recharges"), {"merchant": world.b.merchant.pk}, "csv")
    assert [row[1] for row in table[1:]] == [recharges["b"].number] and table[1][0] == world.b.merchant.name


def test_sorting_by_a_column_both_ways_and_back(client, world, recharges):
    login(client, world.admin)
    url = reverse("records:recharges")
    ascending = numbers(client.get(url, {"_orderby": "paid_total"}))
    assert ascending == [recharges[k].number for k in ("s1_wechat_old", "s1_cash_new", "s2_wechat", "nowhere")]
    assert numbers(client.get(url, {"_orderby": "-paid_total"})) == ascending[::-1]
    # An unknown column falls back to the default order (newest first) instead of failing.
    assert numbers(client.get(url, {"_orderby": "secret_field"})) == numbers(client.get(url))
    # The header links keep the filters and flip the order.
    response = client.get(url, {"_orderby": "paid_total", "payment_method": "wechat"})
    header = next(h for h in response.context["headers"] if h["column"].key == "paid_total")
    assert (
        header["sort"] == "asc" and "_orderby=-paid_total" in header["url"] and "payment_method=wechat" in header["url"]
    )
    # Exports follow the chosen order.
    table = export_rows(client, url, {"_orderby": "paid_total"}, "csv")
    assert [row[0] for row in table[1:]] == ascending


# ---------------------------------------------------------------- pagination


def test_pagination_pages_through_the_filtered_rows_in_a_stable_order(client, world):
    a = world.a
    made = [stored_value(a, world.s1, 1_000 + n, at=days_ago(1)) for n in range(30)]  # same time: pk breaks ties
    stored_value(a, world.s2, 5_000, at=days_ago(1))
    login(client, world.admin)
    url = reverse("records:recharges")
    first = client.get(url, {"store": world.s1.pk})
    second = client.get(url, {"store": world.s1.pk, "page": 2})
    assert first.context["paginator"].count == 30 and len(rows(first)) == 25 and len(rows(second)) == 5
    assert set(numbers(first)) | set(numbers(second)) == {r.number for r in made}
    assert not set(numbers(first)) & set(numbers(second))
    assert f"store={world.s1.pk}" in first.context["next_url"] and "page=2" in first.context["next_url"]
    assert client.get(url, {"page": 3, "store": world.s1.pk}).status_code == 404
    # The export is every filtered row, not one page.
    assert len(export_rows(client, url, {"store": world.s1.pk, "page": 2}, "csv")) == 31


# ---------------------------------------------------------------- members


def test_member_list_filters_by_level_status_join_date_and_search(client, world):
    a = world.a
    Level.objects.create(merchant=a.merchant, name="普通", rank=1)  # new members start at the lowest level
    gold = Level.objects.create(merchant=a.merchant, name="金卡", rank=3)
    old = new_member(a, name="老会员", level=gold)
    Owner.objects.filter(pk=old.pk).update(joined_at=days_ago(40))
    frozen = new_member(a, name="冻结会员")
    Owner.objects.filter(pk=frozen.pk).update(status=Owner.Status.FROZEN)
    new_member(world.b, name="乙会员")
    login(client, world.op1)
    url = reverse("members:index")
    names = lambda response: [o.name for o in rows(response)]  # noqa: E731
    assert set(names(client.get(url))) == {a.member.name, old.name, frozen.name}
    assert names(client.get(url, {"level": gold.pk})) == [old.name]
    assert names(client.get(url, {"status": "frozen"})) == [frozen.name]
    assert set(names(client.get(url, {"date_from": days_ago(10).date().isoformat()}))) == {a.member.name, frozen.name}
    assert names(client.get(url, {"date_to": days_ago(30).date().isoformat()})) == [old.name]
    assert names(client.get(url, {"q": "冻结"})) == [frozen.name]
    assert names(client.get(url, {"_orderby": "name"})) == sorted([a.member.name, old.name, frozen.name])
    # Merchant B's level is no choice at A.
    b_level = Level.objects.create(merchant=world.b.merchant, name="乙金卡", rank=3)
    response = client.get(url, {"level": b_level.pk})
    assert rows(response) == [] and "level" in response.context["filterset"].errors
    table = export_rows(client, url, {"status": "frozen"}, "xlsx")
    assert [row[1] for row in table[1:]] == [frozen.name]
    assert "乙会员" not in str(export_rows(client, url, {}, "csv"))


# ---------------------------------------------------------------- consumptions, refunds, service records


@pytest.fixture
def activity(world: World) -> dict:
    a = world.a
    stored_value(a, world.s1, 100_000)
    c1 = spend(a, world.s1, 3_000, staff=world.clerk, tags=["加急"], at=days_ago(3))
    c2 = spend(a, world.s2, 5_000, at=days_ago(2))
    c3 = spend(a, world.s1, 7_000, direct_method="alipay", at=days_ago(1))
    refund = services.refund_consumption_lines(member=a.member, lines=list(c1.lines.all()), reason="服务未完成",
                                               actor=None, store=world.s1)  # fmt: skip
    coupon = services.recharge(member=a.member, store=world.s2, payment_method="cash", actor=None,
                               items=[services.RechargeItem(kind="coupon", coupon_template=a.car_wash_coupon)])  # fmt: skip
    grant = a.member.grants.get(source_ref=coupon.number)
    cash = services.cash_refund_grant(grant=grant, payment_method="cash", reason="不想要了", actor=None, store=world.s2)
    stored_value(world.b, world.b.store, 10_000)
    b_consumption = spend(world.b, world.b.store, 2_000)
    return {"c1": c1, "c2": c2, "c3": c3, "refund": refund, "cash": cash, "b": b_consumption}


def test_consumption_filters_refund_status_funding_and_direct_payment(client, world, activity):
    login(client, world.admin)
    url = reverse("records:consumptions")
    assert numbers(client.get(url)) == [activity[k].number for k in ("c3", "c2", "c1")]
    assert numbers(client.get(url, {"status": "refunded"})) == [activity["c1"].number]
    assert numbers(client.get(url, {"status": "none"})) == [activity["c3"].number, activity["c2"].number]
    assert numbers(client.get(url, {"funding": "direct"})) == [activity["c3"].number]
    assert numbers(client.get(url, {"payment_method": "alipay"})) == [activity["c3"].number]
    assert numbers(client.get(url, {"funding": "stored_value", "store": world.s1.pk})) == [activity["c1"].number]
    body = client.get(url).content.decode()
    assert activity["b"].number not in body
    table = export_rows(client, url, {"status": "refunded"}, "csv")
    assert [row[0] for row in table[1:]] == [activity["c1"].number]


def test_refund_lists_are_scoped_by_store_and_filter(client, world, activity):
    url = reverse("records:entitlement_refunds")
    assert numbers(login(client, world.op1).get(url)) == [activity["refund"].number]
    assert numbers(login(client, world.op2).get(url)) == []
    cash_url = reverse("records:cash_refunds")
    assert numbers(login(client, world.op2).get(cash_url)) == [activity["cash"].number]
    assert numbers(login(client, world.op1).get(cash_url)) == []
    login(client, world.admin)
    assert numbers(client.get(cash_url, {"kind": "grant"})) == [activity["cash"].number]
    assert numbers(client.get(cash_url, {"kind": "stored_value"})) == []
    table = export_rows(client, url, {}, "xlsx")
    assert [row[0] for row in table[1:]] == [activity["refund"].number]


def test_service_records_filter_by_staff_and_tag_and_a_clerk_sees_their_own(client, world, activity):
    url = reverse("records:service_records")
    login(client, world.admin)
    assert len(rows(client.get(url))) == 3
    c1_record = activity["c1"].service_record.number
    assert numbers(client.get(url, {"staff": world.clerk.pk})) == [c1_record]
    tag = activity["c1"].service_record.tags.get()
    assert numbers(client.get(url, {"tag": tag.pk})) == [c1_record]
    # The clerk reads no records, but sees the service records they served.
    login(client, world.clerk)
    assert numbers(client.get(url)) == [c1_record]
    assert client.get(reverse("records:recharges")).status_code == 403
    assert client.get(reverse("records:recharges"), {"export": "csv"}).status_code == 403
    assert [row[0] for row in export_rows(client, url, {}, "csv")[1:]] == [c1_record]


def test_records_index_and_menu_follow_what_the_user_may_read(client, world, activity):
    assert login(client, world.op1).get(reverse("records:index"))["Location"] == reverse("records:recharges")
    assert login(client, world.clerk).get(reverse("records:index"))["Location"] == reverse("records:service_records")
    body = client.get(reverse("records:service_records")).content.decode()
    assert f'href="{reverse("records:recharges")}"' not in body  # no menu entry for what the clerk may not read
    assert "portal-breadcrumbs" in body and f'href="{reverse("dashboard:index")}"' in body


def test_lists_need_a_login(client):
    for name in LISTS:
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        assert client.get(reverse(name), {"export": "csv"}).status_code == 302


# ---------------------------------------------------------------- queries do not grow with rows


def _make_rows(world: World, name: str, count: int) -> None:
    """`count` rows of the list at store 1 of merchant A, each with a different member, operator-made."""
    a = world.a
    for _ in range(count):
        member = new_member(a)
        if name == "members:index":
            continue
        if name == "records:recharges":
            services.recharge(member=member, store=world.s1, payment_method="wechat", actor=world.op1.user,
                              items=[services.RechargeItem(kind="coupon", coupon_template=a.car_wash_coupon)])  # fmt: skip
            continue
        stored_value(a, world.s1, 20_000, member=member)
        if name == "records:cash_refunds":
            services.cash_refund_stored_value(member=member, payment_method="cash", reason="退卡", actor=None,
                                              store=world.s1)  # fmt: skip
            continue
        consumption = spend(a, world.s1, 3_000, member=member, tags=["常规"], actor=world.op1.user)
        if name == "records:entitlement_refunds":
            services.refund_consumption_lines(member=member, lines=list(consumption.lines.all()), reason="退",
                                              actor=None, store=world.s1)  # fmt: skip


def _queries(client, url: str, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("name", LISTS)
def test_queries_per_page_do_not_grow_with_rows(client, world, name, django_assert_max_num_queries):
    login(client, world.admin)
    url = reverse(name)
    _make_rows(world, name, 1)
    one = _queries(client, url)
    one_csv = _queries(client, url, {"export": "csv"})
    _make_rows(world, name, 29)
    with django_assert_max_num_queries(one):
        response = client.get(url)
    assert len(response.context["rows"]) >= 25  # a full page was rendered
    assert _queries(client, url, {"export": "csv"}) == one_csv  # 30 rows: still one chunk
    with django_assert_max_num_queries(20):
        client.get(url, {"store": world.s1.pk, "date_from": "2020-01-01", "_orderby": "-created_at"})


def test_a_store_the_filter_does_not_know_is_no_server_error(client, world):
    login(client, world.admin)
    other = StoreFactory()
    for name in LISTS:
        for params in ({"store": "x"}, {"store": other.pk}, {"date_from": "2026-13-45"}, {"page": "x"},
                       {"_orderby": "-"}, {"q": "\x00"}):  # fmt: skip
            assert client.get(reverse(name), params).status_code in (200, 404)


def test_text_typed_by_people_never_becomes_a_spreadsheet_formula(client, world):
    sneaky = new_member(world.a, name="=1+2")
    login(client, world.admin)
    url = reverse("members:index")
    csv_names = [row[1] for row in export_rows(client, url, {"q": "=1+2"}, "csv")[1:]]
    assert csv_names == ["'=1+2"]
    sheet = load_workbook(io.BytesIO(client.get(url, {"q": "=1+2", "export": "xlsx"}).content)).active
    cell = sheet.cell(row=2, column=2)
    assert (cell.value, cell.data_type) == (sneaky.name, "s")


def test_a_list_longer_than_its_count_limit_lists_its_first_rows_and_says_so(client, world, monkeypatch):
    from portal.lists.views import PortalListView

    for n in range(6):
        new_member(world.a, name=f"长名单{n}")
    monkeypatch.setattr(PortalListView, "count_limit", 4)
    login(client, world.admin)
    response = client.get(reverse("members:index"), {"q": "长名单"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.context["paginator"].capped and len(rows(response)) == 4
    assert "超过 4 条" in response.content.decode()
    # Every matching row is still exported.
    assert len(export_rows(client, reverse("members:index"), {"q": "长名单"}, "csv")) == 7
    monkeypatch.setattr(PortalListView, "count_limit", 6)
    response = client.get(reverse("members:index"), {"q": "长名单"})
    assert not response.context["paginator"].capped and response.context["paginator"].count == 6
