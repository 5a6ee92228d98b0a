"""Lists of approval requests (one per kind), filterable by state, store, kind and date and exportable as CSV
or Excel like every portal list (portal.lists). The rows are flows.selectors.requests_visible_to(user): the
user's own requests and those of the stores where they hold view_store, all of the merchant for its admin."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from flows import selectors as flow_selectors
from flows.models import ApprovalRequest, FreeValueRequest, MemberChangeRequest, RefundRequest, State
from members.models import Store

from . import approvals
from .lists import filters
from .lists.columns import DATETIME, MONEY, Column
from .lists.views import PortalListView


def _search(queryset: QuerySet, name: str, value: str) -> QuerySet:
    value = value.strip()
    if not value:
        return queryset
    found = Q(number__icontains=value)
    if any(f.name == "member" for f in queryset.model._meta.fields):
        found |= (
            Q(member__name__icontains=value)
            | Q(member__mobile__contains=value)
            | Q(member__member_number__icontains=value)
        )
    return queryset.filter(found)


class RequestFilterSet(filters.ScopedFilterSet):
    q = django_filters.CharFilter(method=_search, label=_("Number or member"), max_length=50)
    date_from, date_to = filters._date_filters("requested_at")
    store = filters._MerchantLabelledFilter(
        field_name="store", queryset=Store.objects.none(), label=_("Store"), empty_label=_("All stores")
    )
    state = django_filters.ChoiceFilter(choices=State.choices, label=_("State"), empty_label=_("Any state"))

    class Meta:
        model = RefundRequest
        fields: list[str] = []


def _filterset_for(model: type[ApprovalRequest]) -> type[RequestFilterSet]:
    attrs: dict = {"Meta": type("Meta", (), {"model": model, "fields": []})}
    kinds = getattr(model, "Kind", None)
    if kinds is not None:
        attrs["kind"] = django_filters.ChoiceFilter(choices=kinds.choices, label=_("Kind"), empty_label=_("Any kind"))
    return type(f"{model.__name__}FilterSet", (RequestFilterSet,), attrs)


FILTERSETS = {slug: _filterset_for(model) for slug, model in approvals.KINDS.items()}


class RequestListView(PortalListView):
    """/tasks/requests/<kind>/: one kind of request."""

    default_ordering = ("-requested_at",)
    section = (_("Approvals"), "tasks:index")

    @cached_property
    def kind(self) -> str:
        if self.kwargs.get("kind") not in approvals.KINDS:
            raise Http404(_("No such list."))
        return self.kwargs["kind"]

    @property
    def model(self) -> type[ApprovalRequest]:
        return approvals.KINDS[self.kind]

    @property
    def title(self):
        return approvals.LIST_TITLES[self.kind]

    @property
    def export_name(self) -> str:
        return f"{self.kind}-requests"

    @property
    def filterset_class(self):
        return FILTERSETS[self.kind]

    def has_access(self, user) -> bool:
        return user.has_perm(f"flows.view_{self.model._meta.model_name}")

    def base_queryset(self) -> QuerySet:
        return flow_selectors.requests_visible_to(self.request.user, self.model).select_related(
            "merchant", *flow_selectors.related_for(self.model)
        )

    def get_columns(self) -> list[Column]:
        columns = [
            Column("number", _("Number"), lambda r: r.number, orderby="number", link=approvals.request_url),
            Column("requested_at", _("Requested at"), lambda r: r.requested_at, kind=DATETIME,
                   orderby="requested_at"),
            Column("store", _("Store"), lambda r: r.store.name, orderby="store__name"),
            Column("summary", _("Request"), approvals.summary, wrap=True),
        ]  # fmt: skip
        if self.model is RefundRequest:
            columns.append(Column("amount", _("Amount"), lambda r: r.amount_fen, kind=MONEY, orderby="amount_fen"))
        if self.model is FreeValueRequest:
            columns += [
                Column("free_value", _("Free value"), approvals.free_value_text, orderby="value_fen"),
                Column("paid", _("The member pays"), lambda r: r.paid_fen if r.line_kind else None, kind=MONEY,
                       orderby="paid_fen"),
            ]  # fmt: skip
        if self.model in (RefundRequest, MemberChangeRequest, FreeValueRequest):
            columns.insert(3, Column("kind", _("Kind"), lambda r: r.get_kind_display(), orderby="kind"))
        columns += [
            Column("state", _("State"), lambda r: r.get_state_display(), orderby="state"),
            Column("requested_by", _("Requested by"), lambda r: approvals.person(r.requested_by),
                   orderby="requested_by__staff__name"),
            Column("reason", _("Reason"), lambda r: r.reason, wrap=True),
        ]  # fmt: skip
        return columns
