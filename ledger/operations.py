"""Names of ledger operation types (Entry.operation_type) for people. The ledger knows only its own
("reversal"); the apps that post register theirs (wallet.apps), so statements and the admin show
"充值" instead of "recharge" without the ledger importing them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

_LABELS: dict[str, str] = {"reversal": _("Reversal")}


def register(labels: dict[str, str]) -> None:
    _LABELS.update(labels)


def operation_label(code: str) -> str:
    """The operation's name in the active language; the code itself when nobody registered it."""
    return _LABELS.get(code, code)
