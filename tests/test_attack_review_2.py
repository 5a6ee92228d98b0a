"""The attacker's second review (issue 12), of the three changes since the first: free value beyond the limit
(FreeValueRequest, the wallet's `approved_by_request=`), the refund finance tier by the member's 24-hour sum,
and claimed tasks taken back by a merchant admin or returned when the claimer loses the role. Each hole found is
a test here; what held and was not covered by tests/test_flows_free_value.py, test_flows_claims.py,
test_flows_refunds.py or test_attack_review.py is kept as a compact table."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from core.errors import DomainError
from flows import rules, services
from flows import selectors as flow_selectors
from flows.models import FreeValueRequest, RefundRequest, State
from members import roles
from members import services as member_services
from members.models import Owner, Staff
from tests.factories import make_staff
from tests.flows_helpers import Office, consume_lines, fresh, make_office
from tests.test_ledger_postgres import race_outcomes
from wallet import services as wallet
from wallet.models import Recharge

pytestmark = pytest.mark.django_db

User = get_user_model()

BONUS = wallet.RechargeItem(kind="stored_value", amount_fen=10_000, bonus_fen=9_000)  # ¥90 on ¥100: limit 20 %


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def user(pk_or_user) -> object:
    return User.objects.get(pk=getattr(pk_or_user, "pk", pk_or_user))  # fresh: no permission cache


def task_of(request) -> Task:
    return Task.objects.filter(process_id=request.process_id, flow_task_type="HUMAN").order_by("-pk").first()


def _refund(office: Office, *amounts: int, actor=None) -> RefundRequest:
    return services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                         actor=actor or office.operator, reason="顾客投诉",
                                         lines=consume_lines(office, *amounts))  # fmt: skip


def bonus_request(office: Office, **kwargs) -> FreeValueRequest:
    return services.start_free_value_request(
        member=Owner.objects.get(pk=office.member.pk), store=office.store, kind="recharge", actor=office.operator,
        reason="老客户回馈", item=BONUS, payment_method="cash", **kwargs,
    )  # fmt: skip


# ---------------------------------------------------------------- holes found


def test_a_merchant_admin_role_revoked_at_a_store_takes_back_nothing_any_more():
    """Hole (medium, privilege kept after revocation): an approver of the other store was given the merchant
    admin's role there (members.services.grant_store_role, e.g. to cover a holiday), then had it revoked
    (revoke_store_roles). The store's permissions went, but the login kept the merchant admin's role group, which
    is what `is_merchant_admin_of` reads: they went on taking back tasks claimed at stores where they hold no role
    at all (and changing the merchant's workflow settings, e.g. the refund finance threshold). Fixed: revoking a
    store's roles drops the role groups the staff member no longer holds at any store (their primary role's
    stays)."""
    office = make_office()
    request = _refund(office, 500)
    services.claim(request, actor=office.manager)
    staff = Staff.objects.get(user=office.other_manager)
    member_services.grant_store_role(staff, office.other_store, roles.MERCHANT_ADMIN, actor=office.admin)
    member_services.revoke_store_roles(Staff.objects.get(pk=staff.pk), office.other_store, actor=office.admin,
                                       reason="代班结束")  # fmt: skip
    revoked = user(office.other_manager)
    assert set(revoked.groups.values_list("name", flat=True)) == {roles.APPROVER}
    assert not rules.may_take_back(fresh(request), revoked)
    assert not flow_selectors.tasks_to_take_back(revoked).exists()
    with pytest.raises(ValidationError) as exc:
        services.release(fresh(request), actor=revoked, reason="抢任务")
    assert codes(exc.value) == {"task_claimed"}
    assert (task_of(request).status, task_of(request).owner_id) == (STATUS.ASSIGNED, office.manager.pk)
    with pytest.raises(ValidationError) as exc:
        services.update_flow_settings(office.merchant, actor=revoked, refund_finance_threshold_fen=10**9)
    assert codes(exc.value) == {"settings_forbidden"}


ROLE_GROUPS_AFTER_REVOKE = {
    # (primary role, stores, extra role granted on the other store) → groups left after revoking the other store
    "approver given finance": (roles.APPROVER, roles.FINANCE, {roles.APPROVER}),
    "operator given approver": (roles.OPERATOR, roles.APPROVER, {roles.OPERATOR}),
    "finance given merchant admin": (roles.FINANCE, roles.MERCHANT_ADMIN, {roles.FINANCE}),
    "merchant admin (primary) keeps it": (roles.MERCHANT_ADMIN, roles.MERCHANT_ADMIN, {roles.MERCHANT_ADMIN}),
}


@pytest.mark.parametrize("case", ROLE_GROUPS_AFTER_REVOKE)
def test_a_role_granted_at_one_store_stays_while_held_at_another(case):
    """The group of a role goes with the last store where it is held, never the primary role's."""
    primary, extra, left = ROLE_GROUPS_AFTER_REVOKE[case]
    office = make_office()
    staff = make_staff(office.merchant, primary, stores=[office.store])
    third = type(office.other_store).objects.create(merchant=office.merchant, code="S3", name="第三店")
    for store in (office.other_store, third):
        member_services.grant_store_role(Staff.objects.get(pk=staff.pk), store, extra, actor=office.admin)
    member_services.revoke_store_roles(Staff.objects.get(pk=staff.pk), office.other_store, actor=office.admin)
    assert extra in set(user(staff.user).groups.values_list("name", flat=True))  # still held at the third store
    member_services.revoke_store_roles(Staff.objects.get(pk=staff.pk), third, actor=office.admin)
    assert set(user(staff.user).groups.values_list("name", flat=True)) == left


@pytest.mark.parametrize("trial", range(3))
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_approval_form_posted_twice_at_once_makes_one_request(trial):
    """Hole (low, a 500 on a double click): the form's token was looked up before the member's row lock, so two
    posts of the same approval form at once both found none, queued on the lock, and the second broke the
    (merchant, requester, token) unique constraint: an IntegrityError, a 500. Fixed: the token is read under the
    member's lock; the second post answers with the first request."""
    office = make_office()
    token = str(uuid.uuid4())
    outcome = race_outcomes(2, lambda i: bonus_request(office, form_token=token))
    assert FreeValueRequest.objects.count() == 1
    first = FreeValueRequest.objects.get()
    assert all(getattr(r, "pk", None) == first.pk for r in outcome.values()), outcome
    assert sum(bool(getattr(r, "posted_again", False)) for r in outcome.values()) == 1


# ---------------------------------------------------------------- what held, not covered elsewhere


def _decided_free_value(office: Office, how: str) -> FreeValueRequest:
    request = bonus_request(office)
    if how == "withdrawn":
        services.withdraw(request, actor=office.operator)
    elif how == "rejected":
        services.reject(request, actor=office.admin, reason="不符合")
    else:  # failed: the member frozen after the approval, so carrying it out is refused
        Owner.objects.filter(pk=office.member.pk).update(status=Owner.Status.FROZEN)
        services.approve(request, actor=office.admin)
        services.execute_request(fresh(request))
        Owner.objects.filter(pk=office.member.pk).update(status=Owner.Status.ACTIVE)
    return fresh(request)


@pytest.mark.parametrize("how", ["withdrawn", "rejected", "failed"])
def test_a_request_withdrawn_rejected_or_failed_lifts_nothing(how):
    """Exactly its content and key, named to the wallet by any caller: refused once it was not carried out."""
    office = make_office()
    request = _decided_free_value(office, how)
    assert request.state == {"withdrawn": State.WITHDRAWN, "rejected": State.REJECTED, "failed": State.FAILED}[how]
    with pytest.raises(DomainError) as exc:
        wallet.recharge(member=Owner.objects.get(pk=office.member.pk), store=office.store, payment_method="cash",
                        items=[BONUS], actor=None, idempotency_key=request.idempotency_key,
                        note=f"{request.number} {request.reason}", approved_by_request=request)  # fmt: skip
    assert exc.value.code == "free_value_approval_invalid"
    assert not Recharge.objects.exists()
