"""Writes of the approval workflows. Each public function is one atomic transaction, callable from the portal
now and the mini-program API later; none trusts its caller to have checked anything.

Every decision goes: lock (engine.locked: the process row, then the request row), check (state, maker-checker,
the stage's store permission: flows.rules), transition the request (its history row is written by the
transition), then move the viewflow process on. An approved request is carried out by `execute_request`
(in the approval's transaction for requests that move no money; right after it commits for refunds), under
idempotency keys derived from the request, so it happens once however often it runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, TypeVar

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed, can_proceed, has_transition_perm
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from core.errors import DomainError, fail
from members import selectors as member_selectors
from members import services as member_services
from members.models import Level, MemberCard, Merchant, Owner, Room, Staff, Store
from wallet import permissions as wallet_permissions
from wallet import services as wallet
from wallet.models import (
    ActivityPointsRule,
    ConsumptionLine,
    CouponTemplate,
    Grant,
    PaymentMethod,
    RechargeLine,
    StoredValueCard,
    VoucherTemplate,
)

from . import engine, execution, notifications, rules
from .deadlines import DeadlineRun, run_deadlines
from .models import (
    OPEN_STATES,
    ApprovalRequest,
    FlowSettings,
    FreeValueRequest,
    MemberChangeRequest,
    Notification,
    RefundRequest,
    RequestTransition,
    StaffOffboarding,
    StaffOnboarding,
    State,
    TaskDeadline,
    TaskKind,
    request_of_process,
)

__all__ = [
    "DeadlineRun",
    "activate_staff",
    "approve",
    "claim",
    "execute_request",
    "mark_notifications_read",
    "reissue_activation_code",
    "reject",
    "release",
    "return_tasks_out_of_reach",
    "run_deadlines",
    "set_task_deadline",
    "start_free_value_request",
    "start_member_change",
    "start_refund_request",
    "start_staff_offboarding",
    "start_staff_onboarding",
    "update_flow_settings",
    "withdraw",
]

User = get_user_model()
R = TypeVar("R", bound=ApprovalRequest)
Actor = AbstractBaseUser | AnonymousUser | None

# Roles a store manager may approve onboarding into: never an admin role (that is the platform's to grant).
ONBOARDING_ROLES = (Staff.Role.OPERATOR, Staff.Role.APPROVER, Staff.Role.FINANCE, Staff.Role.CLERK)


# ---------------------------------------------------------------- checks shared by the services


def _reason(reason: str | None, *, required: bool, message=None) -> str:
    text = member_services.clean_text(reason, "reason", max_length=200)
    if required and not text:
        raise fail("reason", "reason_required", message or _("A reason is required."))
    return text


def _check_row(obj: Any, model: type, field: str, merchant: Merchant | None = None) -> None:
    """`obj` is a saved row of `model` (not an id), of `merchant` when given (code other_merchant)."""
    if not isinstance(obj, model) or obj.pk is None:
        raise fail(field, "choose_kind", _("Choose a %(kind)s."), kind=model._meta.verbose_name)
    if merchant is not None and _merchant_id(obj) != merchant.pk:
        raise fail(field, "other_merchant", _("This %(kind)s belongs to another merchant."),
                   kind=model._meta.verbose_name)  # fmt: skip


def _merchant_id(obj: Any) -> int:
    if isinstance(obj, Room):
        return obj.building.estate.merchant_id
    if isinstance(obj, MemberCard):
        return obj.owner.merchant_id
    return obj.merchant_id


def _check_start(model: type[ApprovalRequest], actor: Actor, store: Store, merchant: Merchant) -> None:
    _check_row(store, Store, "store", merchant)
    if not rules.may_start(model._meta.model_name, actor, store):
        raise fail("store", "store_forbidden", _("You may not act on records made at %(store)s."), store=store.name)


def _not_allowed(request: ApprovalRequest) -> DomainError:
    return fail(
        "state",
        "transition_not_allowed",
        _("%(request)s %(number)s is “%(state)s”; this is no longer possible."),
        request=request._meta.verbose_name,
        number=request.number,
        state=request.get_state_display(),
    )


def _transition(
    request: ApprovalRequest,
    name: str,
    *,
    actor: Actor,
    reason: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """Run transition `name` on the locked request and save it; its history row is written with it. An
    illegal transition is a DomainError (transition_not_allowed) and changes nothing."""
    method = getattr(request, name)
    if not can_proceed(method):
        raise _not_allowed(request)
    request._history_before, request._history_after = before, after
    try:
        method(by=actor if actor is not None and actor.is_authenticated else None, reason=reason)
    except TransitionNotAllowed:
        raise _not_allowed(request) from None
    request.save()


def _record_submission(request: ApprovalRequest, actor: AbstractBaseUser) -> None:
    RequestTransition.objects.create(
        merchant_id=request.merchant_id,
        content_type=ContentType.objects.get_for_model(request),
        object_id=request.pk,
        name="submit",
        source="",
        target=request.state,
        actor=actor,
        reason=request.reason,
    )


def _new_request(model: type[R], *, merchant: Merchant, store: Store, actor: AbstractBaseUser, reason: str,
                 **fields: Any) -> R:  # fmt: skip
    request = model(
        merchant=merchant,
        store=store,
        number=member_services.next_business_number(merchant, model.NUMBER_PREFIX),
        requested_by=actor,
        reason=reason,
        **fields,
    )
    request.save()
    return request


def _submit(request: ApprovalRequest, actor: AbstractBaseUser) -> None:
    """The request is complete: record it and start its process (it is frozen from now on)."""
    _record_submission(request, actor)
    engine.start_process(request)


def _lock_member(member: Owner) -> Owner:
    """The member's row, as the wallet locks it first (FOR NO KEY UPDATE): submissions for one member queue,
    so two cannot both pass the "nothing pending" check."""
    return Owner.objects.select_for_update(no_key=True).select_related("merchant").get(pk=member.pk)


# ---------------------------------------------------------------- start


@transaction.atomic
def start_refund_request(
    *,
    member: Owner,
    store: Store,
    kind: str,
    actor: AbstractBaseUser,
    reason: str,
    lines: Iterable[ConsumptionLine] = (),
    grant: Grant | None = None,
    payment_method: str = "",
) -> RefundRequest:
    """Request a refund (every refund is a request; nothing is paid before the approvals):
    - kind "lines": reverse chosen consumption lines (权益退款) of the member;
    - kind "stored_value": pay out the unused principal of the stored-value card (现金退款);
    - kind "grant": pay out the unused uses of a coupon or entitlement lot.
    The requester needs `operate_store` on `store` (and on the stores the lines were rung up at); the amount
    is fixed now, and with what the member's other refund requests of the last 24 hours come to (also fixed
    now: flows.rules.recent_refunds_fen) decides whether finance must approve too."""
    _check_row(member, Owner, "member")
    merchant = member.merchant
    _check_start(RefundRequest, actor, store, merchant)
    reason = _reason(reason, required=True, message=_("A refund needs a reason."))
    if kind not in RefundRequest.Kind.values:
        raise fail("kind", "kind_unknown", _("Unknown kind of refund."))
    member = _lock_member(member)
    if member.status == Owner.Status.CLOSED:
        # Closing needed nothing left to refund; nothing is refunded onto or paid out for it afterwards.
        raise fail("member", "membership_closed", _("The membership is closed."))
    open_requests = RefundRequest.objects.filter(merchant=merchant, member=member, state__in=OPEN_STATES)
    chosen: list[ConsumptionLine] = []
    if kind == RefundRequest.Kind.LINES:
        chosen = _refundable_lines(member, lines, actor)
        if open_requests.filter(lines__in=chosen).exists():
            raise fail("lines", "request_pending", _("A refund request for some of these lines is still open."))
        grant, payment_method = None, ""
    else:
        if payment_method not in PaymentMethod.values:
            raise fail("payment_method", "payment_method_required", _("Choose how the money is paid out."))
        if kind == RefundRequest.Kind.STORED_VALUE:
            _check_stored_value(member)
            grant = None
            if open_requests.filter(kind=kind).exists():
                raise fail("kind", "request_pending", _("A refund request for this stored value is still open."))
        else:
            _check_grant(member, grant)
            if open_requests.filter(grant=grant).exists():
                raise fail("grant", "request_pending", _("A refund request for this lot is still open."))
    amount = execution.refund_amount(kind, member, chosen, grant)
    # The finance tier counts the member's other recent refund requests (flows.rules), read under the member's
    # lock taken above: of two requests submitted at once, the second to lock sees the first.
    now = timezone.now()
    recent = rules.recent_refunds_fen(member, at=now)
    request = _new_request(
        RefundRequest, merchant=merchant, store=store, actor=actor, reason=reason, kind=kind, member=member,
        grant=grant, payment_method=payment_method, amount_fen=amount, recent_refunds_fen=recent, requested_at=now,
    )  # fmt: skip
    if chosen:
        request.lines.set(chosen)
    _submit(request, actor)
    return request


def _refundable_lines(member: Owner, lines: Iterable[ConsumptionLine], actor: AbstractBaseUser) -> list:
    try:
        lines = [] if isinstance(lines, str | bytes) else list(lines)  # a form's queryset, a list, a tuple
    except TypeError:
        lines = []
    if not lines:
        raise fail("lines", "lines_required", _("Choose the consumption lines to refund."))
    for line in lines:
        _check_row(line, ConsumptionLine, "lines")
    ids = sorted({line.pk for line in lines})
    found = list(
        ConsumptionLine.objects.filter(pk__in=ids, consumption__merchant=member.merchant)
        .select_related("consumption__store")
        .order_by("pk")
    )
    if len(found) != len(ids):
        raise fail("lines", "other_merchant", _("This %(kind)s belongs to another merchant."),
                   kind=ConsumptionLine._meta.verbose_name)  # fmt: skip
    for line in found:
        label = f"{line.consumption.number}/{line.line_no}"
        if line.consumption.member_id != member.pk:
            raise fail("lines", "line_of_other_member", _("Line %(line)s is not this member's."), line=label)
        if line.status != ConsumptionLine.Status.NORMAL:
            raise fail("lines", "line_already_refunded", _("Line %(line)s was already refunded."), line=label)
    if not member_selectors.is_platform_admin(actor):
        # The requester's store scope, as the wallet applies it to whoever refunds (wallet.permissions).
        wallet_permissions.check_lines_actionable(actor, found, member=member)
    return found


def _check_stored_value(member: Owner) -> None:
    card = StoredValueCard.objects.filter(member=member).first()
    if card is None or card.status != StoredValueCard.Status.ACTIVE:
        raise fail("stored_value", "nothing_to_refund", _("There is nothing on the stored-value card to refund."))
    if not execution.refund_amount(RefundRequest.Kind.STORED_VALUE, member, [], None):
        raise fail("stored_value", "nothing_to_refund", _("There is nothing on the stored-value card to refund."))


def _check_grant(member: Owner, grant: Grant | None) -> None:
    _check_row(grant, Grant, "grant", member.merchant)
    if grant.member_id != member.pk:
        raise fail("grant", "grant_of_other_member", _("The coupon or entitlement belongs to another member."))
    if grant.status != Grant.Status.ACTIVE:
        raise fail("grant", "grant_not_active", _("%(grant)s is %(status)s; nothing to refund."), grant=str(grant),
                   status=grant.get_status_display())  # fmt: skip
    if grant.valid_until is not None and grant.valid_until < timezone.now():
        raise fail("grant", "grant_expired", _("%(grant)s expired on %(date)s; it is not refundable."),
                   grant=str(grant), date=f"{timezone.localtime(grant.valid_until):%Y-%m-%d}")  # fmt: skip


@transaction.atomic
def start_member_change(
    *,
    member: Owner,
    store: Store,
    kind: str,
    actor: AbstractBaseUser,
    reason: str,
    name: str | None = None,
    mobile: str | None = None,
    level: Level | None = None,
    status: str | None = None,
    rooms: Iterable[Room] | None = None,
    room: Room | None = None,
    transfer_to: Owner | None = None,
    card: MemberCard | None = None,
) -> MemberChangeRequest:
    """Request a change of a member: `name`, `mobile`, `level`, `status` (freeze, unfreeze, close), bound
    `rooms`, a `room` transferred to the owner `transfer_to`, or a lost-card replacement (`card`, by default
    the member's live card). Checked now and again when applied."""
    _check_row(member, Owner, "member")
    merchant = member.merchant
    _check_start(MemberChangeRequest, actor, store, merchant)
    reason = _reason(reason, required=True)
    Kind = MemberChangeRequest.Kind
    if kind not in Kind.values:
        raise fail("kind", "kind_unknown", _("Unknown kind of change."))
    member = _lock_member(member)
    if member.status == Owner.Status.CLOSED:
        raise fail("member", "membership_closed", _("The membership is closed."))
    if MemberChangeRequest.objects.filter(member=member, kind=kind, state__in=OPEN_STATES).exists():
        raise fail("kind", "request_pending", _("A request for this change of the member is still open."))
    fields: dict[str, Any] = {}
    chosen_rooms: list[Room] = []
    if kind == Kind.NAME:
        fields["new_name"] = member_services.clean_text(name, "name", required=True, max_length=50)
        _check_changed(fields["new_name"] != member.name, "name")
    elif kind == Kind.MOBILE:
        mobile = member_services.clean_text(mobile, "mobile", required=True)
        member_services.validate_owner_fields(merchant, mobile=mobile, exclude_owner=member)
        _check_changed(mobile != member.mobile, "mobile")
        fields["new_mobile"] = mobile
    elif kind == Kind.LEVEL:
        _check_row(level, Level, "level", merchant)
        _check_changed(level.pk != member.level_id, "level")
        fields["new_level"] = level
    elif kind == Kind.ROOMS:
        chosen_rooms = list(rooms or [])
        for one in chosen_rooms:
            _check_row(one, Room, "rooms", merchant)
        _check_changed({r.pk for r in chosen_rooms} != set(member.rooms.values_list("pk", flat=True)), "rooms")
    elif kind == Kind.ROOM_TRANSFER:
        _check_row(room, Room, "room", merchant)
        _check_row(transfer_to, Owner, "transfer_to", merchant)
        if not member.rooms.filter(pk=room.pk).exists():
            raise fail("room", "room_not_bound", _("Room %(room)s is not bound to this member."), room=str(room))
        if transfer_to.pk == member.pk:
            raise fail("transfer_to", "transfer_to_self", _("Choose another owner to transfer the room to."))
        if transfer_to.status == Owner.Status.CLOSED:
            raise fail("transfer_to", "membership_closed", _("The new owner's membership is closed."))
        fields.update(room=room, transfer_to=transfer_to)
    elif kind == Kind.STATUS:
        if status not in Owner.Status.values:
            raise fail("status", "status_unknown", _("Unknown member status."))
        if status == member.status:
            raise fail("status", "status_unchanged", _("The member is already %(status)s."),
                       status=member.get_status_display())  # fmt: skip
        if status == Owner.Status.CLOSED:
            execution.check_nothing_refundable(member, field="status")
        fields["new_status"] = status
    elif kind == Kind.CARD_REPLACEMENT:
        card = card or member_selectors.active_card_of(member)
        _check_row(card, MemberCard, "card", merchant)
        if card.owner_id != member.pk or card.status != MemberCard.Status.ACTIVE:
            raise fail("card", "card_not_active", _("Card %(card)s is not this member's live card."),
                       card=card.card_number)  # fmt: skip
        fields["card"] = card
    request = _new_request(MemberChangeRequest, merchant=merchant, store=store, actor=actor, reason=reason,
                           kind=kind, member=member, **fields)  # fmt: skip
    if chosen_rooms:
        request.rooms.set(chosen_rooms)
    _submit(request, actor)
    return request


def _check_changed(changed: bool, field: str) -> None:
    if not changed:
        raise fail(field, "value_unchanged", _("This is the member's current value; nothing would change."))


@transaction.atomic
def start_staff_onboarding(
    *,
    merchant: Merchant,
    store: Store,
    actor: AbstractBaseUser,
    name: str,
    mobile: str,
    username: str,
    role: str,
    level: int = 1,
    reason: str = "",
) -> StaffOnboarding:
    """Propose a staff member (name, phone, store, role) for the store manager's approval. Needs
    `manage_store` on the store (the merchant admin)."""
    _check_row(merchant, Merchant, "merchant")
    _check_start(StaffOnboarding, actor, store, merchant)
    if role not in ONBOARDING_ROLES:
        raise fail("role", "role_not_allowed", _("Staff onboarding is for operators, approvers, finance and clerks."))
    name = member_services.clean_text(name, "name", required=True, max_length=50)
    mobile = member_services.clean_text(mobile, "mobile", required=True)
    username = (username or "").strip()
    member_services.validate_staff_fields(
        merchant, actor=actor, role=role, stores=[store], mobile=mobile, username=username
    )
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 32767:
        raise fail("level", "invalid_level", _("The staff level is a whole number from 1 to 32767."))
    if StaffOnboarding.objects.filter(username=username, state__in=OPEN_STATES).exists():
        raise fail("username", "request_pending", _("An onboarding with this username is still open."))
    request = _new_request(StaffOnboarding, merchant=merchant, store=store, actor=actor,
                           reason=_reason(reason, required=False), name=name, mobile=mobile, username=username,
                           role=role, staff_level=level)  # fmt: skip
    _submit(request, actor)
    return request


@transaction.atomic
def start_staff_offboarding(
    *, staff: Staff, actor: AbstractBaseUser, reason: str, store: Store | None = None
) -> StaffOffboarding:
    """Propose that a staff member leaves; approved by the manager of `store` (by default the first store they
    work at). Needs `manage_store` on that store."""
    _check_row(staff, Staff, "staff")
    if store is None:
        store = staff.stores.order_by("pk").first()
        if store is None:
            raise fail("store", "required", _("Choose the store whose manager approves."))
    _check_start(StaffOffboarding, actor, store, staff.merchant)
    reason = _reason(reason, required=True)
    if not staff.is_active:
        raise fail("staff", "staff_inactive", _("%(name)s has already left."), name=staff.name)
    if staff.role == Staff.Role.PLATFORM_ADMIN or member_selectors.is_platform_admin(staff.user):
        raise fail("staff", "role_not_allowed", _("Only a platform admin can change a platform admin's staff record."))
    if StaffOffboarding.objects.filter(staff=staff, state__in=OPEN_STATES).exists():
        raise fail("staff", "request_pending", _("An offboarding of this staff member is still open."))
    request = _new_request(StaffOffboarding, merchant=staff.merchant, store=store, actor=actor, reason=reason,
                           staff=staff)  # fmt: skip
    _submit(request, actor)
    return request


@transaction.atomic
def start_free_value_request(
    *,
    member: Owner,
    store: Store,
    kind: str,
    actor: AbstractBaseUser,
    reason: str,
    item: wallet.RechargeItem | None = None,
    payment_method: str = "",
    note: str = "",
    voucher_template: VoucherTemplate | None = None,
    coupon_template: CouponTemplate | None = None,
    points_rule: ActivityPointsRule | None = None,
    form_token: str = "",
) -> FreeValueRequest:
    """Request free value the wallet refuses as over the merchant's limit (free_value_over_limit), for a merchant
    admin to approve:
    - kind "recharge": a recharge of one line (`item`: stored value with a bonus, or a coupon, package, voucher or
      VIP line with a manual discount or priced 0) paid by `payment_method`; nothing is recorded, nor taken,
      before the approval;
    - kind "voucher": a free voucher of `voucher_template`; "coupon": a free coupon of `coupon_template`;
    - kind "points": the points of `points_rule` (above the points limit).
    The requester needs `operate_store` on `store`. The wallet's dry run must refuse it for a free-value limit
    only (anything else is refused now, as the wallet would: code as the wallet's), and what it gives and costs
    is fixed now. Within the limits there is nothing to approve (free_value_within_limit). A form posted twice
    (`form_token`) is answered with the request of its first post."""
    _check_row(member, Owner, "member")
    merchant = member.merchant
    _check_start(FreeValueRequest, actor, store, merchant)
    reason = _reason(reason, required=True, message=_("Say why the value is given."))
    Kind = FreeValueRequest.Kind
    if kind not in Kind.values:
        raise fail("kind", "kind_unknown", _("Unknown kind of free value."))
    form_token = str(form_token or "")[:36]
    # The token is read under the member's lock: of two posts of one form at once, the second to lock finds the
    # first's request (committed) instead of breaking the token's unique constraint.
    member = _lock_member(member)
    if form_token:
        first = FreeValueRequest.objects.filter(merchant=merchant, requested_by=actor, form_token=form_token).first()
        if first is not None and first.member_id != member.pk:
            raise fail("form_token", "idempotency_conflict", _("This request key was already used for another member."))
        if first is not None:
            first.posted_again = True
            return first
    fields: dict[str, Any] = {"kind": kind, "member": member}
    if kind == Kind.RECHARGE:
        if not isinstance(item, wallet.RechargeItem):
            raise fail("items", "lines_empty", _("Choose at least one line."))
        if item.kind not in RechargeLine.Kind.values or item.kind == RechargeLine.Kind.PLAN:
            # A plan's bonus and gifts are the merchant's configuration, within its own share: no approval lifts it.
            raise fail("items", "line_kind_unknown", _("Unknown kind of recharge line; use one of %(kinds)s."),
                       kinds=", ".join(k for k in RechargeLine.Kind.values if k != RechargeLine.Kind.PLAN))  # fmt: skip
        for name in ("coupon_template", "package", "voucher_template", "vip_type"):
            row = getattr(item, name)
            if row is not None:
                _check_row(row, type(row), name, merchant)
        fields.update(
            line_kind=item.kind, quantity=item.quantity, amount_fen=item.amount_fen, bonus_fen=item.bonus_fen,
            discount_bp=item.discount_bp, coupon_template=item.coupon_template, package=item.package,
            voucher_template=item.voucher_template, vip_type=item.vip_type, payment_method=payment_method,
            note=member_services.clean_text(note, "note", max_length=200),
        )  # fmt: skip
    elif kind == Kind.VOUCHER:
        _check_row(voucher_template, VoucherTemplate, "voucher_template", merchant)
        fields["voucher_template"] = voucher_template
    elif kind == Kind.COUPON:
        _check_row(coupon_template, CouponTemplate, "coupon_template", merchant)
        fields["coupon_template"] = coupon_template
    else:
        _check_row(points_rule, ActivityPointsRule, "points_rule", merchant)
        fields["points_rule"] = points_rule
    draft = FreeValueRequest(merchant=merchant, store=store, requested_by=actor, reason=reason, **fields)
    try:
        execution.free_value_quote(draft, actor=actor, lift=False)
    except DomainError as exc:
        if exc.code != "free_value_over_limit":
            raise
    else:
        raise fail("kind", "free_value_within_limit",
                   _("This is within the merchant's limits: record it directly, no approval is needed."))  # fmt: skip
    quote = execution.free_value_quote(draft, actor=actor, lift=True)  # refused for anything but the limits
    try:
        with transaction.atomic():  # the same token posted at once for another member (a crafted post): coded
            request = _new_request(
                FreeValueRequest, merchant=merchant, store=store, actor=actor, reason=reason, form_token=form_token,
                paid_fen=quote.total_fen if kind == Kind.RECHARGE else 0,
                value_fen=quote.extra.get("free_value_fen", 0), points=quote.extra.get("points", 0), **fields,
            )  # fmt: skip
    except IntegrityError:
        if not form_token:
            raise
        raise fail("form_token", "idempotency_conflict",
                   _("This request key was already used for another member.")) from None  # fmt: skip
    _submit(request, actor)
    return request


# ---------------------------------------------------------------- decisions


def _check_review(request: ApprovalRequest, actor: Actor) -> None:
    """Refuse, with the reason's own code, anyone who may not review the request now."""
    if rules.review_permission(request) is None:
        raise _not_allowed(request)
    if actor is None or not actor.is_authenticated:
        raise fail("request", "review_forbidden", _("Sign in to review requests."))
    if rules.is_requester(request, actor):
        # Maker-checker: whatever roles the requester holds, platform admins included.
        raise fail("request", "own_request", _("You made this request; someone else must review it."))
    if rules.is_subject(request, actor):
        raise fail("request", "own_offboarding", _("This request is about you; someone else must review it."))
    if rules.approved_earlier(request, actor):
        # Four eyes across stages: finance's review is a second person's, whatever roles the first holds.
        raise fail("request", "approved_earlier_stage",
                   _("You approved an earlier stage of this request; someone else must review this one."))  # fmt: skip
    if not rules.may_review(request, actor) or not has_transition_perm(request.approve, actor):
        raise fail("request", "review_forbidden", _("You may not review requests of %(store)s at this stage."),
                   store=request.store.name)  # fmt: skip


def _requester_notice(request: ApprovalRequest, kind: str, *, event: str = "", **params: Any) -> None:
    notifications.notify([request.requested_by], kind, request, event=event, **params)


@transaction.atomic
def approve(request: R, *, actor: AbstractBaseUser, reason: str = "") -> R:
    """Approve the request's current stage as `actor`. The last approval carries out requests that move no
    money at once (a refusal then refuses the approval: nothing changes) and schedules refunds (carried out
    right after this commits). Two approvals at the same moment: the second finds the stage decided
    (transition_not_allowed)."""
    reason = _reason(reason, required=False)
    with engine.locked(request) as locked:
        _check_review(locked, actor)
        task = engine.open_human_task(locked)
        if task is None:
            raise _not_allowed(locked)
        engine.check_task_actor(task, actor)
        _transition(locked, "approve", actor=actor, reason=reason)
        engine.complete_human_task(task, actor)
        if locked.state == State.APPROVED:
            if locked.EXECUTE_ON_APPROVAL:
                _carry_out(locked, refuse=True)
            else:
                _requester_notice(locked, Notification.Kind.APPROVED)
    return locked


@transaction.atomic
def reject(request: R, *, actor: AbstractBaseUser, reason: str) -> R:
    """Reject the request at its current stage; a reason is required and told to the requester."""
    reason = _reason(reason, required=True, message=_("Say why the request is rejected."))
    with engine.locked(request) as locked:
        _check_review(locked, actor)
        task = engine.open_human_task(locked)
        if task is None:
            raise _not_allowed(locked)
        engine.check_task_actor(task, actor)
        _transition(locked, "reject", actor=actor, reason=reason)
        engine.complete_human_task(task, actor)
        _requester_notice(locked, Notification.Kind.REJECTED, reason=reason)
    return locked


@transaction.atomic
def withdraw(request: R, *, actor: AbstractBaseUser, reason: str = "") -> R:
    """The requester takes the request back, only before its first review; its process is cancelled."""
    reason = _reason(reason, required=False)
    with engine.locked(request) as locked:
        if not can_proceed(locked.withdraw):
            raise _not_allowed(locked)
        if not rules.may_withdraw(locked, actor):
            raise fail("request", "not_requester", _("Only whoever made a request can withdraw it."))
        _transition(locked, "withdraw", actor=actor, reason=reason)
        engine.cancel_process(locked)
    return locked


@transaction.atomic
def claim(request: R, *, actor: AbstractBaseUser) -> R:
    """Take the request's open task into `actor`'s inbox (only someone who may review it)."""
    with engine.locked(request) as locked:
        _check_review(locked, actor)
        task = engine.open_human_task(locked)
        if task is None:
            raise _not_allowed(locked)
        if task.owner_id != actor.pk:
            engine.check_task_actor(task, actor)
            engine.claim_task(task, actor)
    return locked


@transaction.atomic
def release(request: R, *, actor: AbstractBaseUser, reason: str = "") -> R:
    """Give the request's claimed task back to the queue. The claimer does so at will; anyone else only takes it
    from them as a merchant admin of the request's merchant or a platform admin (rules.may_take_back: never the
    requester), with a reason, written to the request's history and the audit log and told to the claimer (a
    claimer away, or one who cannot decide it any more)."""
    with engine.locked(request) as locked:
        task = engine.open_human_task(locked)
        if task is None or task.owner_id is None:
            raise _not_allowed(locked)
        if task.owner_id == getattr(actor, "pk", None):
            engine.release_task(task)
            return locked
        if rules.is_requester(locked, actor) or rules.is_subject(locked, actor):
            raise fail("request", "own_request", _("You made this request; someone else must review it."))
        if not rules.may_take_back(locked, actor):
            raise fail("task", "task_claimed", _("%(user)s has claimed this task; ask them to release it."),
                       user=str(task.owner))  # fmt: skip
        reason = _reason(reason, required=True, message=_("Say why the task is taken from whoever claimed it."))
        claimer = task.owner
        engine.release_task(task)
        row = _record_release(locked, claimer, actor=actor, reason=reason)
        member_services.record_audit(actor=actor, action="flows.task_taken_back", target=locked,
                                     merchant=locked.merchant, before={"task": task.pk, "claimed_by": claimer.pk},
                                     reason=reason)  # fmt: skip
        notifications.notify([claimer], Notification.Kind.TAKEN_BACK, locked, event=f"release-{row.pk}",
                             by=_user_label(actor), reason=reason)  # fmt: skip
    return locked


def _user_label(user: AbstractBaseUser | None) -> str:
    staff = member_selectors.staff_of(user) if user is not None else None
    return staff.name if staff is not None else (user.get_username() if user is not None else "")


def _record_release(request: ApprovalRequest, claimer: AbstractBaseUser, *, actor: Actor, reason: str
                    ) -> RequestTransition:  # fmt: skip
    """The request's history says whose claim was taken back (by `actor`; None: the system) and why. Not a
    transition: the request's state stays as it is."""
    actor = actor if actor is not None and actor.is_authenticated else None
    return RequestTransition.objects.create(
        merchant_id=request.merchant_id,
        content_type=ContentType.objects.get_for_model(request),
        object_id=request.pk,
        name="release",
        source=request.state,
        target=request.state,
        actor=actor,
        actor_label="" if actor else "system",
        reason=reason,
        before={"claimed_by": claimer.pk, "claimed_by_name": _user_label(claimer)},
    )


@transaction.atomic
def return_tasks_out_of_reach(user: AbstractBaseUser, *, store_ids: Iterable[int], actor: Actor = None,
                              reason: str = "") -> int:  # fmt: skip
    """The tasks `user` claimed at the stores `store_ids` and may no longer decide (their roles there revoked or
    changed: members' `store_roles_revoked`, flows.signals) go back to the queue, each with a history row naming
    `actor`, who changed the roles. Returns how many. Each task's UPDATE re-checks that it is still theirs and
    open, and a decision holds its task's row (engine.open_human_task): one of theirs at this moment either
    finishes first (the UPDATE then skips the done task) or reads the task returned and is refused. No process
    lock is taken here (the roles' change holds the staff row, and may run inside an offboarding's approval,
    which holds that request's process)."""
    user = User.objects.get(pk=user.pk)  # fresh: no permission cached from before the change
    claimed = (
        engine.claimed_tasks_of(user)
        .filter(owner_permission_obj_pk__in=[str(pk) for pk in store_ids])
        .select_related("process")
        .order_by("pk")
    )
    returned = 0
    for task in claimed:
        request = request_of_process(task.process)
        if rules.may_review(request, user):
            continue  # still theirs to decide (another role, or a platform admin)
        taken = Task.objects.filter(pk=task.pk, owner=user, status=STATUS.ASSIGNED).update(
            owner=None, status=STATUS.NEW, assigned=None
        )
        if taken:
            _record_release(request, user, actor=actor, reason=reason)
            returned += 1
    return returned


# ---------------------------------------------------------------- carrying out


EXECUTORS = {
    RefundRequest: lambda request: execution.execute_refund(request),
    MemberChangeRequest: lambda request: execution.execute_member_change(request, request._approver),
    StaffOnboarding: lambda request: execution.execute_onboarding(request, request._approver),
    StaffOffboarding: lambda request: execution.execute_offboarding(request, request._approver),
    FreeValueRequest: lambda request: execution.execute_free_value(request),
}


def _last_approver(request: ApprovalRequest) -> AbstractBaseUser | None:
    row = (
        RequestTransition.objects.filter(
            content_type=ContentType.objects.get_for_model(request), object_id=request.pk, name="approve"
        )
        .select_related("actor")
        .order_by("-at", "-pk")
        .first()
    )
    return row.actor if row else None


def _carry_out(request: ApprovalRequest, *, refuse: bool) -> None:
    """Carry out the locked, approved request and finish its `execute` step. A domain refusal either
    propagates (`refuse`: the approval itself is refused) or marks the request failed and tells the requester."""
    request._approver = _last_approver(request)  # members' audit records name who approved
    try:
        with transaction.atomic():  # a refusal undoes whatever the carrying out had written
            result = EXECUTORS[type(request)](request)
    except DomainError as exc:
        if refuse:
            raise
        request.failure_code, request.failure_message = exc.code, exc.message_text[:500]
        _transition(request, "mark_failed", actor=None, reason=exc.message_text)
        engine.run_handle(request, "execute")
        _requester_notice(request, Notification.Kind.FAILED, reason=exc.message_text)
        return
    if isinstance(request, MemberChangeRequest):
        request.before, request.after = result.get("before", {}), result.get("after", {})
    _transition(request, "mark_executed", actor=None, before=result.get("before"), after=result.get("after"))
    engine.run_handle(request, "execute")
    _requester_notice(request, Notification.Kind.EXECUTED)


def execute_request(request: R) -> R:
    """Carry out an approved request (the Celery task and the deadline job's retry call this). Runs once:
    a request no longer approved (done, failed, never approved) is left as it is, and the refund's wallet
    key `refund-request:<pk>` answers a run after a crash that had already refunded with that refund."""
    with transaction.atomic(), engine.locked(request) as locked:
        if locked.state == State.APPROVED:
            _carry_out(locked, refuse=False)
    return locked


# ---------------------------------------------------------------- onboarding: activation


@transaction.atomic
def activate_staff(code: str, *, password: str | None = None) -> Staff:
    """The clerk enters the activation code (in the mini-program): the login becomes active, with `password`
    if given. A code works once and until it expires; only its hash is stored."""
    code = execution.normalize_code(code)
    found = (
        StaffOnboarding.objects.filter(activation_code_hash=execution.hash_activation_code(code)).first()
        if code
        else None
    )
    if found is None:
        raise fail("code", "activation_code_invalid", _("This activation code is not valid."))
    with engine.locked(found) as onboarding:
        if onboarding.activation_code_hash != execution.hash_activation_code(code):
            raise fail("code", "activation_code_invalid", _("This activation code is not valid."))
        if onboarding.state == State.ACTIVE:
            raise fail("code", "activation_code_used", _("This activation code was already used."))
        if onboarding.state != State.AWAITING_ACTIVATION:
            raise fail("code", "activation_code_invalid", _("This activation code is not valid."))
        if onboarding.activation_expires_at is None or onboarding.activation_expires_at <= timezone.now():
            raise fail("code", "activation_code_expired",
                       _("This activation code has expired; ask your administrator for a new one."))  # fmt: skip
        user = User.objects.select_for_update().get(pk=onboarding.staff.user_id)
        if password:
            try:
                password_validation.validate_password(password, user)
            except ValidationError as exc:
                raise fail(
                    "password",
                    "password_invalid",
                    _("The password is not accepted: %(problems)s"),
                    problems=" ".join(exc.messages),
                ) from None
            user.set_password(password)
        user.is_active = True
        user.save()
        onboarding.activated_at = timezone.now()
        _transition(onboarding, "activate", actor=user)
        engine.run_handle(onboarding, "await_activation")
        _requester_notice(onboarding, Notification.Kind.ACTIVATED, name=onboarding.name)
    return onboarding.staff


@transaction.atomic
def reissue_activation_code(onboarding: StaffOnboarding, *, actor: AbstractBaseUser) -> str:
    """A new activation code for an onboarding awaiting activation (lost or expired); the old one stops
    working. Returns the code (shown once; only its hash is kept)."""
    with engine.locked(onboarding) as locked:
        if not can_proceed(locked.reissue_code):
            raise _not_allowed(locked)
        if not rules.may_reissue_activation(locked, actor):
            raise fail("store", "store_forbidden", _("You may not act on records made at %(store)s."),
                       store=locked.store.name)  # fmt: skip
        code = execution.issue_activation_code(locked)
        _transition(locked, "reissue_code", actor=actor)
    return code


# ---------------------------------------------------------------- settings and notifications


def _check_merchant_admin(actor: Actor, merchant: Merchant) -> None:
    from members.permissions import is_merchant_admin_of

    if not (member_selectors.is_platform_admin(actor) or (actor is not None and is_merchant_admin_of(actor, merchant))):
        raise fail("merchant", "settings_forbidden", _("Only the merchant admin changes workflow settings."))


@transaction.atomic
def update_flow_settings(
    merchant: Merchant,
    *,
    actor: AbstractBaseUser,
    refund_finance_threshold_fen: int | None = None,
    activation_code_valid_for: datetime.timedelta | None = None,
) -> FlowSettings:
    """The merchant's finance threshold for refunds (fen; above it finance approves too: decided when the
    store manager approves) and how long an activation code issued from now on is valid."""
    _check_merchant_admin(actor, merchant)
    found = FlowSettings.objects.select_for_update().get_or_create(merchant=merchant)[0]
    before, after = {}, {}
    if refund_finance_threshold_fen is not None:
        if isinstance(refund_finance_threshold_fen, bool) or not isinstance(refund_finance_threshold_fen, int) \
                or refund_finance_threshold_fen < 0:  # fmt: skip
            raise fail("refund_finance_threshold_fen", "amount_format", _("Amounts are whole fen (integers)."))
        before["threshold"], after["threshold"] = found.refund_finance_threshold_fen, refund_finance_threshold_fen
        found.refund_finance_threshold_fen = refund_finance_threshold_fen
    if activation_code_valid_for is not None:
        if activation_code_valid_for <= datetime.timedelta(0):
            raise fail("activation_code_valid_for", "duration_not_positive", _("Give a positive duration."))
        before["activation"], after["activation"] = str(found.activation_code_valid_for), str(activation_code_valid_for)
        found.activation_code_valid_for = activation_code_valid_for
    found.save()
    member_services.record_audit(actor=actor, action="flows.settings", target=found, merchant=merchant,
                                 before=before, after=after)  # fmt: skip
    return found


@transaction.atomic
def set_task_deadline(
    merchant: Merchant,
    task: str,
    *,
    actor: AbstractBaseUser,
    remind_after: datetime.timedelta,
    escalate_after: datetime.timedelta,
) -> TaskDeadline:
    """When open tasks of kind `task` are reminded to their assignees, and escalated to the merchant admin."""
    _check_merchant_admin(actor, merchant)
    if task not in TaskKind.values:
        raise fail("task", "task_unknown", _("Unknown task."))
    if remind_after <= datetime.timedelta(0) or escalate_after < remind_after:
        raise fail("escalate_after", "deadline_order", _("Escalation comes after the reminder, both after some time."))
    deadline, _created = TaskDeadline.objects.update_or_create(
        merchant=merchant, task=task, defaults={"remind_after": remind_after, "escalate_after": escalate_after}
    )
    member_services.record_audit(actor=actor, action="flows.deadline", target=deadline, merchant=merchant,
                                 after={"task": task, "remind_after": str(remind_after),
                                        "escalate_after": str(escalate_after)})  # fmt: skip
    return deadline


def mark_notifications_read(user: AbstractBaseUser, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications read (all, or those of `ids`; never anyone else's)."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())
