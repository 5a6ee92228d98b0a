"""A two-merchant world for the portal's lists and dashboards: merchant A with stores 1 and 2 and a
login per role, merchant B with its own store, staff and records, and a platform admin. Records are
made through the wallet services, then dated where a test needs a date."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from members import numbering, roles
from members.models import Owner, Staff, Store
from tests.factories import StoreFactory, make_owner, make_staff
from tests.wallet_helpers import Shop, make_shop
from wallet import services
from wallet.models import Consumption, Recharge

PASSWORD = "pw-12345678"


@dataclass
class World:
    a: Shop
    b: Shop
    s1: Store
    s2: Store
    admin: Staff  # merchant admin of A (both stores)
    op1: Staff  # operator at store 1
    op2: Staff  # operator at store 2
    manager2: Staff  # approver / store manager at store 2
    finance: Staff  # finance at store 1
    clerk: Staff  # clerk at store 1 (also a.staff serves the consumptions of the helpers)
    b_op: Staff  # operator of merchant B
    platform: object  # a platform admin login


def make_world() -> World:
    a, b = make_shop(), make_shop()
    # Merchant B's business numbers start at 500 today, so that no number of B equals one of A's and a
    # number found in a page or an export tells whose row it is.
    for key in ("cz", "xf", "fw", "tqy", "txj", "fq"):
        numbering.set_counter(b.merchant.pk, key, timezone.localdate(), 500)
    s1, s2 = a.store, StoreFactory(merchant=a.merchant, name="南店")
    s1.name = "北店"
    s1.save()
    platform = get_user_model().objects.create_user("platform-admin", password=PASSWORD, is_staff=True)
    platform.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    return World(
        a=a, b=b, s1=s1, s2=s2,
        admin=make_staff(a.merchant, roles.MERCHANT_ADMIN, stores=[s1, s2], name="店主"),
        op1=make_staff(a.merchant, roles.OPERATOR, stores=[s1], name="操作员一"),
        op2=make_staff(a.merchant, roles.OPERATOR, stores=[s2], name="操作员二"),
        manager2=make_staff(a.merchant, roles.APPROVER, stores=[s2], name="店长二"),
        finance=make_staff(a.merchant, roles.FINANCE, stores=[s1], name="财务"),
        clerk=make_staff(a.merchant, roles.CLERK, stores=[s1], name="营业员"),
        b_op=make_staff(b.merchant, roles.OPERATOR, stores=[b.store], name="乙操作员"),
        platform=platform,
    )  # fmt: skip


def stored_value(
    shop: Shop, store: Store | None, fen: int, *, member: Owner | None = None, method: str = "wechat", actor=None,
    at: datetime.datetime | None = None,
) -> Recharge:  # fmt: skip
    record = services.recharge(
        member=member or shop.member, store=store, payment_method=method, actor=actor,
        items=[services.RechargeItem(kind="stored_value", amount_fen=fen)],
    )  # fmt: skip
    if at is not None:
        Recharge.objects.filter(pk=record.pk).update(created_at=at)
        record.refresh_from_db()
    return record


def spend(
    shop: Shop, store: Store | None, fen: int, *, member: Owner | None = None, staff: Staff | None = None,
    actor=None, tags=(), at: datetime.datetime | None = None, direct_method: str = "",
) -> Consumption:  # fmt: skip
    """A consumption with its service record (served by `staff`, default the shop's clerk) of a service
    priced `fen`, paid from stored value (or directly with `direct_method`)."""
    from wallet.models import Service

    service = Service.objects.create(
        merchant=shop.merchant, category=shop.massage.category, name=f"服务{fen}-{Service.objects.count()}",
        list_price_fen=fen, member_price_fen=fen,
    )  # fmt: skip
    paid = {"direct_fen": fen, "payment_method": direct_method} if direct_method else {"stored_value_fen": fen}
    consumption = services.consume_with_service_record(
        member=member or shop.member, staff=staff or shop.staff, store=store, actor=actor, tags=list(tags),
        items=[services.ConsumptionItem(service=service, **paid)],
    )  # fmt: skip
    if at is not None:
        Consumption.objects.filter(pk=consumption.pk).update(created_at=at)
        type(consumption.service_record).objects.filter(pk=consumption.service_record_id).update(created_at=at)
        consumption.refresh_from_db()
    return consumption


def days_ago(days: int, hour: int = 12) -> datetime.datetime:
    local = timezone.localtime().replace(hour=hour, minute=0, second=0, microsecond=0)
    return local - datetime.timedelta(days=days)


def new_member(shop: Shop, **kwargs) -> Owner:
    return make_owner(shop.merchant, **kwargs)


# Posting the portal's operator forms the way an operator does: the form, then its confirmation page
# (and the second confirmation above the merchant's threshold), clicking "confirm" on each.


def is_confirmation(response) -> bool:
    # The free-value approval page shows a quote too, but is no confirmation step (it has no stage).
    return (
        response.status_code == 200
        and response.context is not None
        and "quote" in response.context
        and "stage" in response.context
    )


def post_confirmed(client, url: str, data: dict, *, follow: bool = False, max_steps: int = 3):
    """POST `data`; while the answer is a confirmation page, confirm what it shows (its digest) and POST
    again. Returns the last response: the form with its errors, a refusal, or the redirect after the
    operation was recorded (followed with a GET when `follow`)."""
    data = dict(data)
    response = client.post(url, data)
    for _step in range(max_steps):
        if not is_confirmation(response):
            break
        quote, stage = response.context["quote"], response.context["stage"]
        data["confirm"] = quote.digest
        if stage == 2:
            data["confirm_large"] = quote.digest
        response = client.post(url, data)
    if follow and response.status_code == 302:
        return client.get(response["Location"])
    return response
