"""Idempotency keys of the wallet's operations: a request's fingerprint, its replay and its races."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import types
import typing
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, models
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from members.models import Merchant, Owner

from ..accounts import operation_scope
from .checks import (
    check_actor,
    check_kind,
    check_lines,
    clean_text,
)


def fingerprint(arguments: dict) -> str:
    """A stable fingerprint of an operation's content: every argument but the actor and the key, rows by
    model and primary key, items field by field. Stored on the record as request_hash."""

    def normalized(value):
        if isinstance(value, models.Model):
            return f"{value._meta.label_lower}:{value.pk}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: normalized(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {str(k): normalized(v) for k, v in value.items()}
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        if hasattr(value, "__iter__"):
            return [normalized(v) for v in value]
        return str(value)

    text = json.dumps(normalized(arguments), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _existing(
    model, merchant: Merchant, idempotency_key: str | None, member: Owner | None = None, request_hash: str = ""
):
    """The operation already recorded under this key (a retried request), or None. A key reused for
    another member, or with different content, is refused (idempotency_conflict) rather than answered
    with another request's record. Records from before request_hash existed have none: not compared."""
    if not idempotency_key:
        return None
    found = model.objects.filter(merchant=merchant, idempotency_key=idempotency_key).first()
    if found is None:
        return None
    if member is not None and found.member_id != member.pk:
        raise fail(
            "idempotency_key", "idempotency_conflict", _("This request key was already used for another member.")
        )
    if request_hash and found.request_hash and found.request_hash != request_hash:
        raise fail(
            "idempotency_key", "idempotency_conflict",
            _("This form was already submitted with different content (recorded as %(number)s). Reload the page to "
              "record a new operation."),
            number=found.number,
        )  # fmt: skip
    return found


def _check_record_text(model, arguments: dict) -> None:
    """Text an operation receives must fit where it is stored: the key is text of at most the column's
    length, no argument (nor tag) carries a NUL character (PostgreSQL cannot store one), and an argument
    stored on the record (note, reason) fits its column. Refused with a field error, never a database
    error."""
    key = arguments.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise fail("idempotency_key", "key_not_text", _("The request key must be text."))
    for name, value in arguments.items():
        if name == "tags" and isinstance(value, Sequence) and not isinstance(value, str):
            for tag in value:
                if isinstance(tag, str):
                    clean_text(tag, name)
        elif isinstance(value, str):
            try:
                limit = model._meta.get_field(name).max_length
            except FieldDoesNotExist:
                limit = None
            clean_text(value, name, max_length=limit)  # the one text rule (members.services.clean_text)


def _related_parameters(fn) -> dict[str, tuple[type[models.Model], bool, bool]]:
    """The parameters of `fn` declared as rows: name → (model, required, a sequence of rows)."""
    found = {}
    for name, hint in typing.get_type_hints(fn).items():
        if name in ("return", "actor"):  # the actor may be an anonymous user: checked by check_actor
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, type) and issubclass(hint, models.Model):
            found[name] = (hint, True, False)
        elif isinstance(hint, types.UnionType | typing._UnionGenericAlias) and len(args) == 1:  # X | None
            if isinstance(args[0], type) and issubclass(args[0], models.Model):
                found[name] = (args[0], False, False)
        elif (
            typing.get_origin(hint) is Sequence
            and len(args) == 1
            and isinstance(args[0], type)
            and issubclass(args[0], models.Model)
        ):
            found[name] = (args[0], True, True)
    return found


def _check_related_kinds(related: dict, arguments: dict) -> None:
    """Every argument declared as a row is one of its model (ids and rows of other models are refused)."""
    for name, (kind, required, many) in related.items():
        value = arguments.get(name)
        if many:
            for i, row in enumerate(check_lines(value, kind, name)):
                check_kind(row, kind, f"{name}[{i}]")
        else:
            check_kind(value, kind, name, required=required)


# (model, key, request hash) of the record the running operation is about to create.
_pending_record: ContextVar[tuple | None] = ContextVar("wallet_pending_record", default=None)


def _stamp_request_hash(sender, instance, **kwargs) -> None:
    """pre_save of an operation's record: the request's fingerprint goes in with the INSERT (no UPDATE
    after it)."""
    pending = _pending_record.get()
    if (
        pending is not None
        and instance._state.adding
        and pending[0] is sender
        and instance.idempotency_key == pending[1]
    ):
        instance.request_hash = pending[2]


def idempotent(model):
    """For every operation taking an idempotency key, one place: the request's content is fingerprinted
    (fingerprint) and stored on its record. A repeat of the key with the same content is answered with
    the first record; with different content it is refused. When two requests race, the second waits on
    the first's row and fails its unique key: its transaction is rolled back and it is then answered (or
    refused) the same way. Put above @transaction.atomic (the operation's transaction: the wrapper opens
    none, so the operation costs no savepoint); the operation's arguments must be keyword-only. The
    operation runs in wallet.accounts.operation_scope (each ledger account fetched once)."""

    pre_save.connect(_stamp_request_hash, sender=model, weak=False, dispatch_uid=f"request-hash:{model._meta.label}")

    def decorate(fn):
        signature = inspect.signature(fn)
        related = _related_parameters(fn)

        @functools.wraps(fn)
        def wrapper(**kwargs):
            # Lines given as an iterator are read once here, so the fingerprint and the operation see them all.
            kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
            bound = signature.bind(**kwargs)
            bound.apply_defaults()
            _check_record_text(model, bound.arguments)
            _check_related_kinds(related, bound.arguments)
            member = kwargs.get("member") or kwargs["grant"].member
            check_actor(kwargs.get("actor"), member.merchant)
            key = kwargs.get("idempotency_key")
            with operation_scope():
                if not key:
                    # "" is no key, like None: stored as NULL, so requests without a key never collide.
                    return fn(**{**kwargs, "idempotency_key": None} if "idempotency_key" in kwargs else kwargs)
                request_hash = fingerprint(
                    {k: v for k, v in bound.arguments.items() if k not in ("actor", "idempotency_key")}
                )
                existing = _existing(model, member.merchant, key, member, request_hash)
                if existing is not None:
                    return existing
                token = _pending_record.set((model, key, request_hash))
                try:
                    return fn(**kwargs)
                except IntegrityError:
                    existing = _existing(model, member.merchant, key, member, request_hash)
                    if existing is None:
                        raise
                    return existing
                finally:
                    _pending_record.reset(token)

        return wrapper

    return decorate


# The earlier name of the decorator (race handling only), kept so code written against it still works.
