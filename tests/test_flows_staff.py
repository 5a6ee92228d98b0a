"""Staff onboarding (account, store permissions, one-time activation code) and offboarding (everything
revoked at once, claimed tasks back to the queue)."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from guardian.models import UserObjectPermission
from viewflow.workflow.models import Task
from viewflow.workflow.status import PROCESS, STATUS

from flows import execution, selectors, services
from flows.models import StaffOnboarding, State
from members import roles
from members.models import Staff
from tests.flows_helpers import consume_lines, fresh, history, make_office, staff_of

pytestmark = pytest.mark.django_db
User = get_user_model()


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def propose(office, **kwargs):
    fields = {"name": "小王", "mobile": "13700000001", "username": "xiaowang", "role": roles.CLERK}
    fields.update(kwargs)
    return services.start_staff_onboarding(merchant=office.merchant, store=office.store, actor=office.admin, **fields)


def approved_onboarding(office, **kwargs):
    request = propose(office, **kwargs)
    approved = services.approve(request, actor=office.manager)
    return approved, approved.activation_code


def test_onboarding_creates_the_account_and_a_hashed_code():
    office = make_office()
    request = propose(office)
    assert not User.objects.filter(username="xiaowang").exists()
    approved = services.approve(request, actor=office.manager)
    code = approved.activation_code
    request = fresh(request)
    assert request.state == State.AWAITING_ACTIVATION
    staff = request.staff
    assert (staff.role, list(staff.stores.all())) == (roles.CLERK, [office.store])
    assert staff.user.groups.filter(name=roles.CLERK).exists()
    held = UserObjectPermission.objects.filter(user=staff.user, permission__codename="redeem_store")
    assert list(held.values_list("object_pk", flat=True)) == [str(office.store.pk)]  # that store only
    assert not staff.user.is_active  # not until the clerk activates it (an inactive login has no permission)
    assert not staff.user.has_perm("members.redeem_store", office.store)
    # Only a keyed hash of the code is stored.
    assert code not in str(StaffOnboarding.objects.filter(pk=request.pk).values().get())
    assert request.activation_code_hash == execution.hash_activation_code(code) != code
    assert request.activation_expires_at > timezone.now()


def test_activation_is_single_use():
    office = make_office()
    request, code = approved_onboarding(office)
    staff = services.activate_staff(code.lower(), password="a-Strong-pass-42")
    user = User.objects.get(pk=staff.user_id)
    assert user.is_active and user.check_password("a-Strong-pass-42")
    assert user.has_perm("members.redeem_store", office.store)
    request = fresh(request)
    assert request.state == State.ACTIVE and request.activated_at is not None
    assert history(request)[-1] == ("activate", "awaiting_activation", "active")
    assert request.process.status == PROCESS.DONE
    with pytest.raises(ValidationError) as exc:
        services.activate_staff(code)
    assert codes(exc.value) == {"activation_code_used"}


def test_activation_code_expires_and_can_be_reissued():
    office = make_office()
    request, code = approved_onboarding(office)
    StaffOnboarding.objects.filter(pk=request.pk).update(activation_expires_at=timezone.now() - datetime.timedelta(1))
    with pytest.raises(ValidationError) as exc:
        services.activate_staff(code)
    assert codes(exc.value) == {"activation_code_expired"}
    assert not User.objects.get(username="xiaowang").is_active
    with pytest.raises(ValidationError) as exc:  # the manager may approve, not hand out codes
        services.reissue_activation_code(request, actor=office.manager)
    assert codes(exc.value) == {"store_forbidden"}
    new_code = services.reissue_activation_code(request, actor=office.admin)
    assert new_code != code
    with pytest.raises(ValidationError) as exc:  # the old code is gone
        services.activate_staff(code)
    assert codes(exc.value) == {"activation_code_invalid"}
    services.activate_staff(new_code)
    assert User.objects.get(username="xiaowang").is_active
    assert ("reissue_code", "awaiting_activation", "awaiting_activation") in history(request)


def test_wrong_codes_are_refused():
    office = make_office()
    approved_onboarding(office)
    for code in ("", "0000000000", "not a code"):
        with pytest.raises(ValidationError) as exc:
            services.activate_staff(code)
        assert codes(exc.value) == {"activation_code_invalid"}


def test_onboarding_rules():
    office = make_office()
    with pytest.raises(ValidationError) as exc:  # only the merchant admin (manage_store) proposes
        services.start_staff_onboarding(merchant=office.merchant, store=office.store, actor=office.manager,
                                        name="a", mobile="13700000002", username="a1", role=roles.CLERK)  # fmt: skip
    assert codes(exc.value) == {"store_forbidden"}
    with pytest.raises(ValidationError) as exc:  # never an admin role through a store manager's approval
        propose(office, role=roles.MERCHANT_ADMIN)
    assert codes(exc.value) == {"role_not_allowed"}
    request = propose(office)
    with pytest.raises(ValidationError) as exc:
        propose(office)
    assert codes(exc.value) == {"request_pending"}
    with pytest.raises(ValidationError) as exc:  # the manager of another store does not approve
        services.approve(request, actor=office.other_manager)
    assert codes(exc.value) == {"review_forbidden"}
    with pytest.raises(ValidationError) as exc:  # nor does the admin who proposed
        services.approve(request, actor=office.admin)
    assert codes(exc.value) == {"own_request"}


def _claimed_refund_task(office):
    """A refund request whose review task the manager has claimed."""
    lines = consume_lines(office, 1_000)
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="x", lines=lines)  # fmt: skip
    services.claim(request, actor=office.manager)
    task = Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN")
    assert (task.status, task.owner_id) == (STATUS.ASSIGNED, office.manager.pk)
    return request, task


def test_offboarding_revokes_everything_at_once(client):
    office = make_office()
    refund, task = _claimed_refund_task(office)
    leaver = office.manager
    client.force_login(leaver)
    other_session = Client()
    other_session.force_login(leaver)
    assert client.get("/dashboard/").status_code == 200
    request = services.start_staff_offboarding(staff=staff_of(leaver), actor=office.admin, reason="离职")
    with pytest.raises(ValidationError) as exc:  # nobody approves their own offboarding
        services.approve(request, actor=leaver)
    assert codes(exc.value) == {"own_offboarding"}
    services.approve(request, actor=office.manager2)
    assert fresh(request).state == State.EXECUTED
    leaver = User.objects.get(pk=leaver.pk)
    staff = staff_of(leaver)
    assert not staff.is_active and not leaver.is_active and not leaver.has_usable_password()
    assert not leaver.groups.filter(name__in=roles.ROLES).exists()
    assert not UserObjectPermission.objects.filter(user=leaver).exists()
    assert not leaver.has_perm("members.approve_store", office.store)
    # Their claimed task is back in the queue, for the remaining manager.
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.owner_id) == (STATUS.NEW, None)
    assert task in selectors.task_queue_for(office.manager2)
    # Their existing sessions can no longer load a page.
    for session in (client, other_session):
        response = session.get("/dashboard/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    # Nor act through the services.
    with pytest.raises(ValidationError) as exc:
        services.approve(refund, actor=leaver)
    assert codes(exc.value) == {"review_forbidden"}
    services.approve(refund, actor=office.manager2)


def test_offboarding_rules():
    office = make_office()
    target = staff_of(office.operator)
    with pytest.raises(ValidationError) as exc:  # a manager does not start an offboarding
        services.start_staff_offboarding(staff=target, actor=office.manager, reason="x")
    assert codes(exc.value) == {"store_forbidden"}
    request = services.start_staff_offboarding(staff=target, actor=office.admin, reason="离职")
    with pytest.raises(ValidationError) as exc:
        services.start_staff_offboarding(staff=target, actor=office.admin, reason="离职")
    assert codes(exc.value) == {"request_pending"}
    services.reject(request, actor=office.manager, reason="还要留用")
    assert Staff.objects.get(pk=target.pk).is_active
    assert User.objects.get(pk=office.operator.pk).is_active
