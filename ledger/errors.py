"""Ledger errors. Each is a ValidationError naming the offending field, so the API and forms can show it."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class LedgerError(ValidationError):
    code = "ledger_error"

    def __init__(self, field: str, message: str, code: str | None = None):
        self.field = field
        self.reason = message
        super().__init__({field: [ValidationError(message, code=code or self.code)]})

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidLeg(LedgerError):
    code = "invalid_leg"


class UnbalancedEntry(LedgerError):
    code = "unbalanced"


class ForeignAccount(LedgerError):
    code = "foreign_account"


class InsufficientBalance(LedgerError):
    code = "insufficient_balance"

    def __init__(self, account, balance: int, change: int):
        self.account = account
        self.balance = balance
        self.change = change
        super().__init__(
            "amount",
            f"Insufficient balance in {account}: balance {balance}, change {change:+d} would leave {balance + change}.",
        )


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"


class ReversalError(LedgerError):
    code = "reversal_invalid"
