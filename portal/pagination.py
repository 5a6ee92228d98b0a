"""Pagination of the portal's long lists (the record lists, member search, the member page's tabs)."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

_TIE_BREAKERS = {"pk", "-pk", "id", "-id"}


def _totally_ordered(queryset: QuerySet) -> bool:
    """Whether the queryset's order ends with its primary key, so that no two rows tie and the reversed
    order is exactly the order read backwards."""
    query = queryset.query
    if query.combinator or query.distinct_fields or query.is_sliced:
        return False
    if not query.order_by and not query.default_ordering:
        return False
    ordering = list(query.order_by) if query.order_by else list(queryset.model._meta.ordering or [])
    return bool(ordering) and isinstance(ordering[-1], str) and ordering[-1] in _TIE_BREAKERS


class TwoEndedPaginator(Paginator):
    """Reads a page in the second half of a list from the list's end: the rows of page n of N are
    read in the reversed order at offset (N - n) pages and put back in order. PostgreSQL walks every row
    an OFFSET skips, through the order's index and every join, so the last page of a 100,000-row list
    read from the front costs 100,000 rows; read from the back it costs what the first page does. The
    same rows either way: only lists ordered down to the primary key are read backwards (others, and
    pages in the first half, as Django's Paginator reads them).

    `ids_first`: read the page's primary keys first (the order's index alone, however deep the page),
    then those rows with their joins, so the rows an OFFSET skips are never joined: one query more."""

    def __init__(self, *args, ids_first: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ids_first = ids_first

    def _reads_backwards(self, bottom: int, top: int) -> bool:
        return bottom > self.count - top and isinstance(self.object_list, QuerySet)

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return self._get_page(rows[bottom:top], number, self)
        if self._reads_backwards(bottom, top) and _totally_ordered(rows):
            return self._get_page(self._read(rows, self.count - top, self.count - bottom, backwards=True), number, self)
        return self._get_page(self._read(rows, bottom, top), number, self)

    def _read(self, rows: QuerySet, low: int, high: int, *, backwards: bool = False):
        ordered = rows.reverse() if backwards else rows
        if self.ids_first:
            ids = list(ordered.values_list("pk", flat=True)[low:high])
            if backwards:
                ids.reverse()
            found = {row.pk: row for row in rows.filter(pk__in=ids)}
            return [found[pk] for pk in ids if pk in found]  # in the order the keys were read
        if not backwards:
            return ordered[low:high]
        found = list(ordered[low:high])
        found.reverse()
        return found


class ListPaginator(TwoEndedPaginator):
    """TwoEndedPaginator that counts at most `count_limit` rows. A longer list is shown as its first
    `count_limit` rows (`count`), in pages, and says that it holds more (`capped`): counting all of a
    merchant's 800,000 consumptions would cost every one of them on each page view, while nobody pages
    through them (a filter or the other sort order finds what lies beyond; the exports hold every row).
    Shorter lists are counted exactly and page as before."""

    def __init__(self, *args, count_limit: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count_limit = count_limit

    @cached_property
    def _counted(self) -> int:
        """The rows, or count_limit + 1 for a list holding more."""
        rows = self.object_list
        if self.count_limit is None or not isinstance(rows, QuerySet):
            return Paginator.count.func(self)
        # SELECT COUNT(*) FROM (SELECT … LIMIT count_limit + 1): reads at most that many rows.
        return rows.order_by()[: self.count_limit + 1].count()

    @cached_property
    def capped(self) -> bool:
        return self.count_limit is not None and self._counted > self.count_limit

    @cached_property
    def count(self) -> int:
        return self.count_limit if self.capped else self._counted

    def _reads_backwards(self, bottom: int, top: int) -> bool:
        # The end of a capped list's pages is not the end of its rows: read from the front.
        return not self.capped and super()._reads_backwards(bottom, top)
