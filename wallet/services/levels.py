"""Member levels moved by spending: the automatic upgrade after a consumption and the downgrade after a
refund."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType

from core.money import yuan
from members import services as member_services
from members.models import AuditEvent, Level, Owner

from .. import selectors as wallet_selectors
from .checks import (
    user_or_none,
)


def upgrade_level(member: Owner, actor) -> None:
    """Move the member up to the best level whose spend or points threshold they have reached."""
    totals = wallet_selectors.member_totals(member)
    current_rank = member.level.rank if member.level_id else -1
    reached = (
        Level.objects.filter(merchant_id=member.merchant_id, rank__gt=current_rank)
        .exclude(upgrade_spend_fen__isnull=True, upgrade_points__isnull=True)
        .order_by("-rank")
    )
    for level in reached:
        by_spend = level.upgrade_spend_fen is not None and totals.consumed_total_fen >= level.upgrade_spend_fen
        by_points = level.upgrade_points is not None and totals.points_earned >= level.upgrade_points
        if by_spend or by_points:
            member_services.update_owner(member, actor=actor, level=level, reason="automatic upgrade by threshold")
            member.level = level
            return


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
    totals = wallet_selectors.member_totals(member)
    # The level last set by hand is a floor: a downgrade undoes what spending gave, never what the merchant
    # gave (银卡 by hand, 金卡 by a spend that is refunded → back to 银卡, not below it).
    by_hand = (
        AuditEvent.objects.filter(
            content_type=ContentType.objects.get_for_model(Owner),
            object_id=str(member.pk),
            action="owner.changed",
            after__has_key="level",
        )
        .exclude(reason__startswith=_AUTOMATIC_LEVEL_CHANGE)
        .order_by("-at", "-pk")
        .first()
    )
    floor_pk = by_hand.after["level"] if by_hand is not None else None

    def reached(level: Level) -> bool:
        if level.upgrade_spend_fen is None and level.upgrade_points is None:
            return True
        return (level.upgrade_spend_fen is not None and totals.consumed_total_fen >= level.upgrade_spend_fen) or (
            level.upgrade_points is not None and totals.points_earned >= level.upgrade_points
        )

    if reached(current):
        return
    lower = Level.objects.filter(merchant_id=member.merchant_id, rank__lt=current.rank).order_by("-rank")
    target = next((level for level in lower if level.pk == floor_pk or reached(level)), None)
    last_change = (
        AuditEvent.objects.filter(
            content_type=ContentType.objects.get_for_model(Owner),
            object_id=str(member.pk),
            action="owner.changed",
            after__has_key="level",
        )
        .order_by("-at", "-pk")
        .first()
    )
    why = (
        f"{because}: consumed {yuan(totals.consumed_total_fen)} and {totals.points_earned} points earned no "
        f"longer reach {current.name}"
    )
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
