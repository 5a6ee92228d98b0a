"""Forms that start approval requests from the portal: a member change (operators) and staff onboarding and
offboarding (merchant admins). They parse input and offer only the merchant's rows; flows.services decides
everything else, and its DomainErrors come back onto the fields (`add_service_error`)."""

from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from flows.models import MemberChangeRequest
from flows.services import ONBOARDING_ROLES
from members import selectors as member_selectors
from members.models import Merchant, Owner, Staff, Store

from .forms import OperationForm, SummaryLayout


class MemberChangeForm(OperationForm):
    """One change of a member, of the kind chosen first: name, mobile, level, status, bound rooms, a room
    transferred to another owner, or a lost-card replacement. Checked by flows.services.start_member_change
    now and again when applied."""

    prefix = "change"

    kind = forms.ChoiceField(label=_("Change"), choices=MemberChangeRequest.Kind.choices, widget=forms.HiddenInput)
    name = forms.CharField(label=_("New name"), required=False, max_length=50)
    mobile = forms.CharField(label=_("New mobile phone"), required=False, max_length=11)
    level = forms.ModelChoiceField(label=_("New level"), queryset=None, required=False)
    status = forms.ChoiceField(label=_("New status"), required=False,
                               choices=[("", _("Choose the new status")), *Owner.Status.choices])  # fmt: skip
    rooms = forms.ModelMultipleChoiceField(label=_("Bound rooms"), queryset=None, required=False,
                                           help_text=_("The rooms the member will have: all of them."))  # fmt: skip
    room = forms.ModelChoiceField(label=_("Room to transfer"), queryset=None, required=False)
    transfer_to = forms.CharField(label=_("New owner (member number or mobile)"), required=False, max_length=20)
    reason = forms.CharField(label=_("Reason"), max_length=200)

    error_fields = {"card": None, "member": None, "kind": None, "new_status": "status"}
    kind_field = "kind"
    kind_fields = {
        "name": ("name",),
        "mobile": ("mobile",),
        "level": ("level",),
        "status": ("status",),
        "rooms": ("rooms",),
        "room_transfer": ("room", "transfer_to"),
        "card_replacement": (),
    }
    common_fields = ("store", "__kind__", "reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        merchant = self.member.merchant
        self.fields["level"].queryset = member_selectors.levels_for(merchant).order_by("rank")
        self.fields["rooms"].queryset = member_selectors.rooms_for(merchant).order_by("building__name", "number")
        self.fields["room"].queryset = self.member.rooms.select_related("building__estate").order_by("pk")

    def clean(self):
        cleaned = super().clean()
        raw = (cleaned.get("transfer_to") or "").strip()
        cleaned["transfer_owner"] = None
        if cleaned.get("kind") == MemberChangeRequest.Kind.ROOM_TRANSFER and raw:
            found = member_selectors.owners_for(self.member.merchant).filter(Q(member_number=raw) | Q(mobile=raw))
            cleaned["transfer_owner"] = found.first()
            if cleaned["transfer_owner"] is None:
                self.add_error("transfer_to", _("No member of this merchant has this member number or mobile."))
        return cleaned

    def service_kwargs(self) -> dict:
        cd, kind = self.cleaned_data, self.cleaned_data["kind"]
        Kind = MemberChangeRequest.Kind
        return {
            "kind": kind,
            "name": cd.get("name") if kind == Kind.NAME else None,
            "mobile": cd.get("mobile") if kind == Kind.MOBILE else None,
            "level": cd.get("level") if kind == Kind.LEVEL else None,
            "status": cd.get("status") if kind == Kind.STATUS else None,
            "rooms": list(cd.get("rooms") or []) if kind == Kind.ROOMS else None,
            "room": cd.get("room") if kind == Kind.ROOM_TRANSFER else None,
            "transfer_to": cd.get("transfer_owner") if kind == Kind.ROOM_TRANSFER else None,
        }


class _RequestForm(forms.Form):
    """A staff request form: the error banner and the service's errors as the operator forms show them."""

    error_fields: dict[str, str | None] = {}
    error_summary = OperationForm.error_summary
    add_service_error = OperationForm.add_service_error
    layout_rows: tuple = ()

    @property
    def layout(self) -> SummaryLayout:
        from viewflow.forms import Row

        return SummaryLayout(*[Row(*row) if isinstance(row, tuple) else row for row in self.layout_rows])


class _StoreChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Store) -> str:
        return obj.name


class OnboardingForm(_RequestForm):
    """Propose a staff member (营业员开通) for a store and role; the store's manager approves."""

    prefix = "onboarding"

    store = _StoreChoice(label=_("Store"), queryset=Store.objects.none())
    name = forms.CharField(label=_("Name"), max_length=50)
    mobile = forms.CharField(label=_("Mobile phone"), max_length=11)
    username = forms.CharField(label=_("Username"), max_length=150,
                               help_text=_("The login the staff member will sign in with."))  # fmt: skip
    role = forms.ChoiceField(label=_("Role"))
    level = forms.IntegerField(label=_("Staff level"), min_value=1, max_value=32767, initial=1)
    reason = forms.CharField(label=_("Note for the approver"), max_length=200, required=False)

    layout_rows = ("store", ("name", "mobile"), ("username", "role", "level"), "reason")

    def __init__(self, *args, stores: QuerySet[Store], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores
        labels = dict(Staff.Role.choices)
        self.fields["role"].choices = [("", _("Choose the role")), *((r, labels[r]) for r in ONBOARDING_ROLES)]


class _StaffChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Staff) -> str:
        return f"{obj.name} ({obj.user.get_username()}) · {obj.get_role_display()}"


class OffboardingForm(_RequestForm):
    """Propose that a staff member leaves; the manager of the chosen store approves."""

    prefix = "offboarding"

    staff = _StaffChoice(label=_("Staff member"), queryset=Staff.objects.none())
    store = _StoreChoice(label=_("Approved by the manager of"), queryset=Store.objects.none())
    reason = forms.CharField(label=_("Reason"), max_length=200)

    layout_rows = (("staff", "store"), "reason")

    def __init__(self, *args, merchant: Merchant | None, stores: QuerySet[Store], user, **kwargs):
        super().__init__(*args, **kwargs)
        staff = Staff.objects.filter(is_active=True).select_related("user").exclude(user=user).order_by("name", "pk")
        self.fields["staff"].queryset = staff.filter(merchant=merchant) if merchant is not None else staff
        self.fields["store"].queryset = stores
