"""Free text given to the wallet's operations (notes, tags, reasons, occasions) is checked by the
services themselves, so callers other than the portal's forms (the API, flows, jobs) get a field
error, never a database error: PostgreSQL refuses NUL characters, columns have lengths."""

import pytest
from django.core.exceptions import ValidationError

from ledger.models import Entry
from tests.wallet_helpers import load_plan, make_shop, spend_stored_value
from wallet import services
from wallet.models import ActivityPointsRule

NUL = "备注\x00"


def _operations(shop):
    load_plan(shop)
    line = spend_stored_value(shop, 1_000).lines.get()
    rule = ActivityPointsRule.objects.create(merchant=shop.merchant, code="sign", name="签到", points=10)
    item = services.RechargeItem(kind="stored_value", amount_fen=10_000)
    return {
        "recharge note": ("note", lambda text: services.recharge(
            member=shop.member, store=shop.store, payment_method="cash", items=[item], actor=None, note=text)),
        "consumption note": ("note", lambda text: spend_stored_value(shop, 500, note=text)),
        "service notes": ("notes", lambda text: services.record_service(
            member=shop.member, staff=shop.staff, store=shop.store, actor=None, notes=text)),
        "service tag": ("tags", lambda text: services.record_service(
            member=shop.member, staff=shop.staff, store=shop.store, actor=None, tags=[text])),
        "line refund reason": ("reason", lambda text: services.refund_consumption_lines(
            member=shop.member, lines=[line], reason=text, actor=None)),
        "stored value refund reason": ("reason", lambda text: services.cash_refund_stored_value(
            member=shop.member, payment_method="cash", reason=text, actor=None)),
        "voucher reason": ("reason", lambda text: services.issue_voucher(
            template=shop.voucher, member=shop.member, actor=None, reason=text)),
        "coupon batch reason": ("reason", lambda text: services.issue_coupons(
            template=shop.car_wash_coupon, member_ids=[shop.member.pk], actor=None, reason=text)),
        "points occasion": ("occasion", lambda text: services.award_activity_points(
            member=shop.member, rule=rule, occasion=text, actor=None)),
    }  # fmt: skip


OPERATIONS = [
    "recharge note", "consumption note", "service notes", "service tag", "line refund reason",
    "stored value refund reason", "voucher reason", "coupon batch reason", "points occasion",
]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize(("text", "code"), [(NUL, "text_nul"), ("长" * 2001, "text_too_long")])
def test_bad_text_is_a_field_error_and_posts_nothing(name, text, code):
    shop = make_shop()
    operations = _operations(shop)
    field, run = operations[name]
    entries = Entry.objects.count()
    with pytest.raises(ValidationError) as exc:
        run(text)
    assert exc.value.code == code and exc.value.field == field
    assert Entry.objects.count() == entries
