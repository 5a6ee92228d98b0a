"""Writes of the members domain. Each public function is one atomic transaction."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from . import roles
from .models import AuditEvent, DailySequence, Level, MemberCard, Merchant, Owner, Room, Staff, Store, mobile_validator

User = get_user_model()


# ---------------------------------------------------------------- numbering


def next_sequence_value(merchant: Merchant, key: str, day: datetime.date) -> int:
    """Return the next value of the merchant's daily counter `key`, race-free.

    One upsert statement: concurrent callers serialise on the counter row and each gets its own value,
    on PostgreSQL and on SQLite (≥ 3.35). Runs inside the caller's transaction, so a rolled-back
    operation gives its number back.
    """
    table = DailySequence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (merchant_id, key, day, last_value) VALUES (%s, %s, %s, 1) "
            f"ON CONFLICT (merchant_id, key, day) DO UPDATE SET last_value = {table}.last_value + 1 "
            "RETURNING last_value",
            [merchant.pk, key, day],
        )
        return cursor.fetchone()[0]


def format_number(prefix: str, day: datetime.date, value: int, digits: int) -> str:
    """`prefix` + yyyymmdd + the value zero-padded to `digits`; a larger value simply gets longer."""
    return f"{prefix}{day:%Y%m%d}{value:0{digits}d}"


def next_business_number(merchant: Merchant, prefix: str, digits: int = 3) -> str:
    """Next `cz…`/`xf…`-style number of the merchant for today (Asia/Shanghai)."""
    day = timezone.localdate()
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


# ---------------------------------------------------------------- owners


def _validate_mobile(merchant: Merchant, mobile: str, *, exclude_owner: Owner | None = None) -> str:
    mobile = (mobile or "").strip()
    if not mobile:
        raise ValidationError({"mobile": "Mobile phone is required."})
    try:
        mobile_validator(mobile)
    except ValidationError as exc:
        raise ValidationError(
            {"mobile": f"'{mobile}' is not a valid mainland mobile number: {exc.messages[0]}"}
        ) from None
    taken = Owner.objects.filter(merchant=merchant, mobile=mobile)
    if exclude_owner is not None:
        taken = taken.exclude(pk=exclude_owner.pk)
    if taken.exists():
        raise ValidationError({"mobile": f"Mobile {mobile} is already registered with this merchant."})
    return mobile


def _validate_rooms(merchant: Merchant, rooms: Iterable[Room]) -> list[Room]:
    rooms = list(rooms)
    ids = [r.pk for r in rooms]
    own = set(Room.objects.filter(pk__in=ids, building__estate__merchant=merchant).values_list("pk", flat=True))
    foreign = [str(r) for r in rooms if r.pk not in own]
    if foreign:
        raise ValidationError({"rooms": f"Rooms of another merchant cannot be bound: {', '.join(foreign)}."})
    return rooms


def _validate_level(merchant: Merchant, level: Level | None) -> Level | None:
    if level is not None and level.merchant_id != merchant.pk:
        raise ValidationError({"level": "The level belongs to another merchant."})
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
    """Register an owner: validate, assign the member number, bind rooms, issue the first card."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name is required."})
    mobile = _validate_mobile(merchant, mobile)
    rooms = _validate_rooms(merchant, rooms)
    if level is None:
        level = Level.objects.filter(merchant=merchant).order_by("rank").first()
    level = _validate_level(merchant, level)
    owner = Owner.objects.create(
        merchant=merchant,
        member_number=next_member_number(merchant),
        name=name,
        mobile=mobile,
        level=level,
        birthday=birthday,
        joined_at=joined_at or timezone.now(),
        registered_by=actor if actor and actor.is_authenticated else None,
    )
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
) -> Owner:
    """Change an owner's details with a before/after audit record."""
    owner = Owner.objects.select_for_update().get(pk=owner.pk)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if name is not None and name.strip() != owner.name:
        if not name.strip():
            raise ValidationError({"name": "Name is required."})
        before["name"], after["name"] = owner.name, name.strip()
        owner.name = name.strip()
    if mobile is not None and mobile.strip() != owner.mobile:
        mobile = _validate_mobile(owner.merchant, mobile, exclude_owner=owner)
        before["mobile"], after["mobile"] = owner.mobile, mobile
        owner.mobile = mobile
    if level is not None and level.pk != owner.level_id:
        _validate_level(owner.merchant, level)
        before["level"], after["level"] = owner.level_id, level.pk
        owner.level = level
    owner.save()
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
        raise ValidationError({"status": f"Unknown status '{status}'."})
    if not reason.strip():
        raise ValidationError({"reason": "A reason is required to change a member's status."})
    owner = Owner.objects.select_for_update().get(pk=owner.pk)
    if owner.status == Owner.Status.CLOSED:
        raise ValidationError({"status": "A closed membership cannot be reopened."})
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
        raise ValidationError({"card": f"Card {card.card_number} is {card.get_status_display()}, not active."})
    if card.owner.status == Owner.Status.CLOSED:
        raise ValidationError({"card": "The membership is closed."})
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
    if role not in roles.ROLES:
        raise ValidationError({"role": f"Unknown role '{role}'."})
    if not username.strip():
        raise ValidationError({"username": "A username is required."})
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"Username '{username}' is taken."})
    if mobile:
        try:
            mobile_validator(mobile)
        except ValidationError:
            raise ValidationError({"mobile": f"'{mobile}' is not a valid mainland mobile number."}) from None
    stores = list(stores)
    for store in stores:
        if store.merchant_id != merchant.pk:
            raise ValidationError({"stores": f"Store {store} belongs to another merchant."})
    user = User(username=username, first_name=name, is_staff=role in roles.ADMIN_SITE_ROLES)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
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
    if role not in roles.ROLES:
        raise ValidationError({"role": f"Unknown role '{role}'."})
    if store.merchant_id != staff.merchant_id:
        raise ValidationError({"store": "The store belongs to another merchant."})
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
    for codename in {c for perms in roles.STORE_PERMISSIONS.values() for c in perms}:
        remove_perm(f"members.{codename}", staff.user, store)
    staff.stores.remove(store)
    record_audit(
        actor=actor,
        action="staff.role_revoked",
        target=staff,
        merchant=staff.merchant,
        before={"store": store.pk},
        reason=reason,
    )
