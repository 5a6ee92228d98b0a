"""Which ledger account holds what of the wallet: the one place that knows the account layout."""

from __future__ import annotations

import datetime

from django.utils import timezone

from ledger import services as ledger
from ledger.models import Account
from members.models import Merchant, Owner

from .models import (
    Grant,
    Voucher,
)

CNY = ledger.CNY


POINT = ledger.POINT


def ledger_account(
    merchant: Merchant, purpose: str, unit: str = CNY, *, member=None, staff=None, detail: str = ""
) -> Account:
    return ledger.get_or_create_account(merchant, purpose, unit, member=member, staff=staff, detail=detail)


def stored_value_accounts(member: Owner) -> tuple[Account, Account]:
    return (
        ledger_account(member.merchant, "principal", member=member),
        ledger_account(member.merchant, "bonus", member=member),
    )


def grant_account(grant: Grant) -> Account:
    return ledger_account(grant.merchant, grant.purpose, grant.unit, member=grant.member, detail=grant.account_detail)


def grant_deferred_account(grant: Grant) -> Account:
    """The prepaid money of one lot not yet earned: its uses, refund and expiry draw on this alone."""
    return ledger_account(grant.merchant, "deferred_revenue", detail=grant.account_detail)


def voucher_account(voucher: Voucher) -> Account:
    return ledger_account(voucher.merchant, "voucher", member=voucher.member, detail=voucher.account_detail)


def points_lot_detail(earned_on: datetime.date, valid_years: int) -> str:
    """Points earned in year Y expire at the end of year Y + valid_years: one account per expiry year."""
    return f"exp{earned_on.year + valid_years}"


def points_lot_expired(account: Account, now) -> bool:
    return account.detail.startswith("exp") and int(account.detail[3:]) < timezone.localdate(now).year
