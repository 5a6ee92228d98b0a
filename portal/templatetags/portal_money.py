"""Money in portal templates: integer fen shown as yuan with two decimals."""

from django import template

from core.money import format_fen

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """1234 → '12.34'; empty for None."""
    if fen is None or fen == "":
        return ""
    return format_fen(int(fen))
