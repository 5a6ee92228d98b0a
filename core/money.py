"""Money at the edges: decimal strings with at most two places in, integer fen inside, never floats;
yuan with two places and thousands separators for people."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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


def yuan_large(fen: int) -> str:
    """yuan() and, from ¥10,000 on, the figure in 万 (10⁴) or 亿 (10⁸) as Chinese readers count it:
    123456789 → '¥1,234,567.89 (≈123.46万)'. Two decimals, half up; '≈' marks a rounded figure, so the
    exact amount with separators stays the one to check (an extra digit changes the 万/亿 figure tenfold)."""
    exact = yuan(fen)
    magnitude = abs(fen)
    if magnitude < 1_000_000:  # below ¥10,000 the plain figure reads well
        return exact
    unit_fen, template = (10**10, _("%(number)s × 100M")) if magnitude >= 10**10 else (10**6, _("%(number)s × 10k"))
    value = Decimal(magnitude) / unit_fen
    rounded = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if unit_fen == 10**6 and rounded >= 10_000:  # 9,999.999万 rounds to 1亿
        unit_fen, template = 10**10, _("%(number)s × 100M")
        value = Decimal(magnitude) / unit_fen
        rounded = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{rounded:,.2f}".rstrip("0").rstrip(".")
    sign = "-" if fen < 0 else ""
    approx = "" if rounded == value else "≈"
    return f"{exact} ({approx}{template % {'number': sign + text}})"
