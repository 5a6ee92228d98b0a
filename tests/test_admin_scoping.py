"""The Django admin keeps every merchant to its own rows (issue 9, items 9, 11, 12).

The walking tests go through admin.site._registry, not page by page: a model admin registered
tomorrow is walked too. Merchant B's rows carry unique marker text ("ZZB" in every name, code and
username; business numbers from 901 on, while A's start at 001), so any of B's rows showing up on a
page of merchant A's staff is found whatever the page.
"""

from __future__ import annotations

import html
import re
import uuid
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from guardian.shortcuts import get_perms

from core.money import format_fen
from members import numbering, roles, scoping, selectors
from members import services as member_services
from members.admin import MerchantScopedAdmin, PlatformOnlyAdminMixin
from members.models import AuditEvent, Building, Estate, Level, Merchant, Owner, Room, Staff, Store
from tests.factories import make_owner, make_staff
from wallet import services as wallet_services
from wallet.models import (
    ActivityPointsRule,
    CommissionKind,
    CommissionRule,
    CouponTemplate,
    EntitlementPackage,
    Grant,
    PackageItem,
    RechargePlan,
    Service,
    ServiceCategory,
    VipCardType,
    VoucherTemplate,
    WalletSettings,
)

pytestmark = pytest.mark.django_db

# Not plain ASCII letters: random CSRF tokens and session keys on a page can hold any short ASCII run.
MARK_B = "乙方"
MARK_PLATFORM = "平台方"
STAFF_ROLES = (roles.MERCHANT_ADMIN, roles.OPERATOR, roles.APPROVER, roles.FINANCE)
NUMBER_KEYS = ("member", "cz", "xf", "fw", "tqy", "txj", "fq")


# ---------------------------------------------------------------- a merchant with a row of every model


def build_merchant(mark: str, low: str, first_number: int) -> SimpleNamespace:
    """A merchant with rows of every registered model, every name carrying `mark`, every code and
    username `low`, business numbers starting after `first_number`."""
    merchant = Merchant.objects.create(code=f"{low}-merchant", name=f"{mark}商户", kind=Merchant.Kind.PROPERTY)
    today = timezone.localdate()
    for key in NUMBER_KEYS:
        numbering.set_counter(merchant.pk, key, today, first_number)
    WalletSettings.objects.create(merchant=merchant)
    rule = ActivityPointsRule.objects.create(merchant=merchant, code=f"{low}-signup", name=f"{mark}签到", points=5)
    store = Store.objects.create(merchant=merchant, code=f"{low}-s1", name=f"{mark}门店一")
    store2 = Store.objects.create(merchant=merchant, code=f"{low}-s2", name=f"{mark}门店二")
    estate = Estate.objects.create(merchant=merchant, name=f"{mark}小区")
    building = Building.objects.create(estate=estate, name=f"{mark}1栋")
    room = Room.objects.create(building=building, number=f"{mark}101")
    Room.objects.create(building=building, number=f"{mark}102")
    level = Level.objects.create(merchant=merchant, name=f"{mark}普通", rank=1)
    Level.objects.create(merchant=merchant, name=f"{mark}金卡", rank=2)
    category = ServiceCategory.objects.create(merchant=merchant, name=f"{mark}服务类")
    cleaning = Service.objects.create(
        merchant=merchant, category=category, name=f"{mark}洁牙", list_price_fen=12_000, member_price_fen=10_000,
        commission_kind=CommissionKind.FIXED, commission_value=1_000,
    )  # fmt: skip
    car_wash = Service.objects.create(
        merchant=merchant, category=category, name=f"{mark}洗车", list_price_fen=3_000, member_price_fen=3_000
    )
    CommissionRule.objects.create(service=cleaning, staff_level=2, kind=CommissionKind.FIXED, value=500)
    coupon = CouponTemplate.objects.create(merchant=merchant, name=f"{mark}洗车券", uses=10, price_fen=20_000)
    coupon.services.add(car_wash)
    package = EntitlementPackage.objects.create(merchant=merchant, name=f"{mark}洁牙包", price_fen=50_000)
    PackageItem.objects.create(package=package, service=cleaning, quantity=5)
    voucher = VoucherTemplate.objects.create(merchant=merchant, name=f"{mark}代金券", amount_fen=5_000, price_fen=4_000)
    vip = VipCardType.objects.create(merchant=merchant, name=f"{mark}年卡", period="year", price_fen=99_900)
    vip.services.add(car_wash)
    plan = RechargePlan.objects.create(
        merchant=merchant, name=f"{mark}充1000送200", pay_fen=500_000, bonus_fen=20_000, gift_coupon=coupon,
        gift_coupon_quantity=1, gift_package=package, gift_vip=vip,
    )  # fmt: skip
    staff = {
        role: make_staff(merchant, role, stores=[store], username=f"{low}-{role}", name=f"{mark}{role}")
        for role in (*STAFF_ROLES, roles.CLERK)
    }
    actor = staff[roles.OPERATOR].user
    member = make_owner(merchant, name=f"{mark}业主", rooms=[room], level=level, actor=actor)
    make_owner(merchant, name=f"{mark}会员二", actor=actor)
    item = wallet_services.RechargeItem
    wallet_services.recharge(
        member=member, store=store, payment_method="wechat", actor=actor, note=f"{mark}充值",
        items=[item(kind="plan", plan=plan), item(kind="voucher", voucher_template=voucher),
               item(kind="coupon", coupon_template=coupon)],
    )  # fmt: skip
    clerk = staff[roles.CLERK]
    paid = wallet_services.consume_with_service_record(
        member=member, staff=clerk, store=store, actor=actor, notes=f"{mark}备注", tags=[f"{mark}标签"],
        items=[wallet_services.ConsumptionItem(service=cleaning, staff=clerk,
                                               stored_value_fen=wallet_services.unit_price_for(member, cleaning))],
    )  # fmt: skip
    entitlement = Grant.objects.filter(member=member, kind=Grant.Kind.ENTITLEMENT).first()
    wallet_services.consume(
        member=member, store=store, actor=actor,
        items=[wallet_services.ConsumptionItem(service=cleaning, staff=clerk, grant=entitlement)],
    )  # fmt: skip
    wallet_services.refund_consumption_lines(
        member=member, lines=list(paid.lines.all()), reason=f"{mark}退", actor=actor
    )
    bought = Grant.objects.filter(member=member, kind=Grant.Kind.COUPON, paid_fen__gt=0).first()
    wallet_services.cash_refund_grant(grant=bought, payment_method="cash", reason=f"{mark}退券", actor=actor)
    wallet_services.award_activity_points(member=member, rule=rule, occasion="signup", actor=actor)
    return SimpleNamespace(
        merchant=merchant, store=store, store2=store2, estate=estate, level=level, member=member, staff=staff,
        cleaning=cleaning, coupon=coupon, package=package, vip=vip, plan=plan, category=category,
    )  # fmt: skip


@pytest.fixture
def world():
    a = build_merchant("甲方", "aaa", 0)
    b = build_merchant(MARK_B, "zzb", 900)
    platform = get_user_model().objects.create_user(f"{MARK_PLATFORM}platform", password="pw-12345678", is_staff=True)
    platform.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    b_numbers = set()
    for model in admin.site._registry:
        field_names = {f.name for f in model._meta.concrete_fields}
        path = scoping.merchant_path(model)
        if path and path != scoping.GLOBAL:
            rows = model._default_manager.filter(**{path: b.merchant.pk})
            for name in ("number", "member_number", "card_number"):
                if name in field_names:
                    b_numbers.update(rows.values_list(name, flat=True))
    markers = {MARK_B, MARK_PLATFORM, "zzb-", *b_numbers}
    return SimpleNamespace(a=a, b=b, platform=platform, markers=markers)


# ---------------------------------------------------------------- walking the registry


def admin_url(model, view: str, *args) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)
    except NoReverseMatch:
        return None


def rows_of(model, merchant: Merchant):
    path = scoping.merchant_path(model)
    if path is None or path == scoping.GLOBAL:
        return model._default_manager.none()
    return model._default_manager.filter(**{path: merchant.pk}).order_by("pk")


def filter_links(page: str) -> list[str]:
    """The query strings of every choice in the changelist's filter sidebar."""
    match = re.search(r'id="changelist-filter".*?</nav>', page, re.S)
    if not match:
        return []
    return sorted({html.unescape(href) for href in re.findall(r'href="(\?[^"]*)"', match.group(0))})


class Walker:
    def __init__(self, client, world):
        self.client, self.world = client, world
        self.failures: list[str] = []

    def get(self, url: str, allowed: tuple[int, ...], *, leaks: bool = True):
        response = self.client.get(url)
        if response.status_code not in allowed:
            self.failures.append(f"{url}: {response.status_code}, expected one of {allowed}")
        if leaks and response.status_code == 200:
            page = response.content.decode()
            found = sorted(m for m in self.world.markers if m in page)
            if found:
                self.failures.append(f"{url}: shows merchant B's or the platform's {found}")
        return response


def walk_registry_as(client, world, user) -> list[str]:
    client.force_login(user)
    walker = Walker(client, world)
    for model, model_admin in admin.site._registry.items():
        changelist = admin_url(model, "changelist")
        response = walker.get(changelist, (200, 403))
        if response.status_code == 200:
            for query in filter_links(response.content.decode()):
                walker.get(changelist + query, (200,))
            # Bad lookups are refused as such (a redirect to ?e=1), never a 500.
            for query in ("?q=%00", "?id__exact=99999999999999999999999", "?id__exact=%00"):
                walker.get(changelist + query, (200, 302), leaks=False)
            if model_admin.date_hierarchy:
                walker.get(f"{changelist}?{model_admin.date_hierarchy}__year=99999999999", (200, 302), leaks=False)
        walker.get(admin_url(model, "add"), (200, 403))
        own = rows_of(model, world.a.merchant).first()
        if own is not None:
            walker.get(admin_url(model, "change", own.pk), (200, 302, 403))
            walker.get(admin_url(model, "history", own.pk), (200, 302, 403))
        for foreign in rows_of(model, world.b.merchant)[:3]:
            for view in ("change", "history", "delete"):
                walker.get(admin_url(model, view, foreign.pk), (302, 403, 404))
    return walker.failures


def test_every_registered_admin_is_scoped_or_platform_only():
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, MerchantScopedAdmin | PlatformOnlyAdminMixin), model
        if isinstance(model_admin, MerchantScopedAdmin):
            assert scoping.merchant_path(model) not in (None, scoping.GLOBAL), model


def test_every_model_of_the_project_has_a_derived_merchant_path():
    """The next model added to members, ledger or wallet is scoped without anyone declaring it."""
    from django.apps import apps

    for label in ("members", "ledger", "wallet"):
        for model in apps.get_app_config(label).get_models():
            path = scoping.merchant_path(model)
            assert path not in (None, scoping.GLOBAL), model
            # The path really leads to a merchant.
            model._default_manager.filter(**{path: 1}).exists()


def test_fixture_has_rows_of_every_scoped_model_for_both_merchants(world):
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, MerchantScopedAdmin):
            assert rows_of(model, world.a.merchant).exists(), model
            assert rows_of(model, world.b.merchant).exists(), model


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_walk_admin_registry_as_merchant_staff_shows_nothing_of_another_merchant(client, world, role):
    client.raise_request_exception = False
    failures = walk_registry_as(client, world, world.a.staff[role].user)
    assert not failures, "\n".join(failures)


def test_walk_admin_registry_as_platform_admin_never_answers_500(client, world):
    client.raise_request_exception = False
    client.force_login(world.platform)
    walker = Walker(client, world)
    for model in admin.site._registry:
        changelist = admin_url(model, "changelist")
        response = walker.get(changelist, (200,), leaks=False)
        for query in filter_links(response.content.decode()):
            walker.get(changelist + query, (200,), leaks=False)
        walker.get(admin_url(model, "add"), (200, 403), leaks=False)
        for merchant in (world.a.merchant, world.b.merchant):
            row = rows_of(model, merchant).first()
            if row is not None:
                for view in ("change", "history", "delete"):
                    walker.get(admin_url(model, view, row.pk), (200, 403), leaks=False)
    assert not walker.failures, "\n".join(walker.failures)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_admin_search_finds_nothing_of_another_merchant(world, role):
    user = world.a.staff[role].user
    for model, model_admin in admin.site._registry.items():
        if not model_admin.search_fields:
            continue
        request = RequestFactory().get("/")
        request.user = user
        queryset = model_admin.get_queryset(request)
        for term in (MARK_B, *sorted(world.markers - {MARK_B, MARK_PLATFORM, "zzb-"})[:5]):
            found, _ = model_admin.get_search_results(request, queryset, term)
            assert not found.exists(), (model, term)


def test_form_choices_of_every_admin_are_the_merchants_own(world):
    """Every foreign-key and many-to-many choice of every add form and inline, as merchant A's admin."""
    user = world.a.staff[roles.MERCHANT_ADMIN].user
    request = RequestFactory().get("/")
    request.user = user
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, MerchantScopedAdmin):
            continue
        forms = [model_admin.get_form(request, None)]
        forms += [inline.get_formset(request, None).form for inline in model_admin.get_inline_instances(request, None)]
        for form in forms:
            for name, field in form.base_fields.items():
                queryset = getattr(field, "queryset", None)
                if queryset is None:
                    continue
                for obj in queryset:
                    checked += 1
                    assert scoping.merchant_id_of(obj) in (None, world.a.merchant.pk), (model, name, obj)
    assert checked > 20


# ---------------------------------------------------------------- item 9: cross-merchant choices refused


def test_plan_cannot_gift_another_merchants_template_even_for_a_platform_admin(client, world):
    client.force_login(world.platform)
    # A plan not sold yet (a sold plan's terms are frozen whatever they point at).
    plan = RechargePlan.objects.create(merchant=world.a.merchant, name="甲方新方案", pay_fen=100_000,
                                       gift_coupon=world.a.coupon, gift_coupon_quantity=1)  # fmt: skip
    response = client.post(
        admin_url(RechargePlan, "change", plan.pk),
        {
            "name": plan.name, "pay_fen": format_fen(plan.pay_fen), "bonus_fen": format_fen(plan.bonus_fen),
            "gift_coupon": world.b.coupon.pk, "gift_coupon_quantity": 1, "is_active": "on",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "another merchant" in response.content.decode()
    plan.refresh_from_db()
    assert plan.gift_coupon_id == world.a.coupon.pk


def test_merchant_admin_cannot_post_another_merchants_service_into_a_coupon_template(client, world):
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    response = client.post(
        admin_url(CouponTemplate, "add"),
        {"name": "新券", "uses": 1, "price_fen": 0, "valid_days": 30, "per_member_limit": 0,
         "services": [world.b.cleaning.pk], "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert not CouponTemplate.objects.filter(name="新券").exists()


# ---------------------------------------------------------------- item 11: staff and owner edits do what they say


def staff_change_data(staff: Staff, **changes) -> dict:
    data = {
        "name": staff.name, "mobile": staff.mobile, "role": staff.role, "level": staff.level,
        "stores": [s.pk for s in staff.stores.all()], "is_active": "on" if staff.is_active else "",
    }  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_demoted_operator_can_no_longer_record_a_recharge(client, world):
    a = world.a
    operator = a.staff[roles.OPERATOR]
    assert "operate_store" in get_perms(operator.user, a.store)
    client.force_login(a.staff[roles.MERCHANT_ADMIN].user)
    response = client.post(admin_url(Staff, "change", operator.pk), staff_change_data(operator, role=roles.CLERK))
    assert response.status_code == 302, response.content.decode()[:3000]
    operator.refresh_from_db()
    user = type(operator.user).objects.get(pk=operator.user.pk)
    assert operator.role == roles.CLERK
    assert "operate_store" not in get_perms(user, a.store)
    assert set(user.groups.values_list("name", flat=True)) == {roles.CLERK}
    assert not selectors.operable_stores(user, a.merchant).exists()
    assert AuditEvent.objects.filter(action="staff.role_changed", object_id=str(operator.pk)).exists()
    # Through the portal: refused, nothing recorded.
    client.force_login(user)
    before = a.member.grants.count()
    posted = client.post(
        reverse("members:recharge", kwargs={"pk": a.member.pk}),
        {"recharge-token": str(uuid.uuid4()), "recharge-store": a.store.pk, "recharge-payment_method": "cash",
         "recharge-kind": "stored_value", "recharge-amount": "100.00", "recharge-bonus": "0",
         "recharge-quantity": "1", "recharge-note": ""},
    )  # fmt: skip
    assert posted.status_code == 403
    assert a.member.grants.count() == before


def test_staff_stores_and_deactivation_move_object_permissions(client, world):
    a = world.a
    operator = a.staff[roles.OPERATOR]
    client.force_login(a.staff[roles.MERCHANT_ADMIN].user)
    moved = client.post(admin_url(Staff, "change", operator.pk), staff_change_data(operator, stores=[a.store2.pk]))
    assert moved.status_code == 302
    user = type(operator.user).objects.get(pk=operator.user.pk)
    assert "operate_store" not in get_perms(user, a.store)
    assert "operate_store" in get_perms(user, a.store2)
    gone = client.post(admin_url(Staff, "change", operator.pk), staff_change_data(operator, stores=[a.store2.pk],
                                                                                   is_active=""))  # fmt: skip
    assert gone.status_code == 302
    user = type(operator.user).objects.get(pk=operator.user.pk)
    operator.refresh_from_db()
    assert not operator.is_active and not user.is_active and not user.groups.exists()
    assert not get_perms(user, a.store2) and not operator.stores.exists()


def test_staff_add_form_offers_no_existing_login_and_no_platform_role(client, world):
    a = world.a
    client.force_login(a.staff[roles.MERCHANT_ADMIN].user)
    page = client.get(admin_url(Staff, "add")).content.decode()
    assert 'name="user"' not in page and world.platform.username not in page
    assert f'value="{roles.PLATFORM_ADMIN}"' not in page
    refused = client.post(
        admin_url(Staff, "add"),
        {"username": "new_admin", "name": "新人", "role": roles.PLATFORM_ADMIN, "level": 1, "stores": [a.store.pk]},
    )
    assert refused.status_code == 200 and not Staff.objects.filter(name="新人").exists()
    # Linking the platform login is impossible: a username is always a new login.
    taken = client.post(
        admin_url(Staff, "add"),
        {"username": world.platform.username, "name": "新人", "role": roles.OPERATOR, "level": 1},
    )
    assert taken.status_code == 200 and not Staff.objects.filter(user=world.platform).exists()
    created = client.post(
        admin_url(Staff, "add"),
        {"username": "new_operator", "name": "新人", "role": roles.OPERATOR, "level": 1, "stores": [a.store.pk]},
    )
    assert created.status_code == 302, created.content.decode()[:3000]
    staff = Staff.objects.get(user__username="new_operator")
    assert staff.merchant == a.merchant and "operate_store" in get_perms(staff.user, a.store)
    # Promoting an existing staff member to platform admin is refused too.
    operator = a.staff[roles.OPERATOR]
    promoted = client.post(
        admin_url(Staff, "change", operator.pk), staff_change_data(operator, role=roles.PLATFORM_ADMIN)
    )
    assert promoted.status_code == 200
    operator.refresh_from_db()
    assert operator.role == roles.OPERATOR
    assert not operator.user.groups.filter(name=roles.PLATFORM_ADMIN).exists()


def owner_change_data(owner: Owner, **changes) -> dict:
    data = {
        "name": owner.name, "mobile": owner.mobile, "level": owner.level_id,
        "rooms": [r.pk for r in owner.rooms.all()], "cards-TOTAL_FORMS": 0, "cards-INITIAL_FORMS": 0,
    }  # fmt: skip
    data.update(changes)
    return data


def test_owner_birthday_edit_persists_through_the_service_with_audit(client, world):
    owner = world.a.member
    client.force_login(world.a.staff[roles.OPERATOR].user)
    response = client.post(admin_url(Owner, "change", owner.pk), owner_change_data(owner, birthday="1990-05-06"))
    assert response.status_code == 302, response.content.decode()[:3000]
    owner.refresh_from_db()
    assert str(owner.birthday) == "1990-05-06"
    event = AuditEvent.objects.filter(action="owner.changed", object_id=str(owner.pk)).latest("id")
    assert event.after == {"birthday": "1990-05-06"}


def test_owner_status_cannot_be_changed_in_the_admin_without_the_service(client, world):
    owner = world.a.member
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    page = client.get(admin_url(Owner, "change", owner.pk)).content.decode()
    assert 'name="status"' not in page  # read-only: a status change needs a reason (portal, workflows)
    client.post(admin_url(Owner, "change", owner.pk), owner_change_data(owner, status="frozen"))
    owner.refresh_from_db()
    assert owner.status == Owner.Status.ACTIVE


def test_update_owner_keeps_birthday_unless_given():
    owner = make_owner(birthday=timezone.localdate().replace(year=1980))
    member_services.update_owner(owner, actor=None, name="改名")
    owner.refresh_from_db()
    assert owner.birthday.year == 1980
    member_services.update_owner(owner, actor=None, birthday=None)
    owner.refresh_from_db()
    assert owner.birthday is None


# ---------------------------------------------------------------- item 12: no 500 in the admin


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_merchant_pages_answer_no_500_to_merchant_staff(client, world, role):
    client.raise_request_exception = False
    client.force_login(world.a.staff[role].user)
    for merchant in (world.a.merchant, world.b.merchant):
        for view in ("change", "history", "delete"):
            response = client.get(admin_url(Merchant, view, merchant.pk))
            assert response.status_code in (302, 403, 404), (merchant, view, response.status_code)


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Store, {"code": "aaa-s1", "name": "重复", "is_active": "on"}, "code"),
        (Level, {"name": "新等级", "rank": 1, "discount_rate_bp": 10000, "points_multiplier_pct": 100,
                 "birthday_gift_points": 0}, "rank"),
        (Level, {"name": "甲方普通", "rank": 7, "discount_rate_bp": 10000, "points_multiplier_pct": 100,
                 "birthday_gift_points": 0}, "name"),
        (Estate, {"name": "甲方小区", "buildings-TOTAL_FORMS": 0, "buildings-INITIAL_FORMS": 0}, "name"),
        (ServiceCategory, {"name": "甲方服务类", "tax_rate_bp": 600}, "name"),
        (ActivityPointsRule, {"code": "aaa-signup", "name": "x", "points": 1, "is_active": "on"}, "code"),
        (WalletSettings, {"spending_policy": "proportional", "points_per_yuan": 1, "points_valid_years": 1}, None),
    ],
)  # fmt: skip
def test_duplicate_per_merchant_values_are_field_errors(client, world, model, data, field):
    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    before = model._default_manager.count()
    response = client.post(admin_url(model, "add"), data)
    assert response.status_code == 200, response.status_code
    errors = response.context["adminform"].form.errors
    assert (field or "__all__") in errors, errors
    assert model._default_manager.count() == before


def test_duplicate_on_change_is_a_field_error_for_a_platform_admin_too(client, world):
    client.raise_request_exception = False
    client.force_login(world.platform)
    response = client.post(
        admin_url(Store, "change", world.a.store2.pk), {"code": "aaa-s1", "name": "x", "is_active": "on"}
    )
    assert response.status_code == 200
    assert "code" in response.context["adminform"].form.errors
    world.a.store2.refresh_from_db()
    assert world.a.store2.code == "aaa-s2"


@pytest.mark.parametrize("value", [2**31, 2**63, 10**30])
def test_huge_integers_in_admin_forms_are_field_errors(client, world, value):
    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    cases = [
        (Level, {"name": "大", "rank": value, "discount_rate_bp": 10000, "points_multiplier_pct": value,
                 "birthday_gift_points": value, "upgrade_spend_fen": value}),
        (Service, {"category": world.a.category.pk, "name": "大", "unit_label": "次", "list_price_fen": value,
                   "member_price_fen": value, "commission_kind": "none", "commission_value": value,
                   "is_active": "on", "commission_rules-TOTAL_FORMS": 1, "commission_rules-INITIAL_FORMS": 0,
                   "commission_rules-0-staff_level": value, "commission_rules-0-kind": "fixed",
                   "commission_rules-0-value": value}),
        (RechargePlan, {"name": "大", "pay_fen": value, "bonus_fen": value, "gift_coupon": value,
                        "gift_coupon_quantity": value, "is_active": "on"}),
        (CouponTemplate, {"name": "大", "uses": value, "price_fen": value, "valid_days": value,
                          "per_member_limit": value, "services": [value]}),
    ]  # fmt: skip
    for model, data in cases:
        before = model._default_manager.count()
        response = client.post(admin_url(model, "add"), data)
        assert response.status_code == 200, (model, response.status_code)
        assert model._default_manager.count() == before


def test_nul_characters_in_admin_forms_are_field_errors(client, world):
    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    response = client.post(admin_url(Store, "add"), {"code": "new\x00", "name": "名\x00", "address": "\x00"})
    assert response.status_code == 200
    assert {"code", "name", "address"} <= set(response.context["adminform"].form.errors)
    staff_before = Staff.objects.count()
    staff = client.post(admin_url(Staff, "add"), {"username": "x\x00", "name": "\x00", "role": roles.OPERATOR,
                                                  "level": 1})  # fmt: skip
    assert staff.status_code == 200 and Staff.objects.count() == staff_before
    with pytest.raises(ValidationError):
        member_services.validate_staff_fields(world.a.merchant, actor=None, username="x\x00")
    owner = world.a.member
    changed = client.post(admin_url(Owner, "change", owner.pk), owner_change_data(owner, name="名\x00"))
    assert changed.status_code == 200
    owner.refresh_from_db()
    assert "\x00" not in owner.name


def test_financial_records_are_never_deleted_through_the_admin(client, world):
    client.raise_request_exception = False
    client.force_login(world.platform)
    for model in admin.site._registry:
        if model._meta.app_label in ("wallet", "ledger"):
            for row in rows_of(model, world.a.merchant)[:1]:
                response = client.post(admin_url(model, "delete", row.pk), {"post": "yes"})
                assert response.status_code == 403, (model, response.status_code)
                assert model._default_manager.filter(pk=row.pk).exists()
