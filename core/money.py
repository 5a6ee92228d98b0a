"""Money at the edges: decimal strings with at most two places in, integer fen inside, never floats;
yuan with two places and thousands separators for people."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .errors import fail

# 13 integer digits: up to ¥9,999,999,999,999.99; business ceilings (per merchant) are far lower.
_MONEY_RE = re.compile(r"^\d{1,13}(\.\d{1,2})?$")
# A fen value that fits a signed 64-bit column with room to add a few together.
MAX_FEN = 10**15


def parse_fen(value: str | int | Decimal, field: str, *, allow_zero: bool = False) -> int:
    """'12.34' → 1234. Refuses floats, negatives, zero (unless allowed), more than two decimals,
    and anything that is not a plain decimal number, with a DomainError naming `field`."""
    if isinstance(value, (bool, float)):
        raise fail(field, "amount_format", _("Give amounts as decimal strings like 12.34."))
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
    else:
        raise fail(field, "amount_format", _("This is not an amount like 12.34."))
    if text.startswith("-"):
        raise fail(field, "amount_negative", _("The amount must be positive, got %(value)s."), value=text)
    if not _MONEY_RE.match(text):
        if re.match(r"^\d+\.\d{3,}$", text):
            raise fail(
                field,
                "amount_precision",
                _("%(value)s has more than two decimal places (the smallest unit is 0.01)."),
                value=text,
            )
        if re.match(r"^\d+(\.\d+)?$", text):
            raise fail(field, "amount_too_large", _("The amount %(value)s is too large."), value=text)
        raise fail(field, "amount_format", _("%(value)s is not an amount like 12.34."), value=text)
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
        raise fail(field, "amount_format", _("This is not an amount like 12.34.")) from None
    if fen == 0 and not allow_zero:
        raise fail(field, "amount_zero", _("The amount must be greater than zero."))
    return fen


def format_fen(fen: int) -> str:
    """1234 → '12.34'; -5 → '-0.05'. Plain: for the API and form fields."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def yuan(fen: int) -> str:
    """1234567 → '¥12,345.67': for people (messages, pages)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


# 万 (10^4) and 亿 (10^8): how Chinese readers group large figures. From 10万 up a figure is shown in
# 万, from 1亿 up in 亿, with two decimals rounded half up; smaller figures stay exact.
_WAN = 10**4
_YI = 10**8
_LARGE_FROM = 10 * _WAN


def _short_figure(value: Decimal, large_from: int = _LARGE_FROM) -> str | None:
    """'1,234.57万' / '1.23亿' for a non-negative figure of at least `large_from` (10万); None below that.
    Only when the active language is Chinese: other languages read the exact figure with its separators."""
    if value < large_from or not (translation.get_language() or settings.LANGUAGE_CODE).startswith("zh"):
        return None
    cents = Decimal("0.01")
    short, unit = (value / _WAN).quantize(cents, rounding=ROUND_HALF_UP), "万"
    if short >= _WAN:  # 9,999.995万 and up round to 1.00亿, not 10,000.00万
        short, unit = (value / _YI).quantize(cents, rounding=ROUND_HALF_UP), "亿"
    return f"{short:,}{unit}"


def yuan_short(fen: int) -> str:
    """For people where a figure is large (dashboards): yuan() below ¥100,000; from there in 万 and
    亿 with two decimals, rounded half up: 1234567800 → '¥1,234.57万', 12345678900 → '¥1.23亿'."""
    short = _short_figure(Decimal(abs(fen)) / 100)
    if short is None:
        return yuan(fen)
    return f"{'-' if fen < 0 else ''}¥{short}"


def count_short(count: int) -> str:
    """A count for people: separators below 100,000 ('12,345'), 万 and 亿 above ('12.35万')."""
    short = _short_figure(Decimal(abs(count)))
    if short is None:
        return f"{count:,}"
    return f"{'-' if count < 0 else ''}{short}"


def yuan_large(fen: int) -> str:
    """For an amount an operator confirms: yuan() and, from ¥10,000 on, the figure in 万 or 亿 beside it:
    123456789 → '¥1,234,567.89（≈123.46万）'. The exact amount with separators stays the one to check; the
    万/亿 figure makes an extra digit visible (it changes tenfold). Chinese only, like yuan_short."""
    exact = yuan(fen)
    short = _short_figure(Decimal(abs(fen)) / 100, large_from=_WAN)
    if short is None:
        return exact
    return f"{exact}（≈{'-' if fen < 0 else ''}{short}）"
