"""Figures in portal templates: yuan with separators, large figures in 万 / 亿 (core.money), and the menu
entries a user may open."""

from __future__ import annotations

from django import template

from core import money

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """1234567 → '¥12,345.67'; empty for None."""
    if fen is None or fen == "":
        return ""
    return money.yuan(int(fen))


@register.filter
def yuan_short(fen) -> str:
    """Large amounts in 万 / 亿: 1234567800 → '¥1,234.57万'."""
    if fen is None or fen == "":
        return ""
    return money.yuan_short(int(fen))


@register.filter
def count_short(count) -> str:
    if count is None or count == "":
        return ""
    return money.count_short(int(count))


@register.simple_tag
def menu_entries(app, user) -> list[dict]:
    """The application's menu entries the user may open."""
    entries_for = getattr(app, "menu_entries_for", None)
    return list(entries_for(user)) if entries_for else list(app.menu_entries())


@register.simple_tag
def site_badge(app, user) -> int:
    """The count the site menu shows beside an area (0: none); areas without one show nothing."""
    badge = getattr(app, "site_badge", None)
    return badge(user) if badge and user.is_authenticated else 0
