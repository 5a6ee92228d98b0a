"""CSV and Excel (xlsx, openpyxl) exports of a list's filtered rows, column for column."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from django.http import HttpResponse, StreamingHttpResponse
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from .columns import DATETIME, MONEY, TEXT, Column

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Rows are read from the database this many at a time (one query per chunk and per prefetch).
CHUNK = 2000


# A spreadsheet runs a cell starting with one of these as a formula: text typed by people (names, notes,
# reasons) must never become one (CSV / formula injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_text(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _csv_cell(column: Column, value) -> str:
    text = _csv_text(value)
    return _csv_safe(text) if column.kind == TEXT else text


def csv_response(columns: Sequence[Column], rows: Iterable, filename: str) -> StreamingHttpResponse:
    """Streams the rows: a byte-order mark first so that Excel opens the UTF-8 (Chinese) text correctly;
    amounts as plain decimals (12345.67) so that spreadsheets read them as numbers."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield "\ufeff" + writer.writerow([str(c.title) for c in columns])
        for row in rows:
            yield writer.writerow([_csv_cell(c, c.export_value(row)) for c in columns])

    response = StreamingHttpResponse(lines(), content_type=CSV_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def xlsx_response(columns: Sequence[Column], rows: Iterable, filename: str, sheet_title: str) -> HttpResponse:
    """One sheet, header row in bold, amounts as numbers shown with separators and two decimals."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=str(sheet_title)[:31])
    bold = Font(bold=True)
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, value=str(column.title))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in rows:
        cells = []
        for column in columns:
            cell = WriteOnlyCell(sheet, value=column.export_value(row))
            if cell.data_type == "f":  # openpyxl reads text starting with "=" as a formula: keep it text
                cell.data_type = "s"
            if column.kind == MONEY:
                cell.number_format = "#,##0.00"
            elif column.kind == DATETIME:
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response
