"""Which ledger account holds what of the wallet: the one place that knows the account layout (stored
value, grant and voucher lots, points lots and their expiry encoding, the level tallies).

Accounts are looked up through `ledger_account` (or the helpers below, which name the layout). Inside
`operation_scope()` (every operation taking an idempotency key runs in one) each account is fetched at
most once, and `prefetch` fetches those an operation is about to use in one query, so an operation
costs one account query however many lines it has.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ledger import services as ledger
from ledger.models import Account
from ledger.services import AccountSpec
from members.models import Merchant, Owner

from .models import Grant, Voucher

Purpose = Account.Purpose
CNY = ledger.CNY
POINT = ledger.POINT

# merchant id, purpose, unit, member id, staff id, detail → the account, for the running operation only:
# account rows never change, but one created by a transaction that is rolled back disappears with it.
_remembered: ContextVar[dict | None] = ContextVar("wallet_operation_accounts", default=None)


@contextlib.contextmanager
def operation_scope() -> Iterator[None]:
    """Remember the accounts looked up until the block ends (a nested scope uses the outer one). The
    block must not outlive the operation's transaction."""
    if _remembered.get() is not None:
        yield
        return
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def _key(merchant_id: int, spec: AccountSpec) -> tuple:
    return merchant_id, spec.purpose, spec.unit, spec.member_id, spec.staff_id, spec.detail


def accounts(merchant: Merchant, specs: Sequence[AccountSpec]) -> list[Account]:
    """The accounts of `specs` (created if missing), those not yet remembered fetched in one query."""
    remembered = _remembered.get()
    if remembered is None:
        return ledger.get_or_create_accounts(merchant, specs)
    keys = [_key(merchant.pk, spec) for spec in specs]
    missing = {key: spec for key, spec in zip(keys, specs, strict=True) if key not in remembered}
    if missing:
        remembered.update(zip(missing, ledger.get_or_create_accounts(merchant, list(missing.values())), strict=True))
    return [remembered[key] for key in keys]


def prefetch(merchant: Merchant, specs: Iterable[AccountSpec]) -> dict[int, int]:
    """Fetch in one query the existing accounts an operation is about to look up (none is created here:
    a lookup creates what is missing when, and only if, the operation really posts to it). Returns the
    current balances of the bounded ones fetched (account id → balance), read by the same query: call it
    after the operation's locks, and read a balance from it before posting to that account."""
    remembered = _remembered.get()
    if remembered is None:
        return {}
    wanted = {_key(merchant.pk, spec): spec for spec in specs}
    wanted = {key: spec for key, spec in wanted.items() if key not in remembered}
    if not wanted:
        return {}
    found, balances = ledger.find_accounts_and_balances(merchant, list(wanted.values()))
    remembered.update((key, account) for key, account in zip(wanted, found, strict=True) if account is not None)
    return balances


def existing(merchant: Merchant, specs: Sequence[AccountSpec]) -> list[Account | None]:
    """The accounts of `specs` that exist (None for the others); creates nothing. One query for those
    not yet remembered."""
    remembered = _remembered.get()
    if remembered is None:
        return ledger.find_accounts(merchant, specs)
    keys = [_key(merchant.pk, spec) for spec in specs]
    wanted = {key: spec for key, spec in zip(keys, specs, strict=True) if key not in remembered}
    if wanted:
        found = ledger.find_accounts(merchant, list(wanted.values()))
        remembered.update((key, account) for key, account in zip(wanted, found, strict=True) if account is not None)
    return [remembered.get(key) for key in keys]


def ledger_account(
    merchant: Merchant, purpose: str, unit: str = CNY, *, member=None, staff=None, detail: str = ""
) -> Account:
    """The merchant's account of `purpose` (an Account.Purpose) in `unit`, of the member or staff member
    if given. Raises the ledger's ForeignAccount for a member or staff member of another merchant."""
    for holder in (member, staff):
        if holder is not None and holder.merchant_id != merchant.pk:
            raise ledger.ForeignAccount("merchant", _("This %(kind)s belongs to another merchant."),
                                        params={"kind": holder._meta.verbose_name})  # fmt: skip
    return accounts(merchant, [AccountSpec(purpose, unit, member and member.pk, staff and staff.pk, detail)])[0]


# ---------------------------------------------------------------- the layout


def stored_value_specs(member: Owner) -> list[AccountSpec]:
    return [AccountSpec(Purpose.PRINCIPAL, CNY, member.pk), AccountSpec(Purpose.BONUS, CNY, member.pk)]


def stored_value_accounts(member: Owner) -> tuple[Account, Account]:
    principal, bonus = accounts(member.merchant, stored_value_specs(member))
    return principal, bonus


def balance_of(account: Account, known: dict[int, int]) -> int:
    """The account's balance from `known` (balances a prefetch just read), or read now (one query)."""
    from ledger import selectors as ledger_selectors

    return known[account.pk] if account.pk in known else ledger_selectors.balance(account)


def stored_value_balances(member: Owner, known: dict[int, int]) -> tuple[Account, Account, int, int]:
    """The member's principal and bonus accounts and their balances: from `known` (balances a prefetch
    just read) when it has them, otherwise read now (one query)."""
    from ledger import selectors as ledger_selectors

    principal, bonus = stored_value_accounts(member)
    if principal.pk not in known or bonus.pk not in known:
        known = ledger_selectors.balances([principal, bonus])
    return principal, bonus, known[principal.pk], known[bonus.pk]


def grant_spec(grant: Grant) -> AccountSpec:
    # The grant's own ids (not grant.member / grant.merchant, which would each cost a query): a grant's
    # member is always of the grant's merchant.
    return AccountSpec(grant.purpose, grant.unit, grant.member_id, detail=grant.account_detail)


def grant_deferred_spec(grant: Grant) -> AccountSpec:
    return AccountSpec(Purpose.DEFERRED_REVENUE, CNY, detail=grant.account_detail)


def grant_account(grant: Grant) -> Account:
    return accounts(_merchant_of(grant), [grant_spec(grant)])[0]


def grant_deferred_account(grant: Grant) -> Account:
    """The prepaid money of one lot not yet earned: its uses, refund and expiry draw on this alone."""
    return accounts(_merchant_of(grant), [grant_deferred_spec(grant)])[0]


def issuance_spec(unit: str) -> AccountSpec:
    """The merchant's count of the units of `unit` (uses of a template or service, points) held by members."""
    return AccountSpec(Purpose.ISSUANCE, unit)


def voucher_spec(voucher: Voucher) -> AccountSpec:
    return AccountSpec(Purpose.VOUCHER, CNY, voucher.member_id, detail=voucher.account_detail)


def voucher_account(voucher: Voucher) -> Account:
    return accounts(_merchant_of(voucher), [voucher_spec(voucher)])[0]


def _merchant_of(row: Grant | Voucher) -> Merchant:
    """The row's merchant without loading it when only its id is needed (the ledger reads merchant.pk)."""
    cached = row._state.fields_cache.get("merchant")
    return cached if cached is not None else Merchant(pk=row.merchant_id)


# ---------------------------------------------------------------- points lots

_LOT_PREFIX = "exp"


def points_lot_detail(earned_on: datetime.date, valid_years: int) -> str:
    """Points earned in year Y expire at the end of year Y + valid_years: one account per expiry year,
    its detail "exp<year>"."""
    return f"{_LOT_PREFIX}{earned_on.year + valid_years}"


def points_lot_expiry_year(account: Account) -> int | None:
    """The year at whose end the points of a lot account expire (None for an account that is no lot)."""
    if account.purpose != Purpose.POINTS or not account.detail.startswith(_LOT_PREFIX):
        return None
    return int(account.detail[len(_LOT_PREFIX) :])


def points_lot_expired(account: Account, now) -> bool:
    year = points_lot_expiry_year(account)
    return year is not None and year < timezone.localdate(now).year


def points_lots_query() -> dict:
    """ORM lookups on Account that select points lot accounts (for the expiry sweep)."""
    return {"purpose": Purpose.POINTS, "unit": POINT, "detail__startswith": _LOT_PREFIX}


def points_lot_spec(member: Owner, valid_years: int, now) -> AccountSpec:
    return AccountSpec(Purpose.POINTS, POINT, member.pk, detail=points_lot_detail(timezone.localdate(now), valid_years))


# ---------------------------------------------------------------- level tallies

# What a member's level is decided by, kept by the ledger as two memo accounts of the member (so reading
# them costs the same whatever the member's history, and no total is stored outside the ledger):
#   spend          revenue the member's consumptions recognised, net of refunded lines
#                  (credited in each consumption line's entry: reversing the line takes it back)
#   points_earned  points credited to the member's lots by consumptions, recharges and awards, less those
#                  taken back by refunds (line reversals and the cash refund of stored value), never
#                  lessened by expiry or spending
# The same totals wallet.selectors.member_totals once summed from the member's legs.


def tally_specs(member: Owner) -> list[AccountSpec]:
    return [
        AccountSpec(Purpose.SPEND, CNY, member.pk),
        AccountSpec(Purpose.POINTS_EARNED, POINT, member.pk),
        AccountSpec(Purpose.TALLY, CNY),
        AccountSpec(Purpose.TALLY, POINT),
    ]


def level_tally_accounts(member: Owner) -> tuple[Account | None, Account | None]:
    """The member's spend and points_earned accounts, None for one not opened yet (nothing counted)."""
    spend, points = existing(member.merchant, tally_specs(member)[:2])
    return spend, points


def tally_legs(member: Owner, *, spend_fen: int = 0, points: int = 0) -> list:
    """Legs that move the member's level tallies by `spend_fen` and `points` (negative: take back)."""
    if not spend_fen and not points:
        return []
    spend, earned, spend_contra, points_contra = accounts(member.merchant, tally_specs(member))
    legs = []
    for account, contra, amount in ((spend, spend_contra, spend_fen), (earned, points_contra, points)):
        if amount:
            legs += [ledger.increase(account, amount), ledger.increase(contra, amount)]
    return legs


def with_spend_tally(member: Owner, legs: list) -> list:
    """A consumption line's legs with its spend counted for levels: the revenue the line recognises."""
    revenue = -sum(leg.amount for leg in legs if leg.account.purpose == Purpose.REVENUE)
    return legs + tally_legs(member, spend_fen=revenue)


# ---------------------------------------------------------------- what operations post to (for prefetch)


def recharge_specs(member: Owner, payment_method: str, points_valid_years: int, now) -> list[AccountSpec]:
    """The accounts a recharge of stored value or anything else posts to (gift and voucher lots aside)."""
    return [
        *stored_value_specs(member),
        AccountSpec(Purpose.BONUS_EXPENSE, CNY),
        AccountSpec(Purpose.CASH, CNY, detail=payment_method),
        AccountSpec(Purpose.REVENUE, CNY),
        points_lot_spec(member, points_valid_years, now),
        issuance_spec(POINT),
        *tally_specs(member),
    ]


def consumption_specs(
    member: Owner, items: Sequence, stored_value: bool, grants: dict, vouchers: dict, points_valid_years: int, now
) -> list[AccountSpec]:
    """The accounts a consumption's lines post to: revenue, the stored value (when a line draws on it),
    the lots of the grants and vouchers used (`grants`, `vouchers`: the locked rows by id), cash by
    payment method, commission, this year's points lot and the level tallies."""
    from .models import PaymentMethod

    specs = [AccountSpec(Purpose.REVENUE, CNY), points_lot_spec(member, points_valid_years, now), issuance_spec(POINT)]
    specs += tally_specs(member)
    if stored_value:
        specs += stored_value_specs(member)
    for grant in grants.values():
        specs += [grant_spec(grant), grant_deferred_spec(grant), issuance_spec(grant.unit)]
    specs += [voucher_spec(voucher) for voucher in vouchers.values()]
    for item in items:
        if item.direct_fen and item.payment_method in PaymentMethod.values:
            specs.append(AccountSpec(Purpose.CASH, CNY, detail=item.payment_method))
        if item.staff is not None:
            specs += [
                AccountSpec(Purpose.COMMISSION_EXPENSE, CNY),
                AccountSpec(Purpose.COMMISSION, CNY, staff_id=item.staff.pk),
            ]
    return specs


def cash_refund_specs(member: Owner, payment_method: str) -> list[AccountSpec]:
    """The accounts a cash refund of stored value posts to (the plan gifts' lots aside)."""
    return [
        *stored_value_specs(member),
        AccountSpec(Purpose.CASH, CNY, detail=payment_method),
        AccountSpec(Purpose.REVENUE, CNY),
        AccountSpec(Purpose.BREAKAGE, CNY),
        issuance_spec(POINT),
        *tally_specs(member),
    ]


def grant_refund_specs(grant: Grant, payment_method: str) -> list[AccountSpec]:
    """The accounts a cash refund of a coupon or entitlement lot posts to."""
    return [
        grant_spec(grant),
        grant_deferred_spec(grant),
        issuance_spec(grant.unit),
        AccountSpec(Purpose.CASH, CNY, detail=payment_method),
    ]
