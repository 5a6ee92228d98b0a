"""Refunds: consumption lines reversed (权益退款, tqy…) and cash refunds (现金退款, txj…) of stored value and of
grants."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.errors import InsufficientBalance
from ledger.models import Account, Entry
from members import services as member_services
from members.models import Owner, Store

from .. import permissions as wallet_permissions
from .. import rules
from ..accounts import (
    POINT,
    Purpose,
    balance_of,
    cash_refund_specs,
    grant_account,
    grant_deferred_account,
    grant_refund_specs,
    ledger_account,
    points_lot_expired,
    points_lot_expiry_year,
    prefetch,
    stored_value_balances,
    tally_legs,
)
from ..models import (
    CashRefund,
    ConsumptionLine,
    EntitlementRefund,
    Grant,
    Recharge,
    RechargeLine,
    StoredValueCard,
    VipMembership,
    Voucher,
)
from .checks import (
    check_grant_active,
    check_merchant,
    check_payment_method,
    check_some_lines,
    past_validity,
    required_reason,
    user_or_none,
)
from .expiry import expire_grant, expire_voucher
from .idempotency import (
    idempotent,
)
from .levels import reevaluate_level
from .postings import Postings, lock_card, lock_members


@idempotent(EntitlementRefund)
@transaction.atomic
def refund_consumption_lines(
    *,
    member: Owner,
    lines: Sequence[ConsumptionLine],
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> EntitlementRefund:
    """Reverse chosen consumption lines exactly: the same principal/bonus split, the same voucher and
    grant accounts, the commission and the points they earned. A line is never refunded twice."""
    merchant = member.merchant
    reason = required_reason(reason, _("A refund needs a reason."))
    check_some_lines(lines, "lines")
    check_merchant(store, merchant.pk, "store")
    if (
        ConsumptionLine.objects.filter(pk__in=[line.pk for line in lines])
        .exclude(consumption__merchant=merchant)
        .exists()
    ):
        raise fail(
            "lines", "other_merchant", _("This %(kind)s belongs to another merchant."), kind=_("consumption line")
        )
    locked = _lock_lines_for_refund(member, sorted({line.pk for line in lines}))
    if actor is not None:
        # Store scope (members.permissions, issue 9 item 10), here and not only in the portal's form:
        # every entry point refunds through this function. No actor: a script or job of the platform.
        wallet_permissions.check_lines_actionable(actor, locked, member=member)
    number = member_services.next_business_number(merchant, "tqy")
    refund = EntitlementRefund.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=user_or_none(actor), reason=reason,
        idempotency_key=idempotency_key, total_fen=sum(line.payable_fen for line in locked),
    )  # fmt: skip
    now = timezone.now()
    for line in locked:
        _reverse_line(line, number, reason, actor, store, now)
        # Value restored to a lot that has expired meanwhile goes straight to breakage again.
        if line.grant is not None and (line.grant.status == Grant.Status.EXPIRED or past_validity(line.grant, now)):
            expire_grant(line.grant_id, now)
        if line.voucher_id is not None:
            voucher = Voucher.objects.get(pk=line.voucher_id)
            if voucher.status == Voucher.Status.EXPIRED or past_validity(voucher, now):
                expire_voucher(voucher.pk, now)
        line.status = ConsumptionLine.Status.REFUNDED
        line.refund = refund
        line.save(update_fields=["status", "refund"])
    reevaluate_level(member, actor, because=f"refund {number}")
    return refund


def _lock_lines_for_refund(member: Owner, ids: list[int]) -> list[ConsumptionLine]:
    """Lock what refunding the lines touches, in the global order (member, card, grants, vouchers, then
    the lines; docs/wallet.md §5), and check the lines against the locked rows. A cash refund of a grant
    locks the same member and grant first, so one of the two runs after the other and sees its result:
    a line is never put back on a lot that was paid out or taken back meanwhile (issue 9, item 7)."""
    lock_members([member.pk], refuse_closed=True)
    seen = list(
        ConsumptionLine.objects.filter(pk__in=ids).values("grant_id", "voucher_id", "principal_fen", "bonus_fen")
    )
    if len(seen) != len(ids):
        raise fail("lines", "line_not_found", _("Some of the lines do not exist."))
    card = None
    if any(row["principal_fen"] or row["bonus_fen"] for row in seen):
        card = StoredValueCard.objects.select_for_update().filter(member=member).first()
    grant_ids = sorted({row["grant_id"] for row in seen if row["grant_id"]})
    grants = {g.pk: g for g in Grant.objects.select_for_update().filter(pk__in=grant_ids).order_by("pk")}
    voucher_ids = sorted({row["voucher_id"] for row in seen if row["voucher_id"]})
    list(Voucher.objects.select_for_update().filter(pk__in=voucher_ids).order_by("pk").values_list("pk", flat=True))
    locked = list(
        ConsumptionLine.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("consumption__store", "service")
        .order_by("pk")
    )
    for line in locked:
        label = f"{line.consumption.number}/{line.line_no}"
        if line.consumption.member_id != member.pk or line.consumption.merchant_id != member.merchant_id:
            raise fail("lines", "line_of_other_member", _("Line %(line)s is not this member's."), line=label)
        if line.status == ConsumptionLine.Status.REFUNDED:
            raise fail("lines", "line_already_refunded", _("Line %(line)s was already refunded."), line=label)
        if line.grant_id is not None:
            line.grant = grants[line.grant_id]  # the row as locked, not as first read
            if line.grant.status == Grant.Status.REFUNDED:
                raise fail(
                    "lines",
                    "grant_refunded",
                    _("Line %(line)s used %(grant)s, which was refunded in cash; it cannot take uses back."),
                    line=label,
                    grant=str(line.grant),
                )
            if line.grant.status == Grant.Status.REVOKED:
                raise fail(
                    "lines",
                    "grant_revoked",
                    _(
                        "Line %(line)s used %(grant)s, a plan gift taken back (and its uses charged) by the cash "
                        "refund of the stored value; it cannot take uses back."
                    ),
                    line=label,
                    grant=str(line.grant),
                )
        if (line.principal_fen or line.bonus_fen) and (card is None or card.status == StoredValueCard.Status.CLOSED):
            raise fail(
                "lines",
                "card_closed",
                _("Line %(line)s was paid by stored value, but the card is closed by a cash refund."),
                line=label,
            )
    return locked


def _reverse_line(line: ConsumptionLine, number: str, reason: str, actor, store, now) -> None:
    """Reverse a line's ledger entry whole. Points it earned that have since expired with their lot are
    gone already, so only those legs are left out; points still held but spent make the refund fail."""
    entry = Entry(pk=line.entry_id)  # reverse_entry locks and reads the row itself
    label = f"{line.consumption.number}/{line.line_no}"
    common = {"idempotency_key": f"refund-line:{line.pk}", "actor": actor, "operation_type": "consumption_refund",
                  "operation_ref": number, "store": store, "memo": f"{reason[:150]} ({label})"}  # fmt: skip
    try:
        ledger.reverse_entry(entry, **common)
        return
    except InsufficientBalance as exc:
        account = exc.account
        if account.purpose != Purpose.POINTS:
            raise
        if not points_lot_expired(account, now):
            raise fail(
                "lines",
                "line_points_spent",
                _("The %(points)s points line %(line)s earned were already spent; return them before the refund."),
                points=line.points,
                line=label,
            ) from exc
    remaining = ledger.reversible_remaining(entry)
    units = dict(Account.objects.filter(pk__in=remaining).values_list("pk", "unit"))
    ledger.reverse_entry(entry, amounts={acc_id: left for acc_id, left in remaining.items() if left and units[acc_id] != POINT},
                         **common)  # fmt: skip


@idempotent(CashRefund)
@transaction.atomic
def cash_refund_stored_value(
    *,
    member: Owner,
    payment_method: str,
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> CashRefund:
    """Pay out the unused principal; the bonus is forfeited to breakage, never paid. Closes the card.
    The gifts of the plans whose principal is paid back go back too: unused gift uses and gifted VIP time
    are taken back, and what was used of them is charged against the payout at list price (refused if
    the principal cannot cover it). Points earned by buying the stored value go back with it."""
    merchant = member.merchant
    check_payment_method(payment_method)
    reason = required_reason(reason, _("A refund needs a reason."))
    check_merchant(store, merchant.pk, "store")
    lock_members(
        [member.pk], refuse_closed=True
    )  # global lock order: member, card, gift grants, VIP memberships (docs §5)
    card = lock_card(member, create=False)
    now = timezone.now()
    balances = prefetch(merchant, cash_refund_specs(member, payment_method))  # one query, after the locks
    principal_acct, bonus_acct, principal, bonus = stored_value_balances(member, balances)
    if principal == 0 and bonus == 0:
        raise fail("stored_value", "nothing_to_refund", _("There is nothing on the stored-value card to refund."))
    takeback = _plan_gifts_takeback(member, now)
    if takeback.charge_fen > principal:
        raise fail(
            "stored_value",
            "gifts_exceed_refund",
            _(
                "The plan gifts already used are worth %(charge)s at list price, more than the %(principal)s "
                "of principal left to refund; the refund cannot be made."
            ),
            charge=yuan(takeback.charge_fen),
            principal=yuan(principal),
        )
    payout = principal - takeback.charge_fen
    number = member_services.next_business_number(merchant, "txj")
    legs = Postings([])
    legs.add(ledger.decrease(principal_acct, principal))
    legs.add(ledger.decrease(ledger_account(merchant, Purpose.CASH, detail=payment_method), payout))
    legs.add(
        ledger.increase(ledger_account(merchant, Purpose.REVENUE), takeback.charge_fen)
    )  # used gifts, now paid for
    legs.add(ledger.decrease(bonus_acct, bonus))
    legs.add(ledger.increase(ledger_account(merchant, Purpose.BREAKAGE), bonus))
    legs.legs.extend(takeback.legs)
    legs.legs.extend(_points_clawback_legs(member, payout))
    entry = ledger.post_entry(
        merchant=merchant, legs=legs.legs, operation_type="cash_refund", operation_ref=number,
        idempotency_key=f"cash_refund:{number}", actor=actor, store=store, member=member, memo=reason[:200],
    )  # fmt: skip
    takeback.apply(now)
    card.status = StoredValueCard.Status.CLOSED
    card.closed_at = now
    card.save(update_fields=["status", "closed_at"])
    member_services.record_audit(actor=user_or_none(actor), action="stored_value.closed", target=card, merchant=merchant,
                                 reason=f"cash refund {number}: {reason}")  # fmt: skip
    if takeback.taken:
        member_services.record_audit(
            actor=user_or_none(actor), action="stored_value.gifts_taken_back", target=card, merchant=merchant,
            after={"taken_back": takeback.taken, "charged": yuan(takeback.charge_fen)},
            reason=f"cash refund {number}: plan gifts go back with the principal",
        )  # fmt: skip
    reevaluate_level(member, actor, because=f"cash refund {number}")
    return CashRefund.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=user_or_none(actor), reason=reason,
        idempotency_key=idempotency_key, kind=CashRefund.Kind.STORED_VALUE, payment_method=payment_method,
        paid_out_fen=payout, forfeited_bonus_fen=bonus, gifts_charged_fen=takeback.charge_fen, entry_id=entry.pk,
    )  # fmt: skip


@dataclass
class _GiftTakeback:
    """What a cash refund of stored value takes back of its plans' gifts (docs/wallet.md §2.6)."""

    legs: list
    charge_fen: int  # used gifts at list price, kept from the payout
    grants: list[Grant]  # active gift lots to close
    memberships: dict[int, tuple[VipMembership, datetime.datetime]]  # membership id → (row, end without gifts)
    taken: list[str]  # what was taken back or charged, for the audit event

    def apply(self, now: datetime.datetime) -> None:
        for grant in self.grants:
            grant.status = Grant.Status.REVOKED
            grant.save(update_fields=["status"])
        for membership, end in self.memberships.values():
            if membership.status != VipMembership.Status.ACTIVE:
                continue
            if end > now:  # the member keeps the time bought
                membership.ends_at = end
            else:
                membership.status, membership.ends_at = VipMembership.Status.REVOKED, now
            membership.save(update_fields=["status", "ends_at"])


def _plan_gifts_takeback(member: Owner, now: datetime.datetime) -> _GiftTakeback:
    """The gifts of every plan recharge of the member (the whole principal is being paid back, and the
    card closes): each lot the recharge gave for nothing (paid ¥0: the plan's gift coupons and package)
    and each gifted VIP period. Unused uses leave the member (to the issuance account); used uses are
    charged at list price; gifted VIP months come off the end of the membership, and gifted days
    already enjoyed are charged pro rata at the card's list price. Locks the lots, then the VIP rows."""
    takeback = _GiftTakeback(legs=[], charge_fen=0, grants=[], memberships={}, taken=[])
    recharges = list(
        Recharge.objects.filter(merchant_id=member.merchant_id, member=member, lines__kind=RechargeLine.Kind.PLAN)
        .distinct()
        .order_by("-created_at", "-pk")
    )
    if not recharges:
        return takeback
    gifts = list(
        Grant.objects.select_for_update()
        .filter(member=member, source_ref__in=[r.number for r in recharges], paid_fen=0)
        .order_by("pk")
    )
    used = dict(
        ConsumptionLine.objects.filter(grant__in=gifts, status=ConsumptionLine.Status.NORMAL)
        .values("grant_id")
        .annotate(n=Sum("uses"))
        .values_list("grant_id", "n")
    )
    merchant = member.merchant
    for grant in gifts:
        uses_used = used.get(grant.pk, 0)
        if uses_used:
            charge = rules.value_of_uses(_gift_list_value(grant), grant.uses_total, uses_used)
            takeback.charge_fen += charge
            takeback.taken.append(f"{grant}: {uses_used} used, charged {yuan(charge)}")
        if grant.status == Grant.Status.EXPIRED and uses_used:
            takeback.grants.append(grant)  # closed as charged: a later refund of its lines must not undo it
        if grant.status != Grant.Status.ACTIVE:
            continue  # expired or refunded already: nothing left to take back
        left = ledger_selectors.balance(grant_account(grant))
        if left:
            takeback.legs += [
                ledger.decrease(grant_account(grant), left),
                ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, grant.unit), left),
            ]
            takeback.taken.append(f"{grant}: {left} unused taken back")
        takeback.grants.append(grant)

    lines = list(
        RechargeLine.objects.filter(recharge__in=recharges, kind=RechargeLine.Kind.PLAN, plan__gift_vip__isnull=False)
        .select_related("recharge", "plan__gift_vip")
        .order_by("-recharge__created_at", "-recharge_id", "-line_no")
    )
    if lines:
        rows = {
            m.pk: m
            for m in VipMembership.objects.select_for_update()
            .filter(member=member, card_type_id__in={line.plan.gift_vip_id for line in lines})
            .order_by("pk")
        }
        for line in lines:  # newest gift first: each comes off the end left by the later ones
            vip_type, bought_at = line.plan.gift_vip, line.recharge.created_at
            candidates = [m for m in rows.values() if m.card_type_id == vip_type.pk and m.starts_at <= bought_at]
            if not candidates:
                continue
            row = max(candidates, key=lambda m: (m.starts_at, m.pk))  # the membership the gift made or extended
            end = takeback.memberships.get(row.pk, (row, row.ends_at))[1]
            start = rules.add_months(end, -rules.PERIOD_MONTHS[vip_type.period] * line.quantity)
            takeback.memberships[row.pk] = (row, start)
            if now > start:
                days = rules.days_begun(start, min(now, end))
                charge = rules.value_of_days(vip_type.price_fen, days, rules.days_begun(start, end))
                takeback.charge_fen += charge
                takeback.taken.append(f"{vip_type}: {days} gifted days enjoyed, charged {yuan(charge)}")
            else:
                takeback.taken.append(f"{vip_type}: gifted period taken back")
    return takeback


def _gift_list_value(grant: Grant) -> int:
    """What the gifted lot sells for: the coupon template's price, or the lot's share of its package's
    price (spread over the services as a sale spreads it: list price × quantity)."""
    # A free-only template or package (price ¥0) has no price to charge: its list value (§4.2, what the
    # plan's free value counted it at) is charged instead, or its used uses would cost nothing.
    if grant.kind == Grant.Kind.COUPON:
        return grant.coupon_template.price_fen or grant.coupon_template.list_value_fen()
    items = list(grant.package.items.select_related("service").order_by("id"))
    price = grant.package.price_fen or grant.package.list_value_fen()
    shares = rules.allocate(price, [it.service.list_price_fen * it.quantity or 1 for it in items])
    return next((share for it, share in zip(items, shares, strict=True) if it.service_id == grant.service_id), 0)


def _points_clawback_legs(member: Owner, principal_refunded: int) -> list:
    """Points earned by buying the stored value that is now paid back go back too, in proportion to the
    principal paid out, oldest lots first. Decided by what the recharges earned, as recorded in their
    entries at the time, never by today's setting: turning `points_on_stored_value_purchase` off later
    does not let the member keep them, turning it on later takes nothing that was not given."""
    if not principal_refunded:
        return []
    by_lot = dict(  # points lots are credit-normal: a credit is negative
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="recharge", account__purpose=Purpose.POINTS
        )
        .values("account_id")
        .annotate(t=Sum("amount"))
        .values_list("account_id", "t")
    )
    earned = -sum(by_lot.values())
    if not earned:
        return []
    bought = -(
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="recharge", account__purpose=Purpose.PRINCIPAL
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )
    due = earned * principal_refunded // bought if bought else 0
    # Points that expired left the member without benefit: they count as returned first, so a member
    # whose purchase points lapsed can still be refunded (they cannot be taken back twice).
    # Only expiries of the lots the purchases credited count, each up to what the purchases put in it:
    # points of other spending that lapsed (even before the purchase) do not excuse the purchase's points.
    expired_by_lot = dict(  # an expiry's debit is positive
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="expiry", account_id__in=list(by_lot)
        )
        .values("account_id")
        .annotate(t=Sum("amount"))
        .values_list("account_id", "t")
    )
    expired = sum(min(t, -by_lot[acc]) for acc, t in expired_by_lot.items())
    due = max(0, due - expired)
    lots = sorted(
        (
            row
            for row in ledger_selectors.member_balances(member)
            if row.account.purpose == Purpose.POINTS and row.balance
        ),
        key=lambda row: points_lot_expiry_year(row.account) or 0,
    )
    if sum(row.balance for row in lots) < due:
        raise fail(
            "points",
            "points_spent",
            _("The %(points)s points earned by buying this stored value were spent; return them first."),
            points=due,
        )
    legs, left = [], due
    for row in lots:
        take = min(left, row.balance)
        if take:
            legs.append(ledger.decrease(row.account, take))
            left -= take
    if due:
        legs.append(ledger.decrease(ledger_account(member.merchant, Purpose.ISSUANCE, POINT), due))
        legs += tally_legs(member, points=-due)  # returned points no longer count as earned
    return legs


@idempotent(CashRefund)
@transaction.atomic
def cash_refund_grant(
    *,
    grant: Grant,
    payment_method: str,
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> CashRefund:
    """Pay out the unused uses of a coupon or entitlement at the price actually paid for them; the
    grant is closed."""
    merchant = grant.merchant
    check_merchant(store, merchant.pk, "store")
    check_payment_method(payment_method)
    reason = required_reason(reason, _("A refund needs a reason."))
    # Member, then grant: the order refunds of the lines that used it take too (docs/wallet.md §5).
    lock_members([grant.member_id], refuse_closed=True)
    grant = Grant.objects.select_for_update(of=("self",)).select_related("member").get(pk=grant.pk)
    check_grant_active(grant, timezone.now(), "grant")  # what is expired or closed has nothing to pay out
    balances = prefetch(merchant, grant_refund_specs(grant, payment_method))  # one query, after the locks
    account = grant_account(grant)
    left = balance_of(account, balances)
    if left == 0:
        raise fail("grant", "grant_used_up", _("%(grant)s has no unused uses."), grant=str(grant))
    deferred = grant_deferred_account(grant)
    value = ledger_selectors.balance(deferred)  # all that is left of what was paid for the lot
    number = member_services.next_business_number(merchant, "txj")
    legs = Postings([])
    legs.add(ledger.decrease(account, left))
    legs.add(ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, grant.unit), left))
    legs.add(ledger.decrease(deferred, value))
    legs.add(ledger.decrease(ledger_account(merchant, Purpose.CASH, detail=payment_method), value))
    entry = ledger.post_entry(
        merchant=merchant, legs=legs.legs, operation_type="cash_refund", operation_ref=number,
        idempotency_key=f"cash_refund:{number}", actor=actor, store=store, member=grant.member, memo=reason[:200],
    )  # fmt: skip
    grant.status = Grant.Status.REFUNDED
    grant.save(update_fields=["status"])
    return CashRefund.objects.create(
        merchant=merchant, number=number, member=grant.member, store=store, operator=user_or_none(actor), reason=reason,
        idempotency_key=idempotency_key, kind=CashRefund.Kind.GRANT, grant=grant, payment_method=payment_method,
        paid_out_fen=value, uses_refunded=left, entry_id=entry.pk,
    )  # fmt: skip
