"""Deadlines of the human tasks (the Celery beat job flows.run_deadlines, every 15 minutes).

An open task past its merchant's `remind_after` gets one reminder for its assignees (whoever claimed it, or
else everyone the task is offered to); past `escalate_after`, one escalation to the merchant admins. Each is
recorded once per task (TaskReminder, unique per task and kind) with its notifications (unique per user and
event), so running the job twice, or twice at once, doubles nothing.

The job also re-schedules refunds and free value requests approved a while ago and still not carried out (their
Celery task lost in a crash): execute_request runs them once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from guardian.shortcuts import get_users_with_perms
from viewflow.workflow.models import Task

from members import roles

from . import engine, notifications, rules
from .flows import FLOWS
from .models import (
    DEFAULT_ESCALATE_AFTER,
    DEFAULT_REMIND_AFTER,
    REQUEST_MODELS,
    ApprovalRequest,
    Notification,
    State,
    TaskDeadline,
    TaskReminder,
    request_of_process,
)

User = get_user_model()

# An approved refund not carried out after this long is scheduled again (its Celery task was lost).
STUCK_AFTER = datetime.timedelta(minutes=10)


@dataclass
class DeadlineRun:
    reminders: int = 0
    escalations: int = 0
    retried: int = 0


def deadline_of(merchant_id: int, task_kind: str, cache: dict) -> tuple[datetime.timedelta, datetime.timedelta]:
    key = (merchant_id, task_kind)
    if key not in cache:
        row = TaskDeadline.objects.filter(merchant_id=merchant_id, task=task_kind).first()
        cache[key] = (row.remind_after, row.escalate_after) if row else (DEFAULT_REMIND_AFTER, DEFAULT_ESCALATE_AFTER)
    return cache[key]


def assignees(task: Task, request: ApprovalRequest) -> list:
    """Who should act on the task: whoever claimed it, else every active user holding the task's permission
    on the request's store (never the requester, never a user of another merchant)."""
    if task.owner_id:
        return [task.owner] if task.owner.is_active else []
    codename = (task.owner_permission or "").split(".", 1)[-1]
    users = get_users_with_perms(
        request.store, with_superusers=False, with_group_users=True, only_with_perms_in=[codename]
    )
    return [u for u in users.filter(is_active=True).order_by("pk") if rules.may_review(request, u)]


def merchant_admins(merchant_id: int) -> list:
    return list(
        User.objects.filter(
            is_active=True, groups__name=roles.MERCHANT_ADMIN, staff__merchant_id=merchant_id, staff__is_active=True
        )
        .distinct()
        .order_by("pk")
    )


def _record(task: Task, kind: str, users: list, request: ApprovalRequest) -> bool:
    """Record the reminder or escalation of the task once; False if it was recorded before."""
    try:
        with transaction.atomic():
            TaskReminder.objects.create(task=task, kind=kind, recipients=len(users))
            notifications.notify(users, kind, request, event=f"task{task.pk}")
    except IntegrityError:
        return False  # recorded by an earlier (or a concurrent) run
    return True


def run_deadlines(now: datetime.datetime | None = None) -> DeadlineRun:
    now = now or timezone.now()
    result = DeadlineRun()
    cache: dict = {}
    escalated = TaskReminder.objects.filter(task=OuterRef("pk"), kind=TaskReminder.Kind.ESCALATION)
    reminded = TaskReminder.objects.filter(task=OuterRef("pk"), kind=TaskReminder.Kind.REMINDER)
    for flow_class in FLOWS:
        tasks = (
            Task.objects.filter(
                process__flow_class=flow_class, flow_task_type="HUMAN", status__in=engine.OPEN_TASK_STATUSES
            )
            .annotate(escalated=Exists(escalated), reminded=Exists(reminded))
            .filter(escalated=False)
            .select_related("process", "owner")
            .order_by("pk")
        )
        for task in tasks.iterator(chunk_size=500):
            request = request_of_process(task.process)
            kind = f"{flow_class.deadline_key}.{task.flow_task.name}"
            remind_after, escalate_after = deadline_of(request.merchant_id, kind, cache)
            age = now - task.created
            if age >= remind_after and not task.reminded:
                result.reminders += _record(task, Notification.Kind.REMINDER, assignees(task, request), request)
            if age >= escalate_after:
                result.escalations += _record(
                    task, Notification.Kind.ESCALATION, merchant_admins(request.merchant_id), request
                )
    result.retried = retry_stuck_executions(now)
    return result


def retry_stuck_executions(now: datetime.datetime) -> int:
    """Schedule again the requests carried out after the approval commits (refunds, free value) approved before
    STUCK_AFTER and still waiting to be carried out."""
    from .tasks import execute_request_task

    count = 0
    for model in REQUEST_MODELS:
        if model.EXECUTE_ON_APPROVAL:
            continue
        stuck = list(
            model.objects.filter(state=State.APPROVED, updated_at__lt=now - STUCK_AFTER).values_list("pk", flat=True)
        )
        for pk in stuck:
            execute_request_task.delay(model._meta.label_lower, pk)
        count += len(stuck)
    return count
