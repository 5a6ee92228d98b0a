"""Who may set prices (issue 9, item 1): a role × action matrix.

For every role and every pricing, marketing, level, wallet-settings and staff action, the role's
model permission AND the real Django admin URL agree: the platform and merchant admins may, every
other role is refused (403, or sent to the admin login when the role may not sign in to the admin)
and nothing is created or changed. The role table itself is checked to classify every model."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from core.money import format_fen
from members import roles
from members.models import Level, Merchant, Staff, Store
from tests.factories import LevelFactory, MerchantFactory, StoreFactory, UserFactory, make_staff
from wallet.models import (
    CommissionKind,
    CommissionRule,
    CouponTemplate,
    EntitlementPackage,
    PackageItem,
    RechargePlan,
    Service,
    ServiceCategory,
    VipCardType,
    VoucherTemplate,
    WalletSettings,
)

pytestmark = pytest.mark.django_db

ALLOWED = {roles.PLATFORM_ADMIN, roles.MERCHANT_ADMIN}


@dataclass
class World:
    merchant: Merchant
    store: Store
    category: ServiceCategory
    service: Service
    level: Level


def _world() -> World:
    merchant = MerchantFactory()
    category = ServiceCategory.objects.create(merchant=merchant, name="服务")
    service = Service.objects.create(
        merchant=merchant, category=category, name="洗车", list_price_fen=3_000, member_price_fen=3_000
    )
    return World(merchant, StoreFactory(merchant=merchant), category, service, LevelFactory(merchant=merchant))


def _user_for(role: str, world: World):
    if role == roles.PLATFORM_ADMIN:  # platform admins have no staff record: never scoped to a merchant
        user = UserFactory(is_staff=True)
        user.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
        return user
    return make_staff(world.merchant, role, stores=[world.store]).user


def _inline(prefix: str, forms: list[dict[str, Any]] = (), initial: int = 0) -> dict[str, Any]:
    data = {f"{prefix}-TOTAL_FORMS": len(forms), f"{prefix}-INITIAL_FORMS": initial,
            f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}  # fmt: skip
    for i, form in enumerate(forms):
        data.update({f"{prefix}-{i}-{k}": v for k, v in form.items()})
    return data


def _service_form(w: World, **extra) -> dict[str, Any]:
    # Money in yuan, as the admin takes it (stored in fen).
    data = {"category": w.category.pk, "name": w.service.name, "unit_label": "次", "list_price_fen": "30.00",
            "member_price_fen": "30.00", "commission_kind": CommissionKind.NONE, "commission_value": "0",
            "is_active": "on"}  # fmt: skip
    data.update(extra)
    return data


@dataclass
class Action:
    """One admin action: POST `data(world)` to `url(world)`; `done(world)` tells whether it happened."""

    name: str
    perm: str  # the model permission the action needs
    url: Callable[[World], str]
    data: Callable[[World], dict[str, Any]]
    done: Callable[[World], bool]
    setup: Callable[[World], Any] = lambda w: None
    check_url_when_allowed: bool = True


def _add(model: str) -> Callable[[World], str]:
    return lambda w: f"/admin/{model.replace('.', '/')}/add/"


def _settings_defaults() -> dict:
    """Every WalletSettings field the admin form posts, at its model default (money in yuan)."""
    return {
        f.name: format_fen(f.default) if f.name.endswith("_fen") else f.default
        for f in WalletSettings._meta.concrete_fields
        if f.name.startswith("max_") or f.name == "confirm_above_fen"
    }


ACTIONS = [
    Action("add recharge plan", "wallet.add_rechargeplan", _add("wallet.rechargeplan"),
           lambda w: {"name": "充500送50", "pay_fen": "500.00", "bonus_fen": "50.00", "gift_coupon_quantity": 0,
                      "is_active": "on"},
           lambda w: RechargePlan.objects.filter(name="充500送50").exists()),
    Action("change recharge plan", "wallet.change_rechargeplan",
           lambda w: f"/admin/wallet/rechargeplan/{w.plan.pk}/change/",
           lambda w: {"name": w.plan.name, "pay_fen": "1,000.00", "bonus_fen": "300.00", "gift_coupon_quantity": 0,
                      "is_active": "on"},
           lambda w: RechargePlan.objects.get(pk=w.plan.pk).bonus_fen == 30_000,
           setup=lambda w: setattr(w, "plan", RechargePlan.objects.create(
               merchant=w.merchant, name="充1000送200", pay_fen=100_000, bonus_fen=20_000))),
    Action("add coupon template", "wallet.add_coupontemplate", _add("wallet.coupontemplate"),
           lambda w: {"name": "免费洗车", "uses": 1000, "price_fen": "0.01", "valid_days": 365, "per_member_limit": 0,
                      "services": [w.service.pk], "is_active": "on"},
           lambda w: CouponTemplate.objects.filter(name="免费洗车", price_fen=1).exists()),
    Action("change coupon template", "wallet.change_coupontemplate",
           lambda w: f"/admin/wallet/coupontemplate/{w.coupon.pk}/change/",
           lambda w: {"name": w.coupon.name, "uses": 1000, "price_fen": "0.01", "valid_days": 365,
                      "per_member_limit": 0, "services": [w.service.pk], "is_active": "on"},
           lambda w: CouponTemplate.objects.get(pk=w.coupon.pk).uses == 1000,
           setup=lambda w: setattr(w, "coupon", CouponTemplate.objects.create(
               merchant=w.merchant, name="洗车10次", uses=10, price_fen=20_000))),
    Action("add voucher template", "wallet.add_vouchertemplate", _add("wallet.vouchertemplate"),
           lambda w: {"name": "万元券", "amount_fen": "10,000.00", "price_fen": "0", "valid_days": 30, "is_active": "on"},
           lambda w: VoucherTemplate.objects.filter(name="万元券", amount_fen=1_000_000).exists()),
    Action("change voucher template", "wallet.change_vouchertemplate",
           lambda w: f"/admin/wallet/vouchertemplate/{w.voucher.pk}/change/",
           lambda w: {"name": w.voucher.name, "amount_fen": "10000", "price_fen": "0.00", "valid_days": 30,
                      "is_active": "on"},
           lambda w: VoucherTemplate.objects.get(pk=w.voucher.pk).amount_fen == 1_000_000,
           setup=lambda w: setattr(w, "voucher", VoucherTemplate.objects.create(
               merchant=w.merchant, name="50元券", amount_fen=5_000, price_fen=4_000))),
    Action("add VIP type", "wallet.add_vipcardtype", _add("wallet.vipcardtype"),
           lambda w: {"name": "免费年卡", "period": "year", "price_fen": "0", "services": [w.service.pk],
                      "is_active": "on"},
           lambda w: VipCardType.objects.filter(name="免费年卡").exists()),
    Action("change VIP type", "wallet.change_vipcardtype",
           lambda w: f"/admin/wallet/vipcardtype/{w.vip.pk}/change/",
           lambda w: {"name": w.vip.name, "period": "year", "price_fen": "0.01", "services": [w.service.pk],
                      "is_active": "on"},
           lambda w: VipCardType.objects.get(pk=w.vip.pk).price_fen == 1,
           setup=lambda w: setattr(w, "vip", VipCardType.objects.create(
               merchant=w.merchant, name="年卡", period="year", price_fen=99_900))),
    Action("add service", "wallet.add_service", _add("wallet.service"),
           lambda w: {**_service_form(w, name="一分钱洗车", list_price_fen="0.01", member_price_fen="0.01"),
                      **_inline("commission_rules")},
           lambda w: Service.objects.filter(name="一分钱洗车").exists()),
    Action("change service price", "wallet.change_service",
           lambda w: f"/admin/wallet/service/{w.service.pk}/change/",
           lambda w: {**_service_form(w, member_price_fen="0.01"), **_inline("commission_rules")},
           lambda w: Service.objects.get(pk=w.service.pk).member_price_fen == 1),
    Action("add package", "wallet.add_entitlementpackage", _add("wallet.entitlementpackage"),
           lambda w: {"name": "洗车百次", "price_fen": "2000.00", "valid_days": 365, "is_active": "on",
                      **_inline("items", [{"service": w.service.pk, "quantity": 100}])},
           lambda w: EntitlementPackage.objects.filter(name="洗车百次").exists()),
    Action("change package", "wallet.change_entitlementpackage",
           lambda w: f"/admin/wallet/entitlementpackage/{w.package.pk}/change/",
           lambda w: {"name": w.package.name, "price_fen": "2000.00", "valid_days": 365, "is_active": "on",
                      **_inline("items", [{"id": w.package_item.pk, "package": w.package.pk,
                                           "service": w.service.pk, "quantity": 100}], initial=1)},
           lambda w: PackageItem.objects.get(pk=w.package_item.pk).quantity == 100,
           setup=lambda w: (
               setattr(w, "package", EntitlementPackage.objects.create(merchant=w.merchant, name="洗车5次",
                                                                       price_fen=10_000)),
               setattr(w, "package_item", PackageItem.objects.create(package=w.package, service=w.service,
                                                                     quantity=5)))),
    Action("add commission rule", "wallet.add_commissionrule",
           lambda w: f"/admin/wallet/service/{w.service.pk}/change/",
           lambda w: {**_service_form(w), **_inline(
               "commission_rules", [{"service": w.service.pk, "staff_level": 1, "kind": CommissionKind.FIXED,
                                     "value": "25.00"}])},
           lambda w: CommissionRule.objects.filter(service=w.service, value=2_500).exists()),
    Action("change commission rule", "wallet.change_commissionrule",
           lambda w: f"/admin/wallet/service/{w.service.pk}/change/",
           lambda w: {**_service_form(w), **_inline(
               "commission_rules", [{"id": w.rule.pk, "service": w.service.pk, "staff_level": 1,
                                     "kind": CommissionKind.FIXED, "value": "25.00"}], initial=1)},
           lambda w: CommissionRule.objects.get(pk=w.rule.pk).value == 2_500,
           setup=lambda w: setattr(w, "rule", CommissionRule.objects.create(
               service=w.service, staff_level=1, kind=CommissionKind.FIXED, value=100))),
    Action("add level", "members.add_level", _add("members.level"),
           lambda w: {"name": "至尊", "rank": 99, "discount_rate_bp": 1, "points_multiplier_pct": 100,
                      "birthday_gift_points": 0},
           lambda w: Level.objects.filter(name="至尊").exists()),
    Action("change level discount rate", "members.change_level",
           lambda w: f"/admin/members/level/{w.level.pk}/change/",
           lambda w: {"name": w.level.name, "rank": w.level.rank, "discount_rate_bp": 1, "points_multiplier_pct": 100,
                      "birthday_gift_points": 0},
           lambda w: Level.objects.get(pk=w.level.pk).discount_rate_bp == 1),
    Action("add wallet settings", "wallet.add_walletsettings", _add("wallet.walletsettings"),
           lambda w: {**_settings_defaults(), "spending_policy": "bonus_first", "points_per_yuan": 1000, "points_valid_years": 1},
           lambda w: WalletSettings.objects.filter(points_per_yuan=1000).exists()),
    Action("change wallet settings", "wallet.change_walletsettings",
           lambda w: f"/admin/wallet/walletsettings/{w.settings.pk}/change/",
           lambda w: {**_settings_defaults(), "spending_policy": "bonus_first", "points_per_yuan": 1000, "points_valid_years": 1},
           lambda w: WalletSettings.objects.get(pk=w.settings.pk).points_per_yuan == 1000,
           setup=lambda w: setattr(w, "settings", WalletSettings.objects.create(merchant=w.merchant))),
    # Staff: the admin's staff forms belong to issue 9 item 11 (they may go through the services or be
    # refused altogether), so for the allowed roles only the permission is checked here.
    Action("add staff", "members.add_staff", _add("members.staff"),
           lambda w: {"user": w.spare_user.pk, "name": "新人", "mobile": "", "role": roles.MERCHANT_ADMIN,
                      "level": 1, "stores": [w.store.pk], "is_active": "on"},
           lambda w: Staff.objects.filter(user=w.spare_user).exists(),
           setup=lambda w: setattr(w, "spare_user", UserFactory()),
           check_url_when_allowed=False),
    Action("change staff", "members.change_staff",
           lambda w: f"/admin/members/staff/{w.victim.pk}/change/",
           lambda w: {"user": w.victim.user_id, "name": w.victim.name, "mobile": "", "role": roles.MERCHANT_ADMIN,
                      "level": 9, "stores": [w.store.pk], "is_active": "on"},
           lambda w: Staff.objects.get(pk=w.victim.pk).level == 9,
           setup=lambda w: setattr(w, "victim", make_staff(w.merchant, roles.CLERK, stores=[w.store])),
           check_url_when_allowed=False),
]  # fmt: skip


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_role_action_matrix(client, role: str, action: Action):
    world = _world()
    action.setup(world)
    user = get_user_model().objects.get(pk=_user_for(role, world).pk)  # fresh permission cache
    allowed = role in ALLOWED

    assert user.has_perm(action.perm) is allowed, f"{role} model permission {action.perm}"

    client.force_login(user)
    data = action.data(world)
    if role == roles.PLATFORM_ADMIN:
        data["merchant"] = world.merchant.pk  # platform admins pick the merchant; staff get their own
    response = client.post(action.url(world), data)
    if allowed:
        if not action.check_url_when_allowed:
            return
        errors = (
            response.context["adminform"].form.errors if response.context and "adminform" in response.context else ""
        )
        assert response.status_code == 302, f"{role} {action.name}: {response.status_code} {errors}"
        assert action.done(world), f"{role} {action.name} did not happen"
    else:
        if role in roles.ADMIN_SITE_ROLES:
            assert response.status_code == 403, f"{role} {action.name}: {response.status_code}"
        else:  # may not sign in to the admin at all
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        assert not action.done(world), f"{role} {action.name} happened"


def test_operators_keep_what_they_need_to_register_members_and_read():
    group = Group.objects.get(name=roles.OPERATOR)
    held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert {"members.add_owner", "members.change_owner", "members.view_owner", "members.view_level"} <= held
    assert {"wallet.view_rechargeplan", "wallet.view_recharge", "ledger.view_entry"} <= held
    assert not {p for p in held if p.split(".")[1].startswith(("add_", "change_", "delete_"))} - {
        "members.add_owner",
        "members.change_owner",
        "members.add_membercard",
        "members.change_membercard",
    }


def test_every_model_is_classified_in_the_role_table():
    """A new model of members or wallet must be put in one table of members.roles on purpose: a
    wildcard never hands out the right to create it."""
    classified = roles.PRICING_MODELS + roles.ORGANISATION_MODELS + roles.MEMBER_MODELS + roles.RECORD_MODELS
    assert len(classified) == len(set(classified))
    models = {f"{m._meta.app_label}.{m._meta.model_name}" for label in ("members", "wallet")
              for m in apps.get_app_config(label).get_models()} - {"members.merchant"}  # fmt: skip
    assert models == set(classified)


def test_every_flows_model_is_classified_and_read_only_for_staff():
    classified = roles.FLOW_RECORD_MODELS + roles.FLOW_SETTINGS_MODELS + roles.FLOW_INTERNAL_MODELS
    assert len(classified) == len(set(classified))
    assert {f"flows.{m._meta.model_name}" for m in apps.get_app_config("flows").get_models()} == set(classified)
    for role in set(roles.ROLES) - {roles.PLATFORM_ADMIN}:
        held = Group.objects.get(name=role).permissions.filter(content_type__app_label="flows")
        assert not held.exclude(codename__startswith="view_"), role  # requests change through flows.services only
        assert held.exists() is (role != roles.CLERK), role


def test_nobody_but_the_admins_may_write_any_pricing_model():
    for role in roles.ROLES:
        group = Group.objects.get(name=role)
        for model in roles.PRICING_MODELS:
            app, name = model.split(".")
            writes = group.permissions.filter(
                content_type__app_label=app, codename__in=[f"add_{name}", f"change_{name}", f"delete_{name}"]
            )
            assert writes.exists() is (role in ALLOWED), (role, model)


def test_migration_narrows_the_groups_of_an_existing_database():
    """A database whose operator group still holds the old wallet.add_* and members.change_level gets
    them taken away by members/0003 (frozen table), before post_migrate runs; members/0005 then adds the
    flows' read permissions, and the last frozen table equals the live one."""
    operator = Group.objects.get(name=roles.OPERATOR)
    old = Permission.objects.filter(
        content_type__app_label="wallet", codename__startswith="add_"
    ) | Permission.objects.filter(content_type__app_label="members", codename="change_level")
    operator.permissions.add(*old)
    migration = importlib.import_module("members.migrations.0003_narrow_role_permissions")
    migration.narrow_groups(apps, None)
    held = set(operator.permissions.values_list("codename", flat=True))
    assert not {c for c in held if c.startswith("add_") and c != "add_owner" and c != "add_membercard"}
    assert "change_level" not in held and "add_owner" in held
    # members/0005 extends 0003's frozen table with the flows' read permissions (an existing database's
    # groups had none of them).
    approver = Group.objects.get(name=roles.APPROVER)
    approver.permissions.remove(*Permission.objects.filter(content_type__app_label="flows"))
    importlib.import_module("members.migrations.0006_flow_read_permissions").grant_flow_permissions(apps, None)
    assert {"view_refundrequest", "view_refundprocess"} <= set(approver.permissions.values_list("codename", flat=True))
    # members/0007 adds the free value requests' read permissions on top of 0006's table.
    assert "view_freevaluerequest" not in set(approver.permissions.values_list("codename", flat=True))
    importlib.import_module("members.migrations.0007_free_value_read_permissions").grant_free_value_permissions(
        apps, None
    )
    assert {"view_freevaluerequest", "view_freevalueprocess"} <= set(
        approver.permissions.values_list("codename", flat=True)
    )
    assert not approver.permissions.filter(content_type__app_label="flows").exclude(codename__startswith="view_")
    # The latest frozen table gives what the live table gives today.
    frozen = {role: set(Group.objects.get(name=role).permissions.values_list("pk", flat=True)) for role in roles.ROLES}
    from members.services import sync_group_permissions

    sync_group_permissions()
    assert frozen == {
        role: set(Group.objects.get(name=role).permissions.values_list("pk", flat=True)) for role in roles.ROLES
    }
