"""Store scope of wallet records: which consumption lines a user may act on (refund). The rule
itself is members.permissions; this applies it to the wallet's records."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from members import permissions
from members.models import Owner

from . import selectors
from .models import ConsumptionLine


def refundable_lines_for(
    user: AbstractBaseUser | AnonymousUser, member: Owner, perm: str = permissions.OPERATE
) -> QuerySet[ConsumptionLine]:
    """The member's refundable lines that were rung up at a store where `user` holds `perm`."""
    return selectors.refundable_lines(member).filter(
        permissions.actionable_store_q(user, member.merchant, "consumption__store", perm)
    )


def check_lines_actionable(
    user: AbstractBaseUser | AnonymousUser,
    lines: Iterable[ConsumptionLine],
    *,
    member: Owner,
    perm: str = permissions.OPERATE,
    field: str = "lines",
) -> None:
    """Refuse (code line_store_forbidden) unless every line is the member's and was rung up at a
    store where `user` holds `perm`."""
    allowed: set[int | None] = set()  # stores already checked: one check per store, not per line
    for line in lines:
        consumption = line.consumption
        if consumption.member_id != member.pk or consumption.merchant_id != member.merchant_id:
            raise fail(field, "line_not_members", _("Line %(line)s is not this member's."), line=_label(line))
        if consumption.store_id in allowed:
            continue
        if permissions.can_act_on_store(user, consumption.store, perm, merchant=member.merchant):
            allowed.add(consumption.store_id)
        else:
            raise fail(
                field,
                "line_store_forbidden",
                _("Line %(line)s was rung up at %(store)s, where you may not act."),
                line=_label(line),
                store=consumption.store.name if consumption.store_id else _("no store"),
            )


def _label(line: ConsumptionLine) -> str:
    return f"{line.consumption.number}/{line.line_no}"
