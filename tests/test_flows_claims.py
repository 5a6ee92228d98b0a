"""A claimed task never gets stuck (issue 12, the attack review's hole): a claimer who loses the store's review
permission (roles revoked, stores or role changed, not only offboarding) has their claimed tasks there returned
to the queue at once (members' `store_roles_revoked` signal, handled by the flows); and a merchant admin takes
any claimed task of their merchant back to the queue, with a reason, a history row, an audit record and a
notification to the claimer, through the services and the task page. Everyone else is refused, typed URLs
included."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from flows import selectors, services
from flows.models import Notification, RefundRequest, State
from members import roles
from members import services as member_services
from members.models import AuditEvent, Staff
from tests.factories import make_staff
from tests.flows_helpers import Office, consume_lines, fresh, history, make_office

pytestmark = pytest.mark.django_db

User = get_user_model()


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def task_of(request) -> Task:
    return Task.objects.filter(process_id=request.process_id, flow_task_type="HUMAN").order_by("-pk").first()


def _refund(office: Office, store=None, *, actor=None, fen: int = 5_000) -> RefundRequest:
    return services.start_refund_request(member=office.member, store=store or office.store, kind="lines",
                                         actor=actor or office.operator, reason="顾客投诉",
                                         lines=consume_lines(office, fen))  # fmt: skip


def _staff(user) -> Staff:
    return Staff.objects.select_related("user", "merchant").get(user_id=user.pk)


def _claimed(office: Office, user=None, fen: int = 5_000) -> tuple[RefundRequest, Task]:
    request = _refund(office, fen=fen)
    services.claim(request, actor=user or office.manager)
    task = task_of(request)
    assert (task.status, task.owner_id) == (STATUS.ASSIGNED, (user or office.manager).pk)
    return request, task


def _state(task: Task) -> tuple:
    task = Task.objects.get(pk=task.pk)
    return task.status, task.owner_id


# ---------------------------------------------------------------- the claimer loses the role


ROLE_LOSSES = {
    "store roles revoked": lambda o, s: member_services.revoke_store_roles(s, o.store, actor=o.admin, reason="调岗"),
    "stores changed": lambda o, s: member_services.set_staff_stores(s, [o.other_store], actor=o.admin, reason="调岗"),
    "role changed": lambda o, s: member_services.change_staff_role(s, roles.OPERATOR, actor=o.admin, reason="调岗"),
    "update_staff (admin form)": lambda o, s: member_services.update_staff(
        s, role=roles.FINANCE, actor=o.admin, reason="调岗"
    ),  # fmt: skip
    "deactivated": lambda o, s: member_services.deactivate_staff(s, actor=o.admin, reason="调岗"),
}


@pytest.mark.parametrize("how", ROLE_LOSSES)
def test_a_claimer_who_loses_the_review_permission_has_the_task_returned(how):
    office = make_office()
    request, task = _claimed(office)
    ROLE_LOSSES[how](office, _staff(office.manager))
    assert _state(task) == (STATUS.NEW, None)
    assert task.pk in set(selectors.task_queue_for(office.manager2).values_list("pk", flat=True))
    # The history says whose claim went back, and who changed the roles.
    [row] = [r for r in selectors.history_of(request) if r.name == "release"]
    assert (row.actor_id, row.source, row.target, row.reason) == (office.admin.pk, "submitted", "submitted", "调岗")
    assert row.before["claimed_by"] == office.manager.pk
    with pytest.raises(ValidationError):
        services.approve(fresh(request), actor=office.manager)
    services.approve(fresh(request), actor=office.manager2)  # the store's other manager takes it over
    assert fresh(request).state in (State.APPROVED, State.EXECUTED)


def test_only_the_tasks_out_of_reach_go_back():
    """Roles revoked at one store: the claims at their other store stay theirs; a role change that keeps the
    review permission (approver to merchant admin) returns nothing; nobody else's claims move."""
    office = make_office()
    both = make_staff(office.merchant, roles.APPROVER, stores=[office.store, office.other_store]).user
    here, here_task = _claimed(office, both)
    there = _refund(office, office.other_store, actor=office.admin, fen=5_001)
    services.claim(there, actor=both)
    _, others_task = _claimed(office, office.manager, fen=5_002)
    member_services.revoke_store_roles(_staff(both), office.store, actor=None)
    assert _state(here_task) == (STATUS.NEW, None)
    assert _state(task_of(there)) == (STATUS.ASSIGNED, both.pk)
    assert _state(others_task) == (STATUS.ASSIGNED, office.manager.pk)
    [row] = [r for r in selectors.history_of(here) if r.name == "release"]
    assert (row.actor_id, row.actor_label) == (None, "system")
    member_services.change_staff_role(_staff(office.manager), roles.MERCHANT_ADMIN, actor=None)
    assert _state(others_task) == (STATUS.ASSIGNED, office.manager.pk)


def test_a_finance_claim_goes_back_when_finance_is_revoked():
    office = make_office()
    request = _refund(office, fen=150_000)
    services.approve(request, actor=office.manager)
    services.claim(fresh(request), actor=office.finance)
    task = task_of(request)
    member_services.change_staff_role(_staff(office.finance), roles.APPROVER, actor=office.admin)
    assert _state(task) == (STATUS.NEW, None)
    assert fresh(request).state == State.FINANCE_REVIEW


# ---------------------------------------------------------------- the merchant admin takes a task back


def test_the_merchant_admin_takes_a_claimed_task_back_with_a_reason():
    office = make_office()
    request, task = _claimed(office)
    with pytest.raises(ValidationError) as exc:
        services.release(fresh(request), actor=office.admin)
    assert codes(exc.value) == {"reason_required"}
    assert _state(task) == (STATUS.ASSIGNED, office.manager.pk)
    services.release(fresh(request), actor=office.admin, reason="店长休假")
    assert _state(task) == (STATUS.NEW, None)
    assert fresh(request).state == State.SUBMITTED  # no transition: only the claim went
    assert history(request)[-1] == ("release", "submitted", "submitted")
    row = selectors.history_of(request).last()
    assert (row.actor_id, row.reason, row.before["claimed_by"]) == (office.admin.pk, "店长休假", office.manager.pk)
    audit = AuditEvent.objects.get(action="flows.task_taken_back")
    assert (audit.actor_id, audit.object_id, audit.reason) == (office.admin.pk, str(request.pk), "店长休假")
    note = Notification.objects.get(user=office.manager, kind="taken_back")
    assert "店长休假" in note.message and request.number in note.message
    # Back in the queue: the same manager or the other one claims and decides it.
    services.claim(fresh(request), actor=office.manager2)
    services.approve(fresh(request), actor=office.manager2)
    assert fresh(request).state in (State.APPROVED, State.EXECUTED)


def _other_merchant_admin(office: Office):
    return make_office().admin


TAKERS = {
    # who → refusal code (None: allowed)
    "merchant admin": (lambda o: o.admin, None),
    "platform admin": (lambda o: o.platform, None),
    "the store's other manager": (lambda o: o.manager2, "task_claimed"),
    "finance": (lambda o: o.finance, "task_claimed"),
    "operator (the requester)": (lambda o: o.operator, "own_request"),
    "another operator": (lambda o: o.operator2, "task_claimed"),
    "another store's manager": (lambda o: o.other_manager, "task_claimed"),
    "another merchant's admin": (_other_merchant_admin, "task_claimed"),
}


@pytest.mark.parametrize("who", TAKERS)
def test_who_may_take_a_claimed_task_back(who):
    office = make_office()
    request, task = _claimed(office)
    pick, refusal = TAKERS[who]
    user = pick(office)
    if refusal is None:
        services.release(fresh(request), actor=user, reason="重新分派")
        assert _state(task) == (STATUS.NEW, None)
        return
    with pytest.raises(ValidationError) as exc:
        services.release(fresh(request), actor=user, reason="重新分派")
    assert codes(exc.value) == {refusal}
    assert _state(task) == (STATUS.ASSIGNED, office.manager.pk)
    assert not Notification.objects.filter(kind="taken_back").exists()


def test_the_requester_never_takes_the_review_of_their_own_request_back():
    """A merchant admin who made the request does not steer its review (maker-checker)."""
    office = make_office()
    request = _refund(office, actor=office.admin)
    services.claim(request, actor=office.manager)
    with pytest.raises(ValidationError) as exc:
        services.release(fresh(request), actor=office.admin, reason="换人审")
    assert codes(exc.value) == {"own_request"}
    assert _state(task_of(request)) == (STATUS.ASSIGNED, office.manager.pk)
    assert not selectors.tasks_to_take_back(office.admin).exists()


# ---------------------------------------------------------------- through the pages


def login(client, user):
    client.force_login(User.objects.get(pk=user.pk))
    return client


def _url(name: str, task: Task) -> str:
    return reverse(f"tasks:{name}", kwargs={"pk": task.pk})


def test_the_merchant_admin_takes_a_task_back_on_its_page(client):
    office = make_office()
    request, task = _claimed(office)
    login(client, office.admin)
    # The request's page leads the admin to the task page, which offers taking it back (and nothing else).
    request_page = client.get(reverse("tasks:request", kwargs={"kind": "refund", "pk": request.pk})).content.decode()
    assert _url("task", task) in request_page
    page = client.get(_url("task", task))
    assert page.status_code == 200 and page.context["may_take_back"]
    body = page.content.decode()
    assert 'id="take-back-form"' in body and 'id="decision-form"' not in body and 'id="claim"' not in body
    # Deciding or claiming it by a typed URL is still not theirs.
    assert client.post(_url("decide", task), {"decision": "approve", "reason": "x"}).status_code == 404
    assert client.post(_url("claim", task)).status_code == 404
    # Without a reason: refused, still claimed.
    response = client.post(_url("release", task), {"reason": "  "})
    assert response.status_code == 302 and _state(task) == (STATUS.ASSIGNED, office.manager.pk)
    response = client.post(_url("release", task), {"reason": "店长休假"})
    assert response.status_code == 302
    assert response["Location"] == reverse("tasks:request", kwargs={"kind": "refund", "pk": request.pk})
    assert _state(task) == (STATUS.NEW, None)
    history_page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "店长休假" in history_page and 'data-action="release"' in history_page
    # The claimer reads why in their notifications.
    notes = login(client, office.manager).get(reverse("tasks:notifications")).content.decode()
    assert "店长休假" in notes and request.number in notes


TYPED_URL_USERS = {
    "the store's other manager": lambda o: o.manager2,
    "finance": lambda o: o.finance,
    "operator (the requester)": lambda o: o.operator,
    "another store's manager": lambda o: o.other_manager,
    "another merchant's admin": _other_merchant_admin,
}


@pytest.mark.parametrize("who", TYPED_URL_USERS)
def test_typed_urls_never_take_someone_elses_task(client, who):
    office = make_office()
    request, task = _claimed(office)
    login(client, TYPED_URL_USERS[who](office))
    assert client.get(_url("task", task)).status_code == 404
    assert client.post(_url("release", task), {"reason": "抢任务"}).status_code == 404
    assert client.post(_url("decide", task), {"decision": "approve", "reason": "x"}).status_code == 404
    assert _state(task) == (STATUS.ASSIGNED, office.manager.pk)
    assert fresh(request).state == State.SUBMITTED
    assert not Notification.objects.filter(kind="taken_back").exists()


def test_the_requesting_admin_sees_no_take_back_of_their_own_request(client):
    office = make_office()
    request = _refund(office, actor=office.admin)
    services.claim(request, actor=office.manager)
    task = task_of(request)
    login(client, office.admin)
    assert client.get(_url("task", task)).status_code == 404
    assert client.post(_url("release", task), {"reason": "换人审"}).status_code == 404
    assert _state(task) == (STATUS.ASSIGNED, office.manager.pk)
