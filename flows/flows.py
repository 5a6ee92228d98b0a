"""The viewflow processes that drive the requests (flows.models). One shape for every request:

    start (StartHandle, called by services.start_*)
      → review (View: a person approves or rejects; offered to holders of the store permission)
      → [refunds: finance_review (View) when the amount is above the merchant's threshold]
      (free value beyond the limits: review by the merchant admin, carried out after commit like refunds)
      → execution (Function: schedules the carrying out) → execute (Handle, run by services.execute_request)
      → done / failed (End);  rejected (End);  withdrawn: the process is cancelled (services.withdraw).
    Onboarding waits once more after execute: await_activation (Handle, run by services.activate_staff).

Gateways read the request's state afresh: the services make the decision (a transition of the request under
its row lock) and then complete the task, so the process always follows the request.

Task permissions are guardian object permissions on the request's Store (`.Permission(perm, obj=...)`), so the
viewflow queues offer a task only to that store's manager, finance or operators. Code paths do not check
them (StartHandle, task.activation()): the services check flows.rules themselves before touching a task.

Locking: `SELECT … FOR UPDATE` on the process row, waiting (not NOWAIT): the first lock of every change of a
request, the one viewflow's own task views take first too (docs/workflows.md, "Locks").
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from viewflow import this
from viewflow.workflow import flow, lock

from . import models
from .models import State, request_of_process
from .views import decision_view

process_lock = lock.SelectForUpdateLock(nowait=False)


def _store(process):
    """The object of a task's permission: the request's store (process may be the base Process)."""
    return request_of_process(process).store


def _state_is(*states: str):
    def condition(activation) -> bool:
        return request_of_process(activation.process).state in states

    return condition


def _attach(activation, request):
    """StartHandle body: the process carries the request as its artifact."""
    activation.process.artifact = request
    return activation.process


def _schedule(activation) -> None:
    """Carry out an approved request once the approval has committed (flows.tasks.execute_request, retried by
    the deadline job if the worker never got it). Requests carried out in the approval's own transaction
    (EXECUTE_ON_APPROVAL) need no schedule."""
    request = request_of_process(activation.process)
    if request.EXECUTE_ON_APPROVAL:
        return
    from .tasks import execute_request_task

    label, pk = request._meta.label_lower, request.pk
    transaction.on_commit(lambda: execute_request_task.delay(label, pk))


class _RequestSteps:
    """The two steps every request flow shares: the start attaches the submitted request to the process, and
    the execution step schedules the request's execution after the approval commits."""

    def start_process(self, activation, request):
        return _attach(activation, request)

    def schedule(self, activation):
        _schedule(activation)


class RefundFlow(_RequestSteps, flow.Flow):
    """Refund request

    Store manager review; finance review above the merchant's threshold; carried out by the wallet."""

    process_class = models.RefundProcess
    lock_impl = process_lock
    deadline_key = "refund"
    process_title = _("Refund request")
    process_summary_template = "{{ process.request.number }} {{ process.request.get_kind_display }}"

    start = flow.StartHandle(this.start_process).Next(this.review)
    review = (
        flow.View(decision_view)
        .Annotation(title=_("Store manager review"))
        .Permission("members.approve_store", obj=_store)
        .Next(this.after_review)
    )
    after_review = (
        flow.Switch()
        .Case(this.rejected, _state_is(State.REJECTED))
        .Case(this.finance_review, _state_is(State.FINANCE_REVIEW))
        .Default(this.execution)
    )
    finance_review = (
        flow.View(decision_view)
        .Annotation(title=_("Finance review"))
        .Permission("members.finance_store", obj=_store)
        .Next(this.after_finance)
    )
    after_finance = flow.If(_state_is(State.APPROVED)).Then(this.execution).Else(this.rejected)
    execution = flow.Function(this.schedule).Annotation(title=_("Schedule the refund")).Next(this.execute)
    execute = flow.Handle().Annotation(title=_("Carry out the refund")).Next(this.outcome)
    outcome = flow.If(_state_is(State.EXECUTED)).Then(this.done).Else(this.failed)
    done = flow.End().Annotation(title=_("Refunded"))
    failed = flow.End().Annotation(title=_("Failed"))
    rejected = flow.End().Annotation(title=_("Rejected"))


class MemberChangeFlow(_RequestSteps, flow.Flow):
    """Member change request

    Reviewed by another operator of the store; applied with a before/after record."""

    process_class = models.MemberChangeProcess
    lock_impl = process_lock
    deadline_key = "member_change"
    process_title = _("Member change request")
    process_summary_template = "{{ process.request.number }} {{ process.request.get_kind_display }}"

    start = flow.StartHandle(this.start_process).Next(this.review)
    review = (
        flow.View(decision_view)
        .Annotation(title=_("Member change review"))
        .Permission("members.operate_store", obj=_store)
        .Next(this.after_review)
    )
    after_review = flow.If(_state_is(State.APPROVED)).Then(this.execution).Else(this.rejected)
    execution = flow.Function(this.schedule).Annotation(title=_("Apply the change")).Next(this.execute)
    execute = flow.Handle().Annotation(title=_("Apply the change")).Next(this.outcome)
    outcome = flow.If(_state_is(State.EXECUTED)).Then(this.done).Else(this.failed)
    done = flow.End().Annotation(title=_("Applied"))
    failed = flow.End().Annotation(title=_("Failed"))
    rejected = flow.End().Annotation(title=_("Rejected"))


class StaffOnboardingFlow(_RequestSteps, flow.Flow):
    """Staff onboarding

    Proposed by the merchant admin; the store manager approves; the account is created with store-scoped
    permissions and a one-time activation code; active once the clerk activates it."""

    process_class = models.StaffOnboardingProcess
    lock_impl = process_lock
    deadline_key = "onboarding"
    process_title = _("Staff onboarding")
    process_summary_template = "{{ process.request.number }} {{ process.request.name }}"

    start = flow.StartHandle(this.start_process).Next(this.review)
    review = (
        flow.View(decision_view)
        .Annotation(title=_("Manager approval"))
        .Permission("members.approve_store", obj=_store)
        .Next(this.after_review)
    )
    after_review = flow.If(_state_is(State.APPROVED)).Then(this.execution).Else(this.rejected)
    execution = flow.Function(this.schedule).Annotation(title=_("Create the account")).Next(this.execute)
    execute = flow.Handle().Annotation(title=_("Create the account")).Next(this.outcome)
    outcome = flow.If(_state_is(State.AWAITING_ACTIVATION)).Then(this.await_activation).Else(this.failed)
    await_activation = flow.Handle().Annotation(title=_("Activation by the clerk")).Next(this.done)
    done = flow.End().Annotation(title=_("Active"))
    failed = flow.End().Annotation(title=_("Failed"))
    rejected = flow.End().Annotation(title=_("Rejected"))


class StaffOffboardingFlow(_RequestSteps, flow.Flow):
    """Staff offboarding

    Approved by the store manager; login, sessions, permissions and claimed tasks go at once."""

    process_class = models.StaffOffboardingProcess
    lock_impl = process_lock
    deadline_key = "offboarding"
    process_title = _("Staff offboarding")
    process_summary_template = "{{ process.request.number }} {{ process.request.staff.name }}"

    start = flow.StartHandle(this.start_process).Next(this.review)
    review = (
        flow.View(decision_view)
        .Annotation(title=_("Offboarding approval"))
        .Permission("members.approve_store", obj=_store)
        .Next(this.after_review)
    )
    after_review = flow.If(_state_is(State.APPROVED)).Then(this.execution).Else(this.rejected)
    execution = flow.Function(this.schedule).Annotation(title=_("Offboard")).Next(this.execute)
    execute = flow.Handle().Annotation(title=_("Offboard")).Next(this.outcome)
    outcome = flow.If(_state_is(State.EXECUTED)).Then(this.done).Else(this.failed)
    done = flow.End().Annotation(title=_("Offboarded"))
    failed = flow.End().Annotation(title=_("Failed"))
    rejected = flow.End().Annotation(title=_("Rejected"))


class FreeValueFlow(_RequestSteps, flow.Flow):
    """Free value over the limit

    A merchant admin approves; the wallet gives the value with the limit lifted for this request only."""

    process_class = models.FreeValueProcess
    lock_impl = process_lock
    deadline_key = "free_value"
    process_title = _("Free value request")
    process_summary_template = "{{ process.request.number }} {{ process.request.get_kind_display }}"

    start = flow.StartHandle(this.start_process).Next(this.review)
    review = (
        flow.View(decision_view)
        .Annotation(title=_("Merchant admin approval"))
        .Permission("members.manage_store", obj=_store)
        .Next(this.after_review)
    )
    after_review = flow.If(_state_is(State.APPROVED)).Then(this.execution).Else(this.rejected)
    execution = flow.Function(this.schedule).Annotation(title=_("Schedule the free value")).Next(this.execute)
    execute = flow.Handle().Annotation(title=_("Give the free value")).Next(this.outcome)
    outcome = flow.If(_state_is(State.EXECUTED)).Then(this.done).Else(this.failed)
    done = flow.End().Annotation(title=_("Given"))
    failed = flow.End().Annotation(title=_("Failed"))
    rejected = flow.End().Annotation(title=_("Rejected"))


FLOW_OF: dict[type[models.ApprovalRequest], type[flow.Flow]] = {
    models.RefundRequest: RefundFlow,
    models.MemberChangeRequest: MemberChangeFlow,
    models.StaffOnboarding: StaffOnboardingFlow,
    models.StaffOffboarding: StaffOffboardingFlow,
    models.FreeValueRequest: FreeValueFlow,
}
FLOWS: tuple[type[flow.Flow], ...] = tuple(FLOW_OF.values())
