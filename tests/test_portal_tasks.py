"""The portal's approval pages (issue 12): task queues per role and store (two merchants, two stores each),
claim / release, approve / reject through the pages, maker-checker through the pages (a requester never sees
their own task, and a typed URL is refused), the refund page that now starts a request and moves no money,
the request forms, notifications, request lists, and queries that do not grow with the tasks."""

from __future__ import annotations

import ast
import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from flows import services as flow_services
from flows.models import MemberChangeRequest, Notification, RefundRequest, StaffOffboarding, StaffOnboarding, State
from ledger.models import Entry
from members import numbering, roles
from members.models import Store
from portal import approvals
from tests.factories import make_staff
from tests.flows_helpers import Office, fresh, make_office, wallet_service
from tests.portal_helpers import post_confirmed
from wallet import selectors as wallet_selectors
from wallet import services as wallet
from wallet.models import CashRefund, ConsumptionLine, EntitlementRefund, Grant

pytestmark = pytest.mark.django_db

User = get_user_model()


# ---------------------------------------------------------------- the world


@dataclass
class World:
    a: Office  # merchant A: store a.store (manager, operators, finance) and a.other_store (other_manager)
    b: Office  # merchant B, the same people of its own
    a_other_op: object  # operator at A's other store

    def requests(self) -> dict:
        return {}


_service_numbers = itertools.count()


def _lines(office: Office, store: Store, *amounts: int, member=None) -> list[ConsumptionLine]:
    """One consumption of the member at `store`, paid directly in cash, one line per amount (fen)."""
    items = [
        wallet.ConsumptionItem(service=wallet_service(office.shop, f"服务{fen}-{next(_service_numbers)}", fen),
                               direct_fen=fen, payment_method="cash")
        for fen in amounts
    ]  # fmt: skip
    consumption = wallet.consume(member=member or office.member, store=store, actor=None, items=items)
    return list(consumption.lines.order_by("line_no"))


def _refund(office: Office, store: Store, actor, *amounts: int) -> RefundRequest:
    return flow_services.start_refund_request(member=office.member, store=store, kind="lines", actor=actor,
                                              reason="顾客投诉", lines=_lines(office, store, *amounts))  # fmt: skip


@pytest.fixture
def world() -> World:
    a, b = make_office(), make_office()
    # B's request numbers start at 500 today: a number found on a page tells whose request it is.
    for key in ("tksq", "bgsq", "rzsq", "lzsq"):
        numbering.set_counter(b.merchant.pk, key, timezone.localdate(), 500)
    return World(a=a, b=b, a_other_op=make_staff(a.merchant, roles.OPERATOR, stores=[a.other_store]).user)


def login(client, user):
    client.force_login(User.objects.get(pk=user.pk))  # as stored (a factory's unsaved password would log it out)
    return client


def _numbers(response) -> set[str]:
    assert response.status_code == 200, response.status_code
    return {row["request"].number for row in response.context["rows"]}


def queue_of(client, user) -> set[str]:
    return _numbers(login(client, user).get(reverse("tasks:queue")))


def inbox_of(client, user) -> set[str]:
    return _numbers(login(client, user).get(reverse("tasks:index")))


def archive_of(client, user) -> set[str]:
    return _numbers(login(client, user).get(reverse("tasks:archive")))


def task_of(request) -> Task:
    return Task.objects.filter(process_id=request.process_id, flow_task_type="HUMAN").order_by("-pk").first()


def _url(name: str, task: Task) -> str:
    return reverse(f"tasks:{name}", kwargs={"pk": task.pk})


# ---------------------------------------------------------------- queues per role and store


def test_queues_per_role_store_and_merchant(client, world, django_capture_on_commit_callbacks):
    a, b = world.a, world.b
    r1 = _refund(a, a.store, a.operator, 500)  # A, store 1
    r2 = _refund(a, a.other_store, world.a_other_op, 700)  # A, store 2
    rb = _refund(b, b.store, b.operator, 900)  # B
    change = flow_services.start_member_change(member=a.member, store=a.store, kind="name", actor=a.operator,
                                               reason="改名", name="新名字")  # fmt: skip
    one, two, other, ch = r1.number, r2.number, rb.number, change.number

    assert queue_of(client, a.manager) == {one}  # approver of store 1 only
    assert queue_of(client, a.other_manager) == {two}
    assert queue_of(client, a.admin) == {one, two, ch}  # the merchant admin holds every permission on both
    assert queue_of(client, a.finance) == set()  # nothing at the finance stage yet
    assert queue_of(client, a.operator) == set()  # own member change left out; operators do not approve refunds
    assert queue_of(client, a.operator2) == {ch}  # another operator of the store reviews member changes
    assert queue_of(client, world.a_other_op) == set()  # the change was made at store 1
    assert queue_of(client, b.manager) == {other}  # another merchant: only its own
    assert queue_of(client, b.admin) == {other}
    assert {one, two, other, ch} <= queue_of(client, a.platform)
    for user in (a.manager, a.admin, b.manager):
        assert inbox_of(client, user) == set() and archive_of(client, user) == set()

    # Claim: from the queue into "my tasks"; nobody else's queue offers it any more.
    login(client, a.manager)
    response = client.post(_url("claim", task_of(r1)))
    assert response.status_code == 302 and response["Location"] == _url("task", task_of(r1))
    assert inbox_of(client, a.manager) == {one} and queue_of(client, a.manager) == set()
    assert one not in queue_of(client, a.manager2) and one not in queue_of(client, a.admin)
    # Release: back in the queue.
    assert login(client, a.manager).post(_url("release", task_of(r1))).status_code == 302
    assert inbox_of(client, a.manager) == set() and queue_of(client, a.manager) == {one}
    assert Task.objects.get(pk=task_of(r1).pk).owner_id is None

    # Claim and approve: the refund is carried out; the task moves to the archive.
    client.post(_url("claim", task_of(r1)))
    task = task_of(r1)
    assert login(client, a.manager).get(_url("task", task)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # the refund runs once the approval commits
        response = client.post(_url("decide", task), {"decision": "approve", "reason": "同意"})
    assert response.status_code == 302, response.context and response.context["form"].errors
    assert fresh(r1).state == State.EXECUTED
    assert all(line.status == ConsumptionLine.Status.REFUNDED for line in fresh(r1).lines.all())
    assert inbox_of(client, a.manager) == set() and archive_of(client, a.manager) == {one}
    assert archive_of(client, a.manager2) == set()  # the archive is the user's own decisions
    # The archived task still opens, read-only: no claim, no decision form.
    page = login(client, a.manager).get(_url("task", task)).content.decode()
    assert 'id="decision-form"' not in page and 'id="claim"' not in page and 'id="refund-record"' in page


def test_reject_needs_a_reason_and_tells_the_requester(client, world):
    a = world.a
    request = _refund(a, a.store, a.operator, 500)
    task = task_of(request)
    login(client, a.manager).post(_url("claim", task))
    response = client.post(_url("decide", task), {"decision": "reject", "reason": "  "})
    assert response.status_code == 200 and "form-errors" in response.content.decode()
    assert fresh(request).state == State.SUBMITTED and Task.objects.get(pk=task.pk).status == STATUS.ASSIGNED
    response = client.post(_url("decide", task), {"decision": "reject", "reason": "重复申请"})
    assert response.status_code == 302
    assert fresh(request).state == State.REJECTED
    assert all(line.status == ConsumptionLine.Status.NORMAL for line in fresh(request).lines.all())
    note = Notification.objects.get(user=a.operator, kind=Notification.Kind.REJECTED)
    assert "重复申请" in note.message


def test_finance_approves_a_refund_above_the_threshold_through_the_pages(
    client, world, django_capture_on_commit_callbacks
):
    a = world.a
    request = _refund(a, a.store, a.operator, 150_000)  # ¥1,500.00 > ¥1,000.00
    entries = Entry.objects.count()
    task = task_of(request)
    login(client, a.manager).post(_url("claim", task))
    assert client.post(_url("decide", task), {"decision": "approve"}).status_code == 302
    assert fresh(request).state == State.FINANCE_REVIEW and Entry.objects.count() == entries
    assert queue_of(client, a.finance) == {request.number}
    assert queue_of(client, a.manager) == set()  # the manager's stage is over
    finance_task = task_of(request)
    page = login(client, a.finance).get(_url("task", finance_task)).content.decode()
    assert "¥1,500.00" in page and 'id="quote-lines"' in page  # what will be reversed, in yuan with separators
    client.post(_url("claim", finance_task))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_url("decide", finance_task), {"decision": "approve"}).status_code == 302
    assert fresh(request).state == State.EXECUTED and Entry.objects.count() > entries
    assert EntitlementRefund.objects.get(member=a.member).total_fen == 150_000


def test_a_split_refund_says_why_finance_reviews_it(client, world, django_capture_on_commit_callbacks):
    """¥1,100 asked back as ¥600 and ¥500: the second request's task page says it comes to more than the
    threshold with the member's other refund of the last 24 hours; the manager's approval sends it to finance.
    The operator's confirmation page said what the member's other recent refunds came to."""
    a = world.a
    first = _refund(a, a.store, a.operator, 60_000)
    line = _lines(a, a.store, 50_000)[0]
    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": a.store.pk,
            "refund-lines": [line.pk], "refund-reason": "顾客投诉"}  # fmt: skip
    confirmation = login(client, a.operator).post(_refund_page(a.member), data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "该会员24小时内其他退款申请合计 ¥600.00" in confirmation.content.decode()
    post_confirmed(client, _refund_page(a.member), data)
    second = RefundRequest.objects.get(lines=line)
    assert (second.amount_fen, second.recent_refunds_fen) == (50_000, 60_000)
    login(client, a.manager)
    page = client.get(_url("task", task_of(second)), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "与该会员24小时内其他退款（¥600.00）合计 ¥1,100.00，超过财务审核线 ¥1,000.00。" in page
    english = client.get(_url("task", task_of(second))).content.decode()
    assert "Together with the member&#x27;s other refunds of the 24 hours before (¥600.00): ¥1,100.00, above" in english
    assert "24 hours" not in client.get(_url("task", task_of(first))).content.decode()  # the first counts none
    client.post(_url("claim", task_of(second)))
    assert client.post(_url("decide", task_of(second)), {"decision": "approve"}).status_code == 302
    assert fresh(second).state == State.FINANCE_REVIEW
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_url("claim", task_of(first)))
        client.post(_url("decide", task_of(first)), {"decision": "approve"})
    assert fresh(first).state == State.EXECUTED  # ¥600 alone: the store manager's


# ---------------------------------------------------------------- maker-checker and typed URLs


def test_the_requester_never_sees_nor_decides_their_own_task(client, world):
    a = world.a
    # The merchant admin holds approve_store on the store: still never the reviewer of their own refund.
    own = _refund(a, a.store, a.admin, 500)
    change = flow_services.start_member_change(member=a.member, store=a.store, kind="name", actor=a.operator,
                                               reason="改名", name="新名字")  # fmt: skip
    for user, request in ((a.admin, own), (a.operator, change)):
        task = task_of(request)
        assert request.number not in queue_of(client, user)
        login(client, user)
        assert client.get(_url("task", task)).status_code == 404
        assert client.post(_url("claim", task)).status_code == 404
        assert client.post(_url("decide", task), {"decision": "approve"}).status_code == 404
        assert fresh(request).state == State.SUBMITTED
        assert Task.objects.get(pk=task.pk).owner_id is None
        # Their own request's page is theirs to read (and withdraw).
        assert client.get(reverse("tasks:request", kwargs={"kind": "refund" if request is own else "member-change",
                                                           "pk": request.pk})).status_code == 200  # fmt: skip
    # Someone else claims the admin's refund; the admin still cannot decide it by URL.
    login(client, a.manager).post(_url("claim", task_of(own)))
    assert login(client, a.admin).post(_url("decide", task_of(own)), {"decision": "approve"}).status_code == 404
    assert fresh(own).state == State.SUBMITTED


@pytest.mark.parametrize("who", ["other_manager", "b.manager", "b.admin", "b.operator"])
def test_typed_urls_of_another_store_or_merchant_are_not_found(client, world, who):
    a, b = world.a, world.b
    request = _refund(a, a.store, a.operator, 500)
    task = task_of(request)
    user = {"other_manager": a.other_manager, "b.manager": b.manager, "b.admin": b.admin, "b.operator": b.operator}[who]
    login(client, user)
    assert client.get(_url("task", task)).status_code == 404
    assert client.post(_url("claim", task)).status_code == 404
    assert client.post(_url("release", task)).status_code == 404
    assert client.post(_url("decide", task), {"decision": "approve", "reason": "x"}).status_code == 404
    # The request's page too: another store's manager holds view_store on their own store only.
    assert client.get(reverse("tasks:request", kwargs={"kind": "refund", "pk": request.pk})).status_code == 404
    assert client.post(reverse("tasks:withdraw", kwargs={"kind": "refund", "pk": request.pk})).status_code == 404
    assert fresh(request).state == State.SUBMITTED and Task.objects.get(pk=task.pk).owner_id is None


def test_bad_urls_are_404_never_500(client, world):
    login(client, world.a.manager)
    for url in ("/tasks/999999999/", "/tasks/99999999999999999999/", "/tasks/requests/nothing/1/",
                "/tasks/requests/refund/99999999999999999999/", "/tasks/requests/nothing/"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.get(reverse("tasks:queue"), {"page": "x"}).status_code == 404


def test_clerks_and_strangers_have_no_approvals(client, world):
    clerk = world.a.shop.staff.user
    assert login(client, clerk).get(reverse("tasks:queue")).status_code == 403
    stranger = User.objects.create_user("stranger", password="pw-12345678")
    assert login(client, stranger).get(reverse("tasks:index")).status_code == 403
    client.logout()
    assert client.get(reverse("tasks:index")).status_code == 302  # to the login page


# ---------------------------------------------------------------- the refund page starts a request


def _refund_page(member) -> str:
    return reverse("members:refund", kwargs={"pk": member.pk})


def _money_state(office: Office) -> tuple:
    benefits = wallet_selectors.member_benefits(office.member)
    return (Entry.objects.count(), EntitlementRefund.objects.count(), CashRefund.objects.count(),
            benefits.principal_fen, benefits.bonus_fen,
            ConsumptionLine.objects.filter(status=ConsumptionLine.Status.REFUNDED).count())  # fmt: skip


def test_the_refund_page_submits_a_request_and_moves_no_money(client, world):
    a = world.a
    line = _lines(a, a.store, 1_234_560)[0]  # ¥12,345.60: finance approves too
    before = _money_state(a)
    login(client, a.operator)
    page = client.get(_refund_page(a.member), {"kind": "lines"}).content.decode()
    assert f'value="{line.pk}"' in page
    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": a.store.pk,
            "refund-lines": [line.pk], "refund-reason": "顾客投诉"}  # fmt: skip
    confirmation = client.post(_refund_page(a.member), data)
    body = confirmation.content.decode()
    assert 'id="request-note"' in body and "¥12,345.60" in body and _money_state(a) == before
    response = post_confirmed(client, _refund_page(a.member), data, follow=True)
    assert response.status_code == 200
    request = RefundRequest.objects.get(member=a.member)
    assert request.state == State.SUBMITTED and request.amount_fen == 1_234_560 and request.requested_by == a.operator
    assert request.needs_finance_review()
    assert request.number in response.content.decode()
    assert _money_state(a) == before, "the refund page moved money"
    # Posted again (the back button): answered with the first request.
    data["refund-token"] = str(uuid.uuid4())
    again = post_confirmed(client, _refund_page(a.member), data, follow=True)
    assert request.number in str(list(again.context["messages"])[0])
    # Another operator asking for the same line: refused while the request is open.
    page = login(client, a.operator2).get(_refund_page(a.member), {"kind": "lines"}).content.decode()
    assert request.number in page  # the line says which request holds it
    refused = post_confirmed(client, _refund_page(a.member), data)
    assert refused.status_code == 200 and "still open" in refused.content.decode()
    assert RefundRequest.objects.count() == 1 and _money_state(a) == before


def test_cash_refund_requests_from_the_page(client, world):
    a = world.a
    wallet.recharge(member=a.member, store=a.store, payment_method="cash", actor=None,
                    items=[wallet.RechargeItem(kind="stored_value", amount_fen=80_000, bonus_fen=5_000)])  # fmt: skip
    wallet.recharge(member=a.member, store=a.store, payment_method="wechat", actor=None,
                    items=[wallet.RechargeItem(kind="coupon", coupon_template=a.shop.car_wash_coupon)])  # fmt: skip
    grant = Grant.objects.get(member=a.member)
    before = _money_state(a)
    login(client, a.operator)
    common = {"refund-store": a.store.pk, "refund-reason": "退卡", "refund-payment_method": "wechat"}
    # Stored value: the confirmation shows the payout and the forfeited bonus.
    data = {**common, "refund-token": str(uuid.uuid4()), "refund-kind": "stored_value"}
    body = client.post(_refund_page(a.member), data).content.decode()
    assert "¥800.00" in body and "¥50.00" in body and 'id="quote-closes"' in body
    assert post_confirmed(client, _refund_page(a.member), data).status_code == 302
    # A coupon lot.
    data = {**common, "refund-token": str(uuid.uuid4()), "refund-kind": "grant", "refund-grant": grant.pk}
    assert post_confirmed(client, _refund_page(a.member), data).status_code == 302
    kinds = dict(RefundRequest.objects.values_list("kind", "amount_fen"))
    assert kinds == {"stored_value": 80_000, "grant": 20_000}
    assert _money_state(a) == before
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.ACTIVE
    # A value posted under another kind is refused, not ignored.
    data = {**common, "refund-token": str(uuid.uuid4()), "refund-kind": "stored_value", "refund-grant": grant.pk}
    response = client.post(_refund_page(a.member), data)
    assert response.status_code == 200 and "grant" in response.context["refund_form"].errors


def test_no_portal_module_calls_a_wallet_refund_service():
    """Guard: the portal starts refund requests (flows.services) and shows quotes; it never calls the wallet's
    refunding services, so no portal path moves money back without the approvals."""
    forbidden = {"refund_consumption_lines", "cash_refund_stored_value", "cash_refund_grant"}
    root = Path(__file__).resolve().parent.parent / "portal"
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in forbidden:
                found.append(f"{path.name}:{node.lineno} {name}")
            if isinstance(node, ast.ImportFrom) and any(alias.name in forbidden for alias in node.names):
                found.append(f"{path.name}:{node.lineno} imports {node.names[0].name}")
    assert not found, found


# ---------------------------------------------------------------- request forms


def test_member_change_form_starts_a_request(client, world):
    a = world.a
    url = reverse("members:change", kwargs={"pk": a.member.pk})
    login(client, a.operator)
    assert client.get(url, {"kind": "name"}).status_code == 200
    response = client.post(url, {"change-token": str(uuid.uuid4()), "change-kind": "name", "change-store": a.store.pk,
                                 "change-name": "王小明", "change-reason": "身份证更名"})  # fmt: skip
    request = MemberChangeRequest.objects.get(member=a.member)
    assert response.status_code == 302 and response["Location"].endswith(f"/requests/member-change/{request.pk}/")
    assert request.new_name == "王小明" and fresh(request).state == State.SUBMITTED
    assert a.member.__class__.objects.get(pk=a.member.pk).name != "王小明"  # nothing changes before the approval
    # A refusal of the service shows on the form.
    response = client.post(url, {"change-token": str(uuid.uuid4()), "change-kind": "name",
                                 "change-store": a.store.pk, "change-name": "王小明", "change-reason": "再来"})  # fmt: skip
    assert response.status_code == 200 and response.context["errors"]
    assert MemberChangeRequest.objects.count() == 1
    # Another operator of the store approves it through the pages: applied.
    task = task_of(request)
    login(client, a.operator2).post(_url("claim", task))
    assert client.post(_url("decide", task), {"decision": "approve"}).status_code == 302
    assert a.member.__class__.objects.get(pk=a.member.pk).name == "王小明"


def test_onboarding_and_offboarding_forms(client, world):
    a = world.a
    login(client, a.admin)
    response = client.post(reverse("tasks:onboard"), {
        "onboarding-store": a.store.pk, "onboarding-name": "新营业员", "onboarding-mobile": "13912345678",
        "onboarding-username": "new-clerk", "onboarding-role": "clerk", "onboarding-level": 1,
        "onboarding-reason": "",
    })  # fmt: skip
    assert response.status_code == 302, response.context and response.context["errors"]
    onboarding = StaffOnboarding.objects.get(username="new-clerk")
    assert not User.objects.filter(username="new-clerk").exists()
    # The manager approves it and is shown the activation code once.
    task = task_of(onboarding)
    login(client, a.manager).post(_url("claim", task))
    response = client.post(_url("decide", task), {"decision": "approve"}, follow=True)
    assert fresh(onboarding).state == State.AWAITING_ACTIVATION
    assert "Activation code" in response.content.decode() or "激活码" in response.content.decode()

    victim = make_staff(a.merchant, roles.OPERATOR, stores=[a.store]).user
    login(client, a.admin)
    response = client.post(reverse("tasks:offboard"), {
        "offboarding-staff": victim.staff.pk, "offboarding-store": a.store.pk, "offboarding-reason": "离职",
    })  # fmt: skip
    assert response.status_code == 302
    assert StaffOffboarding.objects.get(staff=victim.staff).state == State.SUBMITTED
    # Operators may not propose staff changes.
    assert login(client, a.operator).get(reverse("tasks:onboard")).status_code == 403
    assert login(client, a.operator).post(reverse("tasks:offboard"), {}).status_code == 403


def test_withdraw_through_the_request_page(client, world):
    a = world.a
    request = _refund(a, a.store, a.operator, 500)
    url = reverse("tasks:request", kwargs={"kind": "refund", "pk": request.pk})
    login(client, a.operator2)
    assert 'id="withdraw"' not in client.get(url).content.decode()  # only the requester withdraws
    client.post(reverse("tasks:withdraw", kwargs={"kind": "refund", "pk": request.pk}))
    assert fresh(request).state == State.SUBMITTED
    login(client, a.operator)
    assert 'id="withdraw"' in client.get(url).content.decode()
    assert client.post(reverse("tasks:withdraw", kwargs={"kind": "refund", "pk": request.pk})).status_code == 302
    assert fresh(request).state == State.WITHDRAWN
    assert request.number not in queue_of(client, a.manager)


# ---------------------------------------------------------------- notifications


def test_notifications_with_unread_count_and_mark_as_read(client, world, django_capture_on_commit_callbacks):
    a = world.a
    request = _refund(a, a.store, a.operator, 500)
    with django_capture_on_commit_callbacks(execute=True):
        flow_services.approve(request, actor=a.manager)  # approved, then carried out: two notices
    other = _refund(a, a.store, a.operator2, 600)
    with django_capture_on_commit_callbacks(execute=True):
        flow_services.approve(other, actor=a.manager)
    login(client, a.operator)
    page = client.get(reverse("tasks:index")).content.decode()
    assert 'id="site-badge-tasks"' in page  # the unread count beside the area, on every page
    response = client.get(reverse("tasks:notifications"))
    assert response.context["unread"] == 2 and request.number in response.content.decode()
    assert other.number not in response.content.decode()  # operator2's
    theirs = Notification.objects.filter(user=a.operator2).values_list("pk", flat=True)
    client.post(reverse("tasks:notifications"), {"id": list(theirs)})  # someone else's ids: nothing happens
    assert Notification.objects.filter(user=a.operator2, read_at__isnull=True).count() == len(theirs)
    mine = Notification.objects.filter(user=a.operator).order_by("pk")
    client.post(reverse("tasks:notifications"), {"id": [mine[0].pk]})
    assert client.get(reverse("tasks:notifications")).context["unread"] == 1
    client.post(reverse("tasks:notifications"), {"all": "1"})
    assert client.get(reverse("tasks:notifications")).context["unread"] == 0
    assert 'id="site-badge-tasks"' not in client.get(reverse("tasks:index")).content.decode()


# ---------------------------------------------------------------- request lists


def test_request_lists_filter_and_export_within_scope(client, world):
    a, b = world.a, world.b
    r1 = _refund(a, a.store, a.operator, 500)
    r2 = _refund(a, a.other_store, world.a_other_op, 700)
    rb = _refund(b, b.store, b.operator, 900)
    flow_services.reject(r2, actor=a.other_manager, reason="不符合")
    url = reverse("tasks:refund_requests")
    body = login(client, a.admin).get(url).content.decode()
    assert r1.number in body and r2.number in body and rb.number not in body
    body = client.get(url, {"state": "rejected"}).content.decode()
    assert r2.number in body and r1.number not in body
    export = client.get(url, {"export": "csv"})
    text = b"".join(export.streaming_content).decode("utf-8-sig") if export.streaming else export.content.decode()
    assert r1.number in text and rb.number not in text
    body = login(client, a.manager).get(url).content.decode()  # store 1's staff: store 1's requests
    assert r1.number in body and r2.number not in body
    assert client.get(url, {"store": a.other_store.pk}).context["rows"] == []  # not a choice: no rows


# ---------------------------------------------------------------- queries do not grow with the tasks


@pytest.mark.parametrize("which", ["queue", "index", "archive"])
def test_task_pages_run_a_bounded_number_of_queries(client, world, which, django_assert_max_num_queries):
    a = world.a

    def make(count: int) -> None:
        # Both kinds of request, at both stores: the page reads each kind's requests in one query.
        for n in range(count):
            store, requester = (a.store, a.operator) if n % 2 else (a.other_store, world.a_other_op)
            change = flow_services.start_member_change(member=_new_member(a), store=store, kind="name",
                                                       actor=requester, reason="改名", name="某某")  # fmt: skip
            for request in (_refund(a, store, requester, 500), change):
                if which == "index":
                    flow_services.claim(request, actor=a.admin)
                elif which == "archive":
                    flow_services.reject(request, actor=a.admin, reason="no")

    login(client, a.admin)
    url = reverse(f"tasks:{which}")
    make(1)
    with CaptureQueriesContext(connection) as one:
        response = client.get(url)
    assert len(response.context["rows"]) == 2
    make(29)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(url)
    assert len(response.context["rows"]) == 25  # a full page


def _new_member(office: Office):
    from tests.factories import make_owner

    return make_owner(office.merchant)


def test_store_ids_by_permission_agrees_with_stores_where(world):
    """The queues read the store permissions of several kinds in two queries; they must be what
    members.selectors.stores_where answers one permission at a time (own and group object permissions)."""
    from members import selectors as member_selectors

    perms = ["members.approve_store", "members.finance_store", "members.operate_store", "members.manage_store"]
    for office in (world.a, world.b):
        for user in (office.operator, office.manager, office.finance, office.admin, office.other_manager,
                     office.platform, world.a_other_op):  # fmt: skip
            user = User.objects.get(pk=user.pk)
            held = member_selectors.store_ids_by_permission(user, perms)
            for perm in perms:
                assert held[perm] == set(member_selectors.stores_where(user, perm).values_list("pk", flat=True))
    assert member_selectors.store_ids_by_permission(User.objects.get(pk=world.a.admin.pk), perms)[
        "members.approve_store"
    ] == {world.a.store.pk, world.a.other_store.pk}


def test_every_kind_of_request_and_its_task_page_renders(client, world):
    """Each kind of request on its page and its task's page, and each form, for the people concerned."""
    a = world.a
    wallet.recharge(member=a.member, store=a.store, payment_method="cash", actor=None,
                    items=[wallet.RechargeItem(kind="stored_value", amount_fen=50_000)])  # fmt: skip
    requests = [
        _refund(a, a.store, a.operator, 500),
        flow_services.start_refund_request(member=a.member, store=a.store, kind="stored_value", actor=a.operator,
                                           reason="退卡", payment_method="cash"),
        flow_services.start_member_change(member=a.member, store=a.store, kind="mobile", actor=a.operator,
                                          reason="换号", mobile="13800001111"),
        flow_services.start_staff_onboarding(merchant=a.merchant, store=a.store, actor=a.admin, name="新人",
                                             mobile="13800002222", username="newbie", role="operator"),
        flow_services.start_staff_offboarding(staff=a.shop.staff, store=a.store, actor=a.admin, reason="离职"),
    ]  # fmt: skip
    reviewers = [a.manager, a.manager, a.operator2, a.manager, a.manager]
    for request, reviewer in zip(requests, reviewers, strict=True):
        page = login(client, reviewer).get(_url("task", task_of(request)))
        assert page.status_code == 200 and request.number in page.content.decode()
        page = client.get(approvals.request_url(request))
        assert page.status_code == 200 and 'id="request-facts"' in page.content.decode()
    # The stored-value refund shows the payout it will make.
    body = login(client, a.manager).get(_url("task", task_of(requests[1]))).content.decode()
    assert "¥500.00" in body and 'id="quote-paid-out"' in body
    # The member change form, kind by kind; the staff forms.
    url = reverse("members:change", kwargs={"pk": a.member.pk})
    for kind in MemberChangeRequest.Kind.values:
        assert login(client, a.operator).get(url, {"kind": kind}).status_code == 200, kind
    for name in ("tasks:onboard", "tasks:offboard"):
        assert login(client, a.admin).get(reverse(name)).status_code == 200
    for kind in approvals.KINDS:
        assert client.get(reverse("tasks:requests", kwargs={"kind": kind})).status_code == 200
