"""Which merchant a row of any model belongs to, derived from the model's foreign keys.

The admin (and anything else that lists or offers rows generically) scopes every queryset with
`scope_queryset`: a model with a `merchant` foreign key is scoped by it, a model without one by the
shortest chain of required foreign keys that reaches one (Room → building → estate → merchant,
Leg → entry → merchant). A model added tomorrow is therefore scoped without anyone remembering to.
A model from which no merchant can be reached, and which is not declared global, is shown to
platform admins only: unknown means hidden, never everything.
"""

from __future__ import annotations

import functools
from collections import deque

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import QuerySet

from . import selectors
from .models import Merchant

GLOBAL = "<global>"  # not merchant data: the same rows for every merchant (content types, permissions)

# Models whose path cannot be derived from their own foreign keys, or that are global.
_DECLARED: dict[type[models.Model], str] = {
    Merchant: "pk",
    get_user_model(): "staff__merchant",  # a login belongs to the merchant its staff record works for
    ContentType: GLOBAL,
    Permission: GLOBAL,
    Group: GLOBAL,
}

_MAX_DEPTH = 4


def declare(model: type[models.Model], path: str) -> None:
    """Declare a model's merchant lookup (or GLOBAL) where it cannot be derived."""
    _DECLARED[model] = path
    merchant_path.cache_clear()


def _forward_relations(model: type[models.Model]) -> list[models.Field]:
    fields = [
        f
        for f in model._meta.get_fields()
        if f.concrete and (f.many_to_one or f.one_to_one) and f.related_model is not None
    ]
    # Required keys first: a nullable key may be empty and would then not tell the merchant.
    return sorted(fields, key=lambda f: (f.null, f.name != "merchant"))


@functools.cache
def merchant_path(model: type[models.Model]) -> str | None:
    """The lookup from `model` to its merchant ("merchant", "estate__merchant", "pk" for Merchant),
    GLOBAL for shared reference data, or None when no merchant can be reached."""
    model = model._meta.concrete_model
    if model in _DECLARED:
        return _DECLARED[model]
    queue: deque[tuple[type[models.Model], str, int]] = deque([(model, "", 0)])
    seen = {model}
    while queue:
        current, prefix, depth = queue.popleft()
        for field in _forward_relations(current):
            target = field.related_model._meta.concrete_model
            path = f"{prefix}{field.name}"
            if target is Merchant:
                return path
            if target in seen or depth + 1 >= _MAX_DEPTH or _DECLARED.get(target) == GLOBAL:
                continue
            seen.add(target)
            queue.append((target, f"{path}__", depth + 1))
    return None


def direct_merchant_field(model: type[models.Model]) -> str | None:
    """The name of the model's own foreign key to Merchant, if its merchant is one column of the row."""
    path = merchant_path(model)
    return path if path and path != GLOBAL and "__" not in path and path != "pk" else None


def scope_queryset(queryset: QuerySet, user: AbstractBaseUser | AnonymousUser) -> QuerySet:
    """What of `queryset` the user may see: everything for platform admins, their merchant's rows for
    staff, nothing for anyone else; global reference data for every signed-in user."""
    path = merchant_path(queryset.model)
    if path == GLOBAL:
        return queryset if user.is_authenticated else queryset.none()
    if path is None:
        return queryset if selectors.is_platform_admin(user) else queryset.none()
    return selectors.scope_to_user(queryset, user, path)


def merchant_id_of(obj: models.Model) -> int | None:
    """The merchant id of a (possibly unsaved) row, following its merchant path attribute by attribute;
    None for global rows and rows whose path is empty."""
    path = merchant_path(type(obj))
    if path is None or path == GLOBAL:
        return None
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    try:
        for hop in hops:
            obj = getattr(obj, hop)
            if obj is None:
                return None
    except ObjectDoesNotExist:
        return None
    return getattr(obj, f"{last}_id", None)
