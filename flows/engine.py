"""The glue between a request and its viewflow process: start it, lock it, find and complete its tasks,
cancel it. Only flows.services calls these, after checking flows.rules (viewflow's code paths check no
permission themselves).

Lock order (docs/workflows.md): the process row (the flow lock, as viewflow's task views take it), then the
request row, then its open task's row, then whatever carrying the request out locks (the wallet's member →
card → grants → VIP → vouchers → lines → balances; members' owner and staff rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from viewflow.workflow.exceptions import FlowLockFailed
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from core.errors import fail

from .flows import FLOW_OF
from .models import ApprovalRequest

R = TypeVar("R", bound=ApprovalRequest)

OPEN_TASK_STATUSES = (STATUS.NEW, STATUS.ASSIGNED)


def flow_of(request: ApprovalRequest):
    return FLOW_OF[type(request)]


def start_process(request: ApprovalRequest) -> None:
    """Start the request's process (StartHandle) and link it; its first human task is created."""
    process = flow_of(request).start.run(request=request)
    request.process = process
    request.save(update_fields=["process", "updated_at"])


@contextmanager
def locked(request: R) -> Iterator[R]:
    """The request re-read under its locks: its process row (waiting for it), then its own row. Use inside
    the service's transaction; the caller's instance is stale afterwards."""
    model = type(request)
    process_id = model.objects.filter(pk=request.pk).values_list("process_id", flat=True).first()
    try:
        with flow_of(request).lock(process_id):
            yield model.objects.select_for_update(of=("self",)).select_related("store__merchant").get(pk=request.pk)
    except FlowLockFailed:
        raise fail("request", "request_busy", _("The request is being changed by someone else; try again.")) from None


def open_human_task(request: ApprovalRequest) -> Task | None:
    """The request's open human task, its row locked (after the process and request rows): a claim returned
    to the queue meanwhile (return_tasks_of, services.return_tasks_out_of_reach: one conditional UPDATE each,
    without the process lock) is either seen returned, or waits for this decision and skips the done task."""
    return (
        Task.objects.filter(process_id=request.process_id, flow_task_type="HUMAN", status__in=OPEN_TASK_STATUSES)
        .select_for_update(of=("self",))
        .select_related("process", "owner")
        .order_by("-pk")
        .first()
    )


def open_task_of_node(request: ApprovalRequest, node_name: str) -> Task | None:
    node = getattr(flow_of(request), node_name)
    return Task.objects.filter(process_id=request.process_id, flow_task=node, status=STATUS.NEW).order_by("-pk").first()


def check_task_actor(task: Task, actor: AbstractBaseUser) -> None:
    """A task claimed by someone else is theirs to complete; an unclaimed one goes to whoever acts, if the
    node offers it to them (viewflow's own check: the task's permission on the store)."""
    if task.owner_id is not None and task.owner_id != actor.pk:
        raise fail(
            "task", "task_claimed", _("%(user)s has claimed this task; ask them to release it."), user=str(task.owner)
        )
    if task.owner_id is None and not task.flow_task.can_assign(actor, task):
        raise fail("task", "review_forbidden", _("This task is not offered to you."))


def complete_human_task(task: Task, actor: AbstractBaseUser) -> None:
    """Claim the task for `actor` if unclaimed, then complete it: the process moves on (gateways read the
    request's new state). The caller holds the flow lock and has checked the rules."""
    task = Task.objects.select_related("process").get(pk=task.pk)
    activation = task.flow_task.activation_class(task)
    if task.status == STATUS.NEW:
        activation.assign(actor)
        _save_status(task, assigned=True)
    activation.start(None)
    activation.execute()


def claim_task(task: Task, actor: AbstractBaseUser) -> None:
    task = Task.objects.select_related("process").get(pk=task.pk)
    activation = task.flow_task.activation_class(task)
    activation.assign(actor)
    _save_status(task, assigned=True)


def release_task(task: Task) -> None:
    task = Task.objects.select_related("process").get(pk=task.pk)
    activation = task.flow_task.activation_class(task)
    activation.unassign()
    _save_status(task, assigned=False)


def _save_status(task: Task, *, assigned: bool) -> None:
    # viewflow's assign/unassign save the owner before their transition sets the status: save both.
    task.assigned = timezone.now() if assigned else None
    task.save(update_fields=["owner", "status", "assigned"])


def run_handle(request: ApprovalRequest, node_name: str) -> bool:
    """Complete the waiting Handle task `node_name` of the request's process (False: none waiting)."""
    task = open_task_of_node(request, node_name)
    if task is None:
        return False
    getattr(flow_of(request), node_name).run(task)
    return True


def cancel_process(request: ApprovalRequest) -> None:
    process = flow_of(request).process_class.objects.get(pk=request.process_id)
    flow_of(request).instance.cancel(process)


def claimed_tasks_of(user: AbstractBaseUser) -> QuerySet[Task]:
    """The human tasks the user has claimed and not completed."""
    return Task.objects.filter(owner=user, status=STATUS.ASSIGNED, flow_task_type="HUMAN")


def return_tasks_of(user: AbstractBaseUser) -> int:
    """Every task the user has claimed goes back to its queue (offboarding). One UPDATE: a task the user is
    completing right now is either done first (then skipped) or returned."""
    return claimed_tasks_of(user).update(owner=None, status=STATUS.NEW, assigned=None)
