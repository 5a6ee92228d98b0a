"""Writes of the members domain. Each public function is one atomic transaction."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import assign_perm, remove_perm

from core.errors import fail

from . import numbering, roles, selectors
from .models import (
    AuditEvent,
    Level,
    MemberCard,
    Merchant,
    Owner,
    Room,
    Staff,
    Store,
    check_merchant_of,
    mobile_validator,
)
from .signals import store_roles_revoked

User = get_user_model()


# ---------------------------------------------------------------- numbering


def next_sequence_value(merchant: Merchant, key: str, day: datetime.date) -> int:
    """Return the next value of the merchant's daily counter `key`, race-free and never repeated
    (a rolled-back operation may leave a gap on PostgreSQL: see members.numbering)."""
    return numbering.next_value(merchant.pk, key, day)


def format_number(prefix: str, day: datetime.date, value: int, digits: int) -> str:
    """`prefix` + yyyymmdd + the value zero-padded to `digits`; a larger value simply gets longer."""
    return f"{prefix}{day:%Y%m%d}{value:0{digits}d}"


def next_business_number(merchant: Merchant, prefix: str, digits: int = 3) -> str:
    """Next `cz…`/`xf…`-style number of the merchant for today (Asia/Shanghai)."""
    day = timezone.localdate()
    if numbering.previewing():  # a dry run (wallet.quotes), rolled back: a placeholder, unique in the moment
        return f"{prefix}{day:%Y%m%d}P{secrets.token_hex(4)}"
    return format_number(prefix, day, next_sequence_value(merchant, prefix or "member", day), digits)


def next_member_number(merchant: Merchant) -> str:
    day = timezone.localdate()
    return format_number("", day, next_sequence_value(merchant, "member", day), 4)


# ---------------------------------------------------------------- audit


def record_audit(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    target: models.Model,
    merchant: Merchant | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    actor_label: str = "",
) -> AuditEvent:
    if actor is None and not actor_label:
        actor_label = "system"  # jobs and scripts act as the system; people always pass themselves
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=actor_label,
        merchant=merchant,
        action=action,
        content_type=ContentType.objects.get_for_model(target, for_concrete_model=False),
        object_id=str(target.pk),
        before=before or {},
        after=after or {},
        reason=reason,
    )


# ---------------------------------------------------------------- text


def clean_text(value: str | None, field: str, *, required: bool = False, max_length: int | None = None) -> str:
    """Stripped text for `field`; refuses NUL characters (PostgreSQL cannot store them), an empty
    required value and text longer than the column, each with a field error instead of a database error."""
    text = (value or "").strip()
    if "\x00" in text:
        raise fail(field, "text_nul", _("The text contains a NUL character; remove it."))
    if required and not text:
        raise fail(field, "required", _("This field is required."))
    if max_length is not None and len(text) > max_length:
        raise fail(field, "text_too_long", _("At most %(limit)s characters."), limit=max_length)
    return text


def required_reason(reason: str | None, message: Any = None, *, max_length: int | None = None) -> str:
    """The reason an action needs (a status change, a refund, free value): required, stripped, no NUL,
    within `max_length`. `message` says what the reason is for. The one home of "a reason is required"."""
    text = clean_text(reason, "reason", max_length=max_length)
    if not text:
        raise fail("reason", "reason_required", message or _("A reason is required."))
    return text


def _mobile_taken(mobile: str) -> ValidationError:
    return fail(
        "mobile", "mobile_taken", _("Mobile %(mobile)s is already registered with this merchant."), mobile=mobile
    )


# ---------------------------------------------------------------- owners


def _validate_mobile(merchant: Merchant, mobile: str, *, exclude_owner: Owner | None = None) -> str:
    mobile = clean_text(mobile, "mobile")
    if not mobile:
        raise fail("mobile", "mobile_required", _("Mobile phone is required."))
    try:
        mobile_validator(mobile)
    except ValidationError:
        raise fail(
            "mobile",
            "mobile_invalid",
            _("%(mobile)s is not a valid mainland mobile number: 11 digits starting with 13–19."),
            mobile=mobile[:20],
        ) from None
    taken = Owner.objects.filter(merchant=merchant, mobile=mobile)
    if exclude_owner is not None:
        taken = taken.exclude(pk=exclude_owner.pk)
    if taken.exists():
        raise _mobile_taken(mobile)
    return mobile


def _save_owner(owner: Owner) -> None:
    """Save an owner; a concurrent registration or change that took the same mobile number first (the
    unique constraint, not our earlier check, decides races) is a field error on `mobile`."""
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction stays usable
            owner.save()
    except IntegrityError:
        if Owner.objects.filter(merchant_id=owner.merchant_id, mobile=owner.mobile).exclude(pk=owner.pk).exists():
            raise _mobile_taken(owner.mobile) from None
        raise


def _validate_rooms(merchant: Merchant, rooms: Iterable[Room]) -> list[Room]:
    rooms = list(rooms)
    ids = [r.pk for r in rooms]
    own = set(Room.objects.filter(pk__in=ids, building__estate__merchant=merchant).values_list("pk", flat=True))
    if any(r.pk not in own for r in rooms):
        # Name no room: they are another merchant's.
        raise fail("rooms", "other_merchant", _("Some of the rooms belong to another merchant and cannot be bound."))
    return rooms


def _validate_level(merchant: Merchant, level: Level | None) -> Level | None:
    check_merchant_of(level, merchant.pk, "level")
    return level


def validate_owner_fields(
    merchant: Merchant,
    *,
    mobile: str | None = None,
    rooms: Iterable[Room] | None = None,
    level: Level | None = None,
    exclude_owner: Owner | None = None,
) -> None:
    """The checks registration and changes apply, for forms that want to show them before saving."""
    if mobile is not None:
        _validate_mobile(merchant, mobile, exclude_owner=exclude_owner)
    if rooms is not None:
        _validate_rooms(merchant, rooms)
    _validate_level(merchant, level)


@transaction.atomic
def register_owner(
    *,
    merchant: Merchant,
    name: str,
    mobile: str,
    actor: AbstractBaseUser | None,
    rooms: Iterable[Room] = (),
    level: Level | None = None,
    birthday: datetime.date | None = None,
    joined_at: datetime.datetime | None = None,
) -> Owner:
    """Register an owner: validate, assign the member number, bind rooms, issue the first card.

    Two registrations of one mobile number racing: the loser gets a DomainError on `mobile`
    (code mobile_taken) and nothing of it is written."""
    name = clean_text(name, "name", max_length=Owner._meta.get_field("name").max_length)
    if not name:
        raise fail("name", "name_required", _("Name is required."))
    mobile = _validate_mobile(merchant, mobile)
    rooms = _validate_rooms(merchant, rooms)
    if level is None:
        level = Level.objects.filter(merchant=merchant).order_by("rank").first()
    level = _validate_level(merchant, level)
    owner = Owner(
        merchant=merchant,
        member_number=next_member_number(merchant),
        name=name,
        mobile=mobile,
        level=level,
        birthday=birthday,
        joined_at=joined_at or timezone.now(),
        registered_by=actor if actor and actor.is_authenticated else None,
    )
    _save_owner(owner)
    if rooms:
        owner.rooms.set(rooms)
    _issue_card(owner)
    record_audit(
        actor=actor,
        action="owner.registered",
        target=owner,
        merchant=merchant,
        after={"member_number": owner.member_number, "mobile": mobile, "rooms": [r.pk for r in rooms]},
    )
    return owner


UNCHANGED = object()  # "leave this field as it is", where None is a value (a cleared birthday)


@transaction.atomic
def update_owner(
    owner: Owner,
    *,
    actor: AbstractBaseUser | None,
    reason: str = "",
    name: str | None = None,
    mobile: str | None = None,
    level: Level | None = None,
    rooms: Iterable[Room] | None = None,
    birthday: datetime.date | None | object = UNCHANGED,
) -> Owner:
    """Change an owner's details with a before/after audit record. `None` leaves a field as it is,
    except the birthday, which can be cleared with None (leave it out to keep it)."""
    owner = Owner.objects.select_for_update().get(pk=owner.pk)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    reason = clean_text(reason, "reason")
    if name is not None:
        name = clean_text(name, "name", max_length=Owner._meta.get_field("name").max_length)
    if name is not None and name != owner.name:
        if not name:
            raise fail("name", "name_required", _("Name is required."))
        before["name"], after["name"] = owner.name, name
        owner.name = name
    if mobile is not None and clean_text(mobile, "mobile") != owner.mobile:
        mobile = _validate_mobile(owner.merchant, mobile, exclude_owner=owner)
        before["mobile"], after["mobile"] = owner.mobile, mobile
        owner.mobile = mobile
    if level is not None and level.pk != owner.level_id:
        _validate_level(owner.merchant, level)
        before["level"], after["level"] = owner.level_id, level.pk
        owner.level = level
    if birthday is not UNCHANGED and birthday != owner.birthday:
        before["birthday"] = owner.birthday.isoformat() if owner.birthday else None
        after["birthday"] = birthday.isoformat() if birthday else None
        owner.birthday = birthday
    _save_owner(owner)
    if rooms is not None:
        rooms = _validate_rooms(owner.merchant, rooms)
        old = sorted(owner.rooms.values_list("pk", flat=True))
        new = sorted(r.pk for r in rooms)
        if old != new:
            before["rooms"], after["rooms"] = old, new
            owner.rooms.set(rooms)
    if after:
        record_audit(
            actor=actor,
            action="owner.changed",
            target=owner,
            merchant=owner.merchant,
            before=before,
            after=after,
            reason=reason,
        )
    return owner


@transaction.atomic
def set_owner_status(owner: Owner, status: str, *, actor: AbstractBaseUser | None, reason: str) -> Owner:
    if status not in Owner.Status.values:
        raise fail("status", "status_unknown", _("Unknown member status."))
    reason = required_reason(reason, _("A reason is required to change a member's status."))
    owner = Owner.objects.select_for_update().get(pk=owner.pk)
    if owner.status == Owner.Status.CLOSED:
        raise fail("status", "membership_closed", _("A closed membership cannot be reopened."))
    previous = owner.status
    owner.status = status
    owner.save(update_fields=["status"])
    record_audit(
        actor=actor,
        action="owner.status",
        target=owner,
        merchant=owner.merchant,
        before={"status": previous},
        after={"status": status},
        reason=reason,
    )
    return owner


# ---------------------------------------------------------------- cards


def _issue_card(owner: Owner) -> MemberCard:
    count = MemberCard.objects.filter(owner=owner).count()
    number = f"{owner.merchant_id:04d}{owner.member_number}{count + 1:02d}"
    return MemberCard.objects.create(owner=owner, card_number=number)


@transaction.atomic
def replace_card(card: MemberCard, *, actor: AbstractBaseUser | None, reason: str = "lost") -> MemberCard:
    """Lost-card replacement (挂失补卡): the old card dies and a new card with a new secret is issued."""
    card = MemberCard.objects.select_for_update().select_related("owner").get(pk=card.pk)
    if card.status != MemberCard.Status.ACTIVE:
        raise fail(
            "card",
            "card_not_active",
            _("Card %(card)s is %(status)s, not active."),
            card=card.card_number,
            status=card.get_status_display(),
        )
    if card.owner.status == Owner.Status.CLOSED:
        raise fail("card", "membership_closed", _("The membership is closed."))
    card.status = MemberCard.Status.REPLACED
    card.closed_at = timezone.now()
    card.save(update_fields=["status", "closed_at"])
    new_card = _issue_card(card.owner)
    card.replaced_by = new_card
    card.save(update_fields=["replaced_by"])
    record_audit(
        actor=actor,
        action="card.replaced",
        target=card,
        merchant=card.owner.merchant,
        before={"card": card.card_number},
        after={"card": new_card.card_number},
        reason=reason,
    )
    return new_card


@transaction.atomic
def close_cards(owner: Owner, *, actor: AbstractBaseUser | None, reason: str) -> int:
    """Close every live card of an owner (e.g. after a cash refund closes the stored-value card)."""
    now = timezone.now()
    cards = list(MemberCard.objects.select_for_update().filter(owner=owner, status=MemberCard.Status.ACTIVE))
    for card in cards:
        card.status = MemberCard.Status.CLOSED
        card.closed_at = now
        card.save(update_fields=["status", "closed_at"])
        record_audit(actor=actor, action="card.closed", target=card, merchant=owner.merchant, reason=reason)
    return len(cards)


# ---------------------------------------------------------------- staff and roles


def sync_group_permissions() -> None:
    """Give each role group its model permissions (idempotent; run after migrate)."""
    all_perms = Permission.objects.select_related("content_type")
    for role, patterns in roles.GROUP_MODEL_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in all_perms:
            app, codename = perm.content_type.app_label, perm.codename
            for pattern in patterns:
                if pattern == "*":
                    wanted.append(perm)
                    break
                p_app, p_code = pattern.split(".", 1)
                if p_app != app:
                    continue
                if p_code == "*" or p_code == codename or (p_code.endswith("*") and codename.startswith(p_code[:-1])):
                    wanted.append(perm)
                    break
        group.permissions.set(wanted)


@transaction.atomic
def create_staff(
    *,
    merchant: Merchant,
    username: str,
    name: str,
    role: str,
    actor: AbstractBaseUser | None,
    stores: Iterable[Store] = (),
    mobile: str = "",
    password: str | None = None,
    level: int = 1,
) -> Staff:
    """Create a staff member with a login, the role's group and the role on each given store."""
    username = clean_text(username, "username", max_length=User._meta.get_field("username").max_length)
    name = clean_text(name, "name", max_length=Staff._meta.get_field("name").max_length)
    mobile = clean_text(mobile, "mobile")
    stores = list(stores)
    validate_staff_fields(merchant, actor=actor, role=role, stores=stores, mobile=mobile, username=username)
    user = User(username=username, first_name=name, is_staff=role in roles.ADMIN_SITE_ROLES)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        with transaction.atomic():  # the same username registered concurrently: a field error, not a 500
            user.save()
    except IntegrityError:
        if User.objects.filter(username=username).exists():
            raise fail("username", "username_taken", _("Username %(username)s is taken."), username=username) from None
        raise
    user.groups.add(Group.objects.get(name=role))
    staff = Staff.objects.create(user=user, merchant=merchant, name=name, mobile=mobile, role=role, level=level)
    for store in stores:
        grant_store_role(staff, store, role, actor=actor)
    record_audit(
        actor=actor,
        action="staff.created",
        target=staff,
        merchant=merchant,
        after={"username": username, "role": role, "stores": [s.pk for s in stores]},
    )
    return staff


@transaction.atomic
def grant_store_role(staff: Staff, store: Store, role: str, *, actor: AbstractBaseUser | None) -> None:
    """Grant `role` to the staff member on `store` only: object permissions on that store, nothing wider."""
    validate_staff_fields(staff.merchant, actor=actor, staff=staff, role=role)
    check_merchant_of(store, staff.merchant_id, "store")
    staff.stores.add(store)
    staff.user.groups.add(Group.objects.get(name=role))
    for codename in roles.STORE_PERMISSIONS[role]:
        assign_perm(f"members.{codename}", staff.user, store)
    record_audit(
        actor=actor,
        action="staff.role_granted",
        target=staff,
        merchant=staff.merchant,
        after={"store": store.pk, "role": role},
    )


@transaction.atomic
def revoke_store_roles(staff: Staff, store: Store, *, actor: AbstractBaseUser | None, reason: str = "") -> None:
    """Remove every object permission the staff member holds on the store."""
    _check_may_change_staff(staff, actor)
    for codename in {c for perms in roles.STORE_PERMISSIONS.values() for c in perms}:
        remove_perm(f"members.{codename}", staff.user, store)
    staff.stores.remove(store)
    _drop_role_groups_not_held(staff)
    record_audit(
        actor=actor,
        action="staff.role_revoked",
        target=staff,
        merchant=staff.merchant,
        before={"store": store.pk},
        reason=reason,
    )
    # What they had claimed at the store and may no longer decide goes back to the queue (flows).
    store_roles_revoked.send(sender=Staff, staff=staff, store_ids=[store.pk], actor=actor, reason=reason)


def _drop_role_groups_not_held(staff: Staff) -> None:
    """A role granted at some stores (grant_store_role) keeps its group only while the staff member holds the
    role's store permissions at one of them: the group is what `permissions.is_merchant_admin_of` and the
    model permissions read, so a merchant admin's role revoked at its last store must not stay merchant-wide.
    The primary role's group follows the staff row (_apply_role); the platform's is not a store role."""
    from guardian.models import UserObjectPermission

    user = staff.user
    held: dict[str, set[str]] = {}
    for object_pk, codename in UserObjectPermission.objects.filter(
        user=user, content_type=ContentType.objects.get_for_model(Store)
    ).values_list("object_pk", "permission__codename"):
        held.setdefault(object_pk, set()).add(codename)
    gone = [
        group
        for group in user.groups.filter(name__in=roles.ROLES).exclude(name__in=[staff.role, roles.PLATFORM_ADMIN])
        if not any(set(roles.STORE_PERMISSIONS[group.name]) <= codenames for codenames in held.values())
    ]
    if gone:
        user.groups.remove(*gone)


# ---------------------------------------------------------------- staff changes (role, stores, active)
# Every change of what a staff member may do goes through these: the Staff row, the login's role groups
# and the guardian object permissions on stores move together in one transaction, with an audit record.
# The primary role is the one role a staff member holds: changing it replaces the role groups and the
# permissions on every store they work at.


def _role_groups() -> models.QuerySet[Group]:
    return Group.objects.filter(name__in=roles.ROLES)


def _store_codenames() -> set[str]:
    return {codename for perms in roles.STORE_PERMISSIONS.values() for codename in perms}


def _is_platform_actor(actor: AbstractBaseUser | None) -> bool:
    return actor is None or selectors.is_platform_admin(actor)  # None: scripts and jobs


def _check_may_change_staff(staff: Staff, actor: AbstractBaseUser | None) -> None:
    """A staff row whose login is a platform admin (by its role, by the platform group or as a
    superuser) is the platform's: `_apply_role` would otherwise strip the platform group, or the login
    itself, on a merchant admin's demotion or deactivation."""
    if _is_platform_actor(actor):
        return
    if staff.role == roles.PLATFORM_ADMIN or selectors.is_platform_admin(staff.user):
        raise fail("role", "role_not_allowed", _("Only a platform admin can change a platform admin's staff record."))


def validate_staff_fields(
    merchant: Merchant,
    *,
    actor: AbstractBaseUser | None,
    staff: Staff | None = None,
    role: str | None = None,
    stores: Iterable[Store] | None = None,
    mobile: str | None = None,
    username: str | None = None,
) -> None:
    """The checks staff creation and changes apply, for forms that want to show them before saving.

    Only a platform admin grants or takes away the platform admin role, or changes anything of a staff
    member whose login is a platform admin; stores are the merchant's."""
    if staff is not None:
        _check_may_change_staff(staff, actor)
    if role is not None:
        if role not in roles.ROLES:
            raise fail("role", "role_unknown", _("Unknown role."))
        touches_platform = role == roles.PLATFORM_ADMIN or (staff is not None and staff.role == roles.PLATFORM_ADMIN)
        if touches_platform and (staff is None or role != staff.role) and not _is_platform_actor(actor):
            raise fail(
                "role", "role_not_allowed", _("Only a platform admin can grant or remove the platform admin role.")
            )
    if stores is not None:
        foreign = [str(store.name) for store in stores if store.merchant_id != merchant.pk]
        if foreign:
            raise fail("stores", "other_merchant", _("These stores belong to another merchant: %(stores)s."),
                       stores=", ".join(foreign))  # fmt: skip
    if mobile:
        try:
            mobile_validator(mobile)
        except ValidationError:
            raise fail("mobile", "mobile_invalid", _("%(mobile)s is not a valid mainland mobile number."),
                       mobile=mobile[:20]) from None  # fmt: skip
    if username is not None:
        if not username.strip():
            raise fail("username", "username_required", _("A username is required."))
        if "\x00" in username:  # PostgreSQL cannot even look such a name up
            raise fail("username", "text_nul", _("This text contains a NUL character."))
        # The login form folds a username to NFKC before looking it up: a name that changes under it
        # (full-width letters) could never sign in. Otherwise the user model's own rule.
        try:
            User.username_validator(username)
            valid = User.normalize_username(username) == username
        except ValidationError:
            valid = False
        if not valid:
            raise fail("username", "username_invalid",
                       _("A username may hold only letters, digits and the characters @ . + - _ (no spaces)."))  # fmt: skip
        if User.objects.filter(username=username).exists():
            raise fail("username", "username_taken", _("Username “%(username)s” is taken."), username=username)


def _lock_staff(staff: Staff) -> Staff:
    return Staff.objects.select_for_update().select_related("user", "merchant").get(pk=staff.pk)


def _apply_role(staff: Staff) -> None:
    """Make the login's role groups, admin-site access and store permissions say exactly what the
    staff row says (role, stores, active)."""
    user = staff.user
    user.groups.remove(*_role_groups().exclude(name=staff.role))
    if staff.is_active:
        user.groups.add(Group.objects.get(name=staff.role))
    else:
        user.groups.remove(*_role_groups())
    user.is_staff = staff.is_active and staff.role in roles.ADMIN_SITE_ROLES
    user.is_active = staff.is_active
    user.save(update_fields=["is_staff", "is_active"])
    wanted = set(roles.STORE_PERMISSIONS[staff.role]) if staff.is_active else set()
    for store in staff.stores.all():
        for codename in _store_codenames() - wanted:
            remove_perm(f"members.{codename}", user, store)
        for codename in wanted:
            assign_perm(f"members.{codename}", user, store)


@transaction.atomic
def change_staff_role(staff: Staff, role: str, *, actor: AbstractBaseUser | None, reason: str = "") -> Staff:
    """Give the staff member another primary role: the old role's group and its permissions on every
    store go, the new role's come (a demoted operator can no longer record operations)."""
    staff = _lock_staff(staff)
    validate_staff_fields(staff.merchant, actor=actor, staff=staff, role=role)
    if role == staff.role:
        return staff
    previous = staff.role
    staff.role = role
    staff.save(update_fields=["role"])
    _apply_role(staff)
    record_audit(actor=actor, action="staff.role_changed", target=staff, merchant=staff.merchant,
                 before={"role": previous}, after={"role": role}, reason=reason)  # fmt: skip
    # The old role's permissions went on every store they work at (an approver made an operator no longer
    # approves): what they claimed and may no longer decide goes back to the queue (flows).
    store_roles_revoked.send(sender=Staff, staff=staff, store_ids=list(staff.stores.values_list("pk", flat=True)),
                             actor=actor, reason=reason)  # fmt: skip
    return staff


@transaction.atomic
def set_staff_stores(
    staff: Staff, stores: Iterable[Store], *, actor: AbstractBaseUser | None, reason: str = ""
) -> Staff:
    """Make `stores` the stores the staff member works at, with their role's permissions on each and
    none on any other."""
    staff = _lock_staff(staff)
    stores = list(stores)
    validate_staff_fields(staff.merchant, actor=actor, staff=staff, stores=stores)
    current = set(staff.stores.all())
    wanted = set(stores)
    if wanted and not staff.is_active:
        raise fail("stores", "staff_inactive", _("Reactivate the staff member before giving them stores."))
    for store in sorted(current - wanted, key=lambda s: s.pk):
        revoke_store_roles(staff, store, actor=actor, reason=reason)
    for store in sorted(wanted - current, key=lambda s: s.pk):
        grant_store_role(staff, store, staff.role, actor=actor)
    return staff


@transaction.atomic
def deactivate_staff(staff: Staff, *, actor: AbstractBaseUser | None, reason: str = "") -> Staff:
    """Offboarding: every store permission, every role group and the login go at once."""
    staff = _lock_staff(staff)
    _check_may_change_staff(staff, actor)
    if not staff.is_active:
        return staff
    for store in list(staff.stores.all()):
        revoke_store_roles(staff, store, actor=actor, reason=reason)
    staff.is_active = False
    staff.save(update_fields=["is_active"])
    _apply_role(staff)
    record_audit(actor=actor, action="staff.deactivated", target=staff, merchant=staff.merchant,
                 before={"is_active": True}, after={"is_active": False}, reason=reason)  # fmt: skip
    return staff


@transaction.atomic
def reactivate_staff(staff: Staff, *, actor: AbstractBaseUser | None, reason: str = "") -> Staff:
    """Give a deactivated staff member their login and role group back; stores are given again with
    set_staff_stores."""
    staff = _lock_staff(staff)
    if staff.is_active:
        return staff
    validate_staff_fields(staff.merchant, actor=actor, staff=staff, role=staff.role)
    staff.is_active = True
    staff.save(update_fields=["is_active"])
    _apply_role(staff)
    record_audit(actor=actor, action="staff.reactivated", target=staff, merchant=staff.merchant,
                 before={"is_active": False}, after={"is_active": True}, reason=reason)  # fmt: skip
    return staff


@transaction.atomic
def update_staff(
    staff: Staff,
    *,
    actor: AbstractBaseUser | None,
    reason: str = "",
    name: str | None = None,
    mobile: str | None = None,
    level: int | None = None,
    role: str | None = None,
    stores: Iterable[Store] | None = None,
    is_active: bool | None = None,
) -> Staff:
    """One change of a staff member (e.g. an admin form): details, role, active and stores, in one
    transaction; `None` leaves a field as it is."""
    staff = _lock_staff(staff)
    stores = list(stores) if stores is not None else None
    validate_staff_fields(staff.merchant, actor=actor, staff=staff, role=role, stores=stores, mobile=mobile)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field, value in (("name", name), ("mobile", mobile), ("level", level)):
        if value is not None and value != getattr(staff, field):
            if field == "name" and not str(value).strip():
                raise fail("name", "name_required", _("Name is required."))
            if field == "level" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32767):
                raise fail("level", "invalid_level", _("The staff level is a whole number from 1 to 32767."))
            before[field], after[field] = getattr(staff, field), value
            setattr(staff, field, value)
    if after:
        staff.save(update_fields=list(after))
        record_audit(actor=actor, action="staff.changed", target=staff, merchant=staff.merchant,
                     before=before, after=after, reason=reason)  # fmt: skip
    if is_active is False:
        return deactivate_staff(staff, actor=actor, reason=reason)
    if is_active is True:
        staff = reactivate_staff(staff, actor=actor, reason=reason)
    if role is not None:
        staff = change_staff_role(staff, role, actor=actor, reason=reason)
    if stores is not None:
        staff = set_staff_stores(staff, stores, actor=actor, reason=reason)
    return staff
