"""One domain error type for members, ledger and wallet (and everything above them).

A `DomainError` carries a stable machine `code` (listed in docs/errors.md; the API returns it), the
`field` it is about, and a translatable human message. It is a `ValidationError` keyed by the field,
so forms show it on the field and existing `except ValidationError` paths keep working.

Messages are written with `gettext_lazy` and %-style params; amounts in params are passed through
`core.money.yuan()` so people read yuan, never fen, and never internal ids.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.encoding import force_str


class DomainError(ValidationError):
    """A refused request: nothing was changed."""

    default_code = "invalid"

    def __init__(self, field: str, message: Any, *, code: str | None = None, params: dict[str, Any] | None = None):
        self.field = field or "__all__"
        self.code = code or self.default_code
        self.params = params or {}
        self.template = message
        super().__init__({self.field: [ValidationError(message, code=self.code, params=self.params)]})

    @property
    def message_text(self) -> str:
        """The message in the active language, params filled in."""
        text = force_str(self.template)
        return text % self.params if self.params else text

    def as_dict(self) -> dict[str, str]:
        """What the API returns: {"code": ..., "field": ..., "message": ...}."""
        return {"code": self.code, "field": self.field, "message": self.message_text}

    def __str__(self) -> str:
        return f"{self.field}: {self.message_text}"


def fail(field: str, code: str, message: Any, **params: Any) -> DomainError:
    """Build a DomainError: `raise fail("amount", "amount_too_large", _("… %(limit)s …"), limit=yuan(x))`."""
    return DomainError(field, message, code=code, params=params)
