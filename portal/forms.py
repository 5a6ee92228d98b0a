"""Operator forms of the portal. Plain Django forms: they parse input (amounts in yuan through
core.money.parse_fen, choices limited to the member's merchant and the operator's stores) and
build the arguments of the wallet services. The services decide everything else (a line's price and
how its funding splits included: wallet.services.funded_item); their ValidationErrors come back onto
the form through `add_service_error`.

A form with kinds (a recharge's line kind, a consumption's funding) shows the fields of the chosen
kind only (`layout`, rendered by viewflow's Material form renderer) and refuses a value posted in a
field of another kind rather than ignoring it."""

from __future__ import annotations

import re
import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from viewflow.forms import Layout, Row

from core.money import parse_fen, yuan
from members import selectors as member_selectors
from members.models import Owner, Store
from wallet import permissions as wallet_permissions
from wallet import rules as wallet_rules
from wallet import selectors as wallet_selectors
from wallet import services as wallet_services
from wallet.models import ConsumptionLine, PaymentMethod, RechargeLine

_ITEM_KEY = re.compile(r"^items\[\d+\]\.(?P<field>\w+)$")


class MemberSearchForm(forms.Form):
    q = forms.CharField(label=_("Member number, name or mobile"), required=False, max_length=50)


class SummaryLayout(Layout):
    """viewflow's Layout without its own list of non-field errors: the page's error banner lists every
    error of the form (non-field and field) above it, and each field shows its own."""

    def append_non_field_errors(self, form, root) -> None:
        return None


class OperationForm(forms.Form):
    """A form that runs one wallet operation for one member at one of the operator's stores.

    `token` is a uuid4 made when the form is first rendered and sent back in a hidden field; it is the
    operation's idempotency key, so submitting the same page twice records the operation once."""

    token = forms.UUIDField(widget=forms.HiddenInput)
    store = forms.ModelChoiceField(label=_("Store"), queryset=Store.objects.none())

    # Service error keys (the part after "items[n]." for line errors) → form field; None = non-field.
    error_fields: dict[str, str | None] = {}

    # Forms with kinds: the field holding the kind, and per kind the fields only that kind takes. The
    # fields of all kinds (`common_fields`) are shown with every kind.
    kind_field: str = ""
    kind_fields: dict[str, tuple[str, ...]] = {}
    common_fields: tuple = ()

    def __init__(self, *args, member: Owner, stores: QuerySet[Store], user, **kwargs):
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("token", uuid.uuid4())
        super().__init__(*args, **kwargs)
        self.member = member
        self.user = user
        self.fields["store"].queryset = stores
        if len(stores) == 1:
            self.fields["store"].initial = stores[0].pk

    @property
    def idempotency_key(self) -> str:
        return str(self.cleaned_data["token"])

    @property
    def chosen_kind(self) -> str:
        """The kind posted (or given as initial, from the page's kind step); "" if none or unknown."""
        if not self.kind_field:
            return ""
        value = self[self.kind_field].value()
        return value if value in self.kind_fields else ""

    @property
    def layout(self) -> Layout:
        """viewflow's Material layout of the fields to show: the common ones and the chosen kind's."""
        rows = [Row(*row) if isinstance(row, tuple) else row for row in self.common_fields]
        if self.kind_field:
            own = self.kind_fields.get(self.chosen_kind, ())
            position = rows.index("__kind__")
            rows[position : position + 1] = [Row(*own)] if own else []
        return SummaryLayout(*rows)

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get(self.kind_field) if self.kind_field else None
        if kind:
            # A value typed under another kind is refused, never silently dropped: the operator meant something.
            for other, names in self.kind_fields.items():
                for name in names:
                    if name in self.kind_fields[kind] or name in self.errors:
                        continue
                    if any(str(v).strip() for v in self.data.getlist(self.add_prefix(name))):
                        self.add_error(
                            name,
                            _("%(field)s is not part of this kind of operation (%(kind)s); clear it or choose %(other)s.")
                            % {"field": self.fields[name].label, "kind": self.kind_label(kind),
                               "other": self.kind_label(other)},
                        )  # fmt: skip
        return cleaned

    @property
    def chosen_kind_label(self) -> str:
        return self.kind_label(self.chosen_kind) if self.chosen_kind else ""

    def kind_label(self, kind: str) -> str:
        return str(dict(self.fields[self.kind_field].choices).get(kind, kind))

    def error_summary(self) -> list[dict]:
        """Every error of the form for the banner above it: non-field errors, then each field's with its label."""
        summary = [{"label": "", "message": str(m), "id": ""} for m in self.non_field_errors()]
        for name, errors in self.errors.items():
            if name == forms.forms.NON_FIELD_ERRORS:
                continue
            bound = self[name]
            label = bound.label if not bound.is_hidden else _("Form")
            summary += [{"label": label, "message": str(m), "id": bound.auto_id} for m in errors]
        return summary

    def add_service_error(self, exc: ValidationError) -> None:
        """Show a service's ValidationError on the form: known keys on their field, the rest as non-field errors."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            match = _ITEM_KEY.match(key)
            name = match["field"] if match else key
            name = self.error_fields.get(name, name)
            self.add_error(name if name in self.fields else None, messages)


class RechargeForm(OperationForm):
    """One recharge line: a plan, a stored-value amount (with optional bonus), a coupon template × quantity
    or an entitlement package × quantity."""

    prefix = "recharge"

    KINDS = [
        (RechargeLine.Kind.PLAN.value, RechargeLine.Kind.PLAN.label),
        (RechargeLine.Kind.STORED_VALUE.value, RechargeLine.Kind.STORED_VALUE.label),
        (RechargeLine.Kind.COUPON.value, RechargeLine.Kind.COUPON.label),
        (RechargeLine.Kind.PACKAGE.value, RechargeLine.Kind.PACKAGE.label),
    ]
    _NEEDS = {"plan": "plan", "stored_value": "amount", "coupon": "coupon_template", "package": "package"}

    # No default: the operator says how the member paid, every time.
    payment_method = forms.ChoiceField(
        label=_("Payment method"), choices=[("", _("Choose how the member paid")), *PaymentMethod.choices]
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=KINDS, widget=forms.HiddenInput)
    plan = forms.ModelChoiceField(label=_("Recharge plan"), queryset=None, required=False)
    amount = forms.CharField(label=_("Stored value (yuan)"), required=False, max_length=16)
    bonus = forms.CharField(label=_("Bonus (yuan)"), required=False, max_length=16)
    coupon_template = forms.ModelChoiceField(label=_("Coupon"), queryset=None, required=False)
    package = forms.ModelChoiceField(label=_("Entitlement package"), queryset=None, required=False)
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=wallet_rules.MAX_LINE_QUANTITY, initial=1)
    note = forms.CharField(label=_("Note"), required=False, max_length=200)

    error_fields = {"amount_fen": "amount", "bonus_fen": "bonus", "items": None}
    kind_field = "kind"
    kind_fields = {
        "plan": ("plan", "quantity"),
        "stored_value": ("amount", "bonus", "quantity"),
        "coupon": ("coupon_template", "quantity"),
        "package": ("package", "quantity"),
    }
    common_fields = (("store", "payment_method"), "__kind__", "note")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        merchant = self.member.merchant
        self.fields["plan"].queryset = wallet_selectors.recharge_plans_for(merchant)
        self.fields["plan"].label_from_instance = lambda p: _("%(name)s (pay %(pay)s, bonus %(bonus)s)") % {
            "name": p.name, "pay": yuan(p.pay_fen), "bonus": yuan(p.bonus_fen),
        }  # fmt: skip
        self.fields["coupon_template"].queryset = wallet_selectors.coupon_templates_for(merchant)
        self.fields["coupon_template"].label_from_instance = lambda t: f"{t.name} ({yuan(t.price_fen)})"
        self.fields["package"].queryset = wallet_selectors.packages_for(merchant)
        self.fields["package"].label_from_instance = lambda p: f"{p.name} ({yuan(p.price_fen)})"

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        needed = self._NEEDS[kind]
        if not cleaned.get(needed) and needed not in self.errors:
            self.add_error(needed, _("Required for this kind of line."))
        if kind == "stored_value":
            for name, allow_zero in (("amount", False), ("bonus", True)):
                raw = cleaned.get(name) or ""
                if not raw and name == "bonus":
                    cleaned["bonus_fen"] = 0
                    continue
                if not raw:
                    continue
                try:
                    cleaned[f"{name}_fen"] = parse_fen(raw, name, allow_zero=allow_zero)
                except ValidationError as exc:
                    self.add_error(name, exc.message_dict[name])
        return cleaned

    def item(self) -> wallet_services.RechargeItem:
        cd = self.cleaned_data
        kind = cd["kind"]
        return wallet_services.RechargeItem(
            kind=kind,
            quantity=cd["quantity"],
            amount_fen=cd.get("amount_fen", 0) if kind == "stored_value" else 0,
            bonus_fen=cd.get("bonus_fen", 0) if kind == "stored_value" else 0,
            plan=cd["plan"] if kind == "plan" else None,
            coupon_template=cd["coupon_template"] if kind == "coupon" else None,
            package=cd["package"] if kind == "package" else None,
        )


class ConsumptionForm(OperationForm):
    """One service × quantity with its service record, paid whole from the chosen source (a voucher may
    cover part of it); the wallet prices the line and splits its funding (`funded_item`)."""

    prefix = "consume"

    FUNDING = wallet_services.Funding.choices

    service = forms.ModelChoiceField(label=_("Service"), queryset=None)
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=wallet_rules.MAX_LINE_QUANTITY, initial=1)
    staff = forms.ModelChoiceField(label=_("Served by"), queryset=None)
    funding = forms.ChoiceField(label=_("Paid with"), choices=FUNDING, widget=forms.HiddenInput)
    payment_method = forms.ChoiceField(
        label=_("Payment method"),
        choices=[("", _("Choose how the member paid")), *PaymentMethod.choices],
        required=False,
        help_text=_("For direct payment, and for the rest of a voucher-funded line (otherwise stored value)."),
    )
    grant = forms.ModelChoiceField(label=_("Coupon / entitlement"), queryset=None, required=False)
    voucher = forms.ModelChoiceField(label=_("Voucher"), queryset=None, required=False)
    voucher_amount = forms.CharField(
        label=_("From the voucher (yuan)"),
        required=False,
        max_length=16,
        help_text=_("Empty: the whole payable amount."),
    )
    notes = forms.CharField(label=_("Service notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(label=_("Tags"), required=False, max_length=200, help_text=_("Separated by commas."))

    error_fields = {
        "stored_value_fen": "funding",
        "stored_value": "funding",
        "direct_fen": "funding",
        "voucher_fen": "voucher_amount",
        "items": None,
    }
    kind_field = "funding"
    kind_fields = {
        "stored_value": (),
        "direct": ("payment_method",),
        "grant": ("grant",),
        "voucher": ("voucher", "voucher_amount", "payment_method"),
    }
    common_fields = (("store", "staff"), ("service", "quantity"), "__kind__", "notes", "tags")

    def __init__(self, *args, benefits: wallet_selectors.MemberBenefits | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        member = self.member
        benefits = benefits or wallet_selectors.member_benefits(member)
        grant_left = {held.obj.pk: held.balance for held in benefits.grants}
        voucher_left = {held.obj.pk: held.balance for held in benefits.vouchers}
        self.fields["service"].queryset = wallet_selectors.services_for(member.merchant)
        self.fields["service"].label_from_instance = lambda s: (
            f"{s.name} ({yuan(wallet_services.unit_price_for(member, s))}/{s.unit_label})"
        )
        self.fields["staff"].queryset = member_selectors.active_staff_for(member.merchant)
        # Offer what the member holds (balances from the selector) and can still use now.
        self.fields["grant"].queryset = wallet_selectors.usable_grants_of(member).filter(pk__in=list(grant_left))
        self.fields["grant"].label_from_instance = lambda g: _("%(grant)s, %(left)s left") % {
            "grant": g, "left": grant_left.get(g.pk, 0),
        }  # fmt: skip
        self.fields["voucher"].queryset = wallet_selectors.usable_vouchers_of(member).filter(pk__in=list(voucher_left))
        self.fields["voucher"].label_from_instance = lambda v: _("%(name)s, %(left)s left") % {
            "name": v.template.name, "left": yuan(voucher_left.get(v.pk, 0)),
        }  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        funding = cleaned.get("funding")
        if funding == "direct" and not cleaned.get("payment_method"):
            self.add_error("payment_method", _("Say how the member paid."))
        elif funding == "grant":
            grant, service = cleaned.get("grant"), cleaned.get("service")
            if grant is None:
                self.add_error("grant", _("Choose the coupon or entitlement to use."))
            elif (
                service is not None
                and not wallet_selectors.usable_grants(self.member, service).filter(pk=grant.pk).exists()
            ):
                self.add_error(
                    "grant", _("%(grant)s cannot be used for %(service)s.") % {"grant": grant, "service": service}
                )
        elif funding == "voucher":
            if cleaned.get("voucher") is None:
                self.add_error("voucher", _("Choose the voucher to deduct from."))
            raw = cleaned.get("voucher_amount") or ""
            if raw:
                try:
                    cleaned["voucher_fen"] = parse_fen(raw, "voucher_amount")
                except ValidationError as exc:
                    self.add_error("voucher_amount", exc.message_dict["voucher_amount"])
        return cleaned

    @property
    def tag_names(self) -> list[str]:
        return [t for t in re.split(r"[,，、;；\n]+", self.cleaned_data.get("tags") or "") if t.strip()]

    def item(self) -> wallet_services.ConsumptionItem:
        cd = self.cleaned_data
        return wallet_services.funded_item(
            self.member, cd["service"], cd["quantity"], funding=cd["funding"], staff=cd["staff"],
            grant=cd.get("grant"), voucher=cd.get("voucher"), voucher_fen=cd.get("voucher_fen"),
            payment_method=cd.get("payment_method") or "",
        )  # fmt: skip


class _LineChoiceField(forms.ModelMultipleChoiceField):
    """Checkbox ids of consumption lines. An id beyond a 64-bit column is no line: refuse it before
    the lookup (SQLite raises OverflowError on such a parameter, which Django's field does not catch)."""

    def _check_values(self, value):
        for pk in value:
            try:
                number = int(str(pk))
            except ValueError:
                continue  # the stock field answers non-numbers with invalid_pk_value
            if not 0 < number < 2**63:
                raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super()._check_values(value)


class _GrantChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        left = getattr(self, "uses_left", {}).get(obj.pk)
        return _("%(grant)s, %(left)s uses left") % {"grant": obj, "left": left} if left is not None else str(obj)


class RefundForm(OperationForm):
    """A refund request (every refund is one: flows.services.start_refund_request; nothing is paid back or
    restored before the approvals), of one of three kinds: consumption lines reversed exactly (权益退款), a
    cash refund of the stored value's unused principal (现金退款), or a cash refund of a coupon or entitlement
    lot's unused uses."""

    prefix = "refund"

    KINDS = [
        ("lines", _("Consumption lines")),
        ("stored_value", _("Cash refund of stored value")),
        ("grant", _("Cash refund of a coupon or entitlement")),
    ]

    kind = forms.ChoiceField(label=_("Kind"), choices=KINDS, widget=forms.HiddenInput)
    lines = _LineChoiceField(
        label=_("Lines to refund"),
        queryset=ConsumptionLine.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        # Django's message repeats the posted value (a database id): say what is wrong instead.
        error_messages={
            "invalid_choice": _(
                "One of the chosen lines cannot be refunded here: it is refunded already, another member's, "
                "or rung up at a store where you may not act."
            ),
            "invalid_pk_value": _("Choose lines from the list."),
        },
    )
    grant = _GrantChoice(label=_("Coupon / entitlement"), queryset=None, required=False)
    payment_method = forms.ChoiceField(
        label=_("Paid out by"), choices=[("", _("Choose how the money is paid out")), *PaymentMethod.choices],
        required=False,
    )  # fmt: skip
    reason = forms.CharField(label=_("Reason"), max_length=200)

    error_fields = {"stored_value": None, "kind": None, "member": None, "amount": None}
    kind_field = "kind"
    kind_fields = {"lines": ("lines",), "stored_value": ("payment_method",), "grant": ("grant", "payment_method")}
    # The lines are a table of their own on the page (number, service, how each was paid); the layout
    # renders the rest.
    common_fields = ("store", "__kind__", "reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only lines rung up at stores where the user may operate (members.permissions): a member is
        # merchant-wide, but refunding a store's consumption is that store's business.
        self.fields["lines"].queryset = wallet_permissions.refundable_lines_for(self.user, self.member).order_by(
            "-consumption__created_at", "consumption__number", "line_no"
        )
        self.fields["lines"].label_from_instance = lambda line: (
            f"{line.consumption.number}/{line.line_no} {line.service.name} ×{line.quantity} {yuan(line.payable_fen)}"
            + (
                (" (" + ngettext("%(uses)s use", "%(uses)s uses", line.uses) % {"uses": line.uses} + ")")
                if line.uses
                else ""
            )
        )
        held = wallet_selectors.member_benefits(self.member).grants
        self.fields["grant"].uses_left = {item.obj.pk: item.balance for item in held}
        self.fields["grant"].queryset = wallet_selectors.usable_grants_of(self.member).filter(
            pk__in=[item.obj.pk for item in held if item.balance]
        )

    @property
    def layout(self) -> Layout:
        # The lines have their own table on the page, not a row of the form.
        rows = [Row(*row) if isinstance(row, tuple) else row for row in self.common_fields]
        own = tuple(name for name in self.kind_fields.get(self.chosen_kind, ()) if name != "lines")
        position = rows.index("__kind__")
        rows[position : position + 1] = [Row(*own)] if own else []
        return SummaryLayout(*rows)

    def clean_lines(self):
        lines = self.cleaned_data["lines"]
        if not lines:
            return lines
        # The choices already leave other stores' lines out; check again, by the one rule, on what is posted.
        try:
            wallet_permissions.check_lines_actionable(self.user, lines, member=self.member)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["lines"]) from None
        return lines

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == "lines" and not cleaned.get("lines") and "lines" not in self.errors:
            self.add_error("lines", _("Choose the consumption lines to refund."))
        if kind in ("stored_value", "grant") and not cleaned.get("payment_method"):
            self.add_error("payment_method", _("Choose how the money is paid out."))
        if kind == "grant" and not cleaned.get("grant") and "grant" not in self.errors:
            self.add_error("grant", _("Choose the coupon or entitlement to refund."))
        return cleaned
