"""The decision view of the flows' human tasks, through viewflow's task URL (claimed first): it decides
through the services, so maker-checker and the store permission hold on this path too."""

import pytest
from django.contrib.auth.models import Permission
from viewflow.workflow.models import Task

from flows import services
from flows.models import State
from tests.flows_helpers import consume_lines, fresh, make_office

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.flows_test_urls")]


def _task_url(request, task, action):
    return f"/refund/{request.process_id}/review/{task.pk}/{action}/"


def _setup():
    office = make_office()
    lines = consume_lines(office, 1_000)
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="退", lines=lines)  # fmt: skip
    view = Permission.objects.get(codename="view_refundprocess")
    for user in (office.manager, office.other_manager, office.operator):
        user.user_permissions.add(view)
    return office, request, Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN")


def test_approve_through_the_task_page(client):
    office, request, task = _setup()
    services.claim(request, actor=office.manager)
    client.force_login(office.manager)
    assert client.get(_task_url(request, task, "execute")).status_code == 200
    response = client.post(_task_url(request, task, "execute"), {"decision": "approve", "reason": "同意"})
    assert response.status_code == 302, response.content[:2000]
    assert fresh(request).state in (State.APPROVED, State.EXECUTED)


def test_reject_without_reason_shows_the_error(client):
    office, request, task = _setup()
    services.claim(request, actor=office.manager)
    client.force_login(office.manager)
    response = client.post(_task_url(request, task, "execute"), {"decision": "reject", "reason": ""})
    assert response.status_code == 200
    assert fresh(request).state == State.SUBMITTED


def test_another_stores_manager_cannot_claim_or_execute_by_url(client):
    office, request, task = _setup()
    client.force_login(office.other_manager)
    assert client.post(_task_url(request, task, "assign")).status_code == 403
    assert client.post(_task_url(request, task, "execute"), {"decision": "approve"}).status_code == 403
    assert fresh(request).state == State.SUBMITTED
    assert Task.objects.get(pk=task.pk).owner_id is None
