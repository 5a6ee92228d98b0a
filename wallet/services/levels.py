"""Member levels moved by spending: the automatic upgrade after a consumption and the downgrade after a
refund. Both read the member's level tallies (wallet.accounts: consumed total and points earned, balances
the ledger keeps), so their cost does not grow with the member's history."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q

from core.money import yuan
from ledger import selectors as ledger_selectors
from members import services as member_services
from members.models import AuditEvent, Level, Owner

from .. import selectors as wallet_selectors
from ..accounts import level_tally_accounts
from .checks import (
    user_or_none,
)


def upgrade_level(member: Owner, actor) -> None:
    """Move the member up to the best level whose spend or points threshold they have reached: one
    query, which compares the thresholds with the member's level tallies in the database."""
    current_rank = member.level.rank if member.level_id else -1
    spend, points = level_tally_accounts(member)
    best = (
        Level.objects.filter(merchant_id=member.merchant_id, rank__gt=current_rank)
        .filter(
            Q(upgrade_spend_fen__lte=ledger_selectors.balance_expression(spend))
            | Q(upgrade_points__lte=ledger_selectors.balance_expression(points))
        )
        .order_by("-rank")
        .first()
    )
    if best is not None:
        member_services.update_owner(member, actor=actor, level=best, reason="automatic upgrade by threshold")
        member.level = best


_AUTOMATIC_LEVEL_CHANGE = "automatic"  # reasons of level changes made by the wallet start with this


def reevaluate_level(member: Owner, actor, *, because: str) -> None:
    """After a refund: a level reached by spending or points that the remaining consumed total and points
    earned no longer reach is taken back, down to the best level they still reach (a level without
    thresholds always counts as reached). A level set by hand (its last change was not automatic) is kept,
    and an audit event says so. The caller holds the member's lock."""
    member = Owner.objects.select_related("level").get(pk=member.pk)
    current = member.level
    if current is None or (current.upgrade_spend_fen is None and current.upgrade_points is None):
        return  # not a level reached by spending
    consumed, points_earned = wallet_selectors.level_totals(member)

    def reached(level: Level) -> bool:
        if level.upgrade_spend_fen is None and level.upgrade_points is None:
            return True
        return (level.upgrade_spend_fen is not None and consumed >= level.upgrade_spend_fen) or (
            level.upgrade_points is not None and points_earned >= level.upgrade_points
        )

    if reached(current):
        return
    level_changes = AuditEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(Owner),
        object_id=str(member.pk),
        action="owner.changed",
        after__has_key="level",
    ).order_by("-at", "-pk")
    # The level last set by hand is a floor: a downgrade undoes what spending gave, never what the merchant
    # gave (银卡 by hand, 金卡 by a spend that is refunded → back to 银卡, not below it).
    by_hand = level_changes.exclude(reason__startswith=_AUTOMATIC_LEVEL_CHANGE).first()
    floor_pk = by_hand.after["level"] if by_hand is not None else None
    lower = Level.objects.filter(merchant_id=member.merchant_id, rank__lt=current.rank).order_by("-rank")
    target = next((level for level in lower if level.pk == floor_pk or reached(level)), None)
    last_change = level_changes.first()
    why = f"{because}: consumed {yuan(consumed)} and {points_earned} points earned no longer reach {current.name}"
    if target is None or last_change is None or not last_change.reason.startswith(_AUTOMATIC_LEVEL_CHANGE):
        member_services.record_audit(
            actor=user_or_none(actor), action="owner.level_kept", target=member, merchant=member.merchant,
            before={"level": current.pk}, after={"level": current.pk},
            reason=f"{why}; kept: {'set by hand' if target is not None else 'no lower level'}",
        )  # fmt: skip
        return
    member_services.update_owner(
        member, actor=user_or_none(actor), level=target, reason=f"{_AUTOMATIC_LEVEL_CHANGE} downgrade after {why}"
    )
