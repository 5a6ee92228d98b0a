"""How the portal names and shows approval requests: the URL slug of each kind of request, a request's page
address, the facts its pages list and the one-line summary its queues show. Presentation only: which
requests a user sees is flows.selectors', what they may do is flows.rules' and flows.services'."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.money import yuan
from flows import rules
from flows.models import (
    OPEN_STATES,
    REQUEST_MODELS,
    ApprovalRequest,
    FreeValueRequest,
    MemberChangeRequest,
    RefundRequest,
    StaffOffboarding,
    StaffOnboarding,
    State,
)

# URL slug → request model (the request pages and lists: /tasks/requests/<slug>/…).
KINDS: dict[str, type[ApprovalRequest]] = {
    "refund": RefundRequest,
    "member-change": MemberChangeRequest,
    "onboarding": StaffOnboarding,
    "offboarding": StaffOffboarding,
    "free-value": FreeValueRequest,
}
SLUG_OF: dict[type[ApprovalRequest], str] = {model: slug for slug, model in KINDS.items()}
assert set(SLUG_OF) == set(REQUEST_MODELS), "every kind of request has portal pages"

LIST_TITLES = {
    "refund": gettext_lazy("Refund requests"),
    "member-change": gettext_lazy("Member change requests"),
    "onboarding": gettext_lazy("Staff onboardings"),
    "offboarding": gettext_lazy("Staff offboardings"),
    "free-value": gettext_lazy("Free value requests"),
}


def request_url(request: ApprovalRequest) -> str:
    return reverse("tasks:request", kwargs={"kind": SLUG_OF[type(request)], "pk": request.pk})


def request_url_of(content_type_id: int, object_id: int) -> str | None:
    """A request's page from a generic reference (a notification's), without reading the request."""
    model = ContentType.objects.get_for_id(content_type_id).model_class()
    slug = SLUG_OF.get(model)
    return reverse("tasks:request", kwargs={"kind": slug, "pk": object_id}) if slug else None


def person(user) -> str:
    """Staff by their name, others by their login; the system (None) as such."""
    if user is None:
        return _("System")
    staff = getattr(user, "staff", None)
    return staff.name if staff else user.get_username()


def local_time(at) -> str:
    return date_format(timezone.localtime(at), "Y-m-d H:i") if at else "—"


def member_link(member) -> SafeString:
    return format_html(
        '<a href="{}">{} ({})</a>', reverse("members:member", kwargs={"pk": member.pk}), member.name,
        member.member_number,
    )  # fmt: skip


def is_open(request: ApprovalRequest) -> bool:
    return request.state in OPEN_STATES


def amount_fen(request: ApprovalRequest) -> int | None:
    """The amount a queue shows: a refund's amount, the free value a request gives (points have none)."""
    if isinstance(request, RefundRequest):
        return request.amount_fen
    if isinstance(request, FreeValueRequest) and request.kind != FreeValueRequest.Kind.POINTS:
        return request.value_fen
    return None


def free_value_given(request: FreeValueRequest) -> str:
    """What the request gives, for people: the voucher, coupon or rule, or the recharge line."""
    Kind = FreeValueRequest.Kind
    if request.kind == Kind.VOUCHER:
        return str(request.voucher_template)
    if request.kind == Kind.COUPON:
        return str(request.coupon_template)
    if request.kind == Kind.POINTS:
        return _("%(rule)s: %(points)s points") % {"rule": request.points_rule.name, "points": f"{request.points:,}"}
    target = request.coupon_template or request.package or request.voucher_template or request.vip_type
    if target is None:  # stored value with a bonus
        return _("stored value %(amount)s, bonus %(bonus)s") % {
            "amount": yuan(request.amount_fen * request.quantity), "bonus": yuan(request.bonus_fen * request.quantity),
        }  # fmt: skip
    return f"{target} × {request.quantity}"


def free_value_text(request: FreeValueRequest) -> str:
    """Its value: points for a points award, yuan otherwise."""
    if request.kind == FreeValueRequest.Kind.POINTS:
        return _("%(points)s points") % {"points": f"{request.points:,}"}
    return yuan(request.value_fen)


def _member_change(request: MemberChangeRequest) -> str:
    """What the change asks for: the requested value (the current one is on the member's page)."""
    Kind = MemberChangeRequest.Kind
    if request.kind == Kind.NAME:
        return request.new_name
    if request.kind == Kind.MOBILE:
        return request.new_mobile
    if request.kind == Kind.LEVEL:
        return str(request.new_level) if request.new_level_id else ""
    if request.kind == Kind.STATUS:
        return request.get_new_status_display()
    if request.kind == Kind.ROOM_TRANSFER:
        return _("%(room)s to %(owner)s") % {
            "room": request.room, "owner": f"{request.transfer_to.name} ({request.transfer_to.member_number})",
        }  # fmt: skip
    if request.kind == Kind.CARD_REPLACEMENT:
        return _("replace card %(card)s") % {"card": request.card.card_number} if request.card_id else ""
    return ""  # rooms: listed on the request's page


def recent_refunds_text(request: RefundRequest, threshold_fen: int) -> str:
    """Why a refund request is (or is not) in finance's tier although its own amount may be under the
    threshold: what it comes to with the member's other refund requests of the 24 hours before it."""
    if rules.needs_finance_review(request.amount_fen, request.recent_refunds_fen, threshold_fen):
        message = _("Together with the member's other refunds of the 24 hours before (%(others)s): %(total)s, "
                    "above the finance review threshold of %(threshold)s.")  # fmt: skip
    else:
        message = _("Together with the member's other refunds of the 24 hours before (%(others)s): %(total)s, "
                    "within the finance review threshold of %(threshold)s.")  # fmt: skip
    return message % {"total": yuan(request.tier_amount_fen), "others": yuan(request.recent_refunds_fen),
                      "threshold": yuan(threshold_fen)}  # fmt: skip


def summary(request: ApprovalRequest) -> str:
    """One line for the queues and lists: what is asked, for whom."""
    if isinstance(request, RefundRequest):
        what = str(request.grant) if request.kind == RefundRequest.Kind.GRANT and request.grant_id else ""
        parts = [request.get_kind_display(), what, request.member.name]
    elif isinstance(request, MemberChangeRequest):
        parts = [request.get_kind_display(), _member_change(request), request.member.name]
    elif isinstance(request, StaffOnboarding):
        parts = [request.name, request.get_role_display()]
    elif isinstance(request, FreeValueRequest):
        parts = [request.get_kind_display(), free_value_given(request), request.member.name]
    else:
        parts = [request.staff.name, request.staff.get_role_display()]
    return " · ".join(str(p) for p in parts if p)


def facts(request: ApprovalRequest) -> list[tuple[str, str | SafeString]]:
    """(label, value) rows describing the request on its page and its task's page."""
    rows: list[tuple[str, str | SafeString]] = [
        (_("Number"), request.number),
        (_("State"), request.get_state_display()),
        (_("Store"), request.store.name),
        (_("Requested by"), person(request.requested_by)),
        (_("Requested at"), local_time(request.requested_at)),
        (_("Reason"), request.reason or "—"),
    ]
    if isinstance(request, RefundRequest):
        rows += [(_("Kind"), request.get_kind_display()), (_("Member"), member_link(request.member)),
                 (_("Amount"), yuan(request.amount_fen))]  # fmt: skip
        if request.kind != RefundRequest.Kind.LINES:
            rows.append((_("Paid out by"), request.get_payment_method_display()))
        if request.grant_id:
            rows.append((_("Coupon / entitlement"), str(request.grant)))
        threshold = request.finance_threshold_fen()
        rows.append((
            _("Approvals"),
            _("store manager, then finance (above %(threshold)s)") % {"threshold": yuan(threshold)}
            if rules.needs_finance_review(request.amount_fen, request.recent_refunds_fen, threshold)
            else _("store manager (finance from above %(threshold)s)") % {"threshold": yuan(threshold)},
        ))  # fmt: skip
        if request.recent_refunds_fen:
            # The finance tier counts the member's other refund requests of the 24 hours before (flows.rules).
            rows.append((_("Refunds in 24 hours"), recent_refunds_text(request, threshold)))
        if request.state == State.FAILED:
            rows.append((_("Why it failed"), request.failure_message))
    elif isinstance(request, MemberChangeRequest):
        rows += [(_("Change"), request.get_kind_display()), (_("Member"), member_link(request.member))]
        if request.kind == MemberChangeRequest.Kind.ROOMS:
            rows.append((_("Rooms"), ", ".join(str(room) for room in request.rooms.all()) or "—"))
        else:
            rows.append((_("New value"), _member_change(request) or "—"))
    elif isinstance(request, StaffOnboarding):
        rows += [
            (_("Name"), request.name), (_("Mobile"), request.mobile), (_("Username"), request.username),
            (_("Role"), request.get_role_display()), (_("Staff level"), str(request.staff_level)),
        ]  # fmt: skip
    elif isinstance(request, FreeValueRequest):
        rows += [(_("Kind"), request.get_kind_display()), (_("Member"), member_link(request.member)),
                 (_("What is given"), free_value_given(request)), (_("Free value"), free_value_text(request))]  # fmt: skip
        if request.kind == FreeValueRequest.Kind.RECHARGE:
            rows += [(_("The member pays"), f"{yuan(request.paid_fen)} ({request.get_payment_method_display()})")]
            if request.discount_bp != 10000:
                rows.append((_("Discount"), _("%(percent)s%% off") % {
                    "percent": f"{(10000 - request.discount_bp) / 100:g}"}))  # fmt: skip
            if request.note:
                rows.append((_("Note"), request.note))
        rows.append((_("Approvals"), _("merchant admin (over the merchant's free-value limit)")))
        if request.state == State.FAILED:
            rows.append((_("Why it failed"), request.failure_message))
    else:
        rows += [(_("Staff member"), f"{request.staff.name} ({request.staff.user.get_username()})"),
                 (_("Role"), request.staff.get_role_display())]  # fmt: skip
    return rows
