"""The deadline job: reminders to the assignees, escalation to the merchant admin, each recorded once however
often it runs; refunds whose execution was lost are carried out by it."""

import datetime

import pytest
from django.utils import timezone

from flows import selectors, services
from flows.models import Notification, State, TaskKind, TaskReminder
from flows.tasks import run_deadlines_task
from tests.flows_helpers import consume_lines, fresh, make_office
from wallet.models import EntitlementRefund

pytestmark = pytest.mark.django_db
HOUR = datetime.timedelta(hours=1)


def refund_request(office, fen=1_000):
    lines = consume_lines(office, fen)
    return services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                         actor=office.operator, reason="退", lines=lines)  # fmt: skip


def kinds_of(user) -> list[str]:
    return sorted(Notification.objects.filter(user=user).values_list("kind", flat=True))


def test_reminder_then_escalation_each_once():
    office = make_office()
    services.set_task_deadline(office.merchant, TaskKind.REFUND_REVIEW, actor=office.admin, remind_after=HOUR,
                               escalate_after=3 * HOUR)  # fmt: skip
    refund_request(office)
    now = timezone.now()
    assert services.run_deadlines(now + HOUR / 2) == services.DeadlineRun(0, 0, 0)
    assert not Notification.objects.exists()

    run = services.run_deadlines(now + 2 * HOUR)
    assert (run.reminders, run.escalations) == (1, 0)
    # Everyone the task is offered to (the store's approvers, the merchant admin), never the requester.
    for user in (office.manager, office.manager2, office.admin):
        assert kinds_of(user) == ["reminder"]
    for user in (office.operator, office.other_manager, office.finance, office.platform):
        assert kinds_of(user) == []
    count = Notification.objects.count()
    assert services.run_deadlines(now + 2 * HOUR) == services.DeadlineRun(0, 0, 0)
    assert Notification.objects.count() == count

    run = services.run_deadlines(now + 4 * HOUR)
    assert (run.reminders, run.escalations) == (0, 1)
    assert kinds_of(office.admin) == ["escalation", "reminder"]
    assert kinds_of(office.manager) == ["reminder"]
    count = Notification.objects.count()
    for _ in range(3):
        assert services.run_deadlines(now + 5 * HOUR) == services.DeadlineRun(0, 0, 0)
    assert Notification.objects.count() == count
    assert TaskReminder.objects.count() == 2


def test_a_claimed_task_reminds_its_owner_only():
    office = make_office()
    request = refund_request(office)
    services.claim(request, actor=office.manager2)
    services.run_deadlines(timezone.now() + 25 * HOUR)  # the default: remind after 24 hours
    assert kinds_of(office.manager2) == ["reminder"]
    assert kinds_of(office.manager) == []
    message = Notification.objects.get(user=office.manager2).message
    assert request.number in message


def test_deadlines_are_per_merchant_and_task():
    office = make_office()
    other = make_office()
    services.set_task_deadline(office.merchant, TaskKind.REFUND_REVIEW, actor=office.admin, remind_after=HOUR,
                               escalate_after=2 * HOUR)  # fmt: skip
    refund_request(office)
    refund_request(other)
    services.run_deadlines(timezone.now() + 90 * datetime.timedelta(minutes=1))
    assert kinds_of(office.manager) == ["reminder"]
    assert kinds_of(other.manager) == []  # the default 24 hours


def test_done_tasks_are_not_reminded():
    office = make_office()
    request = refund_request(office)
    services.reject(request, actor=office.manager, reason="不行")
    services.run_deadlines(timezone.now() + 100 * HOUR)
    assert not TaskReminder.objects.exists()
    assert kinds_of(office.manager) == []


def test_the_beat_task_is_scheduled_and_runs():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["flows-run-deadlines"]["task"] == "flows.run_deadlines"
    assert run_deadlines_task.delay().get() == {"reminders": 0, "escalations": 0, "retried": 0}


def test_a_lost_execution_is_carried_out_by_the_job(django_capture_on_commit_callbacks):
    office = make_office()
    request = refund_request(office)
    with django_capture_on_commit_callbacks(execute=False):  # the worker never gets the task
        services.approve(request, actor=office.manager)
    assert fresh(request).state == State.APPROVED
    assert services.run_deadlines(timezone.now()).retried == 0  # not yet: it may still be on its way
    assert services.run_deadlines(timezone.now() + HOUR).retried == 1
    assert fresh(request).state == State.EXECUTED
    assert EntitlementRefund.objects.count() == 1
    assert services.run_deadlines(timezone.now() + 2 * HOUR).retried == 0


def test_notifications_selector_and_read():
    office = make_office()
    request = refund_request(office)
    services.reject(request, actor=office.manager, reason="不行")
    assert selectors.unread_count(office.operator) == 1
    assert selectors.unread_count(office.manager) == 0
    assert services.mark_notifications_read(office.manager) == 0  # never anyone else's
    assert services.mark_notifications_read(office.operator) == 1
    assert selectors.unread_count(office.operator) == 0
    assert selectors.notifications_for(office.operator).count() == 1
