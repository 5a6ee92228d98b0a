"""The portal in a real browser (issue 11): an operator logs in, opens a member, submits a recharge with
a bad amount and sees the error without scrolling, then records a plan recharge through the
confirmation step and reads the business number and the amounts in the success message.

Drives Debian's chromium (/usr/bin/chromium, installed by .ci/run with apt) through the `playwright`
Python package; `playwright install` (which downloads browsers) is never used. Skipped when either is
missing. Screenshots of the member page, the refused form and the confirmation are written to
docs/screenshots/ for the README."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from members import roles
from tests.factories import make_staff
from tests.wallet_helpers import load_plan, make_shop
from wallet import services
from wallet.models import Recharge

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
    page.click(f"#member-list a[href='/members/{member.pk}/']")
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
