"""The portal in a real browser (issue 11): an operator logs in, opens a member, submits a recharge with
a bad amount and sees the error without scrolling, then records a plan recharge through the
confirmation step and reads the business number and the amounts in the success message. Approvals (issue
12): an operator requests refunds, the store manager claims and approves them from the queue, finance
approves the large one, and the refunds are carried out.

Drives Debian's chromium (/usr/bin/chromium, installed by .ci/run with apt) through the `playwright`
Python package; `playwright install` (which downloads browsers) is never used. Skipped when either is
missing. The merchant admin's dashboard draws its chart and a consumptions list is filtered by store and date.
Screenshots of the member page, the refused form, the confirmation, the task queue, the task page, the
notifications, the dashboard and the filtered list are written to docs/screenshots/ for the README."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from flows.models import RefundRequest
from members import roles
from tests.factories import make_staff
from tests.wallet_helpers import load_plan, make_shop
from wallet import services
from wallet.models import ConsumptionLine, EntitlementRefund, Recharge, Service

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PASSWORD = "browser-test-pass-1"
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def scene():
    """A merchant with a plan (充1000送200), a member with some history, and an operator of its store."""
    shop = make_shop()
    load_plan(shop)
    services.consume_with_service_record(
        member=shop.member, staff=shop.staff, store=shop.store, actor=None, notes="左上智齿", tags=["洁牙"],
        items=[services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000, staff=shop.staff)],
    )  # fmt: skip
    operator = make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store], name="操作员小王")
    operator.user.set_password(PASSWORD)
    operator.user.save()
    return shop, operator


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes around it
    # are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        context.set_default_timeout(15_000)
        yield context.new_page()
        browser.close()


def choose(page, field_id: str, value: str) -> None:
    """Pick an option of one of viewflow's Material selects (an MDC menu, not a native <select>)."""
    page.click(f"#{field_id} .mdc-select__anchor")
    page.click(f"#{field_id} li[data-value='{value}']")


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_operator_records_a_recharge_in_the_browser(live_server, scene, page):
    shop, operator = scene
    member = shop.member
    before = Recharge.objects.count()  # the plan the member loaded earlier

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", operator.user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda address: "/accounts/login/" not in address)

    # Open the member from the member list.
    page.goto(f"{live_server.url}/members/")
    page.click(f"#portal-list a[href='/members/{member.pk}/'] >> nth=0")
    page.wait_for_url(f"**/members/{member.pk}/")
    page.wait_for_selector("#tab-overview")
    assert page.locator("#principal-balance").inner_text() != ""
    screenshot(page, "member-page.png")

    # A stored-value recharge with a bad amount: the error is in view without scrolling.
    page.goto(f"{live_server.url}/members/{member.pk}/recharge/")
    page.click("#kind-stored_value")
    page.wait_for_url("**kind=stored_value")
    page.wait_for_selector("#id_recharge-amount input")
    choose(page, "id_recharge-payment_method", "wechat")
    page.fill("#id_recharge-amount input", "12.345")
    # A short window (a laptop with the browser's own bars, a split screen): laid out from the top, the
    # banner would end below its bottom edge; the page must bring it into view by itself.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 300})
    page.click("#review")
    page.wait_for_selector("#form-errors")
    page.wait_for_load_state("load")
    assert "12.345" in page.locator("#form-errors").inner_text()
    assert in_viewport(page, "#form-errors"), page.locator("#form-errors").bounding_box()
    assert page.evaluate("document.activeElement.id") == "form-errors"
    page.set_viewport_size(VIEWPORT)
    page.wait_for_timeout(200)
    assert in_viewport(page, "#form-errors")
    assert "12.345" in page.locator("#id_recharge-amount").inner_text()  # and at the field
    page.screenshot(path=str(SCREENSHOTS / "recharge-error.png"))  # the viewport, as the operator sees it
    assert Recharge.objects.count() == before

    # A plan recharge through the confirmation step.
    page.click("#kind-plan")
    page.wait_for_url("**kind=plan")
    page.wait_for_selector("#id_recharge-plan .mdc-select__anchor")
    choose(page, "id_recharge-payment_method", "wechat")
    choose(page, "id_recharge-plan", str(shop.plan.pk))
    page.click("#review")
    page.wait_for_selector("#quote")
    assert "¥1,000.00" in page.locator("#quote-paid").inner_text()
    assert "¥200.00" in page.locator("#quote-bonus").inner_text()
    assert Recharge.objects.count() == before, "nothing is recorded before the confirmation"
    screenshot(page, "recharge-confirmation.png")

    page.click("#confirm")
    page.wait_for_selector(".portal-messages")
    message = page.locator(".portal-messages").inner_text()
    assert Recharge.objects.count() == before + 1
    recharge = Recharge.objects.filter(operator=operator.user).get()
    assert recharge.number in message
    assert "¥1,000.00" in message and "¥200.00" in message
    assert re.search(r"/members/\d+/\?tab=recharges$", page.url)
    assert recharge.paid_total_fen == 100_000 and recharge.payment_method == "wechat"


# ---------------------------------------------------------------- approvals (issue 12)


def sign_in(page, live_server, user) -> None:
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda address: "/accounts/login/" not in address)


@pytest.fixture
def office():
    """A merchant with a store: an operator, its store manager and finance, a member with two consumptions
    (¥128.00 and ¥1,500.00, paid in cash)."""
    shop = make_shop()
    shop.store.name = "北门店"
    shop.store.save()
    people = {}
    for role, name in ((roles.OPERATOR, "操作员小王"), (roles.APPROVER, "店长老李"), (roles.FINANCE, "财务小陈")):
        staff = make_staff(shop.merchant, role, stores=[shop.store], name=name)
        staff.user.set_password(PASSWORD)
        staff.user.save()
        people[role] = staff.user
    lines = []
    for name, fen in (("肩颈按摩", 12_800), ("全身护理套餐", 150_000)):
        service = Service.objects.create(merchant=shop.merchant, category=shop.massage.category, name=name,
                                         list_price_fen=fen, member_price_fen=fen)  # fmt: skip
        consumption = services.consume(member=shop.member, store=shop.store, actor=None, items=[
            services.ConsumptionItem(service=service, direct_fen=fen, payment_method="cash")])  # fmt: skip
        lines.append(consumption.lines.get())
    return shop, people, lines


def test_a_refund_is_requested_claimed_and_approved_in_the_browser(live_server, office, page):
    shop, people, (small, large) = office
    operator, manager, finance = people[roles.OPERATOR], people[roles.APPROVER], people[roles.FINANCE]

    # The operator asks for the refund of the ¥128.00 line: a request, confirmed with what will go back.
    sign_in(page, live_server, operator)
    page.goto(f"{live_server.url}/members/{shop.member.pk}/refund/?kind=lines")
    page.wait_for_selector(f"#line-choice-{small.pk}")
    page.check(f"#line-choice-{small.pk}")
    page.fill("#id_refund-reason input", "顾客对服务不满意")
    page.click("#review")
    page.wait_for_selector("#quote")
    assert "¥128.00" in page.locator("#quote").inner_text()
    assert page.locator("#request-note").is_visible()
    page.click("#confirm")
    page.wait_for_selector(".portal-messages")
    request = RefundRequest.objects.get(member=shop.member)
    assert request.number in page.locator(".portal-messages").inner_text()
    assert not EntitlementRefund.objects.exists(), "nothing is refunded before the approval"
    # A second, larger request (above ¥1,000.00: finance approves too), made the same way.
    page.goto(f"{live_server.url}/members/{shop.member.pk}/refund/?kind=lines")
    page.wait_for_selector(f"#line-choice-{large.pk}")
    page.check(f"#line-choice-{large.pk}")
    page.fill("#id_refund-reason input", "套餐未使用")
    page.click("#review")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    if page.locator("#confirm-large").count():  # above the merchant's second-confirmation threshold
        page.click("#confirm")
    page.wait_for_selector(".portal-messages")
    big = RefundRequest.objects.exclude(pk=request.pk).get()
    assert big.needs_finance_review()

    # The store manager finds both in the queue, claims the small one and approves it.
    sign_in(page, live_server, manager)
    page.goto(f"{live_server.url}/tasks/queue/")
    page.wait_for_selector(f"#task-list tr[data-number='{request.number}']")
    assert page.locator(f"#task-list tr[data-number='{big.number}']").count() == 1
    screenshot(page, "task-queue.png")
    page.click(f"#task-list tr[data-number='{request.number}'] a >> nth=0")
    page.wait_for_selector("#claim")
    page.click("#claim")
    page.wait_for_selector("#decision-form")
    assert "¥128.00" in page.locator("#refund-effect").inner_text()  # what goes back, and where
    page.reload()  # without the "claimed" message over the page
    page.wait_for_selector("#decision-form")
    screenshot(page, "task-page.png")
    page.fill("#id_reason", "已核实")
    page.click("#approve")
    page.wait_for_selector(".portal-messages")
    refund = EntitlementRefund.objects.get(member=shop.member)
    assert refund.total_fen == 12_800
    assert ConsumptionLine.objects.get(pk=small.pk).status == ConsumptionLine.Status.REFUNDED
    assert RefundRequest.objects.get(pk=request.pk).state == "executed"

    # The large one: the manager approves, then finance.
    page.goto(f"{live_server.url}/tasks/queue/")
    page.click(f"#task-list tr[data-number='{big.number}'] a >> nth=0")
    page.click("#claim")
    page.wait_for_selector("#decision-form")
    page.click("#approve")
    page.wait_for_selector(".portal-messages")
    assert RefundRequest.objects.get(pk=big.pk).state == "finance_review"
    sign_in(page, live_server, finance)
    page.goto(f"{live_server.url}/tasks/queue/")
    page.click(f"#task-list tr[data-number='{big.number}'] a >> nth=0")
    page.click("#claim")
    page.wait_for_selector("#decision-form")
    assert "¥1,500.00" in page.locator("#refund-effect").inner_text()
    page.click("#approve")
    page.wait_for_selector(".portal-messages")
    assert RefundRequest.objects.get(pk=big.pk).state == "executed"
    assert EntitlementRefund.objects.count() == 2

    # The operator reads the outcome in their notifications.
    sign_in(page, live_server, operator)
    page.goto(f"{live_server.url}/tasks/notifications/")
    assert request.number in page.locator("#notifications").inner_text()
    assert page.locator("#site-badge-tasks").count() == 1
    screenshot(page, "notifications.png")


def test_merchant_admin_reads_the_dashboard_and_a_filtered_list_in_the_browser(live_server, scene, page):
    """The merchant admin's dashboard draws its per-day chart (Chart.js) in Chinese, and the consumptions list
    narrowed by store and date shows the matching rows; both pages are saved for the README."""
    from django.urls import reverse
    from django.utils import timezone

    from tests.factories import StoreFactory

    shop, _operator = scene
    other_store = StoreFactory(merchant=shop.merchant, name="南门店")
    for store, quantity in ((shop.store, 1), (other_store, 3)):  # 洁牙 ¥100 each
        services.recharge(member=shop.member, store=store, payment_method="wechat", actor=None,
                          items=[services.RechargeItem(kind="stored_value", amount_fen=200_000 * quantity)])  # fmt: skip
        services.consume(member=shop.member, store=store, actor=None,
                         items=[services.ConsumptionItem(service=shop.cleaning, quantity=quantity,
                                                         stored_value_fen=10_000 * quantity)])  # fmt: skip
    admin = make_staff(shop.merchant, roles.MERCHANT_ADMIN, stores=[shop.store, other_store], name="商户管理员")
    admin.user.set_password(PASSWORD)
    admin.user.save()
    sign_in(page, live_server, admin.user)

    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#dashboard-chart canvas#chart-recharges")
    # Chart.js has drawn when the canvas carries its chart instance.
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-recharges'))")
    body = page.locator("main, body").first.inner_text()
    assert "充值" in body and "消费" in body and "Dashboard" not in body
    screenshot(page, "portal-dashboard-merchant-admin.png")

    today = timezone.localdate().isoformat()
    page.goto(
        f"{live_server.url}{reverse('records:consumptions')}?store={other_store.pk}&date_from={today}&date_to={today}"
    )
    rows = page.locator("#portal-list").inner_text()
    assert "南门店" in rows and "300.00" in rows and "100.00" not in rows
    screenshot(page, "portal-list-consumptions-filtered.png")
