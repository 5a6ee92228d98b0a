"""Pagination of the portal's long lists (the record lists, member search, the member page's tabs)."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

_TIE_BREAKERS = {"pk", "-pk", "id", "-id"}


def _totally_ordered(queryset: QuerySet) -> bool:
    """Whether the queryset's order ends with its primary key, so that no two rows tie and the reversed
    order is exactly the order read backwards."""
    query = queryset.query
    if query.combinator or query.distinct_fields or query.is_sliced:
        return False
    ordering = list(query.order_by) if query.order_by else list(queryset.model._meta.ordering or [])
    if not query.default_ordering and not query.order_by:
        return False
    return bool(ordering) and isinstance(ordering[-1], str) and ordering[-1] in _TIE_BREAKERS


class TwoEndedPaginator(Paginator):
    """Reads a page in the second half of a list from the list's end: the rows of page n of N are
    read in the reversed order at offset (N - n) pages and put back in order. PostgreSQL walks every row
    an OFFSET skips, through the order's index and every join, so the last page of a 100,000-row list
    read from the front costs 100,000 rows; read from the back it costs what the first page does. The
    same rows either way: only lists ordered down to the primary key are read backwards (others, and
    pages in the first half, as Django's Paginator reads them)."""

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if bottom > self.count - top and isinstance(rows, QuerySet) and _totally_ordered(rows):
            backwards = list(rows.reverse()[self.count - top : self.count - bottom])
            backwards.reverse()
            return self._get_page(backwards, number, self)
        return self._get_page(rows[bottom:top], number, self)
