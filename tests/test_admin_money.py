"""The Django admin speaks yuan and Chinese (issue 11, item 6).

- Money fields (`*_fen`) are entered in yuan ("1,234.56" or "1234.56") and stored in fen; lists,
  change pages and read-only records show yuan; bad amounts are field errors.
- Every model has a name of its own (no "… object (24)", no "Wallet settingss").
- The ledger account list shows balances from ledger.selectors in a number of queries that does not
  grow with the rows shown.
- The platform admin gets a merchant column and filter; a merchant's staff do not.
"""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from ledger.models import Account
from members import roles
from members.models import Level
from tests.factories import MerchantFactory, RoomFactory, StoreFactory, UserFactory, make_owner, make_staff
from tests.wallet_helpers import load_plan, make_shop
from wallet.models import CommissionKind, CommissionRule, RechargePlan, Service, WalletSettings

pytestmark = pytest.mark.django_db


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def platform_admin():
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    return get_user_model().objects.get(pk=user.pk)  # as saved (the factory sets the password after saving)


@pytest.fixture
def shop():
    shop = make_shop()
    shop.admin = make_staff(shop.merchant, roles.MERCHANT_ADMIN, stores=[shop.store]).user
    return shop


# ---------------------------------------------------------------- yuan in, fen stored, yuan out


@pytest.mark.parametrize(("typed", "fen"), [("1,234.56", 123_456), ("1234.56", 123_456), (" 88 ", 8_800), ("0.5", 50)])
def test_yuan_typed_in_the_admin_is_stored_in_fen_and_shown_in_yuan(client, shop, typed, fen):
    client.force_login(shop.admin)
    response = client.post(
        admin_url(RechargePlan, "add"),
        {"name": "新方案", "pay_fen": typed, "bonus_fen": "0", "gift_coupon_quantity": 0, "is_active": "on"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    plan = RechargePlan.objects.get(name="新方案")
    assert (plan.pay_fen, plan.bonus_fen) == (fen, 0)
    shown = f"{fen // 100:,}.{fen % 100:02d}"
    change = client.get(admin_url(RechargePlan, "change", plan.pk)).content.decode()
    assert f'name="pay_fen" value="{shown}"' in change  # the form shows yuan again
    listed = client.get(admin_url(RechargePlan, "changelist")).content.decode()
    assert f"¥{shown}" in listed


@pytest.mark.parametrize("typed", ["12.345", "-5", "abc", "1e3", "99999999999999999"])
def test_bad_yuan_is_a_field_error_and_nothing_is_saved(client, shop, typed):
    client.force_login(shop.admin)
    response = client.post(
        admin_url(RechargePlan, "add"),
        {"name": "坏方案", "pay_fen": typed, "bonus_fen": "0", "gift_coupon_quantity": 0, "is_active": "on"},
    )
    assert response.status_code == 200
    assert "pay_fen" in response.context["adminform"].form.errors
    assert not RechargePlan.objects.filter(name="坏方案").exists()


def test_zero_is_refused_where_the_model_wants_more_than_zero(client, shop):
    client.force_login(shop.admin)
    response = client.post(
        admin_url(RechargePlan, "add"),
        {"name": "零元方案", "pay_fen": "0.00", "bonus_fen": "0", "gift_coupon_quantity": 0, "is_active": "on"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["pay_fen"] == ["The amount must be greater than zero."]


def test_optional_money_left_empty_is_none(client, shop):
    client.force_login(shop.admin)
    level = Level.objects.create(merchant=shop.merchant, name="银卡", rank=5, upgrade_spend_fen=500_000)
    data = {
        "name": "银卡",
        "rank": 5,
        "discount_rate_bp": 9500,
        "points_multiplier_pct": 100,
        "birthday_gift_points": 0,
    }
    assert client.post(admin_url(Level, "change", level.pk), {**data, "upgrade_spend_fen": ""}).status_code == 302
    level.refresh_from_db()
    assert level.upgrade_spend_fen is None
    assert client.post(admin_url(Level, "change", level.pk), {**data, "upgrade_spend_fen": "5,000"}).status_code == 302
    level.refresh_from_db()
    assert level.upgrade_spend_fen == 500_000


def test_commission_is_entered_as_yuan_or_percent_and_stored_in_hundredths(client, shop):
    client.force_login(shop.admin)
    service = shop.car_wash
    data = {
        "category": service.category_id, "name": service.name, "unit_label": "次", "list_price_fen": "30",
        "member_price_fen": "30.00", "commission_kind": CommissionKind.PERCENT, "commission_value": "12.5",
        "is_active": "on", "commission_rules-TOTAL_FORMS": 1, "commission_rules-INITIAL_FORMS": 0,
        "commission_rules-0-staff_level": 2, "commission_rules-0-kind": CommissionKind.FIXED,
        "commission_rules-0-value": "2.50",
    }  # fmt: skip
    response = client.post(admin_url(Service, "change", service.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    service.refresh_from_db()
    assert (service.commission_kind, service.commission_value) == (CommissionKind.PERCENT, 1_250)  # basis points
    assert CommissionRule.objects.get(service=service, staff_level=2).value == 250  # fen
    listed = client.get(admin_url(Service, "changelist")).content.decode()
    assert "12.5%" in listed and "¥10.00" in listed  # 洗车 12.5 %, 洁牙 ¥10 fixed per use


def test_records_show_money_in_yuan_read_only(client, shop):
    """Recharges change only through the services: the admin shows them, amounts in yuan, lines too."""
    recharge = load_plan(shop)
    client.force_login(shop.admin)
    page = client.get(admin_url(type(recharge), "change", recharge.pk)).content.decode()
    assert "¥1,000.00" in page and "¥200.00" in page  # paid, bonus (pay 1000 get 200)
    assert 'name="paid_total_fen"' not in page  # not an input
    assert ">100000<" not in page and ">20000<" not in page  # no fen, in the record or its lines
    listed = client.get(admin_url(type(recharge), "changelist")).content.decode()
    assert "¥1,000.00" in listed


# ---------------------------------------------------------------- names


def _our_models():
    for label in ("members", "ledger", "wallet"):
        yield from apps.get_app_config(label).get_models()


def test_every_model_has_chinese_names_and_no_doubled_plural():
    with translation.override("en"):
        for model in _our_models():
            plural = str(model._meta.verbose_name_plural)
            assert not plural.endswith("ss"), f"{model.__name__}: {plural!r}"  # "Wallet settingss"
    with translation.override("zh-hans"):
        for model in _our_models():
            for name in (model._meta.verbose_name, model._meta.verbose_name_plural):
                assert re.search(r"[\u4e00-\u9fff]", str(name)), f"{model.__name__}: {name!r} is not Chinese"
            for field in model._meta.get_fields():
                if getattr(field, "verbose_name", None) is not None and field.concrete and not field.auto_created:
                    assert re.search(r"[\u4e00-\u9fff]", str(field.verbose_name)), f"{model.__name__}.{field.name}"


def test_no_model_is_shown_as_object_n(client, shop):
    """Every model defines __str__: no changelist, change page or inline shows "… object (24)"."""
    load_plan(shop)
    member = shop.member
    from wallet import services

    services.issue_voucher(template=shop.voucher, member=member, actor=shop.admin, reason="测试")
    for model in _our_models():
        assert "__str__" in {k for cls in model.__mro__[:-1] for k in vars(cls)}, model
    client.force_login(platform_admin())
    for model in admin.site._registry:
        if model._meta.app_label not in ("members", "ledger", "wallet"):
            continue
        listed = client.get(admin_url(model, "changelist"))
        assert listed.status_code == 200, model
        assert "object (" not in listed.content.decode(), model
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            assert not re.search(r"object \(\d+\)", str(row)), (model, str(row))
            page = client.get(admin_url(model, "change", row.pk)).content.decode()
            assert "object (" not in page, model
    index = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "settingss" not in index.lower() and "钱包设置" in index


# ---------------------------------------------------------------- ledger accounts with balances


def _changelist_queries(client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_ledger_account_list_shows_balances_in_queries_that_do_not_grow(client):
    shop = make_shop()
    admin_user = make_staff(shop.merchant, roles.MERCHANT_ADMIN, stores=[shop.store]).user
    load_plan(shop)  # principal ¥1,000.00, bonus ¥200.00, and the merchant side
    client.force_login(admin_user)
    url = admin_url(Account, "changelist")
    few, page = _changelist_queries(client, url)
    assert "¥1,000.00" in page and "¥200.00" in page
    for _ in range(12):  # more members, more accounts on the same page
        load_plan(shop, member=make_owner(shop.merchant))
    assert Account.objects.filter(merchant=shop.merchant).count() >= 25
    many, page = _changelist_queries(client, url)
    assert page.count("¥1,000.00") >= 13
    assert many == few, f"{few} queries for a few accounts, {many} for many"


def test_ledger_account_page_shows_the_balance(client, shop):
    load_plan(shop)
    client.force_login(shop.admin)
    account = Account.objects.get(member=shop.member, purpose="principal")
    page = client.get(admin_url(Account, "change", account.pk)).content.decode()
    assert "¥1,000.00" in page


# ---------------------------------------------------------------- the platform admin's merchant column


def test_platform_admin_gets_a_merchant_column_and_filter_merchant_staff_do_not(client, shop):
    other = MerchantFactory(name="另一家商户")
    StoreFactory(merchant=other)
    Level.objects.create(merchant=shop.merchant, name="普通", rank=1)
    load_plan(shop)
    for model in (RechargePlan, Account, WalletSettings, type(shop.store), Level):
        url = admin_url(model, "changelist")
        client.force_login(platform_admin())
        page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert re.search(r'<th scope="col" class="sortable column-merchant', page), model
        assert 'id="changelist-filter"' in page and "merchant__id__exact=" in page, model
        client.force_login(shop.admin)
        page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert "column-merchant" not in page, model
        assert "merchant__id__exact=" not in page, model
    # A model whose merchant is two relations away (a room: building → estate → merchant) too.
    from members.models import Room

    RoomFactory(building__estate__merchant=shop.merchant)
    client.force_login(platform_admin())
    page = client.get(admin_url(Room, "changelist")).content.decode()
    assert "column-merchant_of_row" in page and "building__estate__merchant__id__exact=" in page
