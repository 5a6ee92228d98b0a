"""Adversarial probe of the admin, roles and store scope (issue 9, items 1, 9, 10, 11, 12, 14).

Each test here reproduces a defect found by attacking the merged issue 9 work as another merchant's
staff, as a careless merchant staff member and as a stranger, and guards its whole class: every
admin action of every registered admin, every changelist's query string, every service path that
changes a staff member whose login is a platform admin.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.urls import reverse

from core.money import format_fen
from members import roles, selectors
from members import services as member_services
from members.models import AuditEvent, MemberCard, Staff
from tests import test_admin_scoping
from tests.test_admin_scoping import STAFF_ROLES, admin_url, staff_change_data

world = test_admin_scoping.world  # the two-merchant fixture with a row of every model

pytestmark = pytest.mark.django_db

User = get_user_model()


# ---------------------------------------------------------------- admin actions need a change permission


def _actions_of(model_admin) -> list:
    return [func for func, _name, _desc in model_admin._get_base_actions()]


def test_every_admin_action_declares_the_permission_it_needs():
    """Django runs an action without `allowed_permissions` for anyone who may open the changelist
    (a view-only role included). Every action a merchant's staff can reach, but Django's own
    delete_selected (which checks the delete permission itself), must say what it needs. (Platform-only
    admins, e.g. axes' records, are out of reach of merchant staff altogether.)"""
    from members.admin import MerchantScopedAdmin

    missing = [
        f"{type(model_admin).__name__}.{func.__name__}"
        for model_admin in admin.site._registry.values()
        if isinstance(model_admin, MerchantScopedAdmin)
        for func in _actions_of(model_admin)
        if func.__name__ != "delete_selected" and not getattr(func, "allowed_permissions", None)
    ]
    assert not missing, missing


@pytest.mark.parametrize("role", [roles.APPROVER, roles.FINANCE])
def test_view_only_roles_cannot_replace_member_cards_through_an_admin_action(client, world, role):
    """Found: an approver or a finance user (view-only on member cards) reported a member's card lost
    and issued a new one by posting the changelist action."""
    client.raise_request_exception = False
    card = MemberCard.objects.get(owner=world.a.member, status=MemberCard.Status.ACTIVE)
    client.force_login(world.a.staff[role].user)
    response = client.post(
        admin_url(MemberCard, "changelist"), {"action": "replace_lost_cards", "_selected_action": [card.pk]}
    )
    assert response.status_code in (200, 302, 403)
    card.refresh_from_db()
    assert card.status == MemberCard.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="card.replaced", object_id=str(card.pk)).exists()


def test_an_action_without_declared_permissions_is_offered_only_to_users_who_may_change():
    """The scoped admin's default for an action that declares nothing: the change permission."""
    from members.admin import MemberCardAdmin

    def undeclared(modeladmin, request, queryset):  # pragma: no cover - never run
        pass

    class Probe(MemberCardAdmin):
        actions = [undeclared]

    merchant_world = _one_merchant()
    model_admin = Probe(MemberCard, admin.site)
    for role, offered in ((roles.OPERATOR, True), (roles.APPROVER, False), (roles.FINANCE, False)):
        request = RequestFactory().get("/")
        request.user = User.objects.get(pk=merchant_world[role].user.pk)
        assert ("undeclared" in model_admin.get_actions(request)) is offered, role


def _one_merchant() -> dict:
    from tests.factories import MerchantFactory, StoreFactory, make_staff

    merchant = MerchantFactory()
    store = StoreFactory(merchant=merchant)
    return {role: make_staff(merchant, role, stores=[store]) for role in STAFF_ROLES}


def test_the_operator_still_replaces_a_lost_card_through_the_admin(client, world):
    card = MemberCard.objects.get(owner=world.a.member, status=MemberCard.Status.ACTIVE)
    client.force_login(world.a.staff[roles.OPERATOR].user)
    client.post(admin_url(MemberCard, "changelist"), {"action": "replace_lost_cards", "_selected_action": [card.pk]})
    card.refresh_from_db()
    assert card.status == MemberCard.Status.REPLACED


# ---------------------------------------------------------------- query strings too big for the database


@pytest.mark.parametrize(
    "query",
    [
        "q=" + "x" * 60_000,  # SQLite: LIKE or GLOB pattern too complex
        "q=" + "a+" * 2_000,  # SQLite: expression tree is too large (maximum depth 1000)
        "status__contains=" + "a" * 60_000,
    ],
    ids=["long search", "many search terms", "long filter value"],
)
@pytest.mark.parametrize("who", ["merchant admin", "platform admin"])
def test_oversized_changelist_queries_are_bad_lookups_not_500(client, world, query, who):
    """Found: a 60,000-character search or 2,000 search words answered 500 on every changelist with
    search fields (SQLite refuses the statement). Refused as a bad lookup, like any other."""
    client.raise_request_exception = False
    client.force_login(world.platform if who == "platform admin" else world.a.staff[roles.MERCHANT_ADMIN].user)
    failures = []
    for model in admin.site._registry:
        url = admin_url(model, "changelist")
        response = client.get(f"{url}?{query}")
        if response.status_code not in (200, 302, 400, 403):
            failures.append(f"{url}: {response.status_code}")
    assert not failures, failures


def test_an_ordinary_search_still_finds_the_member(client, world):
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    response = client.get(admin_url(type(world.a.member), "changelist") + f"?q={world.a.member.mobile}")
    assert response.status_code == 200
    assert world.a.member.member_number in response.content.decode()


# ---------------------------------------------------------------- a platform admin's login is the platform's


def _platform_login_with_merchant_role(merchant, how: str) -> Staff:
    """A staff row of `merchant` with a merchant role whose login is nevertheless a platform admin
    (by group, or a superuser): the platform owner working a shift, a support login, a migration."""
    staff = member_services.create_staff(
        merchant=merchant, username=f"support-{how}", name="平台支持", role=roles.MERCHANT_ADMIN, actor=None
    )
    if how == "group":
        staff.user.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    else:
        User.objects.filter(pk=staff.user_id).update(is_superuser=True)
    assert selectors.is_platform_admin(User.objects.get(pk=staff.user_id))
    return staff


@pytest.mark.parametrize("how", ["group", "superuser"])
@pytest.mark.parametrize(
    "change",
    [{"role": roles.OPERATOR}, {"is_active": ""}, {"stores": []}, {"level": 7}],
    ids=["demote", "deactivate", "take stores", "edit details"],
)
def test_a_merchant_admin_cannot_change_a_staff_row_whose_login_is_a_platform_admin(client, world, how, change):
    """Found: a merchant admin demoted (or deactivated) a staff row of their merchant whose login is a
    platform admin: `_apply_role` then took the platform admin group away (or the login itself), since
    the check looked only at the row's role column."""
    client.raise_request_exception = False
    support = _platform_login_with_merchant_role(world.a.merchant, how)
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    response = client.post(admin_url(Staff, "change", support.pk), staff_change_data(support, **change))
    assert response.status_code == 200, response.status_code
    assert "role" in response.context["adminform"].form.errors or response.context["adminform"].form.non_field_errors()
    user = User.objects.get(pk=support.user_id)
    assert user.is_active and selectors.is_platform_admin(user)
    support.refresh_from_db()
    assert (support.role, support.is_active, support.level) == (roles.MERCHANT_ADMIN, True, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, actor: member_services.change_staff_role(s, roles.OPERATOR, actor=actor),
        lambda s, actor: member_services.deactivate_staff(s, actor=actor),
        lambda s, actor: member_services.set_staff_stores(s, [], actor=actor),
        lambda s, actor: member_services.update_staff(s, actor=actor, name="改名"),
        lambda s, actor: member_services.grant_store_role(s, s.merchant.stores.first(), s.role, actor=actor),
        lambda s, actor: member_services.revoke_store_roles(s, s.merchant.stores.first(), actor=actor),
    ],
    ids=[
        "change_staff_role",
        "deactivate_staff",
        "set_staff_stores",
        "update_staff",
        "grant_store_role",
        "revoke_store_roles",
    ],
)
def test_staff_services_refuse_a_non_platform_actor_on_a_platform_login(world, call):
    support = _platform_login_with_merchant_role(world.a.merchant, "group")
    with pytest.raises(ValidationError) as raised:
        call(support, world.a.staff[roles.MERCHANT_ADMIN].user)
    assert raised.value.error_dict["role"][0].code == "role_not_allowed"
    user = User.objects.get(pk=support.user_id)
    assert user.is_active and user.groups.filter(name=roles.PLATFORM_ADMIN).exists()
    # The platform admin (and scripts) still may.
    call(support, world.platform)


def test_a_merchant_admin_cannot_deactivate_a_platform_admin_staff_row_through_the_service(world):
    """The row with the platform role: the admin form refuses it through its role choices, the service
    did not (deactivate_staff ran no check at all)."""
    platform_staff = member_services.create_staff(
        merchant=world.a.merchant, username="platform-row", name="平台", role=roles.PLATFORM_ADMIN,
        actor=world.platform,
    )  # fmt: skip
    with pytest.raises(ValidationError):
        member_services.deactivate_staff(platform_staff, actor=world.a.staff[roles.MERCHANT_ADMIN].user)
    user = User.objects.get(pk=platform_staff.user_id)
    assert user.is_active and selectors.is_platform_admin(user)


def test_a_merchant_admin_cannot_grant_the_platform_role_on_a_store(world):
    """grant_store_role added the group of whatever role it was given to the login: a merchant admin
    calling it with the platform role made any of their staff a platform admin."""
    clerk = world.a.staff[roles.CLERK]
    with pytest.raises(ValidationError) as raised:
        member_services.grant_store_role(
            clerk, world.a.store2, roles.PLATFORM_ADMIN, actor=world.a.staff[roles.MERCHANT_ADMIN].user
        )
    assert raised.value.error_dict["role"][0].code == "role_not_allowed"
    assert not selectors.is_platform_admin(User.objects.get(pk=clerk.user_id))


# ---------------------------------------------------------------- usernames a login form can sign in with


@pytest.mark.parametrize("username", ["a b", "名字/斜杠", "x😀", "ａｌｉｃｅ"])
def test_staff_usernames_follow_the_login_rules(client, world, username):
    """Found: the staff add form took any text as a username (spaces, slashes, emoji, full-width
    letters that the login form folds to other, ASCII letters, so the login could never sign in or
    signs in as someone else's name). The user model's own username rules apply."""
    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    before = Staff.objects.count()
    response = client.post(
        admin_url(Staff, "add"), {"username": username, "name": "新人", "role": roles.OPERATOR, "level": 1}
    )
    assert response.status_code == 200
    assert "username" in response.context["adminform"].form.errors
    assert Staff.objects.count() == before
    with pytest.raises(ValidationError) as raised:
        member_services.create_staff(merchant=world.a.merchant, username=username, name="x", role=roles.CLERK,
                                     actor=None)  # fmt: skip
    assert raised.value.error_dict["username"][0].code == "username_invalid"


def test_a_chinese_username_is_still_accepted(world):
    staff = member_services.create_staff(
        merchant=world.a.merchant, username="张三.zhang_3", name="张三", role=roles.CLERK, actor=None
    )
    assert staff.user.username == "张三.zhang_3"


# ---------------------------------------------------------------- the role × action matrix: bonus and staff


def _recharge_with_bonus(client, world, bonus: str):
    from tests.portal_helpers import post_confirmed

    return post_confirmed(  # through the confirmation step, as an operator clicks
        client,
        reverse("members:recharge", kwargs={"pk": world.a.member.pk}),
        {"recharge-token": str(uuid.uuid4()), "recharge-store": world.a.store.pk, "recharge-payment_method": "cash",
         "recharge-kind": "stored_value", "recharge-amount": "100.00", "recharge-bonus": bonus,
         "recharge-quantity": "1", "recharge-note": "matrix"},
    )  # fmt: skip


BONUS_ALLOWED = {roles.MERCHANT_ADMIN, roles.OPERATOR}


@pytest.mark.parametrize("role", [*STAFF_ROLES, roles.CLERK])
def test_matrix_manual_bonus_on_a_recharge(client, world, role):
    """Who may give a manual bonus (within the merchant's limit): whoever records recharges at the
    store (merchant admin, operator); nobody else, whatever they post."""
    from wallet.models import Recharge

    client.raise_request_exception = False
    client.force_login(world.a.staff[role].user)
    before = Recharge.objects.filter(member=world.a.member).count()
    response = _recharge_with_bonus(client, world, "1.00")
    after = Recharge.objects.filter(member=world.a.member).count()
    if role in BONUS_ALLOWED:
        assert response.status_code == 302, response.status_code
        assert after == before + 1
    else:
        assert response.status_code in (302, 403) and after == before, (role, response.status_code)
        if response.status_code == 302:
            assert reverse("members:member", kwargs={"pk": world.a.member.pk}) not in response["Location"]


STAFF_CHANGES = {
    "promote to merchant admin": {"role": roles.MERCHANT_ADMIN},
    "give a store": {"stores": "both"},
    "deactivate": {"is_active": ""},
}


@pytest.mark.parametrize("role", [*STAFF_ROLES, roles.CLERK])
@pytest.mark.parametrize("change", list(STAFF_CHANGES), ids=list(STAFF_CHANGES))
def test_matrix_staff_changes_through_the_admin(client, world, role, change):
    """Staff changes: only the merchant admin (of the staff member's merchant) makes them, and they
    take effect in groups and object permissions, not only in the row."""
    client.raise_request_exception = False
    victim = world.a.staff[roles.CLERK] if role != roles.CLERK else world.a.staff[roles.FINANCE]
    data = dict(STAFF_CHANGES[change])
    if data.get("stores") == "both":
        data["stores"] = [world.a.store.pk, world.a.store2.pk]
    client.force_login(world.a.staff[role].user)
    response = client.post(admin_url(Staff, "change", victim.pk), staff_change_data(victim, **data))
    victim.refresh_from_db()
    user = User.objects.get(pk=victim.user_id)
    happened = {
        "promote to merchant admin": victim.role == roles.MERCHANT_ADMIN
        and user.groups.filter(name=roles.MERCHANT_ADMIN).exists(),
        "give a store": victim.stores.filter(pk=world.a.store2.pk).exists()
        and user.has_perm(f"members.{roles.STORE_PERMISSIONS[victim.role][-1]}", world.a.store2),
        "deactivate": not victim.is_active and not user.is_active,
    }[change]
    if role == roles.MERCHANT_ADMIN:
        assert response.status_code == 302 and happened, (response.status_code, change)
    else:
        assert response.status_code in (302, 403) and not happened, (role, response.status_code)


# ---------------------------------------------------------------- errors name nothing of another merchant


def _form_errors(response) -> list[str]:
    messages = [str(m) for errors in response.context["adminform"].form.errors.values() for m in errors]
    for formset in response.context.get("inline_admin_formsets", []):
        messages += [str(m) for form in formset.formset.forms for errors in form.errors.values() for m in errors]
    return messages


def test_refusing_another_merchants_row_names_nothing_of_it(client, world):
    """Found: posting merchant B's building, member card or commission rule id into an inline of
    merchant A answered "乙方小区 乙方1栋 belongs to another merchant." (B's names, card numbers or
    "CommissionRule object (2)"): the refusal itself showed B's rows to A."""
    from members.models import Building, Estate
    from wallet.models import CommissionRule, Service

    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    a, b = world.a, world.b
    b_building = Building.objects.filter(estate__merchant=b.merchant).first()
    b_rule = CommissionRule.objects.filter(service__merchant=b.merchant).first()
    service = a.cleaning
    posts = [
        (admin_url(Estate, "change", a.estate.pk),
         {"name": a.estate.name, "address": "", "buildings-TOTAL_FORMS": 1, "buildings-INITIAL_FORMS": 1,
          "buildings-0-id": b_building.pk, "buildings-0-estate": a.estate.pk, "buildings-0-name": "改名"}),
        (admin_url(Service, "change", service.pk),
         {"name": service.name, "category": service.category_id, "unit_label": service.unit_label,
          "list_price_fen": format_fen(service.list_price_fen), "member_price_fen": format_fen(service.member_price_fen),
          "commission_kind": service.commission_kind, "commission_value": format_fen(service.commission_value),
          "is_active": "on", "commission_rules-TOTAL_FORMS": 1, "commission_rules-INITIAL_FORMS": 1,
          "commission_rules-0-id": b_rule.pk, "commission_rules-0-service": service.pk,
          "commission_rules-0-staff_level": 3, "commission_rules-0-kind": "fixed", "commission_rules-0-value": 1}),
    ]  # fmt: skip
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 200, url
        messages = _form_errors(response)
        assert messages, url
        page = response.content.decode()
        assert not [m for m in world.markers if m in page], (url, messages)
        assert not any("object (" in m for m in messages), messages
    b_building.refresh_from_db()
    assert b_building.name != "改名"


def test_invalid_choices_in_admin_forms_do_not_repeat_database_ids(client, world):
    """Django's many-to-many message repeats the posted value ("3 is not one of the available
    choices"): an internal id, here another merchant's store."""
    client.raise_request_exception = False
    client.force_login(world.a.staff[roles.MERCHANT_ADMIN].user)
    operator = world.a.staff[roles.OPERATOR]
    for value in (world.b.store.pk, 987654321, "abc"):
        response = client.post(admin_url(Staff, "change", operator.pk), staff_change_data(operator, stores=[value]))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors["stores"]
        assert errors and not any(str(value) in str(m) for m in errors), errors


# ---------------------------------------------------------------- store scope held by the service itself


def _refundable_line_of(side):
    from wallet.models import ConsumptionLine

    return ConsumptionLine.objects.filter(consumption__member=side.member, status=ConsumptionLine.Status.NORMAL).first()


def test_refund_service_refuses_an_operator_of_another_store(world):
    """Item 10 was enforced by the portal's refund form only: wallet.services.refund_consumption_lines,
    the one place every entry point (portal, a future API or approval workflow, a script) goes through,
    refunded a line rung up at store 1 for an operator of store 2 only. The rule (members.permissions)
    is now applied by the service whenever a user acts."""
    from tests.factories import make_staff
    from wallet import services as wallet_services
    from wallet.models import ConsumptionLine

    line = _refundable_line_of(world.a)
    assert line is not None and line.consumption.store == world.a.store
    other_store_operator = make_staff(world.a.merchant, roles.OPERATOR, stores=[world.a.store2])
    with pytest.raises(ValidationError) as raised:
        wallet_services.refund_consumption_lines(
            member=world.a.member, lines=[line], reason="x", actor=other_store_operator.user, store=world.a.store2
        )
    assert raised.value.error_dict["lines"][0].code == "line_store_forbidden"
    line.refresh_from_db()
    assert line.status == ConsumptionLine.Status.NORMAL
    # Another merchant's admin fares no better, and the store's own operator still may.
    with pytest.raises(ValidationError):
        wallet_services.refund_consumption_lines(
            member=world.a.member, lines=[line], reason="x", actor=world.b.staff[roles.MERCHANT_ADMIN].user
        )
    wallet_services.refund_consumption_lines(
        member=world.a.member, lines=[line], reason="x", actor=world.a.staff[roles.OPERATOR].user,
        store=world.a.store,
    )  # fmt: skip
    line.refresh_from_db()
    assert line.status == ConsumptionLine.Status.REFUNDED
