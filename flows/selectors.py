"""Reads of the flows, scoped to the user: requests they may see, the history of a request, their task
queue and inbox, and their notifications. The portal and the mini-program API use these."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from members import permissions as member_permissions
from members import selectors as member_selectors
from members.models import Store

from . import rules
from .execution import FREE_VALUE_RELATED
from .flows import FLOWS
from .models import (
    DEFAULT_FINANCE_THRESHOLD_FEN,
    OPEN_STATES,
    REQUEST_MODELS,
    ApprovalRequest,
    FlowSettings,
    FreeValueRequest,
    MemberChangeRequest,
    Notification,
    RefundRequest,
    RequestTransition,
    StaffOffboarding,
    StaffOnboarding,
)

User = AbstractBaseUser | AnonymousUser
REVIEW_PERMISSIONS = {perm for stages in rules.REVIEW_PERMISSION.values() for perm in stages.values()}


def requests_visible_to(user: User, model: type[ApprovalRequest]) -> QuerySet:
    """Requests of `model` the user may see: all for platform admins; their merchant's for its merchant
    admin; otherwise their own and those of stores where they hold view_store. Nothing of other merchants."""
    queryset = model.objects.select_related("store", "requested_by")
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if member_selectors.is_platform_admin(user):
        return queryset
    merchant = member_selectors.merchant_of(user)
    if merchant is None:
        return queryset.none()
    queryset = queryset.filter(merchant=merchant)
    if member_permissions.is_merchant_admin_of(user, merchant):
        return queryset
    stores = member_selectors.stores_where(user, rules.VIEW).filter(merchant=merchant)
    return queryset.filter(Q(requested_by=user) | Q(store__in=stores))


def request_for(user: User, model: type[ApprovalRequest], pk: int) -> ApprovalRequest:
    """One request the user may see; model.DoesNotExist otherwise (never says whether it exists)."""
    return requests_visible_to(user, model).get(pk=pk)


def history_of(request: ApprovalRequest) -> QuerySet[RequestTransition]:
    return RequestTransition.objects.filter(
        content_type=ContentType.objects.get_for_model(request), object_id=request.pk
    ).select_related("actor")


def _human_nodes() -> list:
    return [node for flow in FLOWS for node in flow.instance.nodes() if getattr(node, "task_type", "") == "HUMAN"]


def _flow_tasks() -> QuerySet[Task]:
    """Human tasks of the flows' processes. Named by their node (viewflow_task.flow_task, e.g.
    "flows/flows.RefundFlow.review"), not by joining the process's flow class: a queue's count then reads
    one table, through the index flows/0002 adds (viewflow has none on these columns)."""
    return Task.objects.filter(flow_task__in=_human_nodes(), flow_task_type="HUMAN")


def _made_or_about(user: User) -> Q:
    """Processes of requests the user made, or that are about the user (their own offboarding)."""
    mine = Q()
    for model in REQUEST_MODELS:
        mine |= Q(process_id__in=model.objects.filter(requested_by=user).values("process_id"))
    return mine | Q(process_id__in=StaffOffboarding.objects.filter(staff__user=user).values("process_id"))


def _own_processes(user: User) -> Q:
    """Processes of requests the user made, that are about the user (their own offboarding), or of which the
    user decided an earlier stage (four eyes across stages: flows.rules.approved_earlier)."""
    mine = _made_or_about(user)
    mine |= Q(
        process_id__in=Task.objects.filter(owner=user, status=STATUS.DONE, flow_task_type="HUMAN").values("process_id")
    )
    return mine


def task_queue_for(user: User) -> QuerySet[Task]:
    """Unclaimed tasks the user may take: offered by their permission on the task's store (guardian), in
    their merchant; never a task of their own request (maker-checker)."""
    if not user.is_authenticated or not user.is_active:
        return Task.objects.none()
    tasks = _flow_tasks().filter(status=STATUS.NEW)
    if not member_selectors.is_platform_admin(user):
        merchant = member_selectors.merchant_of(user)
        if merchant is None:
            return Task.objects.none()
        # The stores where the user holds each review permission (guardian object permissions, two queries
        # for all of them), kept to their merchant's stores.
        held = member_selectors.store_ids_by_permission(user, sorted(REVIEW_PERMISSIONS))
        own = set(
            Store.objects.filter(merchant=merchant, pk__in=set().union(*held.values())).values_list("pk", flat=True)
        )
        offered = Q(pk__in=[])
        for perm, store_ids in sorted(held.items()):
            ids = [str(pk) for pk in sorted(store_ids & own)]
            if ids:
                offered |= Q(owner_permission=perm, owner_permission_obj_pk__in=ids)
        tasks = tasks.filter(offered)
    # The processes are read for the page only (prefetch): the queue's query stays on viewflow_task, in the
    # order of its index (flows/0002), and stops after the page.
    return tasks.exclude(_own_processes(user)).prefetch_related("process").order_by("created", "pk")


def inbox_for(user: User) -> QuerySet[Task]:
    """Tasks the user has claimed and not completed."""
    if not user.is_authenticated:
        return Task.objects.none()
    return (
        _flow_tasks().filter(owner=user, status=STATUS.ASSIGNED).prefetch_related("process").order_by("created", "pk")
    )


def archive_for(user: User) -> QuerySet[Task]:
    """Tasks the user completed (approved or rejected), newest first."""
    if not user.is_authenticated:
        return Task.objects.none()
    return _flow_tasks().filter(owner=user, status=STATUS.DONE).prefetch_related("process").order_by("-finished", "-pk")


def tasks_to_take_back(user: User) -> QuerySet[Task]:
    """Tasks someone else has claimed that the user may return to the queue (flows.rules.may_take_back): a
    merchant admin's, of their merchant's stores; a platform admin's, any. Never a task of a request they made or
    that is about them. Only to look at and release: deciding one stays the claimer's (task_for)."""
    if not user.is_authenticated or not user.is_active:
        return Task.objects.none()
    tasks = _flow_tasks().filter(status=STATUS.ASSIGNED).exclude(owner=user)
    if not member_selectors.is_platform_admin(user):
        merchant = member_selectors.merchant_of(user)
        if merchant is None or not member_permissions.is_merchant_admin_of(user, merchant):
            return Task.objects.none()
        stores = Store.objects.filter(merchant=merchant).values_list("pk", flat=True)
        tasks = tasks.filter(owner_permission_obj_pk__in=[str(pk) for pk in stores])
    return tasks.exclude(_made_or_about(user)).prefetch_related("process")


def task_for(user: User, pk: int) -> Task:
    """One task the user may open: offered to them (queue), claimed by them (inbox) or completed by them
    (archive). Task.DoesNotExist otherwise: another store's or merchant's task, or a task of the user's own
    request, is simply not there (never says whether it exists)."""
    for tasks in (inbox_for(user), task_queue_for(user), archive_for(user)):
        found = tasks.filter(pk=pk).first()
        if found is not None:
            return found
    raise Task.DoesNotExist


# What a list of requests shows besides the request itself (one query per kind of request, whatever the count).
_RELATED: dict[type[ApprovalRequest], tuple[str, ...]] = {
    RefundRequest: ("store", "requested_by__staff", "member", "grant__coupon_template", "grant__service"),
    MemberChangeRequest: ("store", "requested_by__staff", "member", "new_level", "transfer_to", "room", "card"),
    StaffOnboarding: ("store", "requested_by__staff"),
    StaffOffboarding: ("store", "requested_by__staff", "staff__user"),
    FreeValueRequest: ("requested_by__staff", *FREE_VALUE_RELATED),
}


def related_for(model: type[ApprovalRequest]) -> tuple[str, ...]:
    return _RELATED[model]


def requests_of_tasks(tasks: Iterable[Task]) -> dict[int, ApprovalRequest]:
    """task pk → the request its process drives, read in one query per kind of request (the tasks'
    processes are read with them: prefetch_related or select_related("process"))."""
    wanted: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for task in tasks:
        wanted[task.process.artifact_content_type_id].append((task.pk, task.process.artifact_object_id))
    found: dict[int, ApprovalRequest] = {}
    for content_type_id, pairs in wanted.items():
        model = ContentType.objects.get_for_id(content_type_id).model_class()
        rows = model.objects.select_related(*_RELATED[model]).in_bulk([pk for _task, pk in pairs])
        found.update({task_pk: rows[pk] for task_pk, pk in pairs if pk in rows})
    return found


def open_task_of(request: ApprovalRequest) -> Task | None:
    """The request's human task waiting for a decision (claimed or not), if any."""
    if request.process_id is None:
        return None
    return (
        Task.objects.filter(
            process_id=request.process_id, flow_task_type="HUMAN", status__in=(STATUS.NEW, STATUS.ASSIGNED)
        )
        .select_related("owner__staff")
        .order_by("-pk")
        .first()
    )


def refund_preview(request: RefundRequest):
    """What carrying out the refund request would do now, as the wallet's own dry run (wallet.quotes): the
    lines and amounts reversed, where the money goes back or how it is paid out. A refusal (the lines were
    refunded meanwhile, the stored value is gone…) is raised as the wallet's DomainError."""
    from wallet import quotes

    from .execution import wallet_reason

    common = {"store": request.store, "reason": wallet_reason(request), "actor": None}
    if request.kind == RefundRequest.Kind.LINES:
        lines = sorted(request.lines.all(), key=lambda line: line.pk)
        return quotes.quote_refund(member=request.member, lines=lines, **common)
    if request.kind == RefundRequest.Kind.STORED_VALUE:
        return quotes.quote_cash_refund_stored_value(member=request.member, payment_method=request.payment_method,
                                                     **common)  # fmt: skip
    return quotes.quote_cash_refund_grant(grant=request.grant, payment_method=request.payment_method, **common)


def free_value_preview(request: FreeValueRequest, actor=None):
    """What carrying out the free value request would give now, as the wallet's own dry run with the limit
    lifted as the approval will lift it (wallet.quotes): paid, credited, given, and the free value. A refusal
    (the member frozen meanwhile, the template withdrawn…) is raised as the wallet's DomainError."""
    from .execution import free_value_quote

    return free_value_quote(request, actor=actor, lift=True)


def open_free_value_request_for(member, requested_by, form_token: str):
    """The request a portal form (its token) already made, if any: a form posted twice finds it."""
    if not form_token:
        return None
    return FreeValueRequest.objects.filter(member=member, requested_by=requested_by, form_token=form_token).first()


def open_refund_requests_of_lines(member, lines: Iterable) -> dict[int, str]:
    """line pk → the number of the open refund request that holds it (those lines are not asked for again)."""
    ids = [line.pk for line in lines]
    if not ids:
        return {}
    through = RefundRequest.lines.through.objects.filter(
        consumptionline_id__in=ids, refundrequest__member=member, refundrequest__state__in=OPEN_STATES
    ).values_list("consumptionline_id", "refundrequest__number")
    return dict(through)


def open_refund_request_for(member, kind: str, *, lines: Iterable = (), grant=None, requested_by=None):
    """The open refund request of the member for exactly this content (the same lines, the stored value, the
    same lot) made by `requested_by`, if any: a form posted twice finds the request its first post made."""
    found = RefundRequest.objects.filter(member=member, kind=kind, state__in=OPEN_STATES, requested_by=requested_by)
    if kind == RefundRequest.Kind.GRANT:
        return found.filter(grant=grant).first()
    if kind == RefundRequest.Kind.STORED_VALUE:
        return found.first()
    wanted = {line.pk for line in lines}
    for request in found.prefetch_related("lines"):
        if {line.pk for line in request.lines.all()} == wanted:
            return request
    return None


def finance_threshold_fen(merchant) -> int:
    """Above this amount a refund request needs finance's approval too (the merchant's setting or the default)."""
    found = FlowSettings.objects.filter(merchant=merchant).values_list("refund_finance_threshold_fen", flat=True)
    return found[0] if found else DEFAULT_FINANCE_THRESHOLD_FEN


def recent_refunds_fen(member) -> int:
    """What the member's refund requests of the last 24 hours come to now, as a new request would count them
    toward the finance threshold (flows.rules.recent_refunds_fen; the request fixes its own figure under the
    member's lock when submitted)."""
    return rules.recent_refunds_fen(member, at=timezone.now())


def notifications_for(user: User, *, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notifications, newest first (`.message` renders each in the active language)."""
    if not user.is_authenticated:
        return Notification.objects.none()
    queryset = Notification.objects.filter(user=user)
    if unread_only:
        queryset = queryset.filter(read_at__isnull=True)
    return queryset.select_related("content_type")


def unread_count(user: User) -> int:
    return notifications_for(user, unread_only=True).count()
