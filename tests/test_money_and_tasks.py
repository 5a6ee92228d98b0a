import datetime

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger.money import format_fen, parse_fen
from tests.factories import make_owner
from tests.wallet_helpers import make_shop
from wallet import services, tasks
from wallet.models import Grant, Voucher


@pytest.mark.parametrize(("text", "fen"), [("12.34", 1234), ("0.01", 1), ("100", 10000), ("7.5", 750), (" 3.00 ", 300)])
def test_parse_fen_accepts_decimal_strings(text, fen):
    assert parse_fen(text, "amount") == fen


@pytest.mark.parametrize(
    ("value", "reason"),
    [("12.345", "more than two decimal"), ("-1.00", "positive"), ("0", "greater than zero"), ("0.00", "greater than zero"),
     (1.5, "decimal strings"), ("abc", "not an amount"), ("1e3", "not an amount"), (True, "decimal strings")],
)  # fmt: skip
def test_parse_fen_refuses_bad_amounts_naming_the_field(value, reason):
    with pytest.raises(ValidationError) as exc:
        parse_fen(value, "amount")
    assert reason in exc.value.message_dict["amount"][0]


def test_format_fen():
    assert [format_fen(v) for v in (0, 5, 1234, -5, 100000)] == ["0.00", "0.05", "12.34", "-0.05", "1000.00"]


def test_expiry_runs_nightly_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["wallet-expire-due-benefits"]
    assert entry["task"] == tasks.expire_due_benefits_task.name


@pytest.mark.django_db
def test_expiry_task_runs_the_sweep():
    shop = make_shop()
    voucher = services.issue_voucher(template=shop.voucher, member=shop.member, actor=None, reason="新会员礼")
    Voucher.objects.filter(pk=voucher.pk).update(valid_until=timezone.now() - datetime.timedelta(days=1))
    result = tasks.expire_due_benefits_task.delay().get()
    assert result["vouchers"] == 1
    breakage = ledger_selectors.find_account(shop.merchant, "breakage", "CNY")
    assert ledger_selectors.balance(breakage) == 5_000


@pytest.mark.django_db
def test_batch_coupon_issue_task_is_idempotent_per_batch():
    shop = make_shop()
    members = [make_owner(shop.merchant) for _ in range(30)]
    ids = [m.pk for m in members]
    first = tasks.issue_coupons_task.delay(shop.car_wash_coupon.pk, ids, None, "周年庆", "batch-2026-11").get()
    assert first["issued"] == 30
    redelivered = tasks.issue_coupons_task.delay(shop.car_wash_coupon.pk, ids, None, "周年庆", "batch-2026-11").get()
    assert redelivered["issued"] == 0
    assert Grant.objects.filter(coupon_template=shop.car_wash_coupon).count() == 30
    assert ledger_selectors.reconcile(shop.merchant).clean


@pytest.mark.django_db
def test_free_voucher_is_a_promotion_expense_and_partially_usable():
    shop = make_shop()
    voucher = services.issue_voucher(template=shop.voucher, member=shop.member, actor=None, reason="生日礼")
    expense = ledger_selectors.find_account(shop.merchant, "bonus_expense", "CNY")
    assert ledger_selectors.balance(expense) == 5_000
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=3_000)])  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        services.consume(member=shop.member, store=shop.store, actor=None,
                         items=[services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=2_000,
                                                         direct_fen=1_000, payment_method="cash"),
                                services.ConsumptionItem(service=shop.car_wash, voucher=voucher, voucher_fen=1_000,
                                                         direct_fen=2_000, payment_method="cash")])  # fmt: skip
    assert "items[1].voucher_fen" in exc.value.message_dict  # ¥20 left, ¥30 asked over two lines
    with pytest.raises(ValidationError):
        services.issue_voucher(template=shop.voucher, member=shop.member, actor=None, reason=" ")
