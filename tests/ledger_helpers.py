"""Small helpers for ledger tests: funded member accounts and simple transfers."""

from __future__ import annotations

import itertools

from ledger import services
from ledger.models import Account

_keys = itertools.count()


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


def cash_account(merchant, method: str = "wechat") -> Account:
    return services.get_or_create_account(merchant, "cash", "CNY", detail=method)


def principal_account(member) -> Account:
    return services.get_or_create_account(member.merchant, "principal", "CNY", member=member)


def fund(account: Account, amount: int, *, cash: Account | None = None, store=None, actor=None):
    """Cash in `amount` onto a member's stored value (cash debit, member account credit)."""
    cash = cash or cash_account(account.merchant)
    return services.post_entry(
        merchant=account.merchant,
        legs=[services.debit(cash, amount), services.increase(account, amount)],
        operation_type="test.fund",
        operation_ref=f"fund-{account.pk}",
        idempotency_key=key("fund"),
        actor=actor,
        store=store,
    )


def spend(account: Account, amount: int, *, revenue: Account | None = None, idempotency_key: str | None = None):
    revenue = revenue or services.get_or_create_account(account.merchant, "revenue", "CNY")
    return services.post_entry(
        merchant=account.merchant,
        legs=[services.decrease(account, amount), services.increase(revenue, amount)],
        operation_type="test.spend",
        operation_ref=f"spend-{account.pk}",
        idempotency_key=idempotency_key or key("spend"),
        actor=None,
    )


def transfer(source: Account, target: Account, amount: int, idempotency_key: str | None = None):
    return services.post_entry(
        merchant=source.merchant,
        legs=[services.decrease(source, amount), services.increase(target, amount)],
        operation_type="test.transfer",
        operation_ref=f"{source.pk}->{target.pk}",
        idempotency_key=idempotency_key or key("transfer"),
        actor=None,
    )
