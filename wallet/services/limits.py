"""Free value beyond the merchant's limits (docs/wallet.md §4.6): lifted for one operation a person approved.

The limits on value given away by hand (`max_manual_bonus_*`, `max_manual_discount_bp`, `max_free_gift_fen`,
`max_activity_points`) refuse an operation above them with `free_value_over_limit`. Such an operation may
instead become an approval request (flows: a merchant admin approves it); once approved, the workflow carries
it out by calling the same wallet service with `approved_by_request=<the request>`. The wallet cannot read the
workflow's requests (imports point one way: flows → wallet), so the workflow registers the check that decides
whether a request is approved for exactly this operation (`register_approval_check`, in flows.apps). Without
a registered check, or when the check refuses, an operation naming a request is refused
(`free_value_approval_invalid`): no caller lifts a limit by passing something of its own.

Only those limits are lifted. What the merchant configured (a plan's or template's share, checked at the
catalog and again at each sale), ceilings, the member's status and everything else are checked as always.

The portal's confirmation step may also ask what an operation over a limit would do once approved: the quote
of `wallet.quotes` with `lift_free_value_limits=True`. That lift holds only inside the quote's dry run, which
is always rolled back (`preview_lifted`), so nothing given in it stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from members.models import Owner


class ApprovedRequest(Protocol):
    """What names an approval: a saved request row of the workflow (flows.models.FreeValueRequest)."""

    pk: Any


# check(request, *, operation, member, terms): returns when `request` is approved for exactly this operation,
# raises a DomainError otherwise.
ApprovalCheck = Callable[..., None]

_approval_check: list[ApprovalCheck] = []
_preview: ContextVar[bool] = ContextVar("wallet_free_value_preview", default=False)


def register_approval_check(check: ApprovalCheck) -> None:
    """The approval workflow's check of an approved request (one; registering again replaces it)."""
    _approval_check[:] = [check]


@contextmanager
def preview_lifted() -> Iterator[None]:
    """Limits lifted for what runs inside, in a savepoint of its own that is always rolled back, however the
    block ends: what it gives never stays (wallet.quotes' dry run, to show what an approval would do)."""
    with transaction.atomic():
        token = _preview.set(True)
        try:
            yield
        finally:
            _preview.reset(token)
            transaction.set_rollback(True)


def limits_lifted(
    approved_by_request: ApprovedRequest | None, *, operation: str, member: Owner, terms: dict[str, Any]
) -> bool:
    """Whether this operation may give free value beyond the merchant's limits: only when it names a request
    that the approval workflow confirms is approved for this operation, member and content (`terms`: the
    operation's arguments), or in a quote's dry run. A request named but not confirmed is refused."""
    if approved_by_request is None:
        return _preview.get()
    if not _approval_check or getattr(approved_by_request, "pk", None) is None:
        raise refused_approval()
    _approval_check[0](approved_by_request, operation=operation, member=member, terms=terms)
    return True


def refused_approval():
    return fail(
        "approved_by_request",
        "free_value_approval_invalid",
        _("This operation is over the merchant's limit and has no approval that covers it."),
    )


def recharge_free_value_fen(lines) -> int:
    """What a recharge's lines give away by hand, the value the limits bound (docs/wallet.md §4.1): a typed
    bonus, a manual discount (list price − paid) and templates priced 0 at their gift value. A plan's bonus and
    gifts are configured by the merchant, so not counted."""
    from ..models import RechargeLine
    from .checks import gift_value

    total = 0
    for line in lines:
        if line.kind == RechargeLine.Kind.STORED_VALUE:
            total += line.bonus_fen
        elif line.kind != RechargeLine.Kind.PLAN:
            target = line.coupon_template or line.package or line.voucher_template or line.vip_type
            if target is not None and not target.price_fen:
                total += gift_value(target) * line.quantity
            else:
                total += line.unit_price_fen * line.quantity - line.amount_fen
    return total
