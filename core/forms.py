"""Form fields for money: people type yuan ("1,234.56" or "1234.56"), the database keeps integer fen."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .money import format_fen, parse_fen


def grouped_yuan(fen: int) -> str:
    """1234567 → '12,345.67' (no currency sign): what a yuan input shows, separators making an extra
    digit visible."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


class YuanField(forms.CharField):
    """A money input in yuan that cleans to integer fen (through core.money.parse_fen: at most two
    decimal places, no negatives, thousands separators allowed). `allow_zero=False` refuses 0.00.
    Empty cleans to None (or the field's required error)."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "class": "vYuanField"})

    # Longest input looked at: "9,999,999,999,999.99" (parse_fen's ceiling) with room for spaces.
    MAX_INPUT_LENGTH = 24

    def __init__(self, *, allow_zero: bool = True, **kwargs):
        # Model-field keywords that mean nothing to a text input; a max_length validator would see the fen int.
        for key in ("min_value", "max_value", "step_size", "max_digits", "decimal_places", "max_length"):
            kwargs.pop(key, None)
        self.allow_zero = allow_zero
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", str(self.MAX_INPUT_LENGTH))

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return grouped_yuan(value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        if len(text) > 64:
            text = text[:64] + "…"  # parse_fen refuses it; its message echoes no more than this
        try:
            return parse_fen(text, "amount", allow_zero=self.allow_zero)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["amount"], code="invalid") from None

    def has_changed(self, initial, data) -> bool:
        try:
            data = self.to_python(data)
        except ValidationError:
            return True
        return (initial if initial not in ("", None) else None) != data


__all__ = ["YuanField", "format_fen", "grouped_yuan"]
