"""Columns of the portal lists: one definition gives the page cell, the sort key and the export value,
so the page and its exports can never disagree."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.money import yuan

TEXT, MONEY, COUNT, DATETIME = "text", "money", "count", "datetime"


@dataclass
class Column:
    """`value(row)` is the raw value (fen for money, an aware datetime, a number or text); `link(row)`
    an optional URL for the cell; `orderby` the ORM ordering the column sorts by (None: not sortable)."""

    key: str
    title: str
    value: Callable[[Any], Any]
    kind: str = TEXT
    orderby: str | None = None
    link: Callable[[Any], str | None] | None = None
    wrap: bool = False  # long free text (items, notes, reasons) wraps on the page

    @property
    def numeric(self) -> bool:
        return self.kind in (MONEY, COUNT)

    def cell(self, row: Any) -> str | SafeString:
        """The value as shown on the page: yuan with separators, local time, links."""
        value = self.value(row)
        if value is None or value == "":
            text = "—"
        elif self.kind == MONEY:
            text = yuan(value)
        elif self.kind == COUNT:
            text = f"{value:,}"
        elif self.kind == DATETIME:
            text = date_format(timezone.localtime(value), "Y-m-d H:i")
        else:
            text = str(value)
        url = self.link(row) if self.link else None
        return format_html('<a href="{}">{}</a>', url, text) if url else text

    def export_value(self, row: Any) -> Any:
        """The value for a spreadsheet: yuan as a Decimal (never a float), local naive datetimes, text."""
        value = self.value(row)
        if value is None:
            return ""
        if self.kind == MONEY:
            return Decimal(value) / 100
        if self.kind == DATETIME and isinstance(value, datetime.datetime):
            return timezone.localtime(value).replace(tzinfo=None, microsecond=0)
        if self.kind == COUNT:
            return value
        return str(value)
