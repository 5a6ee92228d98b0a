import datetime
import threading
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection
from django.utils import timezone

from members import numbering, roles, selectors, services
from members.models import AuditEvent, DailySequence, MemberCard, Owner
from tests.factories import MerchantFactory, RoomFactory, StoreFactory, make_owner, make_staff

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- member numbers


def test_member_number_is_local_date_plus_four_digit_sequence():
    merchant = MerchantFactory()
    first = make_owner(merchant)
    second = make_owner(merchant)
    today = timezone.localdate().strftime("%Y%m%d")
    assert first.member_number == f"{today}0001"
    assert second.member_number == f"{today}0002"


def test_member_number_uses_shanghai_date_not_utc():
    merchant = MerchantFactory()
    # 2026-11-22 17:30 UTC is already 2026-11-23 01:30 in Asia/Shanghai.
    utc_evening = datetime.datetime(2026, 11, 22, 17, 30, tzinfo=datetime.UTC)
    with mock.patch("django.utils.timezone.now", return_value=utc_evening):
        owner = make_owner(merchant)
    assert owner.member_number == "202611230001"


def test_member_number_sequence_resets_daily_and_per_merchant():
    merchant, other = MerchantFactory(), MerchantFactory()
    day1 = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.UTC)
    day2 = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
    with mock.patch("django.utils.timezone.now", return_value=day1):
        a = make_owner(merchant)
        b = make_owner(merchant)
        c = make_owner(other)
    with mock.patch("django.utils.timezone.now", return_value=day2):
        d = make_owner(merchant)
    assert [a.member_number, b.member_number] == ["202603010001", "202603010002"]
    assert c.member_number == "202603010001"
    assert d.member_number == "202603020001"


def test_member_number_grows_to_five_digits_after_9999():
    merchant = MerchantFactory()
    numbering.set_counter(merchant.pk, "member", timezone.localdate(), 9998)
    ninety_nine = make_owner(merchant)
    ten_thousand = make_owner(merchant)
    today = timezone.localdate().strftime("%Y%m%d")
    assert ninety_nine.member_number == f"{today}9999"
    assert ten_thousand.member_number == f"{today}10000"


def test_business_number_format_has_prefix_and_three_digits():
    merchant = MerchantFactory()
    today = timezone.localdate().strftime("%Y%m%d")
    assert services.next_business_number(merchant, "cz") == f"cz{today}001"
    assert services.next_business_number(merchant, "cz") == f"cz{today}002"
    assert services.next_business_number(merchant, "xf") == f"xf{today}001"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_registrations_get_distinct_numbers():
    merchant = MerchantFactory()
    barrier = threading.Barrier(20)
    numbers, errors = [], []

    def register(i: int) -> None:
        try:
            barrier.wait()
            owner = services.register_owner(merchant=merchant, name=f"并发{i}", mobile=f"1390000{i:04d}", actor=None)
            numbers.append(owner.member_number)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert errors == []
    assert len(numbers) == 20
    assert len(set(numbers)) == 20
    today = timezone.localdate().strftime("%Y%m%d")
    assert sorted(numbers) == [f"{today}{i:04d}" for i in range(1, 21)]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("mobile", ["", "12345678901", "2380000000", "138000000001", "1380000000a", "+8613800000000"])
def test_bad_mobile_is_refused_naming_the_field(mobile):
    merchant = MerchantFactory()
    with pytest.raises(ValidationError) as exc:
        services.register_owner(merchant=merchant, name="张三", mobile=mobile, actor=None)
    assert "mobile" in exc.value.message_dict
    assert Owner.objects.count() == 0
    assert DailySequence.objects.filter(merchant=merchant).count() == 0  # no number taken


def test_duplicate_mobile_refused_in_same_merchant_allowed_in_another():
    merchant, other = MerchantFactory(), MerchantFactory()
    make_owner(merchant, mobile="13912345678")
    with pytest.raises(ValidationError) as exc:
        make_owner(merchant, mobile="13912345678")
    assert "already registered" in exc.value.message_dict["mobile"][0]
    assert Owner.objects.filter(merchant=merchant).count() == 1
    assert make_owner(other, mobile="13912345678").merchant == other


def test_room_of_another_merchant_is_refused():
    merchant, other = MerchantFactory(), MerchantFactory()
    foreign_room = RoomFactory(building__estate__merchant=other)
    own_room = RoomFactory(building__estate__merchant=merchant)
    with pytest.raises(ValidationError) as exc:
        make_owner(merchant, rooms=[own_room, foreign_room])
    assert "rooms" in exc.value.message_dict
    assert Owner.objects.count() == 0
    owner = make_owner(merchant, rooms=[own_room])
    assert list(owner.rooms.all()) == [own_room]


def test_registration_issues_one_active_card_and_audits():
    owner = make_owner()
    cards = list(owner.cards.all())
    assert len(cards) == 1 and cards[0].status == MemberCard.Status.ACTIVE
    assert len(cards[0].secret) == 64
    assert AuditEvent.objects.filter(action="owner.registered", object_id=str(owner.pk)).exists()


def test_card_replacement_kills_the_old_card():
    owner = make_owner()
    old = owner.cards.get()
    new = services.replace_card(old, actor=None, reason="lost")
    old.refresh_from_db()
    assert old.status == MemberCard.Status.REPLACED and old.replaced_by == new
    assert new.status == MemberCard.Status.ACTIVE and new.secret != old.secret
    assert selectors.active_card_of(owner) == new
    with pytest.raises(ValidationError):
        services.replace_card(old, actor=None)


def test_status_change_requires_reason_and_is_audited():
    owner = make_owner()
    with pytest.raises(ValidationError) as exc:
        services.set_owner_status(owner, Owner.Status.FROZEN, actor=None, reason=" ")
    assert "reason" in exc.value.message_dict
    services.set_owner_status(owner, Owner.Status.FROZEN, actor=None, reason="挂失冻结")
    event = AuditEvent.objects.get(action="owner.status")
    assert event.before == {"status": "active"} and event.after == {"status": "frozen"}


# ---------------------------------------------------------------- tenancy


def test_selectors_never_return_another_merchants_owner():
    a, b = MerchantFactory(), MerchantFactory()
    owner_a, owner_b = make_owner(a), make_owner(b)
    assert list(selectors.owners_for(a)) == [owner_a]
    with pytest.raises(Owner.DoesNotExist):
        selectors.owner_for(a, owner_b.pk)
    staff_a = make_staff(a, roles.MERCHANT_ADMIN)
    scoped = selectors.scope_to_user(Owner.objects.all(), staff_a.user, "merchant")
    assert list(scoped) == [owner_a]


def test_admin_lists_and_fetches_only_own_merchants_owners(client):
    a, b = MerchantFactory(), MerchantFactory()
    owner_a, owner_b = make_owner(a, name="甲业主"), make_owner(b, name="乙业主")
    staff_a = make_staff(a, roles.MERCHANT_ADMIN, stores=[StoreFactory(merchant=a)])
    client.force_login(staff_a.user)
    listing = client.get("/admin/members/owner/")
    assert listing.status_code == 200
    assert owner_a.member_number in listing.content.decode() and "甲业主" in listing.content.decode()
    assert "乙业主" not in listing.content.decode()
    assert client.get(f"/admin/members/owner/{owner_a.pk}/change/").status_code == 200
    # Another merchant's owner is as good as absent: redirected away with "doesn't exist".
    foreign = client.get(f"/admin/members/owner/{owner_b.pk}/change/", follow=True)
    assert "乙业主" not in foreign.content.decode()


def test_admin_add_owner_goes_through_the_service(client):
    a = MerchantFactory()
    staff_a = make_staff(a, roles.OPERATOR, stores=[StoreFactory(merchant=a)])
    make_owner(a, mobile="13800001111")
    client.force_login(staff_a.user)
    duplicate = client.post(
        "/admin/members/owner/add/",
        {
            "name": "重复",
            "mobile": "13800001111",
            "status": "active",
            "joined_at_0": "2026-11-22",
            "joined_at_1": "10:00:00",
            "cards-TOTAL_FORMS": 0,
            "cards-INITIAL_FORMS": 0,
        },
    )
    assert duplicate.status_code == 200 and "already registered" in duplicate.content.decode()
    created = client.post(
        "/admin/members/owner/add/",
        {
            "name": "新业主",
            "mobile": "13800002222",
            "status": "active",
            "joined_at_0": "2026-11-22",
            "joined_at_1": "10:00:00",
            "cards-TOTAL_FORMS": 0,
            "cards-INITIAL_FORMS": 0,
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    owner = Owner.objects.get(mobile="13800002222")
    assert owner.merchant == a and owner.member_number and owner.cards.count() == 1


# ---------------------------------------------------------------- roles and object permissions


def test_role_groups_exist_with_permissions():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)
    assert Group.objects.get(name="operator").permissions.filter(codename="add_owner").exists()
    assert not Group.objects.get(name="clerk").permissions.filter(codename="add_owner").exists()


def test_approver_on_store_x_gets_permission_on_x_only():
    merchant = MerchantFactory()
    store_x, store_y = StoreFactory(merchant=merchant), StoreFactory(merchant=merchant)
    staff = make_staff(merchant, roles.OPERATOR)
    services.grant_store_role(staff, store_x, roles.APPROVER, actor=None)
    user = type(staff.user).objects.get(pk=staff.user.pk)  # fresh permission cache
    assert user.has_perm("members.approve_store", store_x)
    assert not user.has_perm("members.approve_store", store_y)
    assert not user.has_perm("members.approve_store")  # no global permission either
    assert list(selectors.stores_where(user, "members.approve_store")) == [store_x]
    services.revoke_store_roles(staff, store_x, actor=None, reason="调岗")
    user = type(staff.user).objects.get(pk=staff.user.pk)
    assert not user.has_perm("members.approve_store", store_x)


def test_role_on_another_merchants_store_is_refused():
    a, b = MerchantFactory(), MerchantFactory()
    staff = make_staff(a, roles.OPERATOR)
    with pytest.raises(ValidationError) as exc:
        services.grant_store_role(staff, StoreFactory(merchant=b), roles.APPROVER, actor=None)
    assert "store" in exc.value.message_dict
