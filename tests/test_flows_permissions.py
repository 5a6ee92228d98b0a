"""Who sees and acts on which request: the store's object permissions (guardian) decide, within the merchant;
the requester never reviews; viewflow's own queue and assignment checks agree with the services' rule."""

import pytest
from django.core.exceptions import ValidationError
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from flows import selectors, services
from flows.flows import RefundFlow
from flows.models import RefundRequest, State
from tests.flows_helpers import consume_lines, fresh, make_office

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


@pytest.fixture
def world():
    office = make_office()
    stranger = make_office()  # another merchant
    lines = consume_lines(office, 1_000)
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="退", lines=lines)  # fmt: skip
    task = Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN")
    return office, stranger, request, task


# who → (sees the request, has the task in their queue, may approve it / the refusal's code)
MATRIX = [
    ("operator", True, False, "own_request"),  # the requester
    ("operator2", True, False, "review_forbidden"),  # an operator of the store does not approve refunds
    ("manager", True, True, None),
    ("finance", True, False, "review_forbidden"),  # not at this stage
    ("admin", True, True, None),  # the merchant admin holds approve_store on their stores
    ("other_manager", False, False, "review_forbidden"),  # approver of another store of the merchant
    ("platform", True, True, None),
    ("stranger.manager", False, False, "review_forbidden"),  # another merchant's staff
    ("stranger.admin", False, False, "review_forbidden"),
]


def _user(world, who):
    office, stranger, _, _ = world
    if who.startswith("stranger."):
        return getattr(stranger, who.split(".")[1])
    return getattr(office, who)


@pytest.mark.parametrize(("who", "sees", "queued", "refusal"), MATRIX, ids=[row[0] for row in MATRIX])
def test_permission_matrix(world, who, sees, queued, refusal):
    office, _, request, task = world
    user = _user(world, who)
    assert selectors.requests_visible_to(user, RefundRequest).filter(pk=request.pk).exists() is sees
    assert selectors.task_queue_for(user).filter(pk=task.pk).exists() is queued
    # viewflow's own queue (the guardian object permission on the store the task names) agrees.
    assert Task.objects.user_queue(user).filter(pk=task.pk, status=STATUS.NEW).exists() is queued
    if refusal is None:
        assert RefundFlow.review.can_assign(user, task)
        services.claim(request, actor=user)
        assert selectors.inbox_for(user).filter(pk=task.pk).exists()
        services.approve(request, actor=user)
        assert fresh(request).state == State.APPROVED
    else:
        for act in (services.claim, services.approve, services.reject):
            kwargs = {"reason": "x"} if act is not services.claim else {}
            with pytest.raises(ValidationError) as exc:
                act(request, actor=user, **kwargs)
            assert codes(exc.value) == {refusal}, act.__name__
        assert fresh(request).state == State.SUBMITTED
        assert Task.objects.get(pk=task.pk).owner_id is None


def test_a_claimed_task_is_the_claimers(world):
    office, _, request, task = world
    services.claim(request, actor=office.manager)
    assert Task.objects.get(pk=task.pk).status == STATUS.ASSIGNED
    assert not selectors.task_queue_for(office.manager2).filter(pk=task.pk).exists()
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.manager2)
    assert codes(exc.value) == {"task_claimed"}
    with pytest.raises(ValidationError) as exc:
        services.release(request, actor=office.manager2)
    assert codes(exc.value) == {"task_claimed"}
    services.release(request, actor=office.manager)
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.owner_id, task.assigned) == (STATUS.NEW, None, None)
    services.approve(request, actor=office.manager2)
    assert fresh(request).state == State.APPROVED


def test_the_finance_stage_is_offered_to_finance_only():
    office = make_office()
    lines = consume_lines(office, 200_000)
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="退", lines=lines)  # fmt: skip
    services.approve(request, actor=office.manager)
    task = Task.objects.get(process_id=request.process_id, flow_task=RefundFlow.finance_review)
    assert selectors.task_queue_for(office.finance).filter(pk=task.pk).exists()
    assert not selectors.task_queue_for(office.manager2).filter(pk=task.pk).exists()
    assert not Task.objects.user_queue(office.manager2).filter(pk=task.pk).exists()


def test_transition_permissions_are_the_rule():
    """django-fsm's permission on the transitions is the same rule (UIs list available actions with it)."""
    office = make_office()
    lines = consume_lines(office, 1_000)
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="退", lines=lines)  # fmt: skip
    request = fresh(request)
    names = {t.name for t in request.get_available_user_state_transitions(office.manager)}
    assert names == {"approve", "reject"}
    assert {t.name for t in request.get_available_user_state_transitions(office.operator)} == {"withdraw"}
    assert not list(request.get_available_user_state_transitions(office.other_manager))


# ---------------------------------------------------------------- free value beyond the limit: merchant admins only


@pytest.fixture
def free_value_world():
    from members import roles
    from tests.factories import make_staff
    from wallet import services as wallet

    office = make_office()
    stranger = make_office()
    office.other_admin = make_staff(office.merchant, roles.MERCHANT_ADMIN, stores=[office.other_store]).user
    request = services.start_free_value_request(
        member=office.member, store=office.store, kind="recharge", actor=office.operator, reason="回馈",
        item=wallet.RechargeItem(kind="stored_value", amount_fen=10_000, bonus_fen=9_000), payment_method="cash",
    )  # fmt: skip
    task = Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN")
    return office, stranger, request, task


# who → (sees the request, has the task in their queue, may approve it / the refusal's code)
FREE_VALUE_MATRIX = [
    ("operator", True, False, "own_request"),  # the requester
    ("operator2", True, False, "review_forbidden"),  # an operator of the store does not lift limits
    ("manager", True, False, "review_forbidden"),  # nor does the store manager (approve_store, not manage_store)
    ("finance", True, False, "review_forbidden"),
    ("admin", True, True, None),  # the merchant admin (manage_store on the store)
    ("other_admin", True, False, "review_forbidden"),  # a merchant admin of another store only: sees, never acts
    ("other_manager", False, False, "review_forbidden"),
    ("platform", True, True, None),
    ("stranger.admin", False, False, "review_forbidden"),  # another merchant's admin
    ("stranger.manager", False, False, "review_forbidden"),
]


@pytest.mark.parametrize(("who", "sees", "queued", "refusal"), FREE_VALUE_MATRIX, ids=[r[0] for r in FREE_VALUE_MATRIX])
def test_free_value_permission_matrix(free_value_world, who, sees, queued, refusal):
    from flows.flows import FreeValueFlow
    from flows.models import FreeValueRequest

    office, _, request, task = free_value_world
    user = _user(free_value_world, who)
    assert selectors.requests_visible_to(user, FreeValueRequest).filter(pk=request.pk).exists() is sees
    assert selectors.task_queue_for(user).filter(pk=task.pk).exists() is queued
    assert Task.objects.user_queue(user).filter(pk=task.pk, status=STATUS.NEW).exists() is queued
    if refusal is None:
        assert FreeValueFlow.review.can_assign(user, task)
        services.claim(request, actor=user)
        services.approve(request, actor=user)
        assert fresh(request).state == State.APPROVED
    else:
        for act in (services.claim, services.approve, services.reject):
            kwargs = {"reason": "x"} if act is not services.claim else {}
            with pytest.raises(ValidationError) as exc:
                act(request, actor=user, **kwargs)
            assert codes(exc.value) == {refusal}, act.__name__
        assert fresh(request).state == State.SUBMITTED
        assert Task.objects.get(pk=task.pk).owner_id is None
