"""Refund requests: the state machine, its history, threshold routing to finance, maker-checker, and
execution through the wallet exactly once (SQLite; the PostgreSQL races are in test_flows_races.py)."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from viewflow.workflow.models import Task
from viewflow.workflow.status import PROCESS, STATUS

from flows import services
from flows.flows import RefundFlow
from flows.models import Notification, RefundRequest, State
from ledger import selectors as ledger_selectors
from tests.flows_helpers import consume_lines, fresh, history, make_office
from tests.wallet_helpers import load_plan
from wallet import services as wallet
from wallet.models import CashRefund, ConsumptionLine, EntitlementRefund, Grant

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def lines_request(office, *amounts, actor=None):
    lines = consume_lines(office, *amounts)
    return services.start_refund_request(
        member=office.member, store=office.store, kind="lines", actor=actor or office.operator, reason="顾客不满意",
        lines=lines,
    )  # fmt: skip


def open_tasks(request):
    return list(
        Task.objects.filter(
            process_id=request.process_id, flow_task_type="HUMAN", status__in=[STATUS.NEW, STATUS.ASSIGNED]
        )
    )


def test_a_small_refund_goes_manager_then_wallet(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 10_000, 5_000)
    assert request.state == State.SUBMITTED and request.amount_fen == 15_000
    assert request.number.startswith("tksq")
    [task] = open_tasks(request)
    assert task.flow_task == RefundFlow.review
    assert task.owner_permission == "members.approve_store" and task.owner_permission_obj_pk == str(office.store.pk)

    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager, reason="同意")
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert history(request) == [
        ("submit", "", "submitted"),
        ("approve", "submitted", "approved"),
        ("mark_executed", "approved", "executed"),
    ]
    refund = request.entitlement_refund
    assert refund.idempotency_key == f"refund-request:{request.pk}" and refund.total_fen == 15_000
    assert set(ConsumptionLine.objects.filter(refund=refund).values_list("status", flat=True)) == {"refunded"}
    assert ledger_selectors.reconcile(office.merchant).clean
    assert request.process.status == PROCESS.DONE
    kinds = list(Notification.objects.filter(user=office.operator).values_list("kind", flat=True))
    assert sorted(kinds) == ["approved", "executed"]


def test_lines_may_come_as_a_queryset():
    office = make_office()
    consume_lines(office, 1_000, 2_000)
    request = services.start_refund_request(
        member=office.member, store=office.store, kind="lines", actor=office.operator, reason="退",
        lines=ConsumptionLine.objects.filter(consumption__member=office.member),
    )  # fmt: skip
    assert request.amount_fen == 3_000 and request.lines.count() == 2
    with pytest.raises(ValidationError) as exc:
        services.start_refund_request(member=office.member, store=office.store, kind="lines", actor=office.operator,
                                      reason="退", lines=ConsumptionLine.objects.none())  # fmt: skip
    assert codes(exc.value) == {"lines_required"}


def test_a_refund_above_the_threshold_also_needs_finance(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 100_001)  # ¥1,000.01 > ¥1,000.00
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    request = fresh(request)
    assert request.state == State.FINANCE_REVIEW
    assert not EntitlementRefund.objects.exists()
    [task] = open_tasks(request)
    assert task.flow_task == RefundFlow.finance_review and task.owner_permission == "members.finance_store"
    # The manager cannot approve the finance stage.
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.manager2)
    assert codes(exc.value) == {"review_forbidden"}
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.finance)
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert [h[2] for h in history(request)] == ["submitted", "finance_review", "approved", "executed"]


def test_exactly_the_threshold_needs_no_finance(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 100_000)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    assert fresh(request).state == State.EXECUTED


def test_the_threshold_is_per_merchant(django_capture_on_commit_callbacks):
    office = make_office()
    services.update_flow_settings(office.merchant, actor=office.admin, refund_finance_threshold_fen=5_000)
    request = lines_request(office, 5_001)
    services.approve(request, actor=office.manager)
    assert fresh(request).state == State.FINANCE_REVIEW


def test_reject_needs_a_reason_and_ends_the_process():
    office = make_office()
    request = lines_request(office, 1_000)
    with pytest.raises(ValidationError) as exc:
        services.reject(request, actor=office.manager, reason="  ")
    assert codes(exc.value) == {"reason_required"}
    assert fresh(request).state == State.SUBMITTED
    services.reject(request, actor=office.manager, reason="非本人消费")
    request = fresh(request)
    assert request.state == State.REJECTED
    assert history(request)[-1] == ("reject", "submitted", "rejected")
    assert request.process.status == PROCESS.DONE
    assert Notification.objects.get(user=office.operator).message.endswith("非本人消费")
    assert not EntitlementRefund.objects.exists()


def test_withdraw_only_by_the_requester_and_only_before_review(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 1_000)
    with pytest.raises(ValidationError) as exc:
        services.withdraw(request, actor=office.operator2)
    assert codes(exc.value) == {"not_requester"}
    services.withdraw(request, actor=office.operator, reason="录错了")
    request = fresh(request)
    assert request.state == State.WITHDRAWN
    assert request.process.status == PROCESS.CANCELED
    assert open_tasks(request) == []
    # A reviewed request can no longer be withdrawn.
    reviewed = lines_request(office, 100_001)
    services.approve(reviewed, actor=office.manager)
    with pytest.raises(ValidationError) as exc:
        services.withdraw(reviewed, actor=office.operator)
    assert codes(exc.value) == {"transition_not_allowed"}
    assert fresh(reviewed).state == State.FINANCE_REVIEW


@pytest.mark.parametrize("who", ["operator", "platform"])
def test_maker_checker_the_requester_never_reviews(who):
    """Whatever roles the requester holds: here the platform admin, who may review anything else."""
    office = make_office()
    requester = getattr(office, who)
    request = lines_request(office, 1_000, actor=requester)
    for decide in (services.approve, services.reject):
        with pytest.raises(ValidationError) as exc:
            decide(request, actor=requester, reason="自己批")
        assert codes(exc.value) == {"own_request"}
    assert fresh(request).state == State.SUBMITTED
    assert history(fresh(request)) == [("submit", "", "submitted")]
    # Someone else may.
    services.reject(request, actor=office.manager if who == "platform" else office.platform, reason="不同意")
    assert fresh(request).state == State.REJECTED


def test_illegal_transitions_change_nothing():
    office = make_office()
    request = lines_request(office, 1_000)
    services.reject(request, actor=office.manager, reason="不同意")
    for action in (services.approve, services.reject, services.withdraw):
        with pytest.raises(ValidationError) as exc:
            action(request, actor=office.manager2 if action is not services.withdraw else office.operator, reason="x")
        assert codes(exc.value) == {"transition_not_allowed"}
    assert fresh(request).state == State.REJECTED
    assert len(history(request)) == 2
    # Nor may the system mark a rejected request executed.
    assert services.execute_request(request).state == State.REJECTED


def test_the_state_field_cannot_be_set_directly():
    office = make_office()
    request = fresh(lines_request(office, 1_000))
    with pytest.raises(AttributeError):
        request.state = State.APPROVED
    assert fresh(request).state == State.SUBMITTED


def test_a_submitted_request_is_frozen():
    office = make_office()
    request = fresh(lines_request(office, 1_000))
    request.amount_fen = 1
    with pytest.raises(ValidationError) as exc:
        request.save()
    assert codes(exc.value) == {"request_frozen"}
    more = consume_lines(office, 2_000)
    with pytest.raises(ValidationError) as exc, transaction.atomic():
        fresh(request).lines.add(*more)
    assert codes(exc.value) == {"request_frozen"}
    assert fresh(request).amount_fen == 1_000 and fresh(request).lines.count() == 1


def test_execution_twice_refunds_once(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 3_000)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.approve(request, actor=office.manager)
    assert len(callbacks) == 1 and fresh(request).state == State.APPROVED
    services.execute_request(request)
    services.execute_request(request)
    callbacks[0]()  # the scheduled task arrives late
    assert EntitlementRefund.objects.count() == 1
    assert fresh(request).state == State.EXECUTED
    assert [h[0] for h in history(request)].count("mark_executed") == 1


def test_a_crash_while_executing_leaves_it_to_be_retried():
    """The process step failing after the wallet refunded rolls the refund back with it; the retry refunds."""
    office = make_office()
    request = lines_request(office, 3_000)
    services.approve(request, actor=office.manager)
    with mock.patch("flows.engine.run_handle", side_effect=RuntimeError("worker lost")), pytest.raises(RuntimeError):
        services.execute_request(request)
    assert fresh(request).state == State.APPROVED and not EntitlementRefund.objects.exists()
    services.execute_request(request)
    assert fresh(request).state == State.EXECUTED and EntitlementRefund.objects.count() == 1
    assert fresh(request).process.status == PROCESS.DONE


def test_a_retry_after_the_wallet_committed_posts_nothing_new():
    """A crash after the wallet's refund committed (as if on its own): the request's key answers the retry
    with the refund already made."""
    office = make_office()
    request = lines_request(office, 3_000)
    services.approve(request, actor=office.manager)
    request = fresh(request)
    from flows.execution import wallet_reason

    first = wallet.refund_consumption_lines(
        member=office.member, lines=list(request.lines.order_by("pk")), reason=wallet_reason(request), actor=None,
        store=office.store, idempotency_key=request.idempotency_key,
    )  # fmt: skip
    entries = ledger_selectors.entries_for(office.merchant, "consumption_refund", first.number).count()
    services.execute_request(request)
    assert fresh(request).entitlement_refund_id == first.pk
    assert EntitlementRefund.objects.count() == 1
    assert ledger_selectors.entries_for(office.merchant, "consumption_refund", first.number).count() == entries


def test_a_refund_the_wallet_refuses_fails_and_tells_the_requester(django_capture_on_commit_callbacks):
    office = make_office()
    request = lines_request(office, 3_000)
    # Meanwhile the line is refunded another way.
    line = request.lines.get()
    wallet.refund_consumption_lines(member=office.member, lines=[line], reason="直接退", actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    request = fresh(request)
    assert request.state == State.FAILED and request.failure_code == "line_already_refunded"
    assert request.process.status == PROCESS.DONE
    assert Notification.objects.filter(user=office.operator, kind="failed").exists()


def test_cash_refund_of_stored_value(django_capture_on_commit_callbacks):
    office = make_office()
    load_plan(office.shop)  # pay 1000 get 200
    request = services.start_refund_request(
        member=office.member, store=office.store, kind="stored_value", actor=office.operator, reason="退卡",
        payment_method="cash",
    )  # fmt: skip
    assert request.amount_fen == 100_000  # the principal: not above ¥1,000
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    refund = fresh(request).cash_refund
    assert refund.kind == CashRefund.Kind.STORED_VALUE and refund.paid_out_fen == 100_000
    assert refund.idempotency_key == f"refund-request:{request.pk}"
    assert ledger_selectors.reconcile(office.merchant).clean


def test_cash_refund_of_stored_value_that_grew_meanwhile_is_refused(django_capture_on_commit_callbacks):
    office = make_office()
    load_plan(office.shop)
    request = services.start_refund_request(
        member=office.member, store=office.store, kind="stored_value", actor=office.operator, reason="退卡",
        payment_method="cash",
    )  # fmt: skip
    load_plan(office.shop)  # another ¥1,000 after the request: not what was approved
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    request = fresh(request)
    assert request.state == State.FAILED and request.failure_code == "refund_amount_changed"
    assert not CashRefund.objects.exists()


def test_cash_refund_of_a_coupon(django_capture_on_commit_callbacks):
    office = make_office()
    wallet.recharge(member=office.member, store=office.store, payment_method="cash", actor=None,
                    items=[wallet.RechargeItem(kind="coupon", coupon_template=office.shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=office.member)
    request = services.start_refund_request(
        member=office.member, store=office.store, kind="grant", actor=office.operator, reason="不想要了",
        grant=grant, payment_method="wechat",
    )  # fmt: skip
    assert request.amount_fen == 20_000
    with pytest.raises(ValidationError) as exc:  # one open request per lot
        services.start_refund_request(member=office.member, store=office.store, kind="grant", actor=office.operator,
                                      reason="再来", grant=grant, payment_method="wechat")  # fmt: skip
    assert codes(exc.value) == {"request_pending"}
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(request, actor=office.manager)
    refund = fresh(request).cash_refund
    assert refund.kind == CashRefund.Kind.GRANT and refund.paid_out_fen == 20_000
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.REFUNDED


def test_refund_requests_are_scoped_to_the_merchant_and_store():
    office = make_office()
    other = make_office()
    lines = consume_lines(office, 1_000)
    # The operator of another merchant cannot ask for this member's refund at this store.
    with pytest.raises(ValidationError) as exc:
        services.start_refund_request(member=office.member, store=office.store, kind="lines", actor=other.operator,
                                      reason="x", lines=lines)  # fmt: skip
    assert codes(exc.value) == {"store_forbidden"}
    # Nor at their own store.
    with pytest.raises(ValidationError) as exc:
        services.start_refund_request(member=office.member, store=other.store, kind="lines", actor=other.operator,
                                      reason="x", lines=lines)  # fmt: skip
    assert codes(exc.value) == {"other_merchant"}
    request = services.start_refund_request(member=office.member, store=office.store, kind="lines",
                                            actor=office.operator, reason="x", lines=lines)  # fmt: skip
    for outsider in (office.other_manager, other.manager, other.admin, office.operator2):
        for decide in (services.approve, services.reject):
            with pytest.raises(ValidationError) as exc:
                decide(request, actor=outsider, reason="x")
            assert codes(exc.value) == {"review_forbidden"}, outsider
    assert fresh(request).state == State.SUBMITTED
    assert RefundRequest.objects.filter(state=State.SUBMITTED).count() == 1


# ---------------------------------------------------------------- the finance tier counts the last 24 hours
# A refund split into requests under the threshold still reaches finance: the threshold applies to a request's
# amount plus the member's other refund requests of the 24 hours before it that are pending, approved or
# carried out (flows.rules.recent_refunds_fen); rejected, withdrawn and failed ones paid nothing and do not count.


def _earlier(office, how: str) -> RefundRequest:
    request = lines_request(office, 120_000 if how == "finance_review" else 60_000)
    if how == "withdrawn":
        services.withdraw(request, actor=office.operator)
    elif how == "rejected":
        services.reject(request, actor=office.manager, reason="不符合")
    elif how in ("approved", "executed"):
        with mock.patch("flows.tasks.execute_request_task.delay"):  # approved: the worker has not run it yet
            services.approve(request, actor=office.manager)
        if how == "executed":
            services.execute_request(fresh(request))
    elif how == "failed":
        wallet.refund_consumption_lines(member=office.member, lines=list(request.lines.all()), reason="直接退",
                                        actor=None)  # fmt: skip
        services.approve(request, actor=office.manager)
        services.execute_request(fresh(request))
    elif how == "finance_review":
        services.approve(request, actor=office.manager)
    assert fresh(request).state == how
    return fresh(request)


@pytest.mark.parametrize(
    "how, counted",
    [("submitted", True), ("finance_review", True), ("approved", True), ("executed", True),
     ("rejected", False), ("withdrawn", False), ("failed", False)],
)  # fmt: skip
def test_the_members_other_refunds_of_24_hours_count_toward_the_threshold(how, counted):
    office = make_office()
    earlier = _earlier(office, how)
    request = lines_request(office, 50_000)  # ¥500 alone, ¥1,100 with a ¥600 earlier one (¥1,700 with ¥1,200)
    assert request.recent_refunds_fen == (earlier.amount_fen if counted else 0)
    assert request.needs_finance_review() is counted
    services.approve(request, actor=office.manager2)
    assert fresh(request).state in ((State.FINANCE_REVIEW,) if counted else (State.APPROVED, State.EXECUTED))


def test_refunds_older_than_24_hours_or_of_another_member_do_not_count():
    office = make_office()
    old = lines_request(office, 60_000)
    RefundRequest.objects.filter(pk=old.pk).update(
        requested_at=old.requested_at - datetime.timedelta(hours=24, seconds=1)
    )
    other = make_office()  # another merchant's member: nothing of theirs counts either
    lines_request(other, 90_000)
    request = lines_request(office, 50_000)
    assert (request.recent_refunds_fen, request.needs_finance_review()) == (0, False)
    # Within the window: counted, up to exactly the threshold without finance.
    RefundRequest.objects.filter(pk=old.pk).update(requested_at=old.requested_at - datetime.timedelta(hours=23))
    services.withdraw(request, actor=office.operator)
    exact = lines_request(office, 40_000)  # ¥600 + ¥400 = ¥1,000.00: exactly the threshold
    assert (exact.recent_refunds_fen, exact.needs_finance_review()) == (60_000 + 0, False)
    more = lines_request(office, 1)  # ¥1,000.01 with the ¥600 and ¥400 pending
    assert (more.recent_refunds_fen, more.needs_finance_review()) == (100_000, True)


def test_the_tier_is_fixed_at_submission_and_the_threshold_read_at_review():
    """What the member's other refunds came to is part of what was submitted (frozen); the merchant's
    threshold is the one in force when the store manager decides, as before."""
    office = make_office()
    first = lines_request(office, 60_000)
    second = lines_request(office, 50_000)
    services.withdraw(first, actor=office.operator)  # the second was submitted while it counted
    assert fresh(second).recent_refunds_fen == 60_000 and fresh(second).needs_finance_review()
    second = fresh(second)
    second.recent_refunds_fen = 0
    with pytest.raises(ValidationError) as exc:
        second.save()
    assert codes(exc.value) == {"request_frozen"}
    services.update_flow_settings(office.merchant, actor=office.admin, refund_finance_threshold_fen=200_000)
    services.approve(fresh(second), actor=office.manager)
    assert fresh(second).state in (State.APPROVED, State.EXECUTED)
