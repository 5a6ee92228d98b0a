"""Ledger errors: coded domain errors (core.errors.DomainError) naming the offending field."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.errors import DomainError

from .labels import amount_text, purpose_label


class LedgerError(DomainError):
    """The ledger's refusals. Each raise names its own specific code (docs/errors.md); the class codes
    below are the family's, kept for a raise that names none."""

    default_code = "ledger_error"

    def __init__(self, field: str, message, code: str | None = None, params: dict | None = None):
        super().__init__(field, message, code=code or self.default_code, params=params)

    @property
    def reason(self) -> str:
        return self.message_text


class InvalidLeg(LedgerError):
    default_code = "invalid_leg"


class UnbalancedEntry(LedgerError):
    default_code = "unbalanced"


class ForeignAccount(LedgerError):
    default_code = "foreign_account"


class InsufficientBalance(LedgerError):
    default_code = "insufficient_balance"

    def __init__(self, account, balance: int, change: int):
        self.account = account
        self.balance = balance
        self.change = change
        super().__init__(
            "amount",
            _("Insufficient balance in %(account)s: %(balance)s left, %(needed)s needed."),
            params={"account": purpose_label(account.purpose), "balance": amount_text(account.unit, balance),
                    "needed": amount_text(account.unit, -change)},
        )  # fmt: skip


class IdempotencyConflict(LedgerError):
    default_code = "idempotency_conflict"


class ReversalError(LedgerError):
    default_code = "reversal_invalid"
