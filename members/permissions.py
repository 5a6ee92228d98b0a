"""Store scope of actions (issue 9, item 10), in one place.

A member is merchant-wide (the card works at every store), so any staff member of the merchant may
read members. Acting on a record made at a store needs that store's object permission
(`members.operate_store` to refund a consumption, …). A record made at no store (an import, a job)
is acted on only by a merchant admin of its merchant. Everything is scoped to the merchant first:
nobody acts on another merchant's records, whatever they hold.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.errors import fail

from . import roles, selectors
from .models import Merchant, Store

OPERATE = "members.operate_store"


def is_merchant_admin_of(user: AbstractBaseUser | AnonymousUser, merchant: Merchant) -> bool:
    staff = selectors.staff_of(user)
    return bool(
        staff is not None
        and staff.merchant_id == merchant.pk
        and user.groups.filter(name=roles.MERCHANT_ADMIN).exists()
    )


def can_act_on_store(
    user: AbstractBaseUser | AnonymousUser, store: Store | None, perm: str = OPERATE, *, merchant: Merchant
) -> bool:
    """May `user` act on a record of `merchant` made at `store` (None: made at no store)?"""
    if not user.is_authenticated or not user.is_active:
        return False
    if store is None:
        return is_merchant_admin_of(user, merchant)
    if store.merchant_id != merchant.pk or selectors.merchant_of(user) != merchant:
        return False
    # Object permission only: a global (model) permission never stands in for a store's.
    return selectors.stores_where(user, perm).filter(pk=store.pk).exists()


def actionable_store_q(
    user: AbstractBaseUser | AnonymousUser, merchant: Merchant, store_path: str, perm: str = OPERATE
) -> Q:
    """A filter on records of `merchant` keeping those `user` may act on; `store_path` is the lookup
    from the record to its store (e.g. "consumption__store"). The queryset form of can_act_on_store."""
    if not user.is_authenticated or not user.is_active or selectors.merchant_of(user) != merchant:
        return Q(pk__in=[])
    stores = selectors.stores_where(user, perm).filter(merchant=merchant)
    allowed = Q(**{f"{store_path}__in": stores})
    if is_merchant_admin_of(user, merchant):
        allowed |= Q(**{f"{store_path}__isnull": True})
    return allowed


def check_can_act_on_store(
    user: AbstractBaseUser | AnonymousUser,
    store: Store | None,
    perm: str = OPERATE,
    *,
    merchant: Merchant,
    field: str = "store",
) -> None:
    """Raise a DomainError (code store_forbidden) unless can_act_on_store()."""
    if not can_act_on_store(user, store, perm, merchant=merchant):
        raise fail(
            field,
            "store_forbidden",
            _("You may not act on records made at %(store)s."),
            store=store.name if store is not None else _("no store"),
        )
