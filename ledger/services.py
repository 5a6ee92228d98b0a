"""The ledger's write API: accounts, posting and reversal. Nothing else writes ledger tables.

Posting is hand-written SQL through Django's connection (PostgreSQL and SQLite alike): the ORM path
costs several milliseconds of Python per entry, which would cap throughput far below the database.
Per entry: one INSERT of the entry (ON CONFLICT on the idempotency key), one guarded UPDATE per
bounded account in account-id order (or one ordered lock query and a batched update for many), and
one multi-row INSERT of the legs. Merchant-side accounts that may go negative are never locked or
updated: their balance is the sum of their legs, so a hot cash account does not serialise writers.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Merchant, Owner, Staff, Store

from .errors import (
    ForeignAccount,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidLeg,
    LedgerError,
    ReversalError,
    UnbalancedEntry,
)
from .labels import amount_text, operation_label, purpose_label
from .models import Account, AccountBalance, Entry, Leg

Purpose = Account.Purpose
Holder = Account.Holder
Kind = Account.Kind

CNY = "CNY"
POINT = "POINT"
_UNIT_RE = re.compile(r"^(CNY|POINT|[A-Z]{2,8}:[0-9A-Za-z_.-]{1,30})$")
MAX_AMOUNT = 10**15  # fen: far beyond any real balance, far inside bigint


@dataclass(frozen=True)
class PurposeSpec:
    holder: str
    kind: str
    normal_sign: int  # +1 debit-normal, -1 credit-normal
    unit_rule: str  # "CNY", "POINT", "counted" (coupon/entitlement units) or "any"


PURPOSES: dict[str, PurposeSpec] = {
    Purpose.PRINCIPAL: PurposeSpec(Holder.MEMBER, Kind.LIABILITY, -1, "CNY"),
    Purpose.BONUS: PurposeSpec(Holder.MEMBER, Kind.LIABILITY, -1, "CNY"),
    Purpose.VOUCHER: PurposeSpec(Holder.MEMBER, Kind.LIABILITY, -1, "CNY"),
    Purpose.COUPON: PurposeSpec(Holder.MEMBER, Kind.MEMO, -1, "counted"),
    Purpose.ENTITLEMENT: PurposeSpec(Holder.MEMBER, Kind.MEMO, -1, "counted"),
    Purpose.POINTS: PurposeSpec(Holder.MEMBER, Kind.MEMO, -1, "POINT"),
    Purpose.COMMISSION: PurposeSpec(Holder.STAFF, Kind.LIABILITY, -1, "CNY"),
    Purpose.CASH: PurposeSpec(Holder.MERCHANT, Kind.ASSET, 1, "CNY"),
    Purpose.REVENUE: PurposeSpec(Holder.MERCHANT, Kind.INCOME, -1, "CNY"),
    Purpose.DEFERRED_REVENUE: PurposeSpec(Holder.MERCHANT, Kind.LIABILITY, -1, "CNY"),
    Purpose.BONUS_EXPENSE: PurposeSpec(Holder.MERCHANT, Kind.EXPENSE, 1, "CNY"),
    Purpose.COMMISSION_EXPENSE: PurposeSpec(Holder.MERCHANT, Kind.EXPENSE, 1, "CNY"),
    Purpose.BREAKAGE: PurposeSpec(Holder.MERCHANT, Kind.INCOME, -1, "CNY"),
    Purpose.ISSUANCE: PurposeSpec(Holder.MERCHANT, Kind.MEMO, 1, "any"),
    # Running totals of a member (memo): credited by the entries that count towards them, against the
    # merchant's tally account of the unit.
    Purpose.SPEND: PurposeSpec(Holder.MEMBER, Kind.MEMO, -1, "CNY"),
    Purpose.POINTS_EARNED: PurposeSpec(Holder.MEMBER, Kind.MEMO, -1, "POINT"),
    Purpose.TALLY: PurposeSpec(Holder.MERCHANT, Kind.MEMO, 1, "any"),
}


@dataclass(frozen=True, slots=True)
class LegSpec:
    """One leg to post: debit positive, credit negative. `unit`, when given, must be the account's."""

    account: Account
    amount: int
    unit: str | None = None


def debit(account: Account, amount: int) -> LegSpec:
    return LegSpec(account, amount)


def credit(account: Account, amount: int) -> LegSpec:
    return LegSpec(account, -amount)


def increase(account: Account, amount: int) -> LegSpec:
    """The leg that raises the account's normal-side balance by `amount`."""
    return LegSpec(account, amount * account.normal_sign)


def decrease(account: Account, amount: int) -> LegSpec:
    """The leg that lowers the account's normal-side balance by `amount`."""
    return LegSpec(account, -amount * account.normal_sign)


# ---------------------------------------------------------------- accounts


def _check_unit(purpose: str, unit: str) -> None:
    if not isinstance(unit, str) or not _UNIT_RE.match(unit):
        raise InvalidLeg(
            "unit",
            _("This is not a ledger unit (yuan, points or the uses of one template or service)."),
            code="unit_invalid",
        )
    rule = PURPOSES[purpose].unit_rule
    label = {"purpose": purpose_label(purpose)}
    if rule == CNY and unit != CNY:
        raise InvalidLeg("unit", _("%(purpose)s accounts are kept in yuan."), code="account_unit_wrong", params=label)
    if rule == POINT and unit != POINT:
        raise InvalidLeg("unit", _("%(purpose)s accounts are kept in points."), code="account_unit_wrong", params=label)
    if rule == "counted" and unit in (CNY, POINT):
        raise InvalidLeg(
            "unit",
            _("%(purpose)s accounts count the uses of one template or service, not yuan or points."),
            code="account_unit_wrong",
            params=label,
        )


def _holder_key(holder: str, member_id: int | None, staff_id: int | None) -> str:
    if holder == Holder.MEMBER:
        return f"member:{member_id}"
    if holder == Holder.STAFF:
        return f"staff:{staff_id}"
    return "merchant"


def _new_account(merchant_id: int, purpose: str, unit: str, member_id=None, staff_id=None, detail="") -> Account:
    spec = PURPOSES[purpose]
    return Account(
        merchant_id=merchant_id,
        holder=spec.holder,
        member_id=member_id,
        staff_id=staff_id,
        holder_key=_holder_key(spec.holder, member_id, staff_id),
        purpose=purpose,
        unit=unit,
        detail=detail,
        kind=spec.kind,
        normal_sign=spec.normal_sign,
        allow_negative=spec.holder == Holder.MERCHANT,
    )


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """Which account of a merchant: purpose, unit, holder (a member's or staff member's id, or neither for
    the merchant's own) and detail (payment method, lot, …)."""

    purpose: str
    unit: str
    member_id: int | None = None
    staff_id: int | None = None
    detail: str = ""


def _unknown_purpose(purpose: object) -> InvalidLeg:
    return InvalidLeg(
        "purpose",
        _("%(purpose)s is not a ledger account purpose."),
        code="account_purpose_unknown",
        params={"purpose": purpose},
    )


def _foreign(field: str, kind: object) -> ForeignAccount:
    """Another merchant's row: named by its kind only, never by its name or id (which would tell one
    merchant about another's data)."""
    return ForeignAccount(field, _("This %(kind)s belongs to another merchant."), params={"kind": kind})


def _identity(spec: AccountSpec) -> tuple[str, str, str, str]:
    """(holder_key, purpose, unit, detail) of a valid spec; refuses what no account may be."""
    purpose, member_id, staff_id = spec.purpose, spec.member_id, spec.staff_id
    if purpose not in PURPOSES:
        raise _unknown_purpose(purpose)
    rule = PURPOSES[purpose]
    label = {"purpose": purpose_label(purpose)}
    if rule.holder == Holder.MEMBER and (member_id is None or staff_id is not None):
        raise InvalidLeg(
            "member", _("%(purpose)s accounts belong to a member."), code="account_holder_wrong", params=label
        )
    if rule.holder == Holder.STAFF and (staff_id is None or member_id is not None):
        raise InvalidLeg(
            "staff", _("%(purpose)s accounts belong to a staff member."), code="account_holder_wrong", params=label
        )
    if rule.holder == Holder.MERCHANT and (member_id is not None or staff_id is not None):
        raise InvalidLeg(
            "purpose", _("%(purpose)s accounts belong to the merchant."), code="account_holder_wrong", params=label
        )
    _check_unit(purpose, spec.unit)
    return _holder_key(rule.holder, member_id, staff_id), purpose, spec.unit, spec.detail


def get_or_create_account(
    merchant: Merchant,
    purpose: str,
    unit: str,
    *,
    member: Owner | None = None,
    staff: Staff | None = None,
    detail: str = "",
) -> Account:
    """The account of (merchant, holder, purpose, unit, detail), created with its balance row if new.

    Race-free: concurrent callers insert with ON CONFLICT DO NOTHING and read back the one row.
    """
    for holder in (member, staff):
        if holder is not None and holder.merchant_id != merchant.pk:
            raise _foreign("merchant", holder._meta.verbose_name)
    spec = AccountSpec(purpose, unit, member and member.pk, staff and staff.pk, detail)
    return get_or_create_accounts(merchant, [spec])[0]


def get_or_create_accounts(merchant: Merchant, specs: Sequence[AccountSpec]) -> list[Account]:
    """The accounts of `specs`, in their order, those missing created with their balance rows: one
    query when they all exist (an operation fetches every account it posts to at once), four or five
    more when some are new. Holders are checked to be the merchant's when their account is created (an
    existing account was checked then). Race-free as get_or_create_account."""
    identities = [_identity(spec) for spec in specs]
    wanted = list(dict.fromkeys(identities))
    found = _accounts_by_identity(merchant.pk, wanted)
    missing = [identity for identity in wanted if identity not in found]
    if missing:
        by_identity = dict(zip(identities, specs, strict=True))
        new = [by_identity[identity] for identity in missing]
        for model, ids in (
            (Owner, {spec.member_id for spec in new if spec.member_id is not None}),
            (Staff, {spec.staff_id for spec in new if spec.staff_id is not None}),
        ):
            if ids and model.objects.filter(merchant_id=merchant.pk, pk__in=ids).count() != len(ids):
                raise ForeignAccount(
                    "merchant",
                    _("Some of the %(kind)s belong to another merchant."),
                    params={"kind": model._meta.verbose_name_plural},
                )
        with transaction.atomic():  # an account never exists without its balance row
            Account.objects.bulk_create(
                [_new_account(merchant.pk, s.purpose, s.unit, s.member_id, s.staff_id, s.detail) for s in new],
                ignore_conflicts=True,
            )
            created = _accounts_by_identity(merchant.pk, missing)
            AccountBalance.objects.bulk_create(
                [AccountBalance(account=a) for a in created.values() if not a.allow_negative], ignore_conflicts=True
            )
        found.update(created)
    return [found[identity] for identity in identities]


def find_accounts(merchant: Merchant, specs: Sequence[AccountSpec]) -> list[Account | None]:
    """The accounts of `specs` that exist (None for the others), in one query; creates nothing."""
    return find_accounts_and_balances(merchant, specs, balances=False)[0]


def find_accounts_and_balances(
    merchant: Merchant, specs: Sequence[AccountSpec], *, balances: bool = True
) -> tuple[list[Account | None], dict[int, int]]:
    """The accounts of `specs` that exist (None for the others) and the current balance of each bounded
    one (account id → balance), in one query; creates nothing. Balances are as of the query: read them
    after the locks that keep them (a wallet operation's member and card locks)."""
    identities = [_identity(spec) for spec in specs]
    current: dict[int, int] | None = {} if balances else None
    found = _accounts_by_identity(merchant.pk, list(dict.fromkeys(identities)), current)
    return [found.get(identity) for identity in identities], current or {}


@functools.cache
def _account_columns() -> tuple[tuple[str, ...], str]:
    fields = Account._meta.concrete_fields
    return tuple(f.attname for f in fields), ", ".join(f.column for f in fields)


def _accounts_by_identity(
    merchant_id: int, identities: list[tuple[str, str, str, str]], balances: dict[int, int] | None = None
) -> dict:
    """One query (a row-value IN list on the account identity index; SQLite and PostgreSQL alike), rows
    built as the ORM loads them; with `balances`, the cached balances of the bounded ones are read by the
    same query (a LEFT JOIN) into it."""
    if not identities:
        return {}
    attnames, columns = _account_columns()
    conn = connections[DEFAULT_DB_ALIAS]
    table, balance_table = Account._meta.db_table, AccountBalance._meta.db_table
    if balances is not None:
        columns = ", ".join(f"a.{c.strip()}" for c in columns.split(","))
        source = f"{table} a LEFT JOIN {balance_table} b ON b.account_id = a.id"
        columns += ", b.balance"
    else:
        source = f"{table} a"
    found = {}
    for chunk in _chunks(identities, 200):
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {source} WHERE a.merchant_id = %s"
                " AND (a.holder_key, a.purpose, a.unit, a.detail) IN ("
                + ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                + ")",
                [merchant_id, *(v for identity in chunk for v in identity)],
            )
            rows = cursor.fetchall()
        for row in rows:
            if balances is not None:
                *row, balance = row
            account = Account.from_db(conn.alias, attnames, row)
            if balances is not None and not account.allow_negative and balance is not None:
                balances[account.id] = balance
            if timezone.is_naive(account.created_at):  # SQLite's raw rows: stored in UTC
                account.created_at = account.created_at.replace(tzinfo=datetime.UTC)
            found[(account.holder_key, account.purpose, account.unit, account.detail)] = account
    return found


def get_or_create_member_accounts(
    merchant: Merchant, purpose: str, unit: str, member_ids: Sequence[int], *, detail: str = ""
) -> dict[int, Account]:
    """Bulk form of get_or_create_account for many members (batch issuance). Returns member id → account."""
    lots = get_or_create_lot_accounts(merchant, purpose, unit, [(m, detail) for m in dict.fromkeys(member_ids)])
    return {member_id: account for (member_id, _), account in lots.items()}


def get_or_create_lot_accounts(
    merchant: Merchant, purpose: str, unit: str, lots: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Account]:
    """Member accounts keyed by (member id, detail), created in bulk where missing, with their balance
    rows. A lot is e.g. one coupon grant: its own account, so it can expire or be refunded alone."""
    if PURPOSES.get(purpose) is None:
        raise _unknown_purpose(purpose)
    if PURPOSES[purpose].holder != Holder.MEMBER:
        raise InvalidLeg(
            "purpose",
            _("%(purpose)s accounts do not belong to a member."),
            code="account_holder_wrong",
            params={"purpose": purpose_label(purpose)},
        )
    _check_unit(purpose, unit)
    lots = list(dict.fromkeys(lots))
    member_ids = list({m for m, _ in lots})
    own = 0
    for chunk in _chunks(member_ids, 5000):
        own += Owner.objects.filter(merchant=merchant, pk__in=chunk).count()
    if own != len(member_ids):
        raise ForeignAccount(
            "members",
            _("%(count)s of the owners belong to another merchant or do not exist."),
            params={"count": len(member_ids) - own},
        )
    result: dict[tuple[int, str], Account] = {}
    with transaction.atomic():
        for chunk in _chunks(lots, 2000):
            Account.objects.bulk_create(
                [_new_account(merchant.pk, purpose, unit, member_id=m, detail=d) for m, d in chunk],
                ignore_conflicts=True,
            )
            wanted = set(chunk)
            candidates = Account.objects.filter(
                merchant=merchant,
                purpose=purpose,
                unit=unit,
                holder_key__in=list({f"member:{m}" for m, _ in chunk}),
                detail__in=list({d for _, d in chunk}),
            )
            accounts = [a for a in candidates if (a.member_id, a.detail) in wanted]
            AccountBalance.objects.bulk_create([AccountBalance(account=a) for a in accounts], ignore_conflicts=True)
            result.update({(a.member_id, a.detail): a for a in accounts})
    return result


# ---------------------------------------------------------------- posting


@dataclass
class _Prepared:
    merchant_id: int
    legs: list[tuple[Account, int]]
    operation_type: str
    operation_ref: str
    idempotency_key: str
    actor_id: int | None
    actor_label: str
    store_id: int | None
    member_id: int | None
    memo: str
    reverses_id: int | None
    fingerprint: str


def _too_long(field: str, limit: int) -> LedgerError:
    return LedgerError(
        field,
        _("The %(field)s of a ledger entry is longer than %(limit)s characters."),
        code="entry_field_too_long",
        params={"field": Entry._meta.get_field(field).verbose_name, "limit": limit},
    )


def _prepare(
    merchant: Merchant,
    legs: Iterable[LegSpec | tuple[Account, int]],
    operation_type: str,
    operation_ref: str,
    idempotency_key: str,
    actor: AbstractBaseUser | None,
    actor_label: str,
    store: Store | None,
    memo: str,
    reverses_id: int | None,
    member: Owner | None = None,
    *,
    store_id: int | None = None,
    member_id: int | None = None,
) -> _Prepared:
    """Validate and fingerprint an entry. A reversal passes the original's store_id / member_id instead
    of rows (checked when the original was posted)."""
    merchant_id = merchant.pk if isinstance(merchant, Merchant) else int(merchant)
    for field, value, limit in (
        ("idempotency_key", idempotency_key, 128),
        ("operation_type", operation_type, 32),
        ("operation_ref", operation_ref, 64),
    ):
        if not isinstance(value, str) or not value.strip():
            raise LedgerError(
                field,
                _("A ledger entry needs its %(field)s."),
                code="entry_field_required",
                params={"field": Entry._meta.get_field(field).verbose_name},
            )
        if len(value) > limit:
            raise _too_long(field, limit)
    if len(memo) > 200:
        raise _too_long("memo", 200)
    if store is not None:
        if store.merchant_id != merchant_id:
            raise _foreign("store", Store._meta.verbose_name)
        store_id = store.pk
    if member is not None:
        if member.merchant_id != merchant_id:
            raise _foreign("member", Owner._meta.verbose_name)
        member_id = member.pk
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if actor is None and not actor_label:
        actor_label = "system"

    prepared: list[tuple[Account, int]] = []
    sums: dict[str, int] = defaultdict(int)
    for i, leg in enumerate(legs):
        account, amount, unit = (leg.account, leg.amount, leg.unit) if isinstance(leg, LegSpec) else (*leg, None)
        if not isinstance(account, Account) or account.id is None:
            raise InvalidLeg(
                f"legs[{i}].account", _("Each leg needs a saved ledger account."), code="leg_account_missing"
            )
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidLeg(
                f"legs[{i}].amount",
                _("Leg amounts are whole numbers of the account's unit."),
                code="leg_amount_not_integer",
            )
        if amount == 0:
            raise InvalidLeg(f"legs[{i}].amount", _("A leg's amount cannot be zero."), code="leg_amount_zero")
        if abs(amount) > MAX_AMOUNT:
            raise InvalidLeg(
                f"legs[{i}].amount",
                _("The amount of a leg is beyond the largest allowed amount."),
                code="leg_amount_too_large",
            )
        if unit is not None and unit != account.unit:
            raise InvalidLeg(
                f"legs[{i}].unit",
                _("The leg is not in the unit of its %(account)s account."),
                code="leg_unit_mismatch",
                params={"account": purpose_label(account.purpose)},
            )
        if account.merchant_id != merchant_id:
            raise _foreign(f"legs[{i}].account", Account._meta.verbose_name)
        prepared.append((account, amount))
        sums[account.unit] += amount
    if len(prepared) < 2:
        raise InvalidLeg("legs", _("An entry needs at least two legs."), code="legs_too_few")
    unbalanced = {u: s for u, s in sums.items() if s != 0}
    if unbalanced:
        # By how much debits exceed credits (negative: credits exceed debits), per unit.
        difference = ", ".join(amount_text(u, s) for u, s in sorted(unbalanced.items()))
        raise UnbalancedEntry(
            "legs",
            _("The legs do not balance: debits minus credits come to %(difference)s."),
            params={"difference": difference},
        )

    content = {
        "t": operation_type,
        "r": operation_ref,
        "s": store_id,
        "m": member_id,
        "v": reverses_id,
        "l": sorted((a.id, amt) for a, amt in prepared),
    }
    fingerprint = hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()
    return _Prepared(
        merchant_id=merchant_id,
        legs=prepared,
        operation_type=operation_type,
        operation_ref=operation_ref,
        idempotency_key=idempotency_key,
        actor_id=actor.pk if actor is not None else None,
        actor_label=actor_label,
        store_id=store_id,
        member_id=member_id,
        memo=memo,
        reverses_id=reverses_id,
        fingerprint=fingerprint,
    )


def post_entry(
    *,
    merchant: Merchant,
    legs: Iterable[LegSpec | tuple[Account, int]],
    operation_type: str,
    operation_ref: str,
    idempotency_key: str,
    actor: AbstractBaseUser | None,
    actor_label: str = "",
    store: Store | None = None,
    member: Owner | None = None,
    memo: str = "",
) -> Entry:
    """Post one balanced entry atomically and return it.

    Refuses (raising a LedgerError, posting nothing) legs that do not sum to zero per unit, a leg whose
    unit differs from its account's, zero or non-integer amounts, accounts of another merchant, and any
    change that would take a bounded (member or staff) account below zero after locking it. The same
    idempotency key with the same content returns the first entry; with other content it fails.
    """
    prepared = _prepare(
        merchant, legs, operation_type, operation_ref, idempotency_key, actor, actor_label, store, memo, None, member
    )
    return _post(prepared)


class _AlreadyPosted(Exception):
    """The idempotency key is taken: roll back this attempt's balance changes, answer with the first."""


def _post(p: _Prepared) -> Entry:
    conn = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy is a thread-local lookup
    changes = _bounded_changes(p.legs)
    if conn.vendor == "postgresql" and len(p.legs) <= _FUNCTION_MAX_LEGS and len(changes) <= _FUNCTION_MAX_BOUNDED:
        return _post_through_function(p, conn, changes)
    try:
        if conn.vendor == "postgresql" and not conn.in_atomic_block:
            # Not inside anyone's transaction: one psycopg transaction (BEGIN ... COMMIT) on Django's own
            # connection. atomic() would switch Django's autocommit off and back on around it, a sixth
            # of the client's time per small entry; psycopg rolls back on any exception.
            conn.ensure_connection()
            with conn.wrap_database_errors, conn.connection.transaction():
                return _write(p, conn, changes)
        with transaction.atomic(using=conn.alias):
            return _write(p, conn, changes)
    except _AlreadyPosted:
        return _existing(p)


# Entries up to this size (nearly all) go through ledger_post_entry(): one guarded UPDATE per bounded
# account inside the function, so a few more bounded accounts cost no round trip (a consumption line
# touches up to 8: principal, bonus, grant or voucher, commission, points lot and the two level tallies).
_FUNCTION_MAX_LEGS = 64
_FUNCTION_MAX_BOUNDED = 16
_POST_FUNCTION = (
    "SELECT ledger_post_entry(%s::bigint, %s::text, %s::text, %s::text, %s::bigint, %s::text, %s::bigint,"
    " %s::bigint, %s::text, %s::timestamptz, %s::bigint, %s::text, %s::bigint[], %s::text[], %s::bigint[],"
    " %s::integer[], %s::integer[], %s::bigint[], %s::bigint[])"
)
_KEY_TAKEN = -1  # ledger_post_entry()'s first result element when the key is taken (0: a bound refused)


def _bounded_changes(legs: Sequence[tuple[Account, int]]) -> dict[int, int]:
    """Normal-side change per bounded (may not go negative) account of the legs."""
    changes: dict[int, int] = {}
    for account, amount in legs:
        if not account.allow_negative:
            changes[account.id] = changes.get(account.id, 0) + amount * account.normal_sign
    return changes


def _post_through_function(p: _Prepared, conn, changes: dict[int, int]) -> Entry:
    """One call of ledger_post_entry() (migration 0007): the same writes as _write, in one round trip.
    At top level the statement is its own transaction. Inside the caller's it needs no savepoint: a
    refusal is the function's result, after it undid its own changes, never a database error, so the
    caller's transaction stays usable (and the two round trips of a savepoint are saved)."""
    ordered = sorted(changes)
    slot = {acc_id: i for i, acc_id in enumerate(ordered, 1)}
    now = timezone.now()
    params = [
        p.merchant_id, p.idempotency_key, p.operation_type, p.operation_ref, p.actor_id, p.actor_label,
        p.store_id, p.member_id, p.memo, now, p.reverses_id, p.fingerprint,
        [a.id for a, _ in p.legs], [a.unit for a, _ in p.legs], [amount for _, amount in p.legs],
        [slot.get(a.id, 0) for a, _ in p.legs], [a.normal_sign for a, _ in p.legs],
        ordered, [changes[acc_id] for acc_id in ordered],
    ]  # fmt: skip
    with _cursor(conn) as cursor:
        cursor.execute(_POST_FUNCTION, params)
        result = cursor.fetchone()[0]
    if result[0] > 0:
        entry = _entry_from(p, result[0], now, conn)
        entry.balances_after = dict(zip(ordered, result[1:], strict=True))
        return entry
    if result[0] == _KEY_TAKEN or _key_taken(p):  # taken, or a retry of an entry that already spent the money
        return _existing(p)
    account = next(a for a, _ in p.legs if a.id == result[1])
    with _cursor(conn) as cursor:
        _raise_for_missing_or_insufficient(cursor, account, changes[account.id])
    raise AssertionError("unreachable")  # pragma: no cover


# PostgreSQL statements: fixed text whatever the number of legs (arrays), so each is prepared once per
# connection and afterwards only parameters travel. Arrays travel as array literals built by
# _int_array/_text_array (see there).
_PG_GUARDED_UPDATE = (
    "UPDATE ledger_accountbalance SET balance = balance + %s WHERE account_id = %s AND balance + %s >= 0"
    " RETURNING balance"
)
_PG_LOCK = (
    "SELECT account_id, balance FROM ledger_accountbalance WHERE account_id = ANY(%s::bigint[])"
    " ORDER BY account_id FOR UPDATE"
)
_PG_SET_BALANCES = (
    "UPDATE ledger_accountbalance b SET balance = v.balance"
    " FROM unnest(%s::bigint[], %s::bigint[]) AS v(account_id, balance) WHERE b.account_id = v.account_id"
)
_ENTRY_COLUMNS = (
    "merchant_id, idempotency_key, operation_type, operation_ref, actor_id, actor_label, store_id, member_id,"
    " memo, posted_at, reverses_id, fingerprint"
)
_INSERT_ENTRY = (
    f"INSERT INTO ledger_entry ({_ENTRY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (merchant_id, idempotency_key) DO NOTHING RETURNING id"
)
# The entry and its legs in one round trip; no row comes back when the idempotency key is taken.
_PG_INSERT_ENTRY_AND_LEGS = (
    f"WITH e AS ({_INSERT_ENTRY}, posted_at)"  # RETURNING id, posted_at: legs carry their entry's time
    " INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)"
    " SELECT e.id, v.account_id, v.unit, v.amount, v.balance_after, e.posted_at FROM e,"
    " unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[]) WITH ORDINALITY"
    " AS v(account_id, unit, amount, balance_after, n) ORDER BY v.n RETURNING entry_id"
)


def _int_array(values: Sequence[int | None]) -> str:
    """A PostgreSQL array literal, sent as one text parameter and cast in the statement. psycopg's list
    dumpers handle every element in Python (15-20 ms per 10,000, a quarter of a bulk entry's time);
    joining is about 1 ms. Values are ints the ledger computed, never text."""
    return "{" + ",".join(["NULL" if v is None else str(int(v)) for v in values]) + "}"


def _text_array(values: Sequence[str]) -> str:
    """As _int_array, for text: each distinct value is quoted once (backslash and double quote escaped)."""
    quoted = {v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in set(values)}
    return "{" + ",".join([quoted[v] for v in values]) + "}"


@functools.cache
def _insert_legs_sql(legs: int) -> str:
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * legs)
    return f"INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at) VALUES {rows}"


class _PreparedCursor:
    """A server-side-binding psycopg cursor on Django's own connection (so inside the same transaction)
    that prepares each statement: Django's default cursor binds on the client and never prepares,
    which costs the database a parse and plan per statement. Errors come out as Django's. Its statements
    are logged where Django logs its own (connection.queries under DEBUG, CaptureQueriesContext and so
    django_assert_num_queries), so query counts see them as well."""

    def __init__(self, conn):
        import psycopg

        self._conn = conn
        self._cursor = psycopg.Cursor(conn.connection)
        self._wrap_errors = conn.wrap_database_errors

    def execute(self, sql: str, params, prepare: bool = True) -> None:
        start = time.monotonic() if self._conn.queries_logged else None
        try:
            with self._wrap_errors:
                self._cursor.execute(sql, params, prepare=prepare)
        finally:
            if start is not None:
                self._conn.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self):
        return self._cursor.fetchall()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._cursor.close()


def _cursor(conn):
    if conn.vendor == "postgresql":
        conn.ensure_connection()
        raw = conn.connection
        if raw.prepare_threshold is None:
            # Django turns preparation off for the whole connection (its own cursors bind client-side and
            # never prepare, so enabling it here changes nothing for them); without this, prepare=True
            # is silently ignored.
            raw.prepare_threshold = 5
        return _PreparedCursor(conn)
    return conn.cursor()


def _write(p: _Prepared, conn, changes: dict[int, int]) -> Entry:
    """Balances first (guarded, in account order), then the entry and its legs. A key already taken is
    found at the entry insert; the caller rolls back and returns the first entry."""
    now = timezone.now()
    postgres = conn.vendor == "postgresql"
    accounts = {account.id: account for account, _ in p.legs}
    posted_at = conn.ops.adapt_datetimefield_value(now)  # the entry's, copied onto each leg
    entry_params = [
        p.merchant_id, p.idempotency_key, p.operation_type, p.operation_ref, p.actor_id, p.actor_label,
        p.store_id, p.member_id, p.memo, posted_at, p.reverses_id, p.fingerprint,
    ]  # fmt: skip
    with _cursor(conn) as cursor:
        try:
            new_balances = _apply_bounded_changes(cursor, changes, accounts, postgres) if changes else {}
        except InsufficientBalance:
            if _key_taken(p):  # a retry of an entry that already spent the money: answer with that entry
                raise _AlreadyPosted() from None
            raise
        # balance_after per leg: walk each bounded account from its balance before this entry.
        running = {acc_id: new_balances[acc_id] - change for acc_id, change in changes.items()}
        afters = []
        for account, amount in p.legs:
            if account.id in running:
                running[account.id] += amount * account.normal_sign
                afters.append(running[account.id])
            else:
                afters.append(None)
        if postgres and len(p.legs) <= 8:
            # A small entry with more than 4 bounded accounts (smaller ones go through the function).
            cursor.execute(_INSERT_ENTRY, entry_params)
            row = cursor.fetchone()
            if row is None:
                raise _AlreadyPosted()
            entry_id = row[0]
            cursor.execute(
                _insert_legs_sql(len(p.legs)),
                [
                    v
                    for (a, amt), after in zip(p.legs, afters, strict=True)
                    for v in (entry_id, a.id, a.unit, amt, after, posted_at)
                ],
            )
        elif postgres:
            cursor.execute(
                _PG_INSERT_ENTRY_AND_LEGS,
                entry_params
                + [
                    _int_array([a.id for a, _ in p.legs]),
                    _text_array([a.unit for a, _ in p.legs]),
                    _int_array([amt for _, amt in p.legs]),
                    _int_array(afters),
                ],
                prepare=len(p.legs) <= 64,
            )
            row = cursor.fetchone()
            if row is None:
                raise _AlreadyPosted()
            entry_id = row[0]
        else:
            cursor.execute(_INSERT_ENTRY, entry_params)
            row = cursor.fetchone()
            if row is None:
                raise _AlreadyPosted()
            entry_id = row[0]
            rows = [
                (entry_id, a.id, a.unit, amt, after, posted_at) for (a, amt), after in zip(p.legs, afters, strict=True)
            ]
            for chunk in _chunks(rows, 500):
                cursor.execute(_insert_legs_sql(len(chunk)), [value for leg in chunk for value in leg])
    entry = _entry_from(p, entry_id, now, conn)
    entry.balances_after = new_balances
    return entry


def _entry_from(p: _Prepared, entry_id: int, posted_at, conn) -> Entry:
    """The posted entry as the ORM would load it. post_entry and reverse_entry also set
    `balances_after` on it: bounded account id → normal-side balance right after the entry (None on
    an entry answered from an earlier post of the same key)."""
    values = {
        "id": entry_id, "merchant_id": p.merchant_id, "idempotency_key": p.idempotency_key,
        "operation_type": p.operation_type, "operation_ref": p.operation_ref, "actor_id": p.actor_id,
        "actor_label": p.actor_label, "store_id": p.store_id, "member_id": p.member_id, "memo": p.memo,
        "posted_at": posted_at, "reverses_id": p.reverses_id, "fingerprint": p.fingerprint,
    }  # fmt: skip
    # As the ORM loads a row (positional, in field order): half the cost of Entry(**values).
    return Entry.from_db(conn.alias, None, [values[name] for name in _entry_attnames()])


@functools.cache
def _entry_attnames() -> tuple[str, ...]:
    return tuple(field.attname for field in Entry._meta.concrete_fields)


def _apply_bounded_changes(
    cursor, changes: dict[int, int], accounts: dict[int, Account], postgres: bool
) -> dict[int, int]:
    """Lock and update the cached balances in ascending account id (one stable order: no deadlocks);
    refuse any that would go below zero. Returns account id → new balance."""
    ordered = sorted(changes)
    result: dict[int, int] = {}
    if len(ordered) <= 4:
        # One guarded UPDATE per account: the row lock, the check and the write in one round trip.
        for acc_id in ordered:
            change = changes[acc_id]
            cursor.execute(_PG_GUARDED_UPDATE, [change, acc_id, change])
            row = cursor.fetchone()
            if row is None:
                _raise_for_missing_or_insufficient(cursor, accounts[acc_id], change)
            result[acc_id] = row[0]
        return result
    current: dict[int, int] = {}
    if postgres:
        cursor.execute(_PG_LOCK, [_int_array(ordered)], prepare=False)  # big arrays: plan for the actual size
        current.update(cursor.fetchall())
    else:  # SQLite: the IMMEDIATE transaction already holds the write lock
        for chunk in _chunks(ordered, 1000):
            cursor.execute(
                "SELECT account_id, balance FROM ledger_accountbalance WHERE account_id IN ("
                + ", ".join(["%s"] * len(chunk))
                + ")",
                chunk,
            )
            current.update(cursor.fetchall())
    for acc_id in ordered:
        if acc_id not in current:
            raise _no_balance_row(accounts[acc_id])
        new = current[acc_id] + changes[acc_id]
        if new < 0:
            raise InsufficientBalance(accounts[acc_id], balance=current[acc_id], change=changes[acc_id])
        result[acc_id] = new
    if postgres:
        cursor.execute(_PG_SET_BALANCES, [_int_array(ordered), _int_array([result[i] for i in ordered])], prepare=False)
    else:
        cursor.executemany(
            "UPDATE ledger_accountbalance SET balance = %s WHERE account_id = %s",
            [(result[acc_id], acc_id) for acc_id in ordered],
        )
    return result


def _raise_for_missing_or_insufficient(cursor, account: Account, change: int) -> None:
    cursor.execute("SELECT balance FROM ledger_accountbalance WHERE account_id = %s", [account.pk])
    row = cursor.fetchone()
    if row is None:
        raise _no_balance_row(account)
    raise InsufficientBalance(account, balance=row[0], change=change)


def _no_balance_row(account: Account) -> LedgerError:
    return LedgerError(
        "account",
        _("The %(account)s account has no balance row."),
        code="account_balance_missing",
        params={"account": purpose_label(account.purpose)},
    )


def _key_taken(p: _Prepared) -> bool:
    return Entry.objects.filter(merchant_id=p.merchant_id, idempotency_key=p.idempotency_key).exists()


def _existing(p: _Prepared) -> Entry:
    entry = Entry.objects.get(merchant_id=p.merchant_id, idempotency_key=p.idempotency_key)
    entry.balances_after = None
    if entry.fingerprint != p.fingerprint:
        raise IdempotencyConflict(
            "idempotency_key",
            _("This request key was already used for %(operation)s %(reference)s, with other content."),
            params=_entry_names(entry),
        )
    return entry


def _entry_names(entry: Entry) -> dict[str, str]:
    """How a message names an entry: its operation and business reference, never its id."""
    return {"operation": operation_label(entry.operation_type), "reference": entry.operation_ref}


def _key_used_elsewhere() -> IdempotencyConflict:
    return IdempotencyConflict("idempotency_key", _("This request key was already used for another ledger entry."))


# ---------------------------------------------------------------- reversal


def reverse_entry(
    entry: Entry,
    *,
    idempotency_key: str,
    actor: AbstractBaseUser | None,
    actor_label: str = "",
    amounts: Mapping[Account, int] | None = None,
    operation_type: str = "reversal",
    operation_ref: str | None = None,
    store: Store | None = None,
    memo: str = "",
) -> Entry:
    """Post the reversal of `entry`: the whole of what is not yet reversed, or, with `amounts`, the
    given part of chosen accounts' legs (each in the original leg's sign and never beyond what the
    entry moved net of earlier reversals). The chosen parts must balance per unit. Only `entry.pk` is
    read from `entry`.

    Three statements: the original's row locked, then (a new statement, so that it sees the reversals
    committed while it waited for the lock) the legs of the original and its reversals with their
    entries and accounts, then the post. Inside a caller's transaction no savepoint is taken: refusals
    are raised in Python and the post refuses without a database error."""
    conn = connections[DEFAULT_DB_ALIAS]
    block = contextlib.nullcontext() if conn.in_atomic_block else transaction.atomic(using=conn.alias)
    with block:
        pk = entry.pk
        # Serialises reversals of one entry. Only the lock: in READ COMMITTED a statement that waited for
        # a lock still reads other rows as of its start, so the legs are read by the next statement.
        if not Entry.objects.select_for_update().filter(pk=pk).values_list("pk").exists():
            raise Entry.DoesNotExist(f"Entry #{pk} does not exist.")
        legs = list(
            Leg.objects.filter(
                entry_id__in=Entry.objects.filter(Q(pk=pk) | Q(reverses_id=pk)).values("pk")
            ).select_related("entry", "account")
        )
        original = next(leg.entry for leg in legs if leg.entry_id == pk)
        if original.reverses_id is not None:
            raise ReversalError(
                "entry",
                _("%(operation)s %(reference)s is itself a reversal; post a new entry instead."),
                code="reversal_of_reversal",
                params=_entry_names(original),
            )
        if amounts is None:
            # A retry of this reversal is among its legs' entries. A key held by an unrelated entry shows at
            # the post (taken, other content: IdempotencyConflict) or, with nothing left, just below.
            existing = next((leg.entry for leg in legs if leg.entry.idempotency_key == idempotency_key), None)
            if existing is not None:
                if existing.reverses_id != original.pk:
                    raise _key_used_elsewhere()
                existing.balances_after = None
                return existing
        remaining: dict[int, int] = defaultdict(int)
        accounts: dict[int, Account] = {}
        for leg in legs:
            remaining[leg.account_id] += leg.amount
            accounts[leg.account_id] = leg.account
        if amounts is None:
            chosen = {acc_id: left for acc_id, left in remaining.items() if left}
            if not chosen:
                if Entry.objects.filter(merchant_id=original.merchant_id, idempotency_key=idempotency_key).exists():
                    raise _key_used_elsewhere()
                raise ReversalError(
                    "entry",
                    _("%(operation)s %(reference)s is already fully reversed."),
                    code="reversal_nothing_left",
                    params=_entry_names(original),
                )
        else:
            chosen = {}
            for account, amount in amounts.items():
                acc_id = account.pk if isinstance(account, Account) else int(account)
                if acc_id not in remaining:
                    raise ReversalError(
                        "amounts",
                        _("%(operation)s %(reference)s has no leg on this account."),
                        code="reversal_account_not_in_entry",
                        params=_entry_names(original),
                    )
                if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
                    raise ReversalError(
                        "amounts", _("Reversal amounts are non-zero whole numbers."), code="reversal_amount_not_integer"
                    )
                left = remaining[acc_id]
                acc = accounts[acc_id]
                if left and (amount > 0) != (left > 0):
                    raise ReversalError(
                        "amounts",
                        _("Give the reversal amount on the %(account)s account with the sign of the original leg."),
                        code="reversal_wrong_direction",
                        params={"account": purpose_label(acc.purpose)},
                    )
                if abs(amount) > abs(left):
                    raise ReversalError(
                        "amounts",
                        _(
                            "Cannot reverse %(amount)s on the %(account)s account: only %(left)s of %(operation)s "
                            "%(reference)s is left to reverse."
                        ),
                        params={
                            "amount": amount_text(acc.unit, abs(amount)),
                            "left": amount_text(acc.unit, abs(left)),
                            "account": purpose_label(acc.purpose),
                            **_entry_names(original),
                        },
                    )
                chosen[acc_id] = amount
        prepared = _prepare(
            original.merchant_id,
            [LegSpec(accounts[acc_id], -amount) for acc_id, amount in chosen.items()],
            operation_type,
            operation_ref or original.operation_ref,
            idempotency_key,
            actor,
            actor_label,
            store,
            memo,  # the reversal's operation and reference name the original; no id on the statement
            original.pk,
            store_id=original.store_id,
            member_id=original.member_id,
        )
        return _post(prepared)


def reversible_remaining(entry: Entry) -> dict[int, int]:
    """Account id → what of the entry's net leg amount on that account is not yet reversed (same sign)."""
    remaining: dict[int, int] = defaultdict(int)
    for acc_id, amount in Leg.objects.filter(entry=entry).values_list("account_id", "amount"):
        remaining[acc_id] += amount
    for acc_id, amount in Leg.objects.filter(entry__reverses=entry).values_list("account_id", "amount"):
        remaining[acc_id] += amount
    return dict(remaining)


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
