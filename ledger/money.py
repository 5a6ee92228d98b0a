"""Money at the edges: decimal strings with at most two places in, integer fen inside, never floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

_MONEY_RE = re.compile(r"^\d{1,13}(\.\d{1,2})?$")


def parse_fen(value: str | int | Decimal, field: str, *, allow_zero: bool = False) -> int:
    """'12.34' → 1234. Refuses floats, negatives, zero (unless allowed), more than two decimals,
    and anything that is not a plain decimal number, with a ValidationError naming `field`."""
    if isinstance(value, (bool, float)):
        raise ValidationError({field: f"Give amounts as decimal strings like '12.34', not {type(value).__name__}."})
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValidationError({field: f"'{value}' is not an amount."})
    if text.startswith("-"):
        raise ValidationError({field: f"The amount must be positive, got {text}."})
    if not _MONEY_RE.match(text):
        if re.match(r"^\d+\.\d{3,}$", text):
            raise ValidationError({field: f"{text} has more than two decimal places (the smallest unit is 0.01)."})
        raise ValidationError({field: f"'{text}' is not an amount like 12.34."})
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
        raise ValidationError({field: f"'{text}' is not an amount."}) from None
    if fen == 0 and not allow_zero:
        raise ValidationError({field: "The amount must be greater than zero."})
    return fen


def format_fen(fen: int) -> str:
    """1234 → '12.34'; -5 → '-0.05'."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
