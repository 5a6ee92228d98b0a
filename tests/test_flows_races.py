"""Races of the approval workflows on PostgreSQL with real threads: two approvers at the same instant, a
doubled execution, a withdrawal racing the review, two deadline jobs at once. Each happens once."""

import contextlib
import threading
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from viewflow.workflow.models import Task
from viewflow.workflow.status import PROCESS, STATUS

from flows import services
from flows.models import Notification, RefundRequest, State, TaskReminder
from ledger import selectors as ledger_selectors
from ledger.models import Entry
from members import services as member_services
from members.models import Staff
from tests.flows_helpers import consume_lines, fresh, make_office
from tests.test_ledger_postgres import race_outcomes
from wallet.models import ConsumptionLine, EntitlementRefund

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def _request(office, *amounts):
    lines = consume_lines(office, *amounts)
    return services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                         actor=office.operator, reason="退", lines=lines)  # fmt: skip


@pytest.mark.parametrize("trial", range(3))
def test_two_approvals_at_once_refund_once(trial):
    """Both store managers approve the same refund at the same instant (the execution runs right after the
    winner's commit, eagerly, in its thread): one approval, one execution, one reversal."""
    office = make_office()
    request = _request(office, 3_000, 2_000)
    approvers = (office.manager, office.manager2)
    outcome = race_outcomes(2, lambda i: services.approve(RefundRequest.objects.get(pk=request.pk), actor=approvers[i]))
    refusals = [r for r in outcome.values() if isinstance(r, ValidationError)]
    assert len(refusals) == 1 and codes(refusals[0]) == {"transition_not_allowed"}
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert EntitlementRefund.objects.count() == 1
    assert Entry.objects.filter(operation_type="consumption_refund").count() == 2  # one reversal per line
    assert set(ConsumptionLine.objects.values_list("status", flat=True)) == {"refunded"}
    assert [t.name for t in request_history(request)].count("approve") == 1
    assert request.process.status == PROCESS.DONE
    assert ledger_selectors.reconcile(office.merchant).clean


def request_history(request):
    from flows.selectors import history_of

    return list(history_of(request))


def test_two_executions_at_once_refund_once():
    """The Celery task delivered twice, or the deadline job's retry racing the worker."""
    office = make_office()
    request = _request(office, 3_000)
    with mock.patch("flows.tasks.execute_request_task.delay"):  # the worker has not run it yet
        services.approve(request, actor=office.manager)
    assert fresh(request).state == State.APPROVED
    outcome = race_outcomes(4, lambda i: services.execute_request(RefundRequest.objects.get(pk=request.pk)))
    assert all(getattr(r, "state", None) == State.EXECUTED for r in outcome.values()), outcome
    assert EntitlementRefund.objects.count() == 1
    assert Entry.objects.filter(operation_type="consumption_refund").count() == 1
    assert Notification.objects.filter(kind="executed").count() == 1


def test_withdrawal_racing_the_review():
    office = make_office()
    request = _request(office, 3_000)

    def act(i):
        fresh_request = RefundRequest.objects.get(pk=request.pk)
        if i == 0:
            return services.withdraw(fresh_request, actor=office.operator)
        return services.approve(fresh_request, actor=office.manager)

    outcome = race_outcomes(2, act)
    request = fresh(request)
    if request.state == State.WITHDRAWN:
        assert codes(outcome[1]) == {"transition_not_allowed"}
        assert request.process.status == PROCESS.CANCELED
        assert not EntitlementRefund.objects.exists()
    else:
        assert request.state == State.EXECUTED
        assert codes(outcome[0]) == {"transition_not_allowed"}
        assert EntitlementRefund.objects.count() == 1


def test_two_deadline_jobs_at_once_remind_once():
    import datetime

    from django.utils import timezone

    office = make_office()
    _request(office, 1_000)
    later = timezone.now() + datetime.timedelta(days=5)
    race_outcomes(2, lambda i: services.run_deadlines(later))
    assert TaskReminder.objects.count() == 2  # one reminder, one escalation
    task = Task.objects.get(flow_task_type="HUMAN")
    assert set(TaskReminder.objects.values_list("task_id", flat=True)) == {task.pk}
    per_user = Notification.objects.values_list("user_id", "kind")
    assert len(list(per_user)) == len(set(per_user))


@pytest.mark.parametrize("trial", range(3))
def test_two_split_refunds_submitted_at_once_count_each_other(trial):
    """¥1,800 of lines asked back as two ¥900 requests at the same instant (the threshold is ¥1,000): the member's
    other refunds of the last 24 hours are read under the member's row lock, so the second to lock sees the
    first, never both see none. Each thread also waits a moment after reading, for the other to read too: with
    the lock, the other is still waiting for it; without it, both would read nothing."""
    from flows import rules

    office = make_office()
    lines = consume_lines(office, 90_000, 90_000)
    both_read = threading.Barrier(2)
    real = rules.recent_refunds_fen

    def read_then_linger(member, *, at):
        found = real(member, at=at)
        # Broken (not reached by the other) when the member lock holds the other back.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=2)
        return found

    operators = (office.operator, office.operator2)
    with mock.patch("flows.rules.recent_refunds_fen", side_effect=read_then_linger):
        outcome = race_outcomes(2, lambda i: services.start_refund_request(
            member=office.member, store=office.store, kind="lines", actor=operators[i], reason="拆分",
            lines=[lines[i]]))  # fmt: skip
    assert not [r for r in outcome.values() if isinstance(r, ValidationError)]
    requests = sorted(RefundRequest.objects.all(), key=lambda r: r.recent_refunds_fen)
    assert [r.recent_refunds_fen for r in requests] == [0, 90_000]
    assert [r.needs_finance_review() for r in requests] == [False, True]
    with mock.patch("flows.tasks.execute_request_task.delay"):
        services.approve(requests[0], actor=office.manager)
        services.approve(requests[1], actor=office.manager2)
    assert fresh(requests[1]).state == State.FINANCE_REVIEW


@pytest.mark.parametrize("trial", range(3))
def test_losing_the_role_while_deciding_the_claimed_task(trial):
    """The manager approves the refund they claimed while the merchant admin revokes their store roles: either
    the approval came first (carried out, nothing returned), or the task went back to the queue first (the
    approval refused, the request still waiting) — never an approval after the task was returned, nor a task
    both decided and returned. A decision locks its task's row; the return is a conditional UPDATE of it."""
    office = make_office()
    request = _request(office, 3_000)
    services.claim(request, actor=office.manager)
    staff = Staff.objects.select_related("user", "merchant").get(user_id=office.manager.pk)

    def act(i):
        if i == 0:
            return member_services.revoke_store_roles(staff, office.store, actor=office.admin, reason="调岗")
        return services.approve(RefundRequest.objects.get(pk=request.pk), actor=office.manager)

    outcome = race_outcomes(2, act)
    request, task = (
        fresh(request),
        Task.objects.get(process_id=request.process_id, flow_task="flows/flows.RefundFlow.review"),
    )
    returned = [t.name for t in request_history(request)].count("release")
    if isinstance(outcome[1], ValidationError):
        assert (request.state, task.status, task.owner_id, returned) == (State.SUBMITTED, STATUS.NEW, None, 1)
        assert not EntitlementRefund.objects.exists()
    else:
        assert (request.state, task.status, task.owner_id, returned) == (State.EXECUTED, STATUS.DONE,
                                                                         office.manager.pk, 0)  # fmt: skip
    assert outcome[0] is None
