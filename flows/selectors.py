"""Reads of the flows, scoped to the user: requests they may see, the history of a request, their task
queue and inbox, and their notifications. The portal and the mini-program API use these."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from members import permissions as member_permissions
from members import selectors as member_selectors

from . import rules
from .flows import FLOWS
from .models import REQUEST_MODELS, ApprovalRequest, Notification, RequestTransition, StaffOffboarding

User = AbstractBaseUser | AnonymousUser


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


def _flow_tasks() -> QuerySet[Task]:
    return Task.objects.filter(process__flow_class__in=FLOWS, flow_task_type="HUMAN")


def _own_processes(user: User) -> Q:
    """Processes of requests the user made, or that are about the user (their own offboarding)."""
    mine = Q()
    for model in REQUEST_MODELS:
        mine |= Q(process_id__in=model.objects.filter(requested_by=user).values("process_id"))
    mine |= Q(process_id__in=StaffOffboarding.objects.filter(staff__user=user).values("process_id"))
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
        offered = Q(pk__in=[])
        for perm in {p for stages in rules.REVIEW_PERMISSION.values() for p in stages.values()}:
            stores = member_selectors.stores_where(user, perm).filter(merchant=merchant)
            ids = [str(pk) for pk in stores.values_list("pk", flat=True)]
            if ids:
                offered |= Q(owner_permission=perm, owner_permission_obj_pk__in=ids)
        tasks = tasks.filter(offered)
    return tasks.exclude(_own_processes(user)).select_related("process").order_by("created", "pk")


def inbox_for(user: User) -> QuerySet[Task]:
    """Tasks the user has claimed and not completed."""
    if not user.is_authenticated:
        return Task.objects.none()
    return _flow_tasks().filter(owner=user, status=STATUS.ASSIGNED).select_related("process").order_by("created")


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
