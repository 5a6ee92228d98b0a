"""The portal's Members area: member search, the member page and the operator forms, through the
Django test client. The operator pages go form → confirmation → recorded (tests/portal_helpers)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from flows import services as flow_services
from flows.models import RefundRequest
from ledger.models import Entry
from members import roles
from tests.factories import StoreFactory, make_owner, make_staff
from tests.portal_helpers import post_confirmed
from tests.wallet_helpers import Shop, load_plan, make_shop
from wallet import selectors, services
from wallet.models import Consumption, ConsumptionLine, EntitlementRefund, Recharge, ServiceRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Shop:
    return make_shop()


@pytest.fixture
def operator(shop):
    return make_staff(shop.merchant, roles.OPERATOR, stores=[shop.store])


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator.user)
    return client


def member_page(member) -> str:
    return reverse("members:member", kwargs={"pk": member.pk})


def post_recharge(client, shop: Shop, token: str | None = None, **fields):
    data = {
        "recharge-token": token or str(uuid.uuid4()), "recharge-store": shop.store.pk,
        "recharge-payment_method": "wechat", "recharge-kind": "stored_value", "recharge-amount": "100.00",
        "recharge-bonus": "20", "recharge-quantity": "1", "recharge-note": "",
    }  # fmt: skip
    data.update({f"recharge-{k}": v for k, v in fields.items()})
    return post_confirmed(client, reverse("members:recharge", kwargs={"pk": shop.member.pk}), data, follow=True)


def post_consumption(client, shop: Shop, service, **fields):
    data = {
        "consume-token": str(uuid.uuid4()), "consume-store": shop.store.pk, "consume-service": service.pk,
        "consume-quantity": "1", "consume-staff": shop.staff.pk, "consume-funding": "stored_value",
        "consume-notes": "", "consume-tags": "",
    }  # fmt: skip
    data.update({f"consume-{k}": v for k, v in fields.items()})
    return post_confirmed(client, reverse("members:consume", kwargs={"pk": shop.member.pk}), data, follow=True)


def test_login_is_required(client, shop):
    response = client.get(reverse("members:index"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get(member_page(shop.member)).status_code == 302


def test_member_list_shows_only_the_own_merchants_members(operator_client, shop):
    other = make_shop()
    stranger = make_owner(other.merchant, name="王五", mobile="13987654321")
    mine = make_owner(shop.merchant, name="张三", mobile="13912345678")
    body = operator_client.get(reverse("members:index")).content.decode()
    assert f'href="{member_page(shop.member)}"' in body and f'href="{member_page(mine)}"' in body
    assert f'href="{member_page(other.member)}"' not in body
    assert "王五" not in body and stranger.mobile not in body
    searched = operator_client.get(reverse("members:index"), {"q": "王五"}).content.decode()
    assert f'href="{member_page(stranger)}"' not in searched and stranger.mobile not in searched

    by_mobile = operator_client.get(reverse("members:index"), {"q": "1391234"}).content.decode()
    assert f'href="{member_page(mine)}"' in by_mobile and f'href="{member_page(shop.member)}"' not in by_mobile
    by_name = operator_client.get(reverse("members:index"), {"q": "张三"}).content.decode()
    assert f'href="{member_page(mine)}"' in by_name and f'href="{member_page(shop.member)}"' not in by_name
    by_number = operator_client.get(reverse("members:index"), {"q": mine.member_number}).content.decode()
    assert f'href="{member_page(mine)}"' in by_number


def test_dashboard_links_to_the_members_area(operator_client):
    body = operator_client.get(reverse("dashboard:index")).content.decode()
    assert f'href="{reverse("members:index")}"' in body
    assert "No viewsets found" not in body


def test_member_page_renders_and_another_merchants_member_is_404(operator_client, shop):
    load_plan(shop)
    response = operator_client.get(member_page(shop.member))
    assert response.status_code == 200
    body = response.content.decode()
    assert shop.member.member_number in body
    assert "¥1,000.00" in body and "¥200.00" in body  # principal and bonus of the plan, in yuan with separators
    # Each operation has a page of its own, linked from the member page.
    for name, token, kind in (
        ("recharge", "recharge-token", "?kind=plan"),
        ("consume", "consume-token", "?funding=stored_value"),
        ("refund", "refund-token", "?kind=lines"),
        ("change", "change-token", "?kind=name"),
    ):
        url = reverse(f"members:{name}", kwargs={"pk": shop.member.pk})
        assert f'href="{url}"' in body
        assert f'name="{token}"' in operator_client.get(url + kind).content.decode()

    other = make_shop()
    assert operator_client.get(member_page(other.member)).status_code == 404
    response = operator_client.post(
        reverse("members:recharge", kwargs={"pk": other.member.pk}), {"recharge-token": str(uuid.uuid4())}
    )
    assert response.status_code == 404


def test_recharge_through_the_form_moves_the_balance_once_per_token(operator_client, shop):
    url = reverse("members:recharge", kwargs={"pk": shop.member.pk})
    page = operator_client.get(url, {"kind": "stored_value"}).content.decode()
    token = re.search(r'name="recharge-token" value="([0-9a-f-]{36})"', page).group(1)

    response = post_recharge(operator_client, shop, token=token)
    assert response.status_code == 200
    recharge = Recharge.objects.get(member=shop.member)
    assert recharge.number.startswith("cz") and recharge.number in response.content.decode()
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (10_000, 2_000)

    again = post_recharge(operator_client, shop, token=token)  # the same page submitted twice
    assert again.status_code == 200
    assert Recharge.objects.filter(member=shop.member).count() == 1
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (10_000, 2_000)


def test_recharge_plan_and_package_lines(operator_client, shop):
    post_recharge(operator_client, shop, kind="plan", plan=shop.plan.pk, amount="", bonus="")
    post_recharge(operator_client, shop, kind="package", package=shop.cleaning_package.pk, quantity="2", amount="",
                  bonus="")  # fmt: skip
    benefits = selectors.member_benefits(shop.member)
    assert (benefits.principal_fen, benefits.bonus_fen) == (100_000, 20_000)
    assert sorted(g.balance for g in benefits.grants) == [5, 5]


def test_bad_recharge_input_shows_errors_and_changes_nothing(operator_client, shop):
    response = post_recharge(operator_client, shop, amount="12.345")
    assert response.status_code == 200
    assert "more than two decimal places" in response.content.decode()
    response = post_recharge(operator_client, shop, kind="coupon", amount="")
    assert "Required for this kind of line." in response.content.decode()
    assert not Recharge.objects.exists() and not Entry.objects.filter(member=shop.member).exists()


def test_consumption_through_the_form_creates_the_consumption_and_its_service_record(operator_client, shop):
    load_plan(shop)  # 1000 principal + 200 bonus
    response = post_consumption(operator_client, shop, shop.cleaning, notes="左上智齿", tags="洁牙, 复诊")
    assert response.status_code == 200
    consumption = Consumption.objects.get(member=shop.member)
    record = ServiceRecord.objects.get(member=shop.member)
    assert consumption.number.startswith("xf") and consumption.service_record == record
    body = response.content.decode()
    assert consumption.number in body and record.number in body
    assert record.staff == shop.staff and record.notes == "左上智齿"
    assert sorted(t.name for t in record.tags.all()) == ["复诊", "洁牙"]
    line = consumption.lines.get()
    assert (line.payable_fen, line.principal_fen + line.bonus_fen, line.staff) == (10_000, 10_000, shop.staff)
    benefits = selectors.member_benefits(shop.member)
    assert benefits.principal_fen + benefits.bonus_fen == 120_000 - 10_000


def test_consumption_with_direct_payment_and_with_entitlement_uses(operator_client, shop):
    missing = post_consumption(operator_client, shop, shop.massage, funding="direct")
    assert "Say how the member paid." in missing.content.decode()
    assert not Consumption.objects.exists()

    post_consumption(operator_client, shop, shop.massage, funding="direct", payment_method="alipay")
    line = ConsumptionLine.objects.get(service=shop.massage)
    assert (line.direct_fen, line.payment_method) == (20_000, "alipay")

    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="package", package=shop.cleaning_package)])  # fmt: skip
    grant = selectors.usable_grants(shop.member, shop.cleaning).get()
    post_consumption(operator_client, shop, shop.cleaning, funding="grant", grant=grant.pk, quantity="2")
    line = ConsumptionLine.objects.get(service=shop.cleaning)
    assert (line.grant, line.uses) == (grant, 2)
    assert [g.balance for g in selectors.member_benefits(shop.member).grants] == [3]


def test_consumption_from_a_voucher_with_the_rest_paid_directly(operator_client, shop):
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="voucher", voucher_template=shop.voucher)])  # fmt: skip
    voucher = selectors.member_benefits(shop.member).vouchers[0].obj
    post_consumption(operator_client, shop, shop.car_wash, funding="voucher", voucher=voucher.pk)  # ¥30 of ¥50
    post_consumption(operator_client, shop, shop.massage, funding="voucher", voucher=voucher.pk,
                     voucher_amount="20", payment_method="wechat")  # fmt: skip
    wash = ConsumptionLine.objects.get(service=shop.car_wash)
    massage = ConsumptionLine.objects.get(service=shop.massage)
    assert (wash.voucher_fen, wash.direct_fen) == (3_000, 0)
    assert (massage.voucher_fen, massage.direct_fen, massage.payment_method) == (2_000, 18_000, "wechat")
    assert selectors.member_benefits(shop.member).vouchers == []


def test_overdraft_through_the_form_shows_the_error_and_posts_nothing(operator_client, shop):
    services.recharge(member=shop.member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind="stored_value", amount_fen=5_000)])  # fmt: skip
    entries = Entry.objects.count()
    response = post_consumption(operator_client, shop, shop.massage, notes="按摩", tags="肩颈")  # ¥200 > ¥50
    assert response.status_code == 200
    assert "does not cover" in response.content.decode()
    assert not Consumption.objects.exists() and not ServiceRecord.objects.exists()
    assert Entry.objects.count() == entries
    assert selectors.member_benefits(shop.member).principal_fen == 5_000


def test_refund_through_the_form_is_a_request_carried_out_once_approved(
    operator_client, shop, django_capture_on_commit_callbacks
):
    load_plan(shop)
    consumption = services.consume(member=shop.member, store=shop.store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.cleaning, stored_value_fen=10_000)])  # fmt: skip
    line = consumption.lines.get()
    refund_url = reverse("members:refund", kwargs={"pk": shop.member.pk})
    page = operator_client.get(refund_url, {"kind": "lines"}).content.decode()
    assert "Every refund is a request" in page and f'value="{line.pk}"' in page

    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": shop.store.pk,
            "refund-lines": [line.pk], "refund-reason": "顾客投诉"}  # fmt: skip
    response = post_confirmed(operator_client, refund_url, data, follow=True)
    assert response.status_code == 200
    request = RefundRequest.objects.get(member=shop.member)
    assert request.number.startswith("tksq") and request.number in response.content.decode()
    line.refresh_from_db()
    assert line.status == ConsumptionLine.Status.NORMAL and not EntitlementRefund.objects.exists()
    benefits = selectors.member_benefits(shop.member)
    assert benefits.principal_fen + benefits.bonus_fen == 110_000  # nothing back before the approval

    # The store manager approves: the wallet refunds the line exactly once.
    manager = make_staff(shop.merchant, roles.APPROVER, stores=[shop.store]).user
    with django_capture_on_commit_callbacks(execute=True):
        flow_services.approve(request, actor=manager)
    refund = EntitlementRefund.objects.get(member=shop.member)
    line.refresh_from_db()
    assert line.status == ConsumptionLine.Status.REFUNDED and line.refund == refund
    page = operator_client.get(member_page(shop.member), {"tab": "consumptions"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "已退费" in page.content.decode()  # the line's status, asked for in Chinese
    benefits = selectors.member_benefits(shop.member)
    assert benefits.principal_fen + benefits.bonus_fen == 120_000

    # Already refunded lines are no longer offered: posting one again is a form error and changes nothing.
    data["refund-token"] = str(uuid.uuid4())
    again = post_confirmed(operator_client, refund_url, data)
    assert again.status_code == 200 and "errorlist" in again.content.decode()
    assert EntitlementRefund.objects.count() == 1 and RefundRequest.objects.count() == 1


def test_staff_without_operate_store_is_refused_and_nothing_changes(client, shop):
    client.force_login(shop.staff.user)  # a clerk: may look, holds redeem_store but not operate_store
    page = client.get(member_page(shop.member))
    assert page.status_code == 200 and 'id="no-operate"' in page.content.decode()
    assert 'name="recharge-token"' not in page.content.decode()
    assert post_recharge(client, shop).status_code == 403
    assert post_consumption(client, shop, shop.massage, funding="direct", payment_method="cash").status_code == 403
    assert not Recharge.objects.exists() and not Consumption.objects.exists()
    assert selectors.member_benefits(shop.member).principal_fen == 0


def test_operator_cannot_pick_a_store_without_operate_store(client, shop):
    other_store = StoreFactory(merchant=shop.merchant)
    north_only = make_staff(shop.merchant, roles.OPERATOR, stores=[other_store])
    client.force_login(north_only.user)
    response = post_recharge(client, shop)  # posts shop.store, on which this operator holds nothing
    assert response.status_code == 200
    assert "store" in response.context["recharge_form"].errors and "errorlist" in response.content.decode()
    assert not Recharge.objects.exists()
