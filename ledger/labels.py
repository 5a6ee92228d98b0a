"""Names for people of the ledger's codes: operation types (Entry.operation_type) and account details
(Account.detail, e.g. the payment method of a cash account). The ledger knows only its own
("reversal"); the apps that post register theirs (wallet.apps), so statements and the admin show
"充值" and "微信支付" instead of "recharge" and "wechat" without the ledger importing them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

_OPERATIONS: dict[str, str] = {"reversal": _("Reversal")}
_DETAILS: dict[tuple[str, str], str] = {}


def register_operations(labels: dict[str, str]) -> None:
    _OPERATIONS.update(labels)


def register_details(purpose: str, labels: dict[str, str]) -> None:
    _DETAILS.update({(purpose, code): label for code, label in labels.items()})


def operation_labels() -> dict[str, str]:
    return dict(_OPERATIONS)


def operation_label(code: str) -> str:
    """The operation's name in the active language; the code itself when nobody registered it."""
    return _OPERATIONS.get(code, code)


def detail_label(purpose: str, detail: str) -> str:
    return _DETAILS.get((purpose, detail), detail)
