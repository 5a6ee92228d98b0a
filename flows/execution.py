"""Carrying out an approved request: each kind calls the one service that owns the change (the wallet for
refunds, members for member changes and staff), re-checking at that moment what may have changed since the
request was submitted. Called by services under the request's locks; each function raises a DomainError to
refuse (nothing of it is written) and returns the before/after of what it changed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import UserObjectPermission

from core.errors import fail
from core.money import yuan
from ledger import selectors as ledger_selectors
from members import selectors as member_selectors
from members import services as member_services
from members.models import Owner
from wallet import accounts as wallet_accounts
from wallet import quotes as wallet_quotes
from wallet import services as wallet
from wallet.models import Grant, StoredValueCard
from wallet.services.checks import gift_value
from wallet.services.idempotency import fingerprint
from wallet.services.limits import recharge_free_value_fen, refused_approval

from . import engine
from .models import (
    DEFAULT_ACTIVATION_VALID_FOR,
    OPEN_STATES,
    FlowSettings,
    FreeValueRequest,
    MemberChangeRequest,
    RefundRequest,
    StaffOffboarding,
    StaffOnboarding,
    State,
)

User = get_user_model()

# ---------------------------------------------------------------- refunds


def refund_amount(kind: str, member: Owner, lines, grant: Grant | None) -> int:
    """What a refund of this kind comes to now: the lines' payable amounts, the unused principal, or what is
    left of the price paid for the lot. The approvals are given for this amount."""
    if kind == RefundRequest.Kind.LINES:
        return sum(line.payable_fen for line in lines)
    if kind == RefundRequest.Kind.STORED_VALUE:
        account = ledger_selectors.find_account(member.merchant, "principal", wallet.CNY, member=member)
        return ledger_selectors.balance(account) if account else 0
    return ledger_selectors.balance(wallet_accounts.grant_deferred_account(grant))


def wallet_reason(request: RefundRequest) -> str:
    """The reason the wallet records: the request's number and reason, the same on every retry (the wallet
    compares a retried key's content)."""
    return f"{request.number} {request.reason}"[:200]


def execute_refund(request: RefundRequest) -> dict[str, Any]:
    """Refund through the wallet under the key `refund-request:<pk>`: a second run, or a run after a crash
    that left the wallet's refund committed, gets the refund already recorded and posts nothing. Executed as
    the system (actor None): the requester's store scope was checked when the request was submitted and
    the approvers' at each review; the request's history names them all."""
    lines = sorted(request.lines.all(), key=lambda line: line.pk)
    now_amount = refund_amount(request.kind, request.member, lines, request.grant)
    if now_amount > request.amount_fen:
        raise fail(
            "amount",
            "refund_amount_changed",
            _("The refund now comes to %(now)s, more than the %(approved)s approved; submit a new request."),
            now=yuan(now_amount),
            approved=yuan(request.amount_fen),
        )
    common = {
        "reason": wallet_reason(request),
        "actor": None,
        "store": request.store,
        "idempotency_key": request.idempotency_key,
    }
    if request.kind == RefundRequest.Kind.LINES:
        record = wallet.refund_consumption_lines(member=request.member, lines=lines, **common)
        request.entitlement_refund = record
        return {"refund": record.number, "amount": yuan(record.total_fen)}
    if request.kind == RefundRequest.Kind.STORED_VALUE:
        record = wallet.cash_refund_stored_value(member=request.member, payment_method=request.payment_method, **common)
    else:
        record = wallet.cash_refund_grant(grant=request.grant, payment_method=request.payment_method, **common)
    request.cash_refund = record
    return {"refund": record.number, "paid_out": yuan(record.paid_out_fen)}


# ---------------------------------------------------------------- free value beyond the limits


def free_value_call(request: FreeValueRequest, *, approved: bool = True) -> tuple[str, Any, dict[str, Any]]:
    """The wallet operation that gives the request's value: (name, function, keyword arguments), built from the
    request's frozen content alone, so the approval check (check_free_value_approval) rebuilds the same call.
    `approved`: the call that carries it out (the request named, its key); otherwise the call of a quote."""
    Kind = FreeValueRequest.Kind
    text = f"{request.number} {request.reason}"[:200]  # the same on every retry: the wallet compares content
    extra: dict[str, Any] = {"approved_by_request": request} if approved else {}
    if request.kind == Kind.RECHARGE:
        item = wallet.RechargeItem(
            kind=request.line_kind, quantity=request.quantity, amount_fen=request.amount_fen,
            bonus_fen=request.bonus_fen, discount_bp=request.discount_bp, coupon_template=request.coupon_template,
            package=request.package, voucher_template=request.voucher_template, vip_type=request.vip_type,
        )  # fmt: skip
        note = f"{request.number} {request.note or request.reason}"[:200]
        kwargs = {"member": request.member, "store": request.store, "payment_method": request.payment_method,
                  "items": [item], "note": note, "actor": None}  # fmt: skip
        if approved:
            kwargs["idempotency_key"] = request.idempotency_key
        return "recharge", wallet.recharge, {**kwargs, **extra}
    if request.kind == Kind.VOUCHER:
        kwargs = {"template": request.voucher_template, "member": request.member, "reason": text, "actor": None}
        if approved:
            kwargs["source_ref"] = request.idempotency_key
        return "issue_voucher", wallet.issue_voucher, {**kwargs, **extra}
    if request.kind == Kind.COUPON:
        kwargs = {"template": request.coupon_template, "member_ids": [request.member_id], "reason": text,
                  "actor": None}  # fmt: skip
        if approved:
            kwargs["batch_ref"] = request.idempotency_key
        return "issue_coupons", wallet.issue_coupons, {**kwargs, **extra}
    kwargs = {"member": request.member, "rule": request.points_rule, "occasion": request.number, "actor": None}
    return "award_activity_points", wallet.award_activity_points, {**kwargs, **extra}


def free_value_quote(request: FreeValueRequest, *, actor: AbstractBaseUser | None = None, lift: bool = True):
    """The wallet's dry run of giving the request's value (wallet.quotes): what it gives, what the member pays,
    the free value in fen (`extra["free_value_fen"]`) or points (`extra["points"]`). With `lift` as if
    approved (above the limits), else as the wallet judges it today. A refusal is the wallet's DomainError."""
    Kind = FreeValueRequest.Kind
    common = {"actor": actor, "lift_free_value_limits": lift}
    reason = request.reason or "-"
    if request.kind == Kind.RECHARGE:
        _name, _fn, kwargs = free_value_call(request, approved=False)
        return wallet_quotes.quote_recharge(member=request.member, store=request.store, items=kwargs["items"],
                                            payment_method=request.payment_method, note=kwargs["note"],
                                            **common)  # fmt: skip
    if request.kind == Kind.VOUCHER:
        return wallet_quotes.quote_free_voucher(template=request.voucher_template, member=request.member,
                                                reason=reason, **common)  # fmt: skip
    if request.kind == Kind.COUPON:
        return wallet_quotes.quote_free_coupon(template=request.coupon_template, member=request.member,
                                               reason=reason, **common)  # fmt: skip
    return wallet_quotes.quote_points_award(rule=request.points_rule, member=request.member,
                                            occasion=request.number or "-", **common)  # fmt: skip


FREE_VALUE_RELATED = ("member", "store", "coupon_template", "package", "voucher_template", "vip_type", "points_rule")


def check_free_value_approval(approved: Any, *, operation: str, member: Owner | None, terms: dict[str, Any]) -> None:
    """The wallet's question (wallet.services.limits): is `approved` a free value request that is approved now,
    of this member and merchant, for exactly this operation and content? Registered by flows.apps. The
    request's row is read afresh (execution holds its lock): a submitted, rejected or already carried out
    request lifts nothing, nor does one asked for other content (another amount, member, key…)."""
    if not isinstance(approved, FreeValueRequest) or member is None:
        raise refused_approval()
    current = FreeValueRequest.objects.select_related(*FREE_VALUE_RELATED).filter(pk=approved.pk).first()
    if (
        current is None
        or current.state != State.APPROVED
        or current.merchant_id != member.merchant_id
        or current.member_id != member.pk
    ):
        raise refused_approval()
    name, _fn, expected = free_value_call(current)
    if name != operation or not set(terms) <= set(expected):
        raise refused_approval()
    if fingerprint(terms) != fingerprint({key: expected[key] for key in terms}):
        raise refused_approval()


def _free_value_given(request: FreeValueRequest, record: Any) -> tuple[int, int, int]:
    """(free value fen, points, paid fen) of what the wallet recorded for the request."""
    Kind = FreeValueRequest.Kind
    if request.kind == Kind.RECHARGE:
        lines = list(record.lines.select_related("coupon_template", "package", "voucher_template", "vip_type"))
        return recharge_free_value_fen(lines), 0, record.paid_total_fen
    if request.kind == Kind.VOUCHER:
        return record.face_value_fen, 0, 0
    if request.kind == Kind.COUPON:
        return gift_value(request.coupon_template), 0, 0
    return 0, request.points_rule.points, 0


def execute_free_value(request: FreeValueRequest) -> dict[str, Any]:
    """Give the approved value through the wallet, with the limit lifted for this request only, under the key
    `free-value-request:<pk>`: a second run answers with what the first gave and posts nothing. The wallet
    re-checks everything else now (the member still active, the template or rule still offered, the merchant's
    rows, ceilings); what is given or paid must not exceed what was approved (free_value_changed). Executed as
    the system (actor None), like refunds: the requester's store scope was checked at submission and the
    approver's at review; the request's history names them."""
    _name, call, kwargs = free_value_call(request)
    record = call(**kwargs)
    Kind = FreeValueRequest.Kind
    if request.kind == Kind.COUPON and not record.entry_ids:  # the member reached the per-member limit meanwhile
        template = request.coupon_template
        raise fail("coupon_template", "coupon_limit",
                   _("%(template)s is limited to %(limit)s per member; the member has %(held)s."),
                   template=str(template), limit=template.per_member_limit,
                   held=Grant.objects.filter(member=request.member, coupon_template=template).count())  # fmt: skip
    value, points, paid = _free_value_given(request, record)
    if value > request.value_fen or points > request.points or paid != request.paid_fen:
        raise fail(
            "value",
            "free_value_changed",
            _("What this gives or costs has changed since it was approved: it would now give %(now)s for %(paid)s "
              "paid. Submit a new request."),
            now=f"{points:,}" if request.kind == Kind.POINTS else yuan(value),
            paid=yuan(paid),
        )  # fmt: skip
    # The outcome is linked only once nothing is refused: a refusal rolls the wallet's rows back.
    if request.kind == Kind.RECHARGE:
        request.recharge = record
    elif request.kind == Kind.VOUCHER:
        request.voucher = record
    elif request.kind == Kind.COUPON:
        request.entry_id = record.entry_ids[0]
    else:
        request.entry_id = record.pk
    if request.kind == Kind.POINTS:
        return {"after": {"points": points}}
    return {"after": {"free_value": yuan(value), "paid": yuan(paid)}}


# ---------------------------------------------------------------- member changes


def _owner_snapshot(owner: Owner) -> dict[str, Any]:
    card = member_selectors.active_card_of(owner)
    return {
        "name": owner.name,
        "mobile": owner.mobile,
        "level": owner.level.name if owner.level_id else None,
        "status": owner.status,
        "rooms": sorted(str(room) for room in owner.rooms.all()),
        "card": card.card_number if card else None,
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in before if before[k] != after.get(k)]
    return {k: before[k] for k in keys}, {k: after[k] for k in keys}


def check_nothing_refundable(member: Owner, *, field: str = "new_status") -> None:
    """A membership is closed only when nothing is left to refund: no principal on the stored-value card, no
    coupon or entitlement lot with paid value left, no refund request still open."""
    account = ledger_selectors.find_account(member.merchant, "principal", wallet.CNY, member=member)
    principal = ledger_selectors.balance(account) if account else 0
    if principal and StoredValueCard.objects.filter(member=member, status=StoredValueCard.Status.ACTIVE).exists():
        raise fail(
            field,
            "member_has_balance",
            _("The member still has %(amount)s of stored value; refund it before closing the membership."),
            amount=yuan(principal),
        )
    now = timezone.now()
    for grant in Grant.objects.filter(member=member, status=Grant.Status.ACTIVE).order_by("pk"):
        if grant.valid_until is not None and grant.valid_until < now:
            continue
        if ledger_selectors.balance(wallet_accounts.grant_deferred_account(grant)):
            raise fail(
                field,
                "member_has_balance",
                _("%(grant)s still has paid value left; refund it before closing the membership."),
                grant=str(grant),
            )
    if RefundRequest.objects.filter(member=member, state__in=OPEN_STATES).exists():
        raise fail(field, "request_pending", _("A refund request of this member is still open."))


def execute_member_change(request: MemberChangeRequest, actor: AbstractBaseUser | None) -> dict[str, Any]:
    """Apply the change through members.services, re-checking uniqueness and eligibility now. Owners are
    locked in id order first (the member, and the new owner of a transferred room)."""
    Kind = MemberChangeRequest.Kind
    owner_ids = sorted({request.member_id, *([request.transfer_to_id] if request.transfer_to_id else [])})
    list(Owner.objects.select_for_update(no_key=True).filter(pk__in=owner_ids).order_by("pk").values_list("pk"))
    member = Owner.objects.select_related("level", "merchant").get(pk=request.member_id)
    if member.status == Owner.Status.CLOSED:
        raise fail("member", "membership_closed", _("The membership is closed."))
    reason = f"{request.number} {request.reason}"
    before = _owner_snapshot(member)
    kind = request.kind
    if kind == Kind.NAME:
        member_services.update_owner(member, actor=actor, reason=reason, name=request.new_name)
    elif kind == Kind.MOBILE:
        member_services.update_owner(member, actor=actor, reason=reason, mobile=request.new_mobile)
    elif kind == Kind.LEVEL:
        member_services.update_owner(member, actor=actor, reason=reason, level=request.new_level)
    elif kind == Kind.ROOMS:
        member_services.update_owner(member, actor=actor, reason=reason, rooms=list(request.rooms.all()))
    elif kind == Kind.ROOM_TRANSFER:
        return _transfer_room(request, member, before, actor, reason)
    elif kind == Kind.STATUS:
        if request.new_status == member.status:
            raise fail("new_status", "status_unchanged", _("The member is already %(status)s."),
                       status=member.get_status_display())  # fmt: skip
        if request.new_status == Owner.Status.CLOSED:
            check_nothing_refundable(member)
        member_services.set_owner_status(member, request.new_status, actor=actor, reason=reason)
        if request.new_status == Owner.Status.CLOSED:
            member_services.close_cards(member, actor=actor, reason=reason)
    elif kind == Kind.CARD_REPLACEMENT:
        member_services.replace_card(request.card, actor=actor, reason=reason)
    after = _owner_snapshot(Owner.objects.select_related("level").get(pk=member.pk))
    return dict(zip(("before", "after"), _diff(before, after), strict=True))


def _transfer_room(request, member, before, actor, reason) -> dict[str, Any]:
    room, target = request.room, Owner.objects.select_related("level").get(pk=request.transfer_to_id)
    if not member.rooms.filter(pk=room.pk).exists():
        raise fail("room", "room_not_bound", _("Room %(room)s is no longer bound to this member."), room=str(room))
    if target.status == Owner.Status.CLOSED:
        raise fail("transfer_to", "membership_closed", _("The new owner's membership is closed."))
    target_before = sorted(str(r) for r in target.rooms.all())
    member_services.update_owner(
        member, actor=actor, reason=reason, rooms=[r for r in member.rooms.all() if r.pk != room.pk]
    )
    member_services.update_owner(target, actor=actor, reason=reason, rooms=[*target.rooms.all(), room])
    after = _owner_snapshot(Owner.objects.select_related("level").get(pk=member.pk))
    changed_before, changed_after = _diff(before, after)
    changed_before["new_owner_rooms"] = target_before
    changed_after["new_owner_rooms"] = sorted(str(r) for r in target.rooms.all())
    changed_after["new_owner"] = target.member_number
    return {"before": changed_before, "after": changed_after}


# ---------------------------------------------------------------- staff


# Crockford's base32 without I, L, O, U: no letters that read as digits.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10  # 50 bits


def new_activation_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").upper()


def hash_activation_code(code: str) -> str:
    """Keyed hash of a code (HMAC-SHA256 under SECRET_KEY): stored instead of the code and looked up by."""
    key = f"flows.activation:{settings.SECRET_KEY}".encode()
    return hmac.new(key, normalize_code(code).encode(), hashlib.sha256).hexdigest()


def issue_activation_code(onboarding: StaffOnboarding) -> str:
    """A fresh code for the onboarding: its hash and expiry are set on the request (the caller saves);
    the code itself is returned once and never stored."""
    code = new_activation_code()
    valid_for = (
        FlowSettings.objects.filter(merchant_id=onboarding.merchant_id)
        .values_list("activation_code_valid_for", flat=True)
        .first()
    ) or DEFAULT_ACTIVATION_VALID_FOR
    onboarding.activation_code_hash = hash_activation_code(code)
    onboarding.activation_expires_at = timezone.now() + valid_for
    return code


def execute_onboarding(request: StaffOnboarding, actor: AbstractBaseUser | None) -> dict[str, Any]:
    """Create the login, staff record, role group and the store's object permissions (members.services),
    with the login inactive until the clerk activates it, and issue the activation code."""
    staff = member_services.create_staff(
        merchant=request.merchant, username=request.username, name=request.name, role=request.role, actor=actor,
        stores=[request.store], mobile=request.mobile, password=None, level=request.staff_level,
    )  # fmt: skip
    User.objects.filter(pk=staff.user_id).update(is_active=False)
    request.staff = staff
    request.activation_code = issue_activation_code(request)  # shown once to whoever approved
    return {"after": {"username": request.username, "role": request.role, "store": request.store.name}}


def end_sessions(user: AbstractBaseUser) -> int:
    """End every session of the user: the password hash changes (Django checks it on every request, whatever
    the session engine), and sessions stored in the database are deleted."""
    user.set_unusable_password()
    user.save(update_fields=["password"])
    ended = 0
    if settings.SESSION_ENGINE in ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"):
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
            if session.get_decoded().get("_auth_user_id") == str(user.pk):
                session.delete()
                ended += 1
    return ended


def execute_offboarding(request: StaffOffboarding, actor: AbstractBaseUser | None) -> dict[str, Any]:
    """At once: the staff record and login deactivated with every role group and store permission
    (members.services.deactivate_staff), every other object permission removed, sessions ended, and their
    claimed tasks returned to the queue."""
    # Their claimed tasks go back as their store roles are revoked (flows.signals) and, any left, below.
    tasks = engine.claimed_tasks_of(request.staff.user).count()
    staff = member_services.deactivate_staff(request.staff, actor=actor, reason=f"{request.number} {request.reason}")
    user = User.objects.get(pk=staff.user_id)
    permissions = UserObjectPermission.objects.filter(user=user).delete()[0]
    sessions = end_sessions(user)
    engine.return_tasks_of(user)
    return {
        "before": {"is_active": True},
        "after": {"is_active": False, "permissions_removed": permissions, "sessions_ended": sessions,
                  "tasks_returned": tasks},
    }  # fmt: skip
