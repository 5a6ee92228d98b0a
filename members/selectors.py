"""Reads of the members domain. Every read of merchant-owned data takes the merchant."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from . import roles
from .models import AuditEvent, Level, MemberCard, Merchant, Owner, Room, Staff, Store


def is_platform_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=roles.PLATFORM_ADMIN).exists()))


def staff_of(user: AbstractBaseUser | AnonymousUser) -> Staff | None:
    if not user.is_authenticated:
        return None
    return Staff.objects.select_related("merchant").filter(user=user, is_active=True).first()


def merchant_of(user: AbstractBaseUser | AnonymousUser) -> Merchant | None:
    """The merchant a staff user works for; None for platform admins without a staff record and strangers."""
    staff = staff_of(user)
    return staff.merchant if staff else None


def merchants_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Merchant]:
    if is_platform_admin(user):
        return Merchant.objects.all()
    merchant = merchant_of(user)
    return Merchant.objects.filter(pk=merchant.pk) if merchant else Merchant.objects.none()


def owners_for(merchant: Merchant) -> QuerySet[Owner]:
    return Owner.objects.filter(merchant=merchant).select_related("level")


def owner_for(merchant: Merchant, pk: int) -> Owner:
    """One owner of the merchant; Owner.DoesNotExist for any other merchant's owner."""
    return owners_for(merchant).get(pk=pk)


def owner_by_mobile(merchant: Merchant, mobile: str) -> Owner | None:
    return owners_for(merchant).filter(mobile=mobile).first()


def stores_for(merchant: Merchant) -> QuerySet[Store]:
    return Store.objects.filter(merchant=merchant)


def rooms_for(merchant: Merchant) -> QuerySet[Room]:
    return Room.objects.filter(building__estate__merchant=merchant).select_related("building__estate")


def levels_for(merchant: Merchant) -> QuerySet[Level]:
    return Level.objects.filter(merchant=merchant)


def active_card_of(owner: Owner) -> MemberCard | None:
    return owner.cards.filter(status=MemberCard.Status.ACTIVE).first()


def stores_where(user: AbstractBaseUser, permission: str) -> QuerySet[Store]:
    """Stores on which the user holds the object permission (e.g. 'members.approve_store')."""
    return get_objects_for_user(user, permission, klass=Store, accept_global_perms=False)


def store_ids_by_permission(user: AbstractBaseUser, permissions: list[str]) -> dict[str, set[int]]:
    """For several store permissions at once ("members.approve_store", …): permission → ids of the stores on
    which the user holds it as an object permission, their own or through a group (what stores_where answers
    for one permission; a global permission never counts). Two queries, whatever the number of permissions,
    for pages that scope by several of them (the approval queues)."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    if not user.is_authenticated:
        return {perm: set() for perm in permissions}
    codenames = {perm.split(".", 1)[1]: perm for perm in permissions}
    store_type = ContentType.objects.get_for_model(Store)
    found: dict[str, set[int]] = {perm: set() for perm in permissions}
    for model, who in ((UserObjectPermission, {"user": user}), (GroupObjectPermission, {"group__user": user})):
        rows = model.objects.filter(content_type=store_type, permission__content_type=store_type,
                                    permission__codename__in=list(codenames), **who)  # fmt: skip
        for codename, object_pk in rows.values_list("permission__codename", "object_pk"):
            if str(object_pk).isdigit():
                found[codenames[codename]].add(int(object_pk))
    return found


def scope_to_user(queryset: QuerySet, user: AbstractBaseUser | AnonymousUser, merchant_path: str) -> QuerySet:
    """Restrict any merchant-owned queryset to what the user may see: all for platform admins,
    the user's merchant for staff, nothing for anyone else. `merchant_path` is the lookup to the
    merchant (e.g. "merchant", "building__estate__merchant")."""
    if is_platform_admin(user):
        return queryset
    merchant = merchant_of(user)
    if merchant is None:
        return queryset.none()
    # The merchant's id, not the instance: "pk" (Merchant itself) takes no model instance.
    return queryset.filter(**{merchant_path: merchant.pk})


def owners_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Owner]:
    """Owners the user may see: their merchant's (all for platform admins, none for strangers)."""
    return scope_to_user(Owner.objects.select_related("level", "merchant"), user, "merchant")


def search_owners(owners: QuerySet[Owner], term: str) -> QuerySet[Owner]:
    """Match any part of a member number, a name or a mobile number; newest members first."""
    term = term.strip()
    if term:
        owners = owners.filter(Q(member_number__icontains=term) | Q(name__icontains=term) | Q(mobile__contains=term))
    return owners.order_by("-joined_at", "-pk")


def operable_stores(user: AbstractBaseUser, merchant: Merchant) -> QuerySet[Store]:
    """Active stores of the merchant on which the user may record operations (operate_store)."""
    return stores_where(user, "members.operate_store").filter(merchant=merchant, is_active=True).order_by("code")


def active_staff_for(merchant: Merchant) -> QuerySet[Staff]:
    return Staff.objects.filter(merchant=merchant, is_active=True).order_by("name", "pk")


# ---------------------------------------------------------------- read scope of store records


@dataclass(frozen=True)
class RecordScope:
    """Which records made at a store (recharges, consumptions, refunds, service records) a user reads
    in lists, exports and dashboards. Members stay merchant-wide (owners_visible_to); records are read
    where the user works: a platform admin everywhere, a merchant admin throughout their merchant
    (records made at no store included), any other role at the stores where it holds
    `members.view_store` (every store role grants it on the stores it is granted on)."""

    merchant_ids: tuple[int, ...] | None  # None: every merchant
    store_ids: tuple[int, ...] | None  # None: every store of those merchants, and records made at no store

    @property
    def is_empty(self) -> bool:
        return self.merchant_ids == () or self.store_ids == ()

    def apply(self, queryset: QuerySet, merchant_path: str = "merchant", store_path: str = "store") -> QuerySet:
        """Rows of `queryset` in the scope; `store_path` "" for rows that belong to no store (the scope's
        merchants then decide alone)."""
        if self.is_empty:
            return queryset.none()
        if self.merchant_ids is not None:
            queryset = queryset.filter(**{f"{merchant_path}__in": self.merchant_ids})
        if self.store_ids is not None and store_path:
            queryset = queryset.filter(**{f"{store_path}__in": self.store_ids})
        return queryset

    def narrow(self, *, merchant_id: int | None = None, store: Store | None = None) -> RecordScope:
        """The part of this scope at one merchant and/or one store (a filter); empty when the user may not
        read there. A store narrows to its merchant's records at that store only."""
        scope = self
        if merchant_id is not None:
            allowed = scope.merchant_ids is None or merchant_id in scope.merchant_ids
            scope = RecordScope((merchant_id,) if allowed else (), scope.store_ids)
        if store is not None:
            allowed = (scope.merchant_ids is None or store.merchant_id in scope.merchant_ids) and (
                scope.store_ids is None or store.pk in scope.store_ids
            )
            scope = RecordScope((store.merchant_id,) if allowed else (), (store.pk,) if allowed else ())
        return scope

    def stores(self) -> QuerySet[Store]:
        """The stores whose records this scope reads."""
        return self.apply(Store.objects.select_related("merchant"), "merchant", "pk").order_by("merchant_id", "code")

    def merchants(self) -> QuerySet[Merchant]:
        if self.is_empty:
            return Merchant.objects.none()
        if self.merchant_ids is None:
            return Merchant.objects.all()
        return Merchant.objects.filter(pk__in=self.merchant_ids)


_UNKNOWN = object()


def record_scope(
    user: AbstractBaseUser | AnonymousUser, *, staff: Staff | None | object = _UNKNOWN, platform: bool | None = None
) -> RecordScope:
    """The records the user reads (see RecordScope); nothing for strangers and inactive staff. A caller
    that has already looked up the user's staff record and platform role passes them (fewer queries)."""
    if not user.is_authenticated or not user.is_active:
        return RecordScope((), ())
    if platform if platform is not None else is_platform_admin(user):
        return RecordScope(None, None)
    staff = staff_of(user) if staff is _UNKNOWN else staff
    merchant = staff.merchant if isinstance(staff, Staff) else None
    if merchant is None:
        return RecordScope((), ())
    if user.groups.filter(name=roles.MERCHANT_ADMIN).exists():
        return RecordScope((merchant.pk,), None)
    stores = stores_where(user, "members.view_store").filter(merchant=merchant).values_list("pk", flat=True)
    return RecordScope((merchant.pk,), tuple(sorted(stores)))


def audit_events_of(owner: Owner) -> QuerySet[AuditEvent]:
    """The audit history of a member (events whose target is the member), newest first."""
    return AuditEvent.objects.filter(
        merchant_id=owner.merchant_id, content_type=ContentType.objects.get_for_model(Owner), object_id=str(owner.pk)
    ).select_related("actor")
