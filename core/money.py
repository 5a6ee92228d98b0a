"""Money at the edges: decimal strings with at most two places in, integer fen inside, never floats;
yuan with two places and thousands separators for people."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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
