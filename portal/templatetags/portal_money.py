"""Money and ledger labels in portal templates: integer fen shown as yuan with two decimals and thousands
separators, ledger operation codes shown by name."""

from django import template

from core.money import yuan as _yuan
from core.money import yuan_large as _yuan_large
from ledger import labels

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """1234567 → '12,345.67' (templates put the ¥ in front); empty for None."""
    if fen is None or fen == "":
        return ""
    return _yuan(int(fen)).replace("¥", "", 1)


@register.filter
def yuan_large(fen) -> str:
    """1234567 → '¥12,345.67 (≈1.23万)': for the amounts an operator confirms; empty for None."""
    if fen is None or fen == "":
        return ""
    return _yuan_large(int(fen))


@register.filter
def operation_label(code: str) -> str:
    """A ledger entry's operation_type by its name in the active language."""
    return labels.operation_label(code)
