"""Who may do what with a request: one place for the rule, used by the transitions (django-fsm `permission`),
the services (which explain a refusal with a code) and the task queues.

- Starting a request needs the start permission on its store (START_PERMISSION).
- Reviewing needs the stage's permission on the request's store (REVIEW_PERMISSION: the store manager's
  `approve_store`, finance's `finance_store`, an operator's `operate_store`, the merchant admin's
  `manage_store` for free value beyond the limits), granted per store by
  members.roles; platform admins may act on any store.
- Maker-checker: whoever started a request never reviews it, whatever roles they hold (platform admins
  included); nor does the staff member a request is about (their own offboarding).
- Four eyes across stages: whoever approved an earlier stage of a request (the store manager's review)
  never decides a later one (finance's), though they may hold both permissions (merchant and platform
  admins do): the finance review above the threshold is always a second person's.
- Only the requester withdraws, and only before the first review.
- A claimed task is the claimer's: they give it back, or a merchant admin of the request's merchant (or a
  platform admin) takes it from them into the queue (`may_take_back`), never the requester or the request's
  subject, who do not steer its review. A claimer who loses the review permission on the store has their
  claimed tasks returned at once (flows.signals, on members' `store_roles_revoked`).
- Refunds' finance tier: finance reviews a refund request too when its amount PLUS the amounts of the same
  member's other refund requests submitted in the 24 hours before it (pending, approved or carried out; not
  rejected, withdrawn or failed) is above the merchant's threshold, so a refund split into requests under the
  threshold still reaches finance (`needs_finance_review`, `recent_refunds_fen`).

The object permissions are guardian's on members.Store; nothing here trusts a global (model) permission
for a store, except the platform admin's.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from members import permissions as member_permissions
from members import selectors as member_selectors

if TYPE_CHECKING:
    from members.models import Owner, Store

    from .models import ApprovalRequest

OPERATE = "members.operate_store"
APPROVE = "members.approve_store"
FINANCE = "members.finance_store"
MANAGE = "members.manage_store"
VIEW = "members.view_store"

# model name → permission on the store needed to start such a request
START_PERMISSION: dict[str, str] = {
    "refundrequest": OPERATE,
    "memberchangerequest": OPERATE,
    "staffonboarding": MANAGE,
    "staffoffboarding": MANAGE,
    "freevaluerequest": OPERATE,
}
# model name → {state under review → permission on the store needed to review it}
REVIEW_PERMISSION: dict[str, dict[str, str]] = {
    "refundrequest": {"submitted": APPROVE, "finance_review": FINANCE},
    "memberchangerequest": {"submitted": OPERATE},
    "staffonboarding": {"submitted": APPROVE},
    "staffoffboarding": {"submitted": APPROVE},
    # Value beyond the merchant's own limits: only the merchant admin (manage_store) lifts them.
    "freevaluerequest": {"submitted": MANAGE},
}


def _is_active_user(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def may_act_on_store(user: AbstractBaseUser | AnonymousUser | None, store: Store, perm: str) -> bool:
    """The user holds `perm` on `store` (an object permission of the store's merchant), or is a platform admin."""
    if not _is_active_user(user):
        return False
    if member_selectors.is_platform_admin(user):
        return True
    return member_permissions.can_act_on_store(user, store, perm, merchant=store.merchant)


def may_start(model_name: str, user: AbstractBaseUser | AnonymousUser | None, store: Store) -> bool:
    return may_act_on_store(user, store, START_PERMISSION[model_name])


def is_requester(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(user is not None and user.is_authenticated and request.requested_by_id == user.pk)


def is_subject(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The request is about the user themselves (their own offboarding)."""
    staff = getattr(request, "staff", None) if request._meta.model_name == "staffoffboarding" else None
    return bool(staff is not None and user is not None and user.is_authenticated and staff.user_id == user.pk)


def review_permission(request: ApprovalRequest) -> str | None:
    """The store permission that reviewing the request in its current state needs (None: not under review)."""
    return REVIEW_PERMISSION[request._meta.model_name].get(str(request.state))


def approved_earlier(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The user approved an earlier stage of the request (its history holds an approval of theirs)."""
    if user is None or not user.is_authenticated or request.pk is None:
        return False
    from django.contrib.contenttypes.models import ContentType

    from .models import RequestTransition

    return RequestTransition.objects.filter(
        content_type=ContentType.objects.get_for_model(request), object_id=request.pk, name="approve", actor_id=user.pk
    ).exists()


def may_review(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """May `user` approve or reject the request now? (django-fsm permission of approve and reject.)"""
    perm = review_permission(request)
    if perm is None or is_requester(request, user) or is_subject(request, user):
        return False
    return may_act_on_store(user, request.store, perm) and not approved_earlier(request, user)


def may_withdraw(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return _is_active_user(user) and is_requester(request, user)


def may_take_back(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """May `user` return a task of the request that someone else claimed to the queue? A merchant admin of the
    request's merchant, or a platform admin; not the requester nor the request's subject."""
    if not _is_active_user(user) or is_requester(request, user) or is_subject(request, user):
        return False
    if member_selectors.is_platform_admin(user):
        return True
    return member_selectors.merchant_of(user) == request.merchant and member_permissions.is_merchant_admin_of(
        user, request.merchant
    )


def may_reissue_activation(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """A new activation code: whoever may start an onboarding at the store (the merchant admin)."""
    return may_act_on_store(user, request.store, MANAGE)


def may_view(request: ApprovalRequest, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The requester, anyone holding view_store on the request's store, the merchant admin, platform admins."""
    if not _is_active_user(user):
        return False
    if member_selectors.is_platform_admin(user) or is_requester(request, user):
        return True
    if member_selectors.merchant_of(user) != request.merchant:
        return False
    return member_permissions.is_merchant_admin_of(user, request.merchant) or may_act_on_store(
        user, request.store, VIEW
    )


# ---------------------------------------------------------------- the refund's finance tier

# The member's refund requests counted toward a new one's finance tier: those submitted in this window before
# it, in these states (money paid back or still to be; a rejected, withdrawn or failed request paid nothing).
FINANCE_WINDOW = datetime.timedelta(hours=24)
FINANCE_WINDOW_STATES = ("submitted", "finance_review", "approved", "executed")


def recent_refunds_fen(member: Owner, *, at: datetime.datetime) -> int:
    """What the member's refund requests submitted in the FINANCE_WINDOW before `at` come to (fen), rejected,
    withdrawn and failed ones left out. Read at submission under the member's row lock (flows.services), so two
    requests submitted at once for one member each count the other, whichever commits first."""
    from django.db.models import Sum

    from .models import RefundRequest

    total = RefundRequest.objects.filter(
        merchant_id=member.merchant_id,
        member_id=member.pk,
        state__in=FINANCE_WINDOW_STATES,
        requested_at__gt=at - FINANCE_WINDOW,
        requested_at__lte=at,
    ).aggregate(total=Sum("amount_fen"))["total"]
    return int(total or 0)


def needs_finance_review(amount_fen: int, recent_fen: int, threshold_fen: int) -> bool:
    """Finance reviews a refund request too when it and the member's other recent refund requests together
    come to more than the merchant's threshold (exactly the threshold does not)."""
    return amount_fen + recent_fen > threshold_fen
