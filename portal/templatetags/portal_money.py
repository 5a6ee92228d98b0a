"""Money and ledger labels in portal templates: integer fen shown as yuan with two decimals, ledger
operation codes shown by name."""

from django import template

from ledger import labels
from ledger.money import format_fen

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """1234 → '12.34'; empty for None."""
    if fen is None or fen == "":
        return ""
    return format_fen(int(fen))


@register.filter
def operation_label(code: str) -> str:
    """A ledger entry's operation_type by its name in the active language."""
    return labels.operation_label(code)
