import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from viewflow.workflow.models import Task

from flows import selectors as flow_selectors
from flows.models import FreeValueRequest, RefundRequest
from ledger.models import Entry
from ledger.selectors import reconcile
from members.models import Owner, Staff
from wallet import services
from wallet.models import Recharge


@pytest.mark.django_db
def test_demo_data_loads_idempotently_with_real_balances():
    out = io.StringIO()
    call_command("load_demo_data", stdout=out)
    assert "demo-pass-2026" in out.getvalue()
    counts = (Owner.objects.count(), Staff.objects.count(), Recharge.objects.count(), Entry.objects.count(),
              RefundRequest.objects.count(), Task.objects.count())  # fmt: skip
    assert counts[0] == 50 and counts[1] == 5 and counts[2] > 20
    call_command("load_demo_data", stdout=io.StringIO())
    assert (Owner.objects.count(), Staff.objects.count(), Recharge.objects.count(), Entry.objects.count(),
            RefundRequest.objects.count(), Task.objects.count()) == counts  # fmt: skip
    assert reconcile().clean
    # Work waiting in the queues of the demo logins (make run): refunds under and over the finance threshold,
    # a cash refund waiting for finance, a member change, an onboarding; and a notification of a rejection.
    User = get_user_model()
    manager, finance, operator = (User.objects.get(username=name) for name in ("manager", "finance", "operator"))
    waiting = {request._meta.model_name for request in flow_selectors.requests_of_tasks(
        flow_selectors.task_queue_for(manager)).values()}  # fmt: skip
    assert waiting == {"refundrequest", "staffonboarding"}
    # The finance tier counts the member's other refunds of the last 24 hours: the demo's small refunds are of
    # members with no other recent refund, so they stay the store manager's alone.
    tiers = {r.needs_finance_review() for r in RefundRequest.objects.filter(state="submitted")}
    assert tiers == {False, True}
    small = [r for r in RefundRequest.objects.filter(state="submitted") if r.amount_fen <= 100_000]
    assert small and not any(r.needs_finance_review() for r in small), [(r.number, r.recent_refunds_fen) for r in small]
    assert flow_selectors.task_queue_for(finance).count() == 1
    assert flow_selectors.task_queue_for(operator).count() == 1  # the member change
    assert flow_selectors.unread_count(operator) >= 1
    # A recharge with a bonus over the merchant's limit waits for the merchant admin, and only for them.
    admin = User.objects.get(username="admin")
    assert FreeValueRequest.objects.filter(state="submitted").count() == 1
    offered = {request._meta.model_name for request in flow_selectors.requests_of_tasks(
        flow_selectors.task_queue_for(admin)).values()}  # fmt: skip
    assert "freevaluerequest" in offered
    # Some benefits are already past their date: the expiry job has work to show.
    assert services.expire_due_benefits().grants == 3
