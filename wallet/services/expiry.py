"""Expiry of what is past its validity, posted to breakage."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import Account
from members.models import Merchant

from ..accounts import (
    POINT,
    Purpose,
    grant_account,
    grant_deferred_account,
    ledger_account,
    points_lot_expired,
    points_lots_query,
    voucher_account,
)
from ..models import (
    Grant,
    VipMembership,
    Voucher,
)
from .postings import Postings


@dataclass
class ExpiryResult:
    vouchers: int = 0
    grants: int = 0
    points_lots: int = 0
    vip_memberships: int = 0


def expire_due_benefits(now: datetime.datetime | None = None) -> ExpiryResult:
    """Expire what is past its validity: vouchers, coupon/entitlement grants, points lots, VIP periods,
    posting what was left to breakage. Each item is its own transaction; running again changes nothing."""
    now = now or timezone.now()
    result = ExpiryResult()
    for voucher_id in Voucher.objects.filter(status=Voucher.Status.ACTIVE, valid_until__lt=now).values_list(
        "pk", flat=True
    ):
        result.vouchers += expire_voucher(voucher_id, now)
    for grant_id in Grant.objects.filter(status=Grant.Status.ACTIVE, valid_until__lt=now).values_list("pk", flat=True):
        result.grants += expire_grant(grant_id, now)
    lots = Account.objects.filter(**points_lots_query(), cached__balance__gt=0).select_related("merchant", "member")
    for account in lots:
        if points_lot_expired(account, now):
            result.points_lots += _expire_points_lot(account)
    with transaction.atomic():
        result.vip_memberships = VipMembership.objects.filter(
            status=VipMembership.Status.ACTIVE, ends_at__lt=now
        ).update(status=VipMembership.Status.EXPIRED)
    return result


def _expiry_key(merchant: Merchant, ref: str, left: int) -> str:
    # Counting earlier expiries of the same item makes the key unique per expiry, while two concurrent
    # runs that see the same state produce the same key (and so one entry).
    earlier = ledger_selectors.entries_for(merchant, "expiry", ref).count()
    return f"expire:{ref}:{earlier}:{left}"


# The memos of expiry entries: neutral codes, shown by name in the reader's language (wallet.apps registers
# these with ledger.labels; statements show ledger.labels.memo_label). A job posts them, so words written
# at posting would be in the job's language for good; the statement already names the lot by its account.
EXPIRY_MEMOS = {
    "voucher_expired": _("Voucher expired"),
    "coupon_expired": _("Coupon expired"),
    "entitlement_expired": _("Entitlement expired"),
    "points_expired": _("Points expired"),
}
# What entries posted before the codes hold (the voucher's was fixed text; the others named the lot).
LEGACY_EXPIRY_MEMOS = {"voucher expired": EXPIRY_MEMOS["voucher_expired"]}


@transaction.atomic
def expire_voucher(voucher_id: int, now) -> int:
    voucher = Voucher.objects.select_for_update().get(pk=voucher_id)
    account = voucher_account(voucher)
    left = ledger_selectors.balance(account)
    if left:
        ledger.post_entry(
            merchant=voucher.merchant, legs=[ledger.decrease(account, left), ledger.increase(ledger_account(voucher.merchant, Purpose.BREAKAGE), left)],
            operation_type="expiry", operation_ref=f"voucher:{voucher.pk}", idempotency_key=_expiry_key(voucher.merchant, f"voucher:{voucher.pk}", left),
            actor=None, actor_label="system:expiry", member=voucher.member, memo="voucher_expired",
        )  # fmt: skip
    if voucher.status != Voucher.Status.EXPIRED:
        voucher.status = Voucher.Status.EXPIRED
        voucher.save(update_fields=["status"])
    return 1


@transaction.atomic
def expire_grant(grant_id: int, now) -> int:
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    account = grant_account(grant)
    left = ledger_selectors.balance(account)
    if left:
        merchant = grant.merchant
        deferred = grant_deferred_account(grant)
        value = ledger_selectors.balance(deferred)
        legs = Postings([])
        legs.add(ledger.decrease(account, left))
        legs.add(ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, grant.unit), left))
        legs.add(ledger.decrease(deferred, value))
        legs.add(ledger.increase(ledger_account(merchant, Purpose.BREAKAGE), value))
        ledger.post_entry(
            merchant=merchant, legs=legs.legs, operation_type="expiry", operation_ref=f"grant:{grant.pk}",
            idempotency_key=_expiry_key(merchant, f"grant:{grant.pk}", left), actor=None, actor_label="system:expiry",
            member=grant.member, memo=f"{grant.kind}_expired",
        )  # fmt: skip
    grant.status = Grant.Status.EXPIRED
    grant.save(update_fields=["status"])
    return 1


@transaction.atomic
def _expire_points_lot(account: Account) -> int:
    left = ledger_selectors.balance(account)  # the balance row is locked by the post below
    if not left:
        return 0
    merchant = account.merchant
    ledger.post_entry(
        merchant=merchant, legs=[ledger.decrease(account, left), ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, POINT), left)],
        operation_type="expiry", operation_ref=f"points:{account.pk}", idempotency_key=_expiry_key(merchant, f"points:{account.pk}", left),
        actor=None, actor_label="system:expiry", member=account.member, memo="points_expired",
    )  # fmt: skip
    return 1
