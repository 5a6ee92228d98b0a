"""The ledger's read API: balances, statements, totals, reconciliation. Every balance in the product
comes from here."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from members.models import Merchant, Owner, Staff

from .models import Account, AccountBalance, Entry, Leg


def balance(account: Account, at: datetime.datetime | None = None) -> int:
    """Normal-side balance of the account, now or as of `at` (inclusive). Exact for every account:
    the cached row for bounded accounts now, the sum of legs otherwise."""
    if at is None and not account.allow_negative:
        return AccountBalance.objects.get(account=account).balance
    legs = Leg.objects.filter(account=account)
    if at is not None:
        legs = legs.filter(posted_at__lte=at)
    total = legs.aggregate(total=Coalesce(Sum("amount"), 0))["total"]
    return total * account.normal_sign


def balance_expression(account: Account | None) -> Subquery | Value:
    """The current balance of a bounded account as a query expression, for comparing against it inside
    another query (one query instead of two); 0 for no account."""
    if account is None:
        return Value(0)
    if account.allow_negative:
        raise ValueError("balance_expression reads the cached balance of bounded accounts only.")
    return Subquery(AccountBalance.objects.filter(account_id=account.pk).values("balance")[:1])


def balances(accounts: Iterable[Account]) -> dict[int, int]:
    """Current normal-side balances of many accounts in two queries: account id → balance."""
    accounts = list(accounts)
    result: dict[int, int] = {}
    bounded = [a.pk for a in accounts if not a.allow_negative]
    if bounded:
        result.update(AccountBalance.objects.filter(account_id__in=bounded).values_list("account_id", "balance"))
    free = {a.pk: a.normal_sign for a in accounts if a.allow_negative}
    if free:
        sums = dict(
            Leg.objects.filter(account_id__in=free)
            .values("account_id")
            .annotate(t=Sum("amount"))
            .values_list("account_id", "t")
        )
        result.update({acc_id: sums.get(acc_id, 0) * sign for acc_id, sign in free.items()})
    return result


@dataclass(frozen=True)
class AccountBalanceRow:
    account: Account
    balance: int


def member_balances(member: Owner) -> list[AccountBalanceRow]:
    """Every ledger account of a member with its balance (one query)."""
    accounts = (
        Account.objects.filter(merchant_id=member.merchant_id, member=member)
        .select_related("cached")
        .order_by("purpose", "unit", "detail")
    )
    return [AccountBalanceRow(a, a.cached.balance) for a in accounts]


def staff_balances(staff: Staff) -> list[AccountBalanceRow]:
    accounts = Account.objects.filter(merchant_id=staff.merchant_id, staff=staff).select_related("cached")
    return [AccountBalanceRow(a, a.cached.balance) for a in accounts]


# Per entry of the member, the sum of its legs on the merchant's accounts of the purposes (read once): a
# subquery per entry (through the legs' entry index), so nothing reads the legs of the merchant-side accounts
# those legs are on (a cash account's legs are every recharge of the merchant; the planner, not knowing it,
# would start there).
_MEMBER_OPERATION_SUMS_SQL = """
SELECT ledger_entry.operation_type, SUM((
    SELECT SUM(ledger_leg.amount) FROM ledger_leg
    WHERE ledger_leg.entry_id = ledger_entry.id AND ledger_leg.account_id IN (
        SELECT id FROM ledger_account WHERE merchant_id = %s AND purpose IN ({purposes})
    )
))
FROM ledger_entry
WHERE ledger_entry.merchant_id = %s AND ledger_entry.member_id = %s AND ledger_entry.operation_type IN ({types})
GROUP BY ledger_entry.operation_type
"""


def member_operation_sums(member: Owner, purposes: Iterable[str], operation_types: Iterable[str]) -> dict[str, int]:
    """Σ of the leg amounts on accounts of `purposes` in the member's entries of each operation type
    (operation type → sum, 0 for none), in one query. The member's entries are read first
    (ledger_entry_member_idx), then the legs of each: the cost is the member's entries of those types,
    never the history of the merchant's accounts the legs are on."""
    purposes, operation_types = list(purposes), list(operation_types)
    result = dict.fromkeys(operation_types, 0)
    if not purposes or not operation_types:
        return result
    sql = _MEMBER_OPERATION_SUMS_SQL.format(
        types=", ".join(["%s"] * len(operation_types)), purposes=", ".join(["%s"] * len(purposes))
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [member.merchant_id, *purposes, member.merchant_id, member.pk, *operation_types])
        # Numeric on PostgreSQL; NULL when none of the entries has a leg on those accounts.
        result.update({operation_type: int(total or 0) for operation_type, total in cursor.fetchall()})
    return result


def accounts_of(merchant: Merchant) -> QuerySet[Account]:
    return Account.objects.filter(merchant=merchant)


def find_account(
    merchant: Merchant, purpose: str, unit: str, *, member: Owner | None = None, staff: Staff | None = None,
    detail: str = "",
) -> Account | None:  # fmt: skip
    """The account if it exists (reads never create accounts)."""
    holder_key = f"member:{member.pk}" if member else f"staff:{staff.pk}" if staff else "merchant"
    return Account.objects.filter(
        merchant=merchant, holder_key=holder_key, purpose=purpose, unit=unit, detail=detail
    ).first()


def entries_for(merchant: Merchant, operation_type: str, operation_ref: str) -> QuerySet[Entry]:
    return Entry.objects.filter(merchant=merchant, operation_type=operation_type, operation_ref=operation_ref)


def entry_legs(entry: Entry) -> QuerySet[Leg]:
    return Leg.objects.filter(entry=entry).select_related("account").order_by("id")


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class StatementLine:
    entry_id: int
    posted_at: datetime.datetime
    operation_type: str
    operation_ref: str
    memo: str
    change: int  # normal side: + raises the balance
    balance: int


@dataclass
class Statement:
    account: Account
    start: datetime.datetime
    end: datetime.datetime
    opening: int
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def closing(self) -> int:
        return self.lines[-1].balance if self.lines else self.opening


def _local_bounds(start: datetime.date | datetime.datetime, end: datetime.date | datetime.datetime):
    tz = timezone.get_current_timezone()
    if not isinstance(start, datetime.datetime):
        start = datetime.datetime.combine(start, datetime.time.min, tzinfo=tz)
    if not isinstance(end, datetime.datetime):
        end = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz)
    return start, end


def statement(
    account: Account, start: datetime.date | datetime.datetime, end: datetime.date | datetime.datetime
) -> Statement:
    """Lines of the account from `start` to `end` (dates are whole local days, inclusive) with a
    running normal-side balance that starts from the balance before `start`."""
    start_at, end_at = _local_bounds(start, end)
    sign = account.normal_sign
    opening = Leg.objects.filter(account=account, posted_at__lt=start_at).aggregate(t=Coalesce(Sum("amount"), 0))["t"]
    result = Statement(account=account, start=start_at, end=end_at, opening=opening * sign)
    running = result.opening
    legs = (
        Leg.objects.filter(account=account, posted_at__gte=start_at, posted_at__lt=end_at)
        .select_related("entry")
        .order_by("posted_at", "id")
    )
    for leg in legs:
        running += leg.amount * sign
        result.lines.append(
            StatementLine(leg.entry_id, leg.posted_at, leg.entry.operation_type, leg.entry.operation_ref,
                          leg.entry.memo, leg.amount * sign, running)
        )  # fmt: skip
    return result


@dataclass
class StatementPage(Statement):
    """One page of a statement: `lines` are rows offset..offset+limit of the range (oldest first) with
    their running balance; `line_count` and `range_closing` describe the whole range."""

    line_count: int = 0
    range_closing: int = 0


# A bounded account's cached balance with, in one pass over its legs since `start` (a range of
# ledger_leg_account_posted_idx, index-only): their sum, and the count and sum of those before `end`. One
# statement, so the opening balance (the balance less what was posted since) is of one moment.
_BOUNDED_SUMMARY_SQL = """
SELECT b.balance, s.since, s.n, s.t
FROM ledger_accountbalance b CROSS JOIN (
    SELECT COALESCE(SUM(l.amount), 0) AS since, COUNT(*) FILTER (WHERE l.posted_at < %s) AS n,
           COALESCE(SUM(l.amount) FILTER (WHERE l.posted_at < %s), 0) AS t
    FROM ledger_leg l WHERE l.account_id = %s AND l.posted_at >= %s
) s
WHERE b.account_id = %s
"""

# The page's legs with their entries and running sums: a window over the account's legs of the period in
# ledger_leg_account_posted_idx order (index-only, no sort), read up to the page's end, then the page's own
# legs and entries by primary key. One statement, whatever the page's offset and size.
_PAGE_SQL = """
SELECT l.id, l.entry_id, l.account_id, l.unit, l.amount, l.balance_after, l.posted_at, w.running,
       e.operation_type, e.operation_ref, e.memo
FROM (
    SELECT id, SUM(amount) OVER (ORDER BY posted_at, id) AS running FROM ledger_leg
    WHERE account_id = %s AND posted_at >= %s AND posted_at < %s
    ORDER BY posted_at, id LIMIT %s OFFSET %s
) w
JOIN ledger_leg l ON l.id = w.id
JOIN ledger_entry e ON e.id = l.entry_id
ORDER BY l.posted_at, l.id
"""


def statement_page(
    account: Account,
    start: datetime.date | datetime.datetime,
    end: datetime.date | datetime.datetime,
    *,
    offset: int = 0,
    limit: int = 50,
) -> StatementPage:
    """Like `statement`, one page at a time, in two queries whatever the number of legs: the opening
    balance with the range's count and sum; the page's legs with their entries and running sums (a window
    over the account's index in statement order, read up to the page's end: the balance of a line on page
    40 needs no earlier page, and nothing is sorted). Legs carry their entry's posted_at, so no query joins
    the period's legs to their entries, and none reads the account's history before `start` when the
    account is bounded: its opening balance is the cached balance less what was posted since. An unbounded account (no cached balance) sums its legs before `start`, index-only."""
    start_at, end_at = _local_bounds(start, end)
    sign = account.normal_sign
    at = connection.ops.adapt_datetimefield_value  # as the ORM passes them (UTC text on SQLite)
    if account.allow_negative:
        period = Q(posted_at__gte=start_at, posted_at__lt=end_at)
        # Up to the later bound: the opening balance is what was posted before `start`, even past `end`.
        row = Leg.objects.filter(account=account, posted_at__lt=max(start_at, end_at)).aggregate(
            opening=Coalesce(Sum("amount", filter=Q(posted_at__lt=start_at)), 0),
            n=Count("id", filter=period),
            t=Coalesce(Sum("amount", filter=period), 0),
        )
        opening, count, total = row["opening"], row["n"], row["t"]
    else:
        with connection.cursor() as cursor:
            cursor.execute(_BOUNDED_SUMMARY_SQL, [at(end_at), at(end_at), account.pk, at(start_at), account.pk])
            balance, posted_since, count, total = cursor.fetchone()
        # Sums of leg amounts (numeric on PostgreSQL); the cached balance is normal-side.
        opening, total = balance * sign - int(posted_since), int(total)
    result = StatementPage(account=account, start=start_at, end=end_at, opening=opening * sign,
                           line_count=count, range_closing=(opening + total) * sign)  # fmt: skip
    rows = Leg.objects.raw(_PAGE_SQL, [account.pk, at(start_at), at(end_at), max(limit, 0), max(offset, 0)])
    for leg in rows:
        result.lines.append(
            StatementLine(leg.entry_id, leg.posted_at, leg.operation_type, leg.operation_ref, leg.memo,
                          leg.amount * sign, (opening + int(leg.running)) * sign)
        )  # fmt: skip
    return result


# ---------------------------------------------------------------- totals

_TRUNC = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


def totals(
    merchant: Merchant,
    *,
    unit: str = "CNY",
    purposes: Iterable[str] | None = None,
    period: str = "day",
    by_store: bool = False,
    by_detail: bool = False,
    start: datetime.date | datetime.datetime | None = None,
    end: datetime.date | datetime.datetime | None = None,
) -> list[dict]:
    """Debit, credit and net totals of legs in one unit, grouped by local day/week/month, and optionally
    by store and by account detail (the payment method of cash accounts). Reversals are included, so
    a refunded amount nets out in the period of its reversal."""
    if period not in _TRUNC:
        raise ValueError(f"period must be one of {sorted(_TRUNC)}")
    # A leg's account and entry share the merchant (the deferred per-entry trigger and reconcile check it):
    # the accounts of the purposes are the merchant's few, and their legs of the period are ranges of
    # ledger_leg_account_posted_idx, read without their entries unless grouped by store.
    legs = Leg.objects.filter(account__merchant=merchant, unit=unit)
    if purposes is not None:
        legs = legs.filter(account__purpose__in=list(purposes))
    if start is not None or end is not None:
        start_at, end_at = _local_bounds(start or datetime.date(2000, 1, 1), end or datetime.date(2999, 12, 31))
        legs = legs.filter(posted_at__gte=start_at, posted_at__lt=end_at)
    tz = ZoneInfo(settings.TIME_ZONE)
    group = {"period": _TRUNC[period]("posted_at", tzinfo=tz)}
    if by_store:
        group["store_id"] = F("entry__store_id")
    if by_detail:
        group["detail"] = F("account__detail")
    positive = Case(When(amount__gt=0, then=F("amount")), default=Value(0), output_field=IntegerField())
    negative = Case(When(amount__lt=0, then=-F("amount")), default=Value(0), output_field=IntegerField())
    rows = (
        legs.annotate(**group)
        .values(*group)
        .annotate(debit=Coalesce(Sum(positive), 0), credit=Coalesce(Sum(negative), 0))
        .order_by(*group)
    )
    result = []
    for row in rows:
        row = dict(row)
        if isinstance(row["period"], datetime.datetime):
            row["period"] = timezone.localtime(row["period"], tz).date()
        row["net"] = row["debit"] - row["credit"]
        result.append(row)
    return result


# ---------------------------------------------------------------- reconciliation


@dataclass
class ReconciliationReport:
    accounts_checked: int = 0
    entries_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def reconcile(merchant: Merchant | None = None) -> ReconciliationReport:
    """Recompute every cached balance from legs, check every entry sums to zero per unit, every leg's
    entry and account exist, share the merchant and the unit, every leg has its entry's posted_at, no bounded account is negative and every
    bounded account has its row."""
    report = ReconciliationReport()
    where_m = "WHERE a.merchant_id = %s" if merchant else ""
    params = [merchant.pk] if merchant else []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.normal_sign, b.balance, COALESCE(SUM(l.amount), 0)"
            " FROM ledger_account a JOIN ledger_accountbalance b ON b.account_id = a.id"
            " LEFT JOIN ledger_leg l ON l.account_id = a.id " + where_m + " GROUP BY a.id, a.normal_sign, b.balance",
            params,
        )
        for acc_id, sign, cached, total in cursor.fetchall():
            report.accounts_checked += 1
            if cached != total * sign:
                report.problems.append(f"account {acc_id}: cached balance {cached} but legs give {total * sign}")
            if cached < 0:
                report.problems.append(f"account {acc_id}: bounded balance is negative ({cached})")
        cursor.execute(
            "SELECT a.id FROM ledger_account a LEFT JOIN ledger_accountbalance b ON b.account_id = a.id "
            + ("WHERE a.merchant_id = %s AND " if merchant else "WHERE ")
            + "a.allow_negative = %s AND b.account_id IS NULL",
            params + [False],
        )
        for (acc_id,) in cursor.fetchall():
            report.problems.append(f"account {acc_id}: bounded account without a balance row")
        where_e = "WHERE e.merchant_id = %s" if merchant else ""
        cursor.execute("SELECT COUNT(*) FROM ledger_entry e " + where_e, params)
        report.entries_checked = cursor.fetchone()[0]
        cursor.execute(
            "SELECT l.entry_id, l.unit, SUM(l.amount) FROM ledger_leg l JOIN ledger_entry e ON e.id = l.entry_id "
            + where_e + " GROUP BY l.entry_id, l.unit HAVING SUM(l.amount) <> 0",
            params,
        )  # fmt: skip
        for entry_id, unit, total in cursor.fetchall():
            report.problems.append(f"entry {entry_id}: legs in {unit} sum to {total}, not 0")
        cursor.execute(
            "SELECT e.id FROM ledger_entry e LEFT JOIN ledger_leg l ON l.entry_id = e.id "
            + where_e + " GROUP BY e.id HAVING COUNT(l.id) < 2",
            params,
        )  # fmt: skip
        for (entry_id,) in cursor.fetchall():
            report.problems.append(f"entry {entry_id}: fewer than two legs")
        # Legs carry no database foreign keys (see Leg): check what they would have, and more.
        cursor.execute(
            "SELECT l.id, l.entry_id, l.account_id, l.unit, a.id, a.unit, a.merchant_id, e.id, e.merchant_id,"
            " l.posted_at <> e.posted_at"
            " FROM ledger_leg l LEFT JOIN ledger_account a ON a.id = l.account_id"
            " LEFT JOIN ledger_entry e ON e.id = l.entry_id WHERE "
            + ("(e.merchant_id = %s OR a.merchant_id = %s) AND " if merchant else "")
            + "(a.id IS NULL OR e.id IS NULL OR l.unit <> a.unit OR a.merchant_id <> e.merchant_id"
            " OR l.posted_at <> e.posted_at)",
            params * 2,
        )
        for (
            leg_id,
            entry_id,
            acc_id,
            unit,
            found_acc,
            acc_unit,
            acc_merchant,
            found_entry,
            entry_merchant,
            other_date,
        ) in cursor.fetchall():
            if found_entry is None:
                report.problems.append(f"leg {leg_id}: entry {entry_id} does not exist")
            if found_acc is None:
                report.problems.append(f"leg {leg_id}: account {acc_id} does not exist")
            elif found_entry is not None and acc_merchant != entry_merchant:
                report.problems.append(f"leg {leg_id}: account {acc_id} belongs to another merchant than its entry")
            if found_acc is not None and unit != acc_unit:
                report.problems.append(f"leg {leg_id}: unit {unit} differs from its account's {acc_unit}")
            if other_date:  # statements and period totals read a leg's own posted_at
                report.problems.append(f"leg {leg_id}: is dated otherwise than its entry")
    return report


def legs_matching(merchant: Merchant, **filters) -> QuerySet[Leg]:
    """Legs of the merchant filtered by ORM lookups (for reports built on the ledger)."""
    return Leg.objects.filter(Q(entry__merchant=merchant), **filters)
