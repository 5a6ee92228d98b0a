"""Filters of the portal lists (django-filter). Every choice a filter offers (stores, operators, staff,
levels, tags, merchants) comes from the user's scope, so a form never names another merchant's rows,
and a forged id outside the scope is refused like any invalid choice."""

from __future__ import annotations

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from members import selectors as member_selectors
from members.models import Level, Merchant, Owner, Staff, Store
from members.selectors import RecordScope
from wallet.models import (
    CashRefund,
    Consumption,
    ConsumptionLine,
    EntitlementRefund,
    Grant,
    PaymentMethod,
    Recharge,
    ServiceRecord,
    ServiceTag,
)

User = get_user_model()


class _DateInput(forms.DateInput):
    def __init__(self):
        # An input-mask friendly format for the Material date field.
        super().__init__(format="%Y-%m-%d")


def _date_filters(field_name: str) -> tuple[django_filters.DateFilter, django_filters.DateFilter]:
    """From / to (inclusive) over the local calendar days of `field_name`."""
    return (
        django_filters.DateFilter(field_name=field_name, lookup_expr="date__gte", label=_("From"), widget=_DateInput()),
        django_filters.DateFilter(field_name=field_name, lookup_expr="date__lte", label=_("To"), widget=_DateInput()),
    )


class _StaffUserField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        staff = getattr(obj, "staff", None)
        return staff.name if staff else obj.get_username()


class _StaffUserFilter(django_filters.ModelChoiceFilter):
    field_class = _StaffUserField


class _MerchantLabelled(forms.ModelChoiceField):
    """Labels rows with their merchant when the list spans several (platform admins)."""

    def __init__(self, *args, with_merchant: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.with_merchant = with_merchant

    def label_from_instance(self, obj) -> str:
        return f"{obj.merchant.name} · {obj.name}" if self.with_merchant else obj.name


class _MerchantLabelledFilter(django_filters.ModelChoiceFilter):
    field_class = _MerchantLabelled


class ScopedFilterSet(django_filters.FilterSet):
    """Takes the user's RecordScope and limits every choice to it; the merchant filter is offered only
    to users who read several merchants."""

    merchant = django_filters.ModelChoiceFilter(
        field_name="merchant", queryset=Merchant.objects.none(), label=_("Merchant"), empty_label=_("All merchants")
    )

    def __init__(self, data=None, queryset=None, *, request=None, scope: RecordScope, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.scope = scope
        several = scope.merchant_ids is None or len(scope.merchant_ids) > 1
        if several:
            self.filters["merchant"].queryset = scope.merchants().order_by("name", "pk")
        else:
            del self.filters["merchant"]
        merchant_ids = scope.merchant_ids
        for name, flt in self.filters.items():
            field_class = getattr(flt, "field_class", None)
            if isinstance(field_class, type) and issubclass(field_class, _MerchantLabelled):
                flt.extra["with_merchant"] = several
            if name == "store":
                flt.queryset = scope.stores()
            elif isinstance(flt, _StaffUserFilter):
                users = User.objects.filter(staff__isnull=False).select_related("staff").order_by("staff__name", "pk")
                flt.queryset = users if merchant_ids is None else users.filter(staff__merchant_id__in=merchant_ids)
            elif name == "staff":
                staff = Staff.objects.select_related("merchant").order_by("name", "pk")
                flt.queryset = staff if merchant_ids is None else staff.filter(merchant_id__in=merchant_ids)
            elif name == "level":
                levels = Level.objects.select_related("merchant").order_by("merchant_id", "rank")
                flt.queryset = levels if merchant_ids is None else levels.filter(merchant_id__in=merchant_ids)
            elif name == "tag":
                tags = ServiceTag.objects.select_related("merchant").order_by("name", "pk")
                flt.queryset = tags if merchant_ids is None else tags.filter(merchant_id__in=merchant_ids)
        if scope.is_empty:
            for flt in self.filters.values():
                if hasattr(flt, "queryset") and isinstance(getattr(flt, "queryset", None), QuerySet):
                    flt.queryset = flt.queryset.none()

    @property
    def active(self) -> bool:
        """Whether any filter is set (the filter panel opens, the page says the rows are filtered)."""
        return self.is_bound and any(self.data.get(name) for name in self.form.fields)


def _search_records(queryset: QuerySet, name: str, value: str) -> QuerySet:
    value = value.strip()
    if not value:
        return queryset
    return queryset.filter(
        Q(number__icontains=value)
        | Q(member__name__icontains=value)
        | Q(member__mobile__contains=value)
        | Q(member__member_number__icontains=value)
    )


def _search_field() -> django_filters.CharFilter:
    return django_filters.CharFilter(
        method=_search_records, label=_("Number, member name, mobile or member number"), max_length=50
    )


class _RecordFilterSet(ScopedFilterSet):
    q = _search_field()
    date_from, date_to = _date_filters("created_at")
    store = _MerchantLabelledFilter(
        field_name="store", queryset=Store.objects.none(), label=_("Store"), empty_label=_("All stores")
    )
    operator = _StaffUserFilter(
        field_name="operator", queryset=User.objects.none(), label=_("Operator"), empty_label=_("Anyone")
    )


class MemberFilterSet(ScopedFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Member number, name or mobile"), max_length=50)
    date_from, date_to = _date_filters("joined_at")
    level = _MerchantLabelledFilter(
        field_name="level", queryset=Level.objects.none(), label=_("Level"), empty_label=_("All levels")
    )
    status = django_filters.ChoiceFilter(choices=Owner.Status.choices, label=_("Status"), empty_label=_("Any status"))

    class Meta:
        model = Owner
        fields: list[str] = []

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The one member search rule (members.selectors); the list orders the result itself.
        return member_selectors.search_owners(queryset, value)


class RechargeFilterSet(_RecordFilterSet):
    payment_method = django_filters.ChoiceFilter(
        choices=PaymentMethod.choices, label=_("Payment method"), empty_label=_("Any method")
    )

    class Meta:
        model = Recharge
        fields: list[str] = []


REFUND_STATE = (("none", _("Not refunded")), ("refunded", _("Refunded (any line)")))
FUNDING = (
    ("stored_value", _("Stored value")),
    ("coupon", _("Coupon")),
    ("entitlement", _("Entitlement")),
    ("voucher", _("Voucher")),
    ("direct", _("Paid directly")),
)


class ConsumptionFilterSet(_RecordFilterSet):
    payment_method = django_filters.ChoiceFilter(
        choices=PaymentMethod.choices, label=_("Paid directly by"), empty_label=_("Any method"), method="paid_by"
    )
    funding = django_filters.ChoiceFilter(choices=FUNDING, label=_("Paid from"), empty_label=_("Anything"),
                                          method="paid_from")  # fmt: skip
    status = django_filters.ChoiceFilter(
        choices=REFUND_STATE, label=_("Refund status"), empty_label=_("Any status"), method="refund_state"
    )

    def _lines(self, **lookups) -> Exists:
        return Exists(ConsumptionLine.objects.filter(consumption=OuterRef("pk"), **lookups))

    def paid_by(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(self._lines(payment_method=value, direct_fen__gt=0)) if value else queryset

    def paid_from(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        lookups = {
            "stored_value": Q(principal_fen__gt=0) | Q(bonus_fen__gt=0),
            "coupon": Q(grant__kind=Grant.Kind.COUPON, uses__gt=0),
            "entitlement": Q(grant__kind=Grant.Kind.ENTITLEMENT, uses__gt=0),
            "voucher": Q(voucher_fen__gt=0),
            "direct": Q(direct_fen__gt=0),
        }
        if value not in lookups:
            return queryset
        return queryset.filter(Exists(ConsumptionLine.objects.filter(lookups[value], consumption=OuterRef("pk"))))

    def refund_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        refunded = self._lines(status=ConsumptionLine.Status.REFUNDED)
        if value == "refunded":
            return queryset.filter(refunded)
        if value == "none":
            return queryset.filter(~refunded)
        return queryset

    class Meta:
        model = Consumption
        fields: list[str] = []


class EntitlementRefundFilterSet(_RecordFilterSet):
    class Meta:
        model = EntitlementRefund
        fields: list[str] = []


class CashRefundFilterSet(_RecordFilterSet):
    payment_method = django_filters.ChoiceFilter(
        choices=PaymentMethod.choices, label=_("Paid out by"), empty_label=_("Any method")
    )
    kind = django_filters.ChoiceFilter(choices=CashRefund.Kind.choices, label=_("Refund of"), empty_label=_("Anything"))

    class Meta:
        model = CashRefund
        fields: list[str] = []


class ServiceRecordFilterSet(_RecordFilterSet):
    staff = _MerchantLabelledFilter(
        field_name="staff", queryset=Staff.objects.none(), label=_("Served by"), empty_label=_("Anyone")
    )
    tag = _MerchantLabelledFilter(field_name="tags", queryset=ServiceTag.objects.none(), label=_("Tag"),
                                  empty_label=_("Any tag"), distinct=True)  # fmt: skip

    class Meta:
        model = ServiceRecord
        fields: list[str] = []
