"""Building an operation's ledger legs, and the locks every operation takes first (docs/wallet.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from core.errors import fail
from ledger import services as ledger
from members.models import Owner

from ..models import (
    StoredValueCard,
)
from .checks import (
    check_card_open,
)


@dataclass
class Postings:
    legs: list

    def add(self, leg) -> None:
        if leg.amount:
            self.legs.append(leg)


def merge_legs(legs: list) -> list:
    """Merge legs on the same account (e.g. two bonus_expense parts) so each account has one leg."""
    merged: dict[int, ledger.LegSpec] = {}
    for leg in legs:
        if leg.account.pk in merged:
            merged[leg.account.pk] = ledger.LegSpec(leg.account, merged[leg.account.pk].amount + leg.amount)
        else:
            merged[leg.account.pk] = leg
    return [leg for leg in merged.values() if leg.amount]


def lock_members(member_ids: Sequence[int], *, refuse_closed: bool = False) -> list[int]:
    """Lock the members' rows, in id order: the first lock taken by every operation that changes what a
    member holds (the global lock order, docs/wallet.md §5: member → card → grants → VIP memberships →
    vouchers → consumption lines → ledger balances). It is what makes the per-member coupon limit and the
    refunds of one member's benefits race-free, on purpose rather than by a shared number row."""
    ids = sorted(set(member_ids))
    # FOR NO KEY UPDATE: serialises these operations without blocking the key-share locks that inserting
    # rows pointing at the member (entries, grants) takes; a plain FOR UPDATE deadlocks against those.
    rows = list(
        Owner.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk").values_list("pk", "status")
    )
    if refuse_closed and any(status == Owner.Status.CLOSED for _pk, status in rows):
        # Refunds: a membership is closed once nothing is left to refund, and nothing is restored onto it or
        # paid out for it afterwards (read under the lock that closing it takes too). Frozen members may be.
        raise fail("member", "membership_closed", _("The membership is closed."))
    return [pk for pk, _status in rows]


def lock_card(member: Owner, *, create: bool) -> StoredValueCard:
    card = StoredValueCard.objects.select_for_update().filter(member=member).first()
    if card is None and create:  # the first stored value: open the card (race-free), then lock it
        StoredValueCard.objects.get_or_create(member=member, defaults={"merchant": member.merchant})
        card = StoredValueCard.objects.select_for_update().filter(member=member).first()
    check_card_open(card, member)
    return card
