"""Names for people of the ledger's codes: operation types (Entry.operation_type), account details
(Account.detail, e.g. the payment method of a cash account) and memos the system writes (Entry.memo).
The ledger knows only its own ("reversal"); the apps that post register theirs (wallet.apps), so
statements and the admin show "充值" and "微信支付" instead of "recharge" and "wechat" without the ledger
importing them. Also how the ledger's errors name an account and an amount: by purpose and in yuan (or
a plain count of points or uses), never by database id or in fen."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from core.money import yuan

_OPERATIONS: dict[str, str] = {"reversal": _("Reversal")}
_DETAILS: dict[tuple[str, str], str] = {}
_MEMOS: dict[str, str] = {}


def register_operations(labels: dict[str, str]) -> None:
    _OPERATIONS.update(labels)


def register_details(purpose: str, labels: dict[str, str]) -> None:
    _DETAILS.update({(purpose, code): label for code, label in labels.items()})


def register_memos(labels: dict[str, str]) -> None:
    """Memos the system writes as neutral codes (e.g. "voucher_expired"), shown by these names: stored
    as a code, an entry reads in the language of whoever looks at it, not of the job that posted it."""
    _MEMOS.update(labels)


def operation_labels() -> dict[str, str]:
    return dict(_OPERATIONS)


def operation_label(code: str) -> str:
    """The operation's name in the active language; the code itself when nobody registered it."""
    return _OPERATIONS.get(code, code)


def detail_label(purpose: str, detail: str) -> str:
    return _DETAILS.get((purpose, detail), detail)


def memo_label(memo: str) -> str:
    """A memo as people read it: a registered code by its name in the active language, anything else
    (a person's reason or note) as written."""
    label = _MEMOS.get(memo)
    return str(label) if label is not None else memo


def purpose_label(purpose: str) -> Any:
    """An account purpose's name (lazy: translated when the message is shown); the code if unknown."""
    from .models import Account

    return dict(Account.Purpose.choices).get(purpose, purpose)


def amount_text(unit: str, amount: int) -> str:
    """An amount of a unit for an error message: yuan for CNY ('¥12.34'), a plain count for points and
    counted uses ('1,200'); the message names the account, which says what is counted."""
    return yuan(amount) if unit == "CNY" else f"{amount:,}"
