"""Free value beyond the limit (issue 12): a manual bonus, a free voucher or coupon, or a points award above the
merchant's limit is refused by the wallet (free_value_over_limit); it becomes a request that a merchant admin
approves, and the wallet then gives it with the limit lifted for that request only, once.

End to end through the portal and viewflow with the Django test client (operator submits, admin approves, the
ledger and balances are checked), rejection, maker-checker, other stores' and merchants' staff by typed URLs,
executions repeated, re-checks at execution, and the limit still refused for every other caller."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import PROCESS, STATUS

from core.errors import DomainError
from flows import engine, execution, selectors, services
from flows.flows import FreeValueFlow
from flows.models import FreeValueRequest, Notification, RefundRequest, State, TaskKind, TaskReminder
from ledger import selectors as ledger_selectors
from ledger.models import Entry
from members import roles
from members.models import Owner
from tests.factories import make_staff
from tests.flows_helpers import fresh, history, make_office
from tests.test_ledger_postgres import race_outcomes
from wallet import services as wallet
from wallet.models import ActivityPointsRule, CouponTemplate, Grant, Recharge, Voucher, VoucherTemplate
from wallet.selectors import member_benefits
from wallet.services import limits

pytestmark = pytest.mark.django_db

BONUS = wallet.RechargeItem(kind="stored_value", amount_fen=10_000, bonus_fen=9_000)  # ¥90 on ¥100: limit 20 %


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def bonus_request(office, *, actor=None, item=BONUS, **kwargs) -> FreeValueRequest:
    return services.start_free_value_request(
        member=office.member, store=office.store, kind="recharge", actor=actor or office.operator,
        reason="老客户回馈", item=item, payment_method="cash", **kwargs,
    )  # fmt: skip


def the_task(request) -> Task:
    return Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN")


def record_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Recharge, Voucher, Grant, Entry)}


def points_of(member: Owner) -> int:
    return sum(held.balance for held in member_benefits(member).points)


def recharge_form(office, *, amount="100.00", bonus="90.00", token=None) -> dict:
    data = {"token": token or str(uuid.uuid4()), "store": office.store.pk, "payment_method": "cash",
            "kind": "stored_value", "amount": amount, "bonus": bonus, "quantity": "1", "note": "门店活动"}  # fmt: skip
    return {f"recharge-{key}": value for key, value in data.items()}


# ---------------------------------------------------------------- end to end through the portal


def test_an_over_limit_bonus_is_submitted_approved_by_the_admin_and_recharged_once(
    client, django_capture_on_commit_callbacks
):
    office = make_office()
    member = office.member
    url = reverse("members:recharge", kwargs={"pk": member.pk})
    data = recharge_form(office)

    # The operator's recharge is refused for the bonus only: the page offers to submit it for approval instead,
    # showing what it would record once approved.
    client.force_login(office.operator)
    page = client.post(url, data)
    assert page.status_code == 200 and page.templates[0].name == "portal/members/free_value.html"
    html = page.content.decode()
    assert 'id="approval-form"' in html and 'id="submit-approval"' in html
    quote = page.context["quote"]
    assert (quote.total_fen, quote.principal_fen, quote.bonus_fen, quote.extra["free_value_fen"]) == (
        10_000, 10_000, 9_000, 9_000
    )  # fmt: skip
    assert not Recharge.objects.exists()

    # A reason is required; then the request is made and the operator lands on its page.
    refused = client.post(url, {**data, "approval": quote.digest, "approval_reason": ""})
    assert refused.status_code == 200 and refused.context["errors"]
    assert not FreeValueRequest.objects.exists()
    done = client.post(url, {**data, "approval": quote.digest, "approval_reason": "老客户回馈，店长同意"})
    request = FreeValueRequest.objects.get()
    assert done.status_code == 302 and done["Location"] == f"/tasks/requests/free-value/{request.pk}/"
    assert (request.state, request.kind, request.value_fen, request.paid_fen) == (State.SUBMITTED, "recharge",
                                                                                 9_000, 10_000)  # fmt: skip
    assert request.number.startswith("zssq") and request.requested_by == office.operator
    # The same page posted again (a double click) answers with the same request.
    again = client.post(url, {**data, "approval": quote.digest, "approval_reason": "老客户回馈，店长同意"})
    assert again["Location"] == done["Location"] and FreeValueRequest.objects.count() == 1
    assert not Recharge.objects.exists() and member_benefits(member).principal_fen == 0
    assert client.get(done["Location"]).status_code == 200

    # The task is offered to the merchant admin (manage_store), not to the store manager.
    task = the_task(request)
    assert task.owner_permission == "members.manage_store" and task.owner_permission_obj_pk == str(office.store.pk)
    assert not selectors.task_queue_for(office.manager).filter(pk=task.pk).exists()
    client.force_login(office.admin)
    assert request.number in client.get(reverse("tasks:queue")).content.decode()
    task_page = client.get(reverse("tasks:task", kwargs={"pk": task.pk})).content.decode()
    assert 'id="free-value-effect"' in task_page and "¥90.00" in task_page and "¥100.00" in task_page
    assert client.post(reverse("tasks:claim", kwargs={"pk": task.pk})).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        decided = client.post(reverse("tasks:decide", kwargs={"pk": task.pk}), {"decision": "approve", "reason": ""})
    assert decided.status_code == 302

    request = fresh(request)
    assert request.state == State.EXECUTED
    assert [h[0] for h in history(request)] == ["submit", "approve", "mark_executed"]
    recharge = request.recharge
    assert recharge.idempotency_key == f"free-value-request:{request.pk}"
    assert (recharge.paid_total_fen, recharge.bonus_total_fen, recharge.store_id) == (10_000, 9_000, office.store.pk)
    benefits = member_benefits(member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (10_000, 9_000)
    assert Entry.objects.filter(operation_type="recharge").count() == 1
    assert ledger_selectors.reconcile(office.merchant).clean
    assert request.process.status == PROCESS.DONE
    assert sorted(Notification.objects.filter(user=office.operator).values_list("kind", flat=True)) == [
        "approved", "executed"
    ]  # fmt: skip
    client.force_login(office.operator)
    assert recharge.number in client.get(done["Location"]).content.decode()


def test_the_free_value_requests_are_listed_filtered_and_exported(client):
    office = make_office()
    request = bonus_request(office)
    client.force_login(office.admin)
    listed = client.get(reverse("tasks:free_value_requests"), {"kind": "recharge", "state": "submitted"})
    assert listed.status_code == 200 and request.number in listed.content.decode()
    assert request.number not in client.get(reverse("tasks:free_value_requests"), {"kind": "points"}).content.decode()
    exported = b"".join(client.get(reverse("tasks:free_value_requests"), {"export": "csv"}).streaming_content)
    text = exported.decode("utf-8-sig")
    assert request.number in text and "90.00" in text
    assert client.get(reverse("tasks:request", kwargs={"kind": "free-value", "pk": request.pk})).status_code == 200


# ---------------------------------------------------------------- rejection, maker-checker, scope


def test_a_rejection_needs_a_reason_and_changes_nothing():
    office = make_office()
    request = bonus_request(office)
    before = record_counts()
    with pytest.raises(ValidationError) as exc:
        services.reject(request, actor=office.admin, reason=" ")
    assert codes(exc.value) == {"reason_required"}
    assert fresh(request).state == State.SUBMITTED
    services.reject(request, actor=office.admin, reason="超出本月赠送预算")
    request = fresh(request)
    assert request.state == State.REJECTED and request.process.status == PROCESS.DONE
    assert history(request)[-1] == ("reject", "submitted", "rejected")
    assert record_counts() == before and member_benefits(office.member).principal_fen == 0
    note = Notification.objects.get(user=office.operator, kind="rejected")
    assert "超出本月赠送预算" in note.message
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.admin)
    assert codes(exc.value) == {"transition_not_allowed"}


def test_the_requester_who_is_also_merchant_admin_cannot_approve(client, django_capture_on_commit_callbacks):
    office = make_office()
    request = bonus_request(office, actor=office.admin)  # the admin operates the store too
    task = the_task(request)
    assert not selectors.task_queue_for(office.admin).filter(pk=task.pk).exists()
    for act in (services.claim, services.approve):
        with pytest.raises(ValidationError) as exc:
            act(request, actor=office.admin)
        assert codes(exc.value) == {"own_request"}
    client.force_login(office.admin)
    assert client.get(reverse("tasks:task", kwargs={"pk": task.pk})).status_code == 404
    assert client.post(reverse("tasks:decide", kwargs={"pk": task.pk}), {"decision": "approve"}).status_code == 404
    assert fresh(request).state == State.SUBMITTED and not Recharge.objects.exists()
    # Someone else with the permission approves it.
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.platform)
    assert fresh(request).state == State.EXECUTED


def test_other_stores_and_merchants_staff_cannot_see_open_or_claim_the_task(client):
    office = make_office()
    stranger = make_office()
    other_admin = make_staff(office.merchant, roles.MERCHANT_ADMIN, stores=[office.other_store]).user
    request = bonus_request(office)
    task = the_task(request)
    outsiders = {
        "other store's admin": other_admin, "store manager": office.manager, "finance": office.finance,
        "operator": office.operator2, "other merchant's admin": stranger.admin,
        "other merchant's manager": stranger.manager,
    }  # fmt: skip
    urls = [reverse("tasks:task", kwargs={"pk": task.pk})]
    for name, user in outsiders.items():
        assert not selectors.task_queue_for(user).filter(pk=task.pk).exists(), name
        assert not FreeValueFlow.review.can_assign(user, task), name
        for act in (services.claim, services.approve):
            with pytest.raises(ValidationError) as exc:
                act(request, actor=user)
            assert codes(exc.value) == {"review_forbidden"}, name
        client.force_login(user)
        assert client.get(urls[0]).status_code == 404, name
        assert client.post(reverse("tasks:claim", kwargs={"pk": task.pk})).status_code == 404, name
        assert client.post(reverse("tasks:decide", kwargs={"pk": task.pk}), {"decision": "approve"}).status_code == 404
        assert request.number not in client.get(reverse("tasks:queue")).content.decode(), name
    # Another merchant's staff do not even see the request.
    client.force_login(stranger.admin)
    assert client.get(reverse("tasks:request", kwargs={"kind": "free-value", "pk": request.pk})).status_code == 404
    assert request.number not in client.get(reverse("tasks:free_value_requests")).content.decode()
    assert (fresh(request).state, Task.objects.get(pk=task.pk).owner_id) == (State.SUBMITTED, None)


def test_withdrawal_only_by_the_requester_before_the_review():
    office = make_office()
    request = bonus_request(office)
    with pytest.raises(ValidationError) as exc:
        services.withdraw(request, actor=office.admin)
    assert codes(exc.value) == {"not_requester"}
    services.withdraw(request, actor=office.operator, reason="客户改主意")
    request = fresh(request)
    assert request.state == State.WITHDRAWN and request.process.status == PROCESS.CANCELED
    reviewed = bonus_request(office, form_token="second")
    services.reject(reviewed, actor=office.admin, reason="不同意")
    with pytest.raises(ValidationError) as exc:
        services.withdraw(reviewed, actor=office.operator)
    assert codes(exc.value) == {"transition_not_allowed"}


def test_a_submitted_request_is_frozen():
    office = make_office()
    request = fresh(bonus_request(office))
    request.bonus_fen = 99_000
    with pytest.raises(ValidationError) as exc:
        request.save()
    assert codes(exc.value) == {"request_frozen"}
    assert fresh(request).bonus_fen == 9_000


# ---------------------------------------------------------------- exactly once


def test_executing_twice_posts_once(django_capture_on_commit_callbacks):
    office = make_office()
    request = bonus_request(office)
    with django_capture_on_commit_callbacks(execute=False):  # the worker has not run it yet
        services.approve(request, actor=office.admin)
    assert fresh(request).state == State.APPROVED and not Recharge.objects.exists()
    services.execute_request(fresh(request))
    services.execute_request(fresh(request))  # a redelivered task, or the deadline job's retry
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert Recharge.objects.count() == 1 and Entry.objects.filter(operation_type="recharge").count() == 1
    assert member_benefits(office.member).bonus_fen == 9_000
    assert [h[0] for h in history(request)].count("mark_executed") == 1


def test_a_retry_after_the_wallet_committed_gets_that_recharge_back(django_capture_on_commit_callbacks):
    """The wallet's part committed but the request was never moved on (a crash between the two): the retry
    calls the wallet again under the request's key and is answered with that recharge; nothing more is posted."""
    office = make_office()
    request = bonus_request(office)
    with django_capture_on_commit_callbacks(execute=False):
        services.approve(request, actor=office.admin)
    with transaction.atomic(), engine.locked(fresh(request)) as locked:
        _name, call, kwargs = execution.free_value_call(locked)
        first = call(**kwargs)
    entries = Entry.objects.count()
    services.execute_request(fresh(request))
    request = fresh(request)
    assert request.state == State.EXECUTED and request.recharge_id == first.pk
    assert Recharge.objects.count() == 1 and Entry.objects.count() == entries
    assert member_benefits(office.member).bonus_fen == 9_000


def test_a_stuck_approval_is_scheduled_again_by_the_deadline_job(django_capture_on_commit_callbacks):
    office = make_office()
    request = bonus_request(office)
    with django_capture_on_commit_callbacks(execute=False):
        services.approve(request, actor=office.admin)
    later = timezone.now() + timezone.timedelta(minutes=11)
    assert services.run_deadlines(now=later).retried == 1  # the task runs eagerly in tests
    assert fresh(request).state == State.EXECUTED and Recharge.objects.count() == 1


# ---------------------------------------------------------------- the limit for everyone else


def test_the_limit_is_still_refused_without_an_approved_request(django_capture_on_commit_callbacks):
    office = make_office()
    member = office.member

    def direct(**kwargs):
        return wallet.recharge(member=member, store=office.store, payment_method="cash", items=[BONUS], actor=None,
                               **kwargs)  # fmt: skip

    before = record_counts()
    with pytest.raises(DomainError) as exc:
        direct()
    assert exc.value.code == "free_value_over_limit"
    request = bonus_request(office)
    key = request.idempotency_key
    # Named but only submitted: refused.
    with pytest.raises(DomainError) as exc:
        direct(idempotency_key=key, approved_by_request=request)
    assert exc.value.code == "free_value_approval_invalid"
    with django_capture_on_commit_callbacks(execute=False):
        services.approve(request, actor=office.admin)
    request = fresh(request)
    # Approved, but asked for other content, without the request's key, or for another member: refused.
    other = make_office()
    attempts = {
        "more bonus": lambda: wallet.recharge(
            member=member, store=office.store, payment_method="cash", actor=None, idempotency_key=key,
            approved_by_request=request, items=[wallet.RechargeItem(kind="stored_value", amount_fen=10_000,
                                                                    bonus_fen=9_500)],
        ),
        "no key": lambda: direct(approved_by_request=request, note=f"{request.number} {request.reason}"),
        "another member": lambda: wallet.recharge(
            member=other.member, store=other.store, payment_method="cash", items=[BONUS], actor=None,
            idempotency_key=key, approved_by_request=request,
        ),
        "not a free value request": lambda: direct(approved_by_request=RefundRequest(pk=request.pk)),
        "a voucher with it": lambda: wallet.issue_voucher(
            template=office.shop.voucher, member=member, actor=None, reason="x", source_ref=key,
            approved_by_request=request,
        ),
    }  # fmt: skip
    for name, attempt in attempts.items():
        with pytest.raises(DomainError) as exc:
            attempt()
        assert exc.value.code in ("free_value_approval_invalid", "other_merchant"), name
    assert record_counts() == before
    # The flows carry it out; afterwards the request lifts nothing more (a new key, other content).
    services.execute_request(request)
    with pytest.raises(DomainError) as exc:
        direct(idempotency_key="another-key", approved_by_request=fresh(request))
    assert exc.value.code == "free_value_approval_invalid"
    assert Recharge.objects.count() == 1


def test_the_lifted_preview_never_keeps_anything():
    office = make_office()
    before = record_counts()
    with limits.preview_lifted():
        wallet.recharge(member=office.member, store=office.store, payment_method="cash", items=[BONUS], actor=None)
        assert Recharge.objects.count() == 1  # given inside…
    assert record_counts() == before  # …and rolled back, whoever opened the block


def test_within_the_limit_or_refused_for_something_else_is_no_request():
    office = make_office()
    small = wallet.RechargeItem(kind="stored_value", amount_fen=10_000, bonus_fen=2_000)  # exactly 20 %
    with pytest.raises(ValidationError) as exc:
        bonus_request(office, item=small)
    assert codes(exc.value) == {"free_value_within_limit"}
    Owner.objects.filter(pk=office.member.pk).update(status=Owner.Status.FROZEN)
    with pytest.raises(ValidationError) as exc:
        bonus_request(office)
    assert codes(exc.value) == {"member_not_active"}
    with pytest.raises(ValidationError) as exc:
        services.start_free_value_request(member=office.member, store=office.store, kind="recharge",
                                          actor=office.finance, reason="x", item=BONUS, payment_method="cash")  # fmt: skip
    assert codes(exc.value) == {"store_forbidden"}
    assert not FreeValueRequest.objects.exists()


# ---------------------------------------------------------------- re-checked at execution


@pytest.mark.parametrize("change", ["member frozen", "voucher withdrawn", "voucher worth more"])
def test_what_changed_since_the_approval_fails_the_request_and_gives_nothing(change):
    office = make_office()
    template = VoucherTemplate.objects.create(merchant=office.merchant, name="周年庆券", amount_fen=60_000,
                                              price_fen=0, valid_days=30)  # fmt: skip
    request = services.start_free_value_request(member=office.member, store=office.store, kind="voucher",
                                                actor=office.operator, reason="周年庆", voucher_template=template)  # fmt: skip
    assert request.value_fen == 60_000
    before = record_counts()
    if change == "member frozen":
        Owner.objects.filter(pk=office.member.pk).update(status=Owner.Status.FROZEN)
        expected = "member_not_active"
    elif change == "voucher withdrawn":
        VoucherTemplate.objects.filter(pk=template.pk).update(is_active=False)
        expected = "template_inactive"
    else:
        VoucherTemplate.objects.filter(pk=template.pk).update(amount_fen=80_000)
        expected = "free_value_changed"
    services.approve(request, actor=office.admin)  # carried out eagerly when the approval commits: failed
    services.execute_request(fresh(request))
    request = fresh(request)
    assert (request.state, request.failure_code) == (State.FAILED, expected)
    assert record_counts() == before
    assert Notification.objects.filter(user=office.operator, kind="failed").exists()
    assert request.process.status == PROCESS.DONE


# ---------------------------------------------------------------- vouchers, coupons, points


def test_a_free_voucher_over_the_gift_limit(django_capture_on_commit_callbacks):
    office = make_office()
    template = VoucherTemplate.objects.create(merchant=office.merchant, name="周年庆券", amount_fen=60_000,
                                              price_fen=0, valid_days=30)  # fmt: skip
    with pytest.raises(DomainError) as exc:  # ¥600 > ¥500, the default free-gift limit
        wallet.issue_voucher(template=template, member=office.member, actor=None, reason="周年庆")
    assert exc.value.code == "free_value_over_limit"
    request = services.start_free_value_request(member=office.member, store=office.store, kind="voucher",
                                                actor=office.operator, reason="周年庆", voucher_template=template)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.admin)
    request = fresh(request)
    assert request.state == State.EXECUTED
    voucher = request.voucher
    assert (voucher.face_value_fen, voucher.source_ref) == (60_000, request.idempotency_key)
    assert [held.balance for held in member_benefits(office.member).vouchers] == [60_000]
    services.execute_request(request)
    assert Voucher.objects.filter(member=office.member).count() == 1
    assert ledger_selectors.reconcile(office.merchant).clean


def test_a_free_coupon_over_the_gift_limit(django_capture_on_commit_callbacks):
    office = make_office()
    template = CouponTemplate.objects.create(merchant=office.merchant, name="按摩3次卡", uses=3, price_fen=0,
                                             valid_days=30)  # fmt: skip
    template.services.add(office.shop.massage)  # 3 × ¥200 = ¥600 at list price
    request = services.start_free_value_request(member=office.member, store=office.store, kind="coupon",
                                                actor=office.operator, reason="投诉补偿", coupon_template=template)  # fmt: skip
    assert request.value_fen == 60_000
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.admin)
    request = fresh(request)
    assert request.state == State.EXECUTED and request.entry_id
    [grant] = Grant.objects.filter(member=office.member, coupon_template=template)
    assert grant.source_ref == request.idempotency_key
    assert [held.balance for held in member_benefits(office.member).grants if held.obj.pk == grant.pk] == [3]


def test_a_points_award_over_the_points_limit(django_capture_on_commit_callbacks):
    office = make_office()
    # A rule saved within the limit, and the limit lowered since: the award is refused now.
    rule = ActivityPointsRule.objects.create(merchant=office.merchant, code="anniv", name="周年庆积分", points=8_000)
    office.shop.merchant.wallet_settings.__class__.objects.filter(merchant=office.merchant).update(
        max_activity_points=5_000
    )
    with pytest.raises(DomainError) as exc:
        wallet.award_activity_points(member=office.member, rule=rule, occasion="2026", actor=None)
    assert exc.value.code == "free_value_over_limit"
    request = services.start_free_value_request(member=office.member, store=office.store, kind="points",
                                                actor=office.operator, reason="十周年", points_rule=rule)  # fmt: skip
    assert (request.points, request.value_fen) == (8_000, 0)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.admin)
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert points_of(office.member) == 8_000
    services.execute_request(request)
    assert points_of(office.member) == 8_000
    assert Entry.objects.get(pk=request.entry_id).operation_ref == f"anniv:{request.number}"


# ---------------------------------------------------------------- deadlines


def test_the_review_has_a_deadline_and_reminds_the_merchant_admin():
    office = make_office()
    assert TaskKind.FREE_VALUE_REVIEW == "free_value.review"
    services.set_task_deadline(office.merchant, "free_value.review", actor=office.admin,
                               remind_after=timezone.timedelta(hours=2), escalate_after=timezone.timedelta(hours=4))  # fmt: skip
    request = bonus_request(office)
    task = the_task(request)
    soon = timezone.now() + timezone.timedelta(hours=3)
    assert services.run_deadlines(now=soon).reminders == 1
    assert services.run_deadlines(now=soon).reminders == 0
    assert TaskReminder.objects.filter(task=task, kind="reminder").get().recipients >= 1
    assert Notification.objects.filter(user=office.admin, kind="reminder").count() == 1
    assert not Notification.objects.filter(user=office.operator, kind="reminder").exists()
    assert Task.objects.get(pk=task.pk).status == STATUS.NEW


# ---------------------------------------------------------------- PostgreSQL, real threads


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_admins_approving_at_once_give_once():
    """Two merchant admins approve the same request at the same instant (the execution runs eagerly right after
    the winner's commit, in its thread): one approval, one recharge, one ledger entry."""
    office = make_office()
    admin2 = make_staff(office.merchant, roles.MERCHANT_ADMIN, stores=[office.store]).user
    request = bonus_request(office)
    approvers = (office.admin, admin2)
    outcome = race_outcomes(
        2, lambda i: services.approve(FreeValueRequest.objects.get(pk=request.pk), actor=approvers[i])
    )
    refusals = [r for r in outcome.values() if isinstance(r, ValidationError)]
    assert len(refusals) == 1 and codes(refusals[0]) == {"transition_not_allowed"}
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert Recharge.objects.count() == 1 and Entry.objects.filter(operation_type="recharge").count() == 1
    assert [h[0] for h in history(request)].count("approve") == 1
    assert member_benefits(office.member).bonus_fen == 9_000
    assert ledger_selectors.reconcile(office.merchant).clean


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_executions_at_once_give_once():
    """The Celery task delivered several times, or the deadline job's retry racing the worker."""
    from unittest import mock

    office = make_office()
    request = bonus_request(office)
    with mock.patch("flows.tasks.execute_request_task.delay"):  # the worker has not run it yet
        services.approve(request, actor=office.admin)
    outcome = race_outcomes(4, lambda i: services.execute_request(FreeValueRequest.objects.get(pk=request.pk)))
    assert all(getattr(r, "state", None) == State.EXECUTED for r in outcome.values()), outcome
    assert Recharge.objects.count() == 1 and Entry.objects.filter(operation_type="recharge").count() == 1
    assert Notification.objects.filter(kind="executed").count() == 1
