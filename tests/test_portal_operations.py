"""Issue 11, items 2 and 3: operations that cannot be misread (a page per operation, only the chosen
kind's fields, no default payment method, a confirmation computed by wallet.quotes, a second one above
the merchant's threshold, the business number and amounts in the success message) and the member 360
in paginated tabs whose queries do not grow with the rows."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.errors import DomainError
from core.money import yuan, yuan_large
from flows import services as flow_services
from flows.models import RefundRequest
from ledger import selectors as ledger_selectors
from ledger.models import Entry
from members import roles
from members import services as member_services
from members.models import AuditEvent, DailySequence
from tests.factories import make_staff
from tests.portal_helpers import is_confirmation, post_confirmed
from tests.wallet_helpers import Shop, load_plan, make_shop, spend_stored_value
from wallet import quotes, selectors, services
from wallet.models import Consumption, ConsumptionLine, EntitlementRefund, Recharge, WalletSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Shop:
    return make_shop()


@pytest.fixture
def operator(shop):
    return make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store])


@pytest.fixture
def client_(client, operator):
    client.force_login(operator.user)
    return client


def url(shop: Shop, name: str) -> str:
    return reverse(f"members:{name}", kwargs={"pk": shop.member.pk})


def recharge_data(shop: Shop, **fields) -> dict:
    data = {"token": str(uuid.uuid4()), "store": shop.store.pk, "payment_method": "wechat", "kind": "plan",
            "plan": shop.plan.pk, "quantity": "1", "note": ""}  # fmt: skip
    data.update(fields)
    return {f"recharge-{k}": v for k, v in data.items()}


def consume_data(shop: Shop, **fields) -> dict:
    data = {"token": str(uuid.uuid4()), "store": shop.store.pk, "service": shop.cleaning.pk, "quantity": "1",
            "staff": shop.staff.pk, "funding": "stored_value", "notes": "", "tags": ""}  # fmt: skip
    data.update(fields)
    return {f"consume-{k}": v for k, v in data.items()}


def _count() -> tuple:
    return Entry.objects.count(), Recharge.objects.count(), Consumption.objects.count()


# ---------------------------------------------------------------- one kind at a time


def test_the_recharge_page_asks_for_the_kind_first_and_shows_only_its_fields(client_, shop):
    first = client_.get(url(shop, "recharge")).content.decode()
    assert 'id="choose-kind"' in first and 'name="recharge-token"' not in first
    for kind in ("plan", "stored_value", "coupon", "package"):
        assert f'href="{url(shop, "recharge")}?kind={kind}"' in first

    plan = client_.get(url(shop, "recharge"), {"kind": "plan"}).content.decode()
    assert 'name="recharge-plan"' in plan
    assert 'name="recharge-amount"' not in plan and 'name="recharge-coupon_template"' not in plan
    stored = client_.get(url(shop, "recharge"), {"kind": "stored_value"}).content.decode()
    assert 'name="recharge-amount"' in stored and 'name="recharge-bonus"' in stored
    assert 'name="recharge-plan"' not in stored and 'name="recharge-package"' not in stored
    # Rendered by viewflow's Material renderer, not as bare inputs.
    assert "<vf-field-select" in stored and "<vf-field-input" in stored


def test_a_value_typed_under_another_kind_is_refused_not_ignored(client_, shop):
    """The case of the issue: 500 typed under "Stored value" with the plan kind chosen recorded the plan."""
    response = post_confirmed(client_, url(shop, "recharge"), recharge_data(shop, amount="500"))
    assert response.status_code == 200
    errors = response.context["recharge_form"].errors
    assert "amount" in errors and "not part of this kind" in errors["amount"][0]
    assert _count() == (0, 0, 0)
    # The other way round: a plan chosen while recording stored value.
    response = post_confirmed(
        client_, url(shop, "recharge"), recharge_data(shop, kind="stored_value", amount="500", plan=shop.plan.pk)
    )
    assert "plan" in response.context["recharge_form"].errors
    assert _count() == (0, 0, 0)
    # And for a consumption's funding: a voucher posted with stored-value funding.
    response = post_confirmed(client_, url(shop, "consume"), consume_data(shop, voucher_amount="20"))
    assert "voucher_amount" in response.context["consumption_form"].errors


def test_the_payment_method_has_no_default(client_, shop):
    page = client_.get(url(shop, "recharge"), {"kind": "plan"}).content.decode()
    select = re.search(r'<vf-field-select[^>]*name="recharge-payment_method"[^>]*>', page).group(0)
    assert 'value=""' in select  # nothing chosen until the operator chooses
    response = post_confirmed(client_, url(shop, "recharge"), recharge_data(shop, payment_method=""))
    assert "payment_method" in response.context["recharge_form"].errors
    assert _count() == (0, 0, 0)


def test_errors_are_listed_above_the_form_and_at_the_field(client_, shop):
    response = client_.post(url(shop, "recharge"), recharge_data(shop, kind="stored_value", plan="", amount="12.345"))
    body = response.content.decode()
    banner = body.index('id="form-errors"')
    assert banner < body.index('id="operation-form"')  # above the form
    assert "more than two decimal places" in body[banner : body.index('id="operation-form"')]
    field = re.search(r'<vf-field-input[^>]*name="recharge-amount"[^>]*>', body).group(0)
    assert "error=" in field and "more than two decimal places" in field  # and at the field
    assert "scrollIntoView" in body  # the page scrolls to the banner


# ---------------------------------------------------------------- confirmation


def test_a_recharge_is_confirmed_in_yuan_before_anything_is_posted(client_, shop):
    # A plan whose bonus and gifts exceed the merchant's share is refused at the form, before any confirmation.
    shop.plan.gift_coupon, shop.plan.gift_coupon_quantity = shop.car_wash_coupon, 2  # ¥200 + 2 × ¥300 > 50 %
    shop.plan.save()
    refused = client_.post(url(shop, "recharge"), recharge_data(shop))
    assert not is_confirmation(refused) and refused.context["recharge_form"].errors
    shop.plan.gift_coupon_quantity = 1  # ¥200 + ¥300 = 50 %
    shop.plan.save()
    data = recharge_data(shop)
    response = client_.post(url(shop, "recharge"), data)
    assert is_confirmation(response) and response.context["stage"] == 1
    body = response.content.decode()
    assert "¥1,000.00" in body and "¥200.00" in body and ("WeChat" in body or "微信" in body)
    assert "洗车10次卡 × 1" in body  # the gift
    assert _count() == (0, 0, 0), "the confirmation page posted something"

    quote = response.context["quote"]
    assert (quote.total_fen, quote.principal_fen, quote.bonus_fen) == (100_000, 100_000, 20_000)
    done = client_.post(url(shop, "recharge"), {**data, "confirm": quote.digest}, follow=True)
    recharge = Recharge.objects.get()
    message = str(list(done.context["messages"])[0])
    assert recharge.number in message and "¥1,000.00" in message and "¥200.00" in message
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (100_000, 20_000)


def test_going_back_to_edit_keeps_the_values_and_records_nothing(client_, shop):
    data = recharge_data(shop, note="前台")
    confirmation = client_.post(url(shop, "recharge"), data)
    back = client_.post(
        url(shop, "recharge"), {**data, "step": "edit", "confirm": confirmation.context["quote"].digest}
    )
    assert not is_confirmation(back) and 'value="前台"' in back.content.decode()
    assert _count() == (0, 0, 0)


def test_a_confirmation_of_other_figures_is_asked_again(client_, shop):
    load_plan(shop)
    data = consume_data(shop)
    first = client_.post(url(shop, "consume"), data)
    digest = first.context["quote"].digest
    spend_stored_value(shop, 6_000)  # another operation moves the balances in between
    again = client_.post(url(shop, "consume"), {**data, "confirm": digest})
    assert is_confirmation(again) and again.context["changed"]
    assert again.context["quote"].digest != digest
    assert Consumption.objects.filter(service_record__isnull=False).count() == 0


def test_above_the_threshold_a_second_confirmation_is_needed(client_, shop):
    WalletSettings.objects.filter(merchant=shop.merchant).update(confirm_above_fen=99_999)  # ¥999.99
    data = recharge_data(shop)
    first = client_.post(url(shop, "recharge"), data)
    digest = first.context["quote"].digest
    assert first.context["quote"].large
    second = client_.post(url(shop, "recharge"), {**data, "confirm": digest})
    assert is_confirmation(second) and second.context["stage"] == 2
    body = second.content.decode()
    assert 'id="confirm-large"' in body and "¥999.99" in body and "¥1,000.00" in body
    assert _count() == (0, 0, 0)
    client_.post(url(shop, "recharge"), {**data, "confirm": digest, "confirm_large": digest})
    assert Recharge.objects.count() == 1

    # At or below the threshold one confirmation records.
    WalletSettings.objects.filter(merchant=shop.merchant).update(confirm_above_fen=100_000)
    data = recharge_data(shop)
    digest = client_.post(url(shop, "recharge"), data).context["quote"].digest
    assert client_.post(url(shop, "recharge"), {**data, "confirm": digest}).status_code == 302
    assert Recharge.objects.count() == 2


def test_the_default_threshold_is_ten_thousand_yuan(shop):
    assert WalletSettings.objects.get(merchant=shop.merchant).confirm_above_fen == 1_000_000
    assert WalletSettings.of(None).confirm_above_fen == 1_000_000


def test_posting_the_confirmation_twice_records_once(client_, shop):
    data = recharge_data(shop)
    digest = client_.post(url(shop, "recharge"), data).context["quote"].digest
    confirmed = {**data, "confirm": digest}
    assert client_.post(url(shop, "recharge"), confirmed).status_code == 302
    again = client_.post(url(shop, "recharge"), confirmed, follow=True)
    record = Recharge.objects.get()
    assert record.number in again.content.decode()
    assert Recharge.objects.count() == 1
    assert selectors.member_benefits(shop.member).principal_fen == 100_000


@pytest.mark.parametrize("policy", ["proportional", "principal_first", "bonus_first"])
def test_the_consumption_quote_is_what_the_service_records(client, policy):
    shop = make_shop(policy)
    client.force_login(make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store]).user)
    load_plan(shop)  # principal 1000, bonus 200
    data = consume_data(shop, quantity="3")  # ¥300
    confirmation = client.post(url(shop, "consume"), data)
    quote = confirmation.context["quote"]
    line = quote.lines[0]
    expected = {"proportional": (25_000, 5_000), "principal_first": (30_000, 0), "bonus_first": (10_000, 20_000)}
    assert (line.principal_fen, line.bonus_fen) == expected[policy]
    body = confirmation.content.decode()
    assert f"¥{line.principal_fen // 100:,}.00" in body and "¥1,000.00" in body  # split and balance before
    client.post(url(shop, "consume"), {**data, "confirm": quote.digest})
    recorded = ConsumptionLine.objects.get()
    assert (recorded.principal_fen, recorded.bonus_fen, recorded.payable_fen) == (*expected[policy], 30_000)


def test_a_consumption_the_stored_value_does_not_cover_is_refused_at_the_form(client_, shop):
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="stored_value", amount_fen=5_000)])  # fmt: skip
    response = client_.post(url(shop, "consume"), consume_data(shop))  # ¥100 > ¥50
    assert not is_confirmation(response)
    assert "funding" in response.context["consumption_form"].errors
    assert "does not cover" in response.content.decode()


def test_a_refund_is_confirmed_with_what_goes_back_where(client_, shop, django_capture_on_commit_callbacks):
    load_plan(shop)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000)])  # fmt: skip
    line = consumption.lines.get()
    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": shop.store.pk,
            "refund-lines": [line.pk], "refund-reason": "顾客投诉"}  # fmt: skip
    confirmation = client_.post(url(shop, "refund"), data)
    quote = confirmation.context["quote"]
    assert (quote.total_fen, quote.principal_fen, quote.bonus_fen) == (10_000, line.principal_fen, line.bonus_fen)
    assert not EntitlementRefund.objects.exists()
    done = client_.post(url(shop, "refund"), {**data, "confirm": quote.digest}, follow=True)
    # Confirmed: a refund request (issue 12); the money goes back once the store manager approves.
    request = RefundRequest.objects.get()
    message = str(list(done.context["messages"])[0])
    assert request.number in message and "¥100.00" in message
    assert not EntitlementRefund.objects.exists()
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (quote.principal_before_fen, quote.bonus_before_fen)
    manager = make_staff(shop.merchant, roles.APPROVER, stores=[shop.store]).user
    with django_capture_on_commit_callbacks(execute=True):
        flow_services.approve(request, actor=manager)
    assert EntitlementRefund.objects.get().total_fen == quote.total_fen
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (quote.principal_after_fen, quote.bonus_after_fen)


def test_a_clerk_cannot_open_the_operator_pages(client, shop):
    client.force_login(shop.staff.user)
    for name in ("recharge", "consume", "refund"):
        assert client.get(url(shop, name)).status_code == 403


def test_quotes_refuse_what_the_service_refuses(shop):
    with pytest.raises(DomainError) as exc:
        quotes.quote_consumption(
            member=shop.member, store=shop.store, actor=None,
            items=[services.ConsumptionItem(shop.cleaning, stored_value_fen=1)],
        )  # fmt: skip
    assert exc.value.code == "card_missing"  # no stored-value card yet, as the service says
    load_plan(shop)  # ¥1,200 on the card
    with pytest.raises(DomainError) as exc:
        quotes.quote_consumption(
            member=shop.member, store=shop.store, actor=None,
            items=[services.ConsumptionItem(shop.cleaning, quantity=20, stored_value_fen=20 * 10_000)],
        )  # fmt: skip
    assert exc.value.code == "stored_value_insufficient"
    # A quote is the service run dry: limits the service checks (here the manual bonus) refuse the quote too.
    with pytest.raises(DomainError) as exc:
        quotes.quote_recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                              items=[services.RechargeItem(kind="stored_value", amount_fen=10_000, bonus_fen=9_000)])  # fmt: skip
    assert exc.value.code == "free_value_over_limit"
    WalletSettings.objects.filter(merchant=shop.merchant).update(max_recharge_fen=50_000)
    with pytest.raises(DomainError) as exc:
        quotes.quote_recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                              items=[services.RechargeItem(kind="plan", plan=shop.plan)])  # fmt: skip
    assert exc.value.code == "amount_over_ceiling"


def test_a_quote_leaves_nothing_behind_and_takes_no_number(shop):
    load_plan(shop)
    models = (Entry, Consumption, Recharge, AuditEvent, DailySequence)
    before = [(m.objects.count(), list(m.objects.values_list("pk", flat=True).order_by("-pk")[:1])) for m in models]
    counters = list(DailySequence.objects.values_list("key", "last_value").order_by("key"))
    quote = quotes.quote_consumption(
        member=shop.member, store=shop.store, actor=None,
        items=[services.ConsumptionItem(shop.cleaning, stored_value_fen=10_000)],
    )  # fmt: skip
    quotes.quote_recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                          items=[services.RechargeItem(kind="package", package=shop.cleaning_package, quantity=2)])  # fmt: skip
    assert quote.total_fen == 10_000 and quote.principal_fen + quote.bonus_fen == 10_000
    assert [
        (m.objects.count(), list(m.objects.values_list("pk", flat=True).order_by("-pk")[:1])) for m in models
    ] == before
    assert list(DailySequence.objects.values_list("key", "last_value").order_by("key")) == counters
    # The real operation after the quote records exactly what the quote said.
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(shop.cleaning, stored_value_fen=10_000)])  # fmt: skip
    line = consumption.lines.get()
    assert (line.principal_fen, line.bonus_fen) == (quote.principal_fen, quote.bonus_fen)


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "fen,expected",
    [
        (0, "¥0.00"),
        (999_999, "¥9,999.99"),
        (1_000_000, "¥10,000.00（≈1.00万）"),
        (1_234_567, "¥12,345.67（≈1.23万）"),
        (10_000_000_199_234, "¥100,000,001,992.34（≈1,000.00亿）"),
        (999_999_999_999, "¥9,999,999,999.99（≈100.00亿）"),
        (999_999_999, "¥9,999,999.99（≈1,000.00万）"),
        (9_999_999_999, "¥99,999,999.99（≈1.00亿）"),
        (-5_000_000, "-¥50,000.00（≈-5.00万）"),
    ],
)
def test_yuan_large(fen, expected):
    from django.utils import translation

    with translation.override("zh-hans"):
        assert yuan_large(fen) == expected
    with translation.override("en"):  # English readers get the exact figure with separators only
        assert yuan_large(fen) == yuan(fen)


# ---------------------------------------------------------------- member 360


TABS = ["overview", "service_records", "recharges", "consumptions", "refunds", "statement", "audit"]


def _history(shop: Shop, rows: int) -> None:
    """`rows` of everything a tab lists: recharges, consumptions with service records, refunds, ledger
    lines on the principal account and audit events."""
    for _ in range(rows):
        load_plan(shop)
        consumption = services.consume_with_service_record(
            member=shop.member, staff=shop.staff, store=shop.store, actor=None, tags=["洁牙"],
            items=[services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000, staff=shop.staff)],
        )  # fmt: skip
        services.refund_consumption_lines(member=shop.member, lines=list(consumption.lines.all()), reason="r",
                                          actor=None)  # fmt: skip
        member_services.update_owner(shop.member, actor=None, name=f"改名{_}", reason="更正")


def _queries(client, shop, tab: str, page: int = 1) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url(shop, "member"), {"tab": tab, "page": page})
    assert response.status_code == 200, tab
    return len(captured)


def test_every_tab_renders_and_its_queries_do_not_grow_with_the_rows(client, django_assert_max_num_queries):
    small, large = make_shop(), make_shop()
    _history(small, 1)
    _history(large, 30)
    clients = {}
    for shop in (small, large):
        from django.test import Client

        clients[shop.merchant.pk] = Client()
        clients[shop.merchant.pk].force_login(make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store]).user)
    for tab in TABS:
        one = _queries(clients[small.merchant.pk], small, tab)
        with django_assert_max_num_queries(one):
            response = clients[large.merchant.pk].get(url(large, "member"), {"tab": tab})
        assert response.status_code == 200
        assert one <= 25, (tab, one)


def test_tabs_are_paginated_on_the_server(client_, shop):
    _history(shop, 23)  # page size 20
    first = client_.get(url(shop, "member"), {"tab": "recharges"})
    second = client_.get(url(shop, "member"), {"tab": "recharges", "page": 2})
    numbers = list(Recharge.objects.filter(member=shop.member).values_list("number", flat=True))  # newest first
    assert numbers[0] in first.content.decode() and numbers[-1] not in first.content.decode()
    assert numbers[-1] in second.content.decode() and numbers[0] not in second.content.decode()
    assert "tab=recharges&amp;page=2" in first.content.decode()
    for tab in ("consumptions", "refunds", "service_records", "audit"):
        assert client_.get(url(shop, "member"), {"tab": tab, "page": 2}).status_code == 200
        assert client_.get(url(shop, "member"), {"tab": tab, "page": 9}).status_code == 404
    assert client_.get(url(shop, "member"), {"tab": "recharges", "page": "x\x00"}).status_code == 404
    # The overview's lists page too: 25 coupon lots bought at once.
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon, quantity=25)])  # fmt: skip
    overview = client_.get(url(shop, "member"))
    assert len(overview.context["grants_page"].object_list) == 20
    assert "grants_page=2" in overview.content.decode()
    assert len(client_.get(url(shop, "member"), {"grants_page": 2}).context["grants_page"].object_list) == 5
    audit = client_.get(url(shop, "member"), {"tab": "audit"}).content.decode()
    assert "改名22" in audit and "更正" in audit


def test_the_statement_tab_pages_through_an_account_with_running_balances(client_, shop):
    _history(shop, 12)  # 12 × (plan +1000, consumption -83.33.., refund +83.33..) on the principal
    accounts = selectors.statement_accounts(shop.member)
    assert [item.account.purpose for item in accounts[:2]] == ["principal", "bonus"]
    principal = accounts[0].account
    today = timezone.localdate()
    full = ledger_selectors.statement(principal, today - datetime.timedelta(days=1), today)
    assert len(full.lines) == 36
    shown = []
    for page in (1, 2):
        response = client_.get(url(shop, "member"), {"tab": "statement", "account": principal.pk, "page": page})
        shown += [(line.change, line.balance) for line in response.context["statement"].lines]
    assert shown == [(line.change, line.balance) for line in full.lines]
    assert response.context["statement"].range_closing == full.closing == 1_200_000
    body = response.content.decode()
    assert "12,000.00" in body  # the closing balance, with separators

    # Another member's account is not one of the choices: nothing is shown for it.
    other = make_shop()
    load_plan(other)
    foreign = selectors.statement_accounts(other.member)[0].account
    response = client_.get(url(shop, "member"), {"tab": "statement", "account": foreign.pk})
    assert response.status_code == 200 and response.context["statement"] is None
    bad = client_.get(url(shop, "member"), {"tab": "statement", "start": "9999-12-31", "end": "9999-12-31"})
    assert bad.status_code == 200 and bad.context["statement"] is None


def test_a_statement_tab_page_reads_the_statement_once_and_refuses_pages_past_the_end(client_, shop):
    _history(shop, 12)  # 36 lines on the principal: pages 1 and 2
    principal = selectors.statement_accounts(shop.member)[0].account
    counts = []
    for page in (1, 2):
        with CaptureQueriesContext(connection) as queries:
            response = client_.get(url(shop, "member"), {"tab": "statement", "account": principal.pk, "page": page})
        assert response.status_code == 200 and response.context["page_obj"].number == page
        counts.append(len(queries))
    assert counts[0] == counts[1]  # page 2 is not read after page 1
    for page in ("3", "0", "-1", "x", "1.5", "99999999999999999999"):
        response = client_.get(url(shop, "member"), {"tab": "statement", "account": principal.pk, "page": page})
        assert response.status_code == 404, page


def test_statement_page_matches_the_full_statement(shop):
    for _ in range(7):
        load_plan(shop)
        spend_stored_value(shop, 12_345)
    principal = selectors.statement_accounts(shop.member)[0].account
    today = timezone.localdate()
    full = ledger_selectors.statement(principal, today, today)
    pages = [ledger_selectors.statement_page(principal, today, today, offset=o, limit=5) for o in (0, 5, 10)]
    assert [line for page in pages for line in page.lines] == full.lines
    assert all(page.line_count == len(full.lines) and page.range_closing == full.closing for page in pages)


def test_large_balances_show_separators_and_the_wan_figure(client_, shop):
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="stored_value", amount_fen=12_345_678)])  # fmt: skip
    body = client_.get(url(shop, "member"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    card = re.search(r'id="principal-balance">([^<]*)<', body).group(1)
    assert "¥123,456.78" in card and "12.35万" in card


def test_a_refund_posted_again_is_answered_with_the_first(client_, shop):
    load_plan(shop)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000)])  # fmt: skip
    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": shop.store.pk,
            "refund-lines": [consumption.lines.get().pk], "refund-reason": "顾客投诉"}  # fmt: skip
    digest = client_.post(url(shop, "refund"), data).context["quote"].digest
    assert client_.post(url(shop, "refund"), {**data, "confirm": digest}).status_code == 302
    # The back button and "confirm" again: the request is open already, the page says which one.
    again = client_.post(url(shop, "refund"), {**data, "confirm": digest}, follow=True)
    request = RefundRequest.objects.get()
    assert request.number in str(list(again.context["messages"])[0])
    assert RefundRequest.objects.count() == 1 and not EntitlementRefund.objects.exists()


def test_a_token_posted_again_with_other_content_is_refused(client_, shop):
    data = recharge_data(shop)
    digest = client_.post(url(shop, "recharge"), data).context["quote"].digest
    client_.post(url(shop, "recharge"), {**data, "confirm": digest})
    other = {**data, "recharge-kind": "stored_value", "recharge-plan": "", "recharge-amount": "900"}
    response = client_.post(url(shop, "recharge"), other)
    assert response.status_code == 200 and "different content" in response.content.decode()
    assert Recharge.objects.count() == 1


def test_expiry_lines_on_the_statement_read_in_chinese(client_, shop):
    """The expiry job writes a neutral memo code (it runs in no reader's language); the statement shows
    it by name in the reader's language, not the code and not English."""
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="coupon", coupon_template=shop.car_wash_coupon),
                             services.RechargeItem(kind="voucher", voucher_template=shop.voucher)])  # fmt: skip
    services.expire_due_benefits(now=timezone.now() + datetime.timedelta(days=800))
    memos = set(Entry.objects.filter(operation_type="expiry").values_list("memo", flat=True))
    assert memos == {"voucher_expired", "coupon_expired"}
    expired = [item.account for item in selectors.statement_accounts(shop.member) if item.account.purpose in
               ("voucher", "coupon")]  # fmt: skip
    assert len(expired) == 2
    for account in expired:
        response = client_.get(
            url(shop, "member"), {"tab": "statement", "account": account.pk}, HTTP_ACCEPT_LANGUAGE="zh-hans"
        )
        memo = next(
            memo for line, _operation, memo in response.context["statement_rows"] if line.operation_type == "expiry"
        )
        assert memo in ("代金券已过期", "优惠券已过期")
        assert memo in response.content.decode() and "_expired" not in response.content.decode()
