"""The portal's paginators (portal.pagination): read from the list's end for its second half, keys first
then rows, or capped at a count limit, every page holds exactly the rows Django's paginator gives, in the
same order; the last page is read without an OFFSET over the rows before it, and a capped count never
counts past its limit."""

from __future__ import annotations

import datetime

import pytest
from django.core.paginator import EmptyPage, Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from members.models import Owner
from portal.pagination import ListPaginator, TwoEndedPaginator
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owners():
    merchant = MerchantFactory()
    at = timezone.now()
    # Runs of equal join times: only the primary key orders them.
    Owner.objects.bulk_create(
        [
            Owner(merchant=merchant, member_number=f"P{i:05d}", name=f"会员{i % 7}", mobile=f"137{i:08d}",
                  joined_at=at - datetime.timedelta(days=i // 4))
            for i in range(53)
        ]
    )  # fmt: skip
    return Owner.objects.filter(merchant=merchant)


def _pages(paginator) -> list[list[int]]:
    return [[o.pk for o in paginator.page(n).object_list] for n in paginator.page_range]


@pytest.mark.parametrize(
    "ordering", [("-joined_at", "-pk"), ("joined_at", "pk"), ("name", "-id"), None], ids=["desc", "asc", "name", "meta"]
)
@pytest.mark.parametrize("per_page,orphans", [(5, 0), (5, 2), (10, 3), (53, 0), (60, 0)])
def test_every_page_holds_the_rows_djangos_paginator_gives(owners, ordering, per_page, orphans):
    rows = owners.order_by(*ordering) if ordering else owners
    expected = _pages(Paginator(rows, per_page, orphans=orphans))
    assert _pages(TwoEndedPaginator(rows, per_page, orphans=orphans)) == expected
    assert sorted(pk for page in expected for pk in page) == sorted(owners.values_list("pk", flat=True))


def test_an_order_with_ties_is_read_from_the_front(owners):
    rows = owners.order_by("-joined_at")  # ties within a day: reading backwards could shuffle them
    paginator = TwoEndedPaginator(rows, 5)
    paginator.count  # noqa: B018 (counted first, as a page view does)
    with CaptureQueriesContext(connection) as captured:
        list(paginator.page(paginator.num_pages).object_list)
    assert "OFFSET 50" in captured.captured_queries[-1]["sql"]


def test_the_last_page_is_read_backwards_without_an_offset(owners):
    rows = owners.order_by("-joined_at", "-pk")
    paginator = TwoEndedPaginator(rows, 5)
    paginator.count  # noqa: B018
    with CaptureQueriesContext(connection) as captured:
        last = [o.pk for o in paginator.page(paginator.num_pages).object_list]
    (query,) = captured.captured_queries
    assert "OFFSET" not in query["sql"] and "LIMIT 3" in query["sql"]
    assert last == list(rows.values_list("pk", flat=True))[50:]


@pytest.mark.parametrize(
    "ordering", [("-joined_at", "-pk"), ("name", "-id"), ("-joined_at",)], ids=["desc", "name", "ties"]
)
def test_reading_keys_first_gives_the_same_pages_in_two_queries(owners, ordering):
    rows = owners.select_related("merchant").order_by(*ordering)
    expected = _pages(Paginator(rows, 5, orphans=2))
    paginator = TwoEndedPaginator(rows, 5, orphans=2, ids_first=True)
    assert _pages(paginator) == expected
    for number in (1, paginator.num_pages):
        with CaptureQueriesContext(connection) as captured:
            [o.merchant.name for o in paginator.page(number).object_list]
        keys, page = captured.captured_queries
        assert "members_merchant" not in keys["sql"] and "members_merchant" in page["sql"]


def test_a_list_longer_than_the_count_limit_shows_its_first_rows(owners):
    rows = owners.order_by("-joined_at", "-pk")
    every = list(rows.values_list("pk", flat=True))
    capped = ListPaginator(rows, 5, count_limit=22, ids_first=True)
    with CaptureQueriesContext(connection) as captured:
        assert (capped.capped, capped.count, capped.num_pages) == (True, 22, 5)
    assert "LIMIT 23" in captured.captured_queries[0]["sql"]  # never counts past the limit
    assert _pages(capped) == [every[0:5], every[5:10], every[10:15], every[15:20], every[20:22]]
    with pytest.raises(EmptyPage):
        capped.page(6)
    exact = ListPaginator(rows, 5, count_limit=53, ids_first=True)
    assert (exact.capped, exact.count) == (False, 53)
    assert _pages(exact) == _pages(Paginator(rows, 5))
