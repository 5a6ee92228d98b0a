"""The portal's back-office lists. Thin: each list names its scoped queryset (selectors), its filters
and its columns; this base class does filtering, sorting, pagination and the exports, all from the
same queryset, so an export holds exactly the rows the filtered list pages through."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import ListView, View

from members import selectors as member_selectors
from members.models import Owner
from members.selectors import RecordScope
from portal.pagination import ListPaginator
from wallet import selectors as wallet_selectors
from wallet.models import CashRefund, Consumption, ConsumptionLine, EntitlementRefund, Recharge, ServiceRecord

from . import filters
from .columns import COUNT, DATETIME, MONEY, Column
from .export import CHUNK, csv_response, xlsx_response

ORDERING_KWARG = "_orderby"
EXPORT_KWARG = "export"
# Rows a list counts and pages through; a longer list shows its first COUNT_LIMIT rows and says it holds more
# (portal.pagination.ListPaginator). The exports hold every filtered row.
COUNT_LIMIT = 10_000


def member_url(member: Owner) -> str:
    return reverse("members:member", kwargs={"pk": member.pk})


def staff_name(user) -> str:
    """The operator as people know them: their staff name, else their login."""
    if user is None:
        return ""
    staff = getattr(user, "staff", None)
    return staff.name if staff else user.get_username()


def member_label(member: Owner) -> str:
    return f"{member.name} ({member.member_number})"


class PortalListView(LoginRequiredMixin, ListView):
    """A filtered, sortable, paginated list with CSV and Excel export of the filtered rows."""

    template_name = "portal/lists/list.html"
    paginate_by = 25
    paginator_class = ListPaginator
    count_limit = COUNT_LIMIT
    ordering_kwarg = ORDERING_KWARG  # the names viewflow's list templates expect
    title: Any = ""
    permission: str = ""
    filterset_class: type[filters.ScopedFilterSet]
    default_ordering: tuple[str, ...] = ("-created_at",)
    export_name = "export"
    section: tuple[Any, str] | None = None  # (title, url name) of the breadcrumb between home and this page

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not self.has_access(request.user):
            raise PermissionDenied(_("You may not see this list."))
        return super().dispatch(request, *args, **kwargs)

    def has_access(self, user) -> bool:
        return user.has_perm(self.permission)

    @cached_property
    def scope(self) -> RecordScope:
        return member_selectors.record_scope(self.request.user)

    @cached_property
    def several_merchants(self) -> bool:
        return self.scope.merchant_ids is None or len(self.scope.merchant_ids) > 1

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def get_columns(self) -> list[Column]:
        raise NotImplementedError

    def merchant_column(self) -> list[Column]:
        """Platform admins read every merchant: the merchant comes first."""
        if not self.several_merchants:
            return []
        return [Column("merchant", _("Merchant"), lambda row: row.merchant.name, orderby="merchant__name")]

    @cached_property
    def columns(self) -> list[Column]:
        return self.merchant_column() + self.get_columns()

    # ------------------------------------------------------------ filtering and sorting

    def get_queryset(self) -> QuerySet:
        queryset = self.base_queryset()
        self.filterset = self.filterset_class(
            self.request.GET or None, queryset=queryset, request=self.request, scope=self.scope
        )
        if self.filterset.is_bound and not self.filterset.is_valid():
            # A filter that cannot be read shows its error and no rows, never more rows than asked for.
            queryset = queryset.none()
        else:
            queryset = self.filterset.qs
        return queryset.order_by(*self.ordering_terms())

    @cached_property
    def sort(self) -> tuple[str | None, bool]:
        """(column key, descending) asked for by ?_orderby=key or -key; (None, False) for the default."""
        raw = self.request.GET.get(ORDERING_KWARG, "")
        key = raw.removeprefix("-")
        column = next((c for c in self.columns if c.key == key and c.orderby), None)
        return (column.key, raw.startswith("-")) if column else (None, False)

    def ordering_terms(self) -> list[str]:
        key, descending = self.sort
        if key is None:
            return [*self.default_ordering, "-pk"]
        column = next(c for c in self.columns if c.key == key)
        terms = [f"-{column.orderby}" if descending else column.orderby]
        return [*terms, "-pk" if descending else "pk"]  # a stable order, so pages never repeat or skip rows

    # ------------------------------------------------------------ export

    def get(self, request, *args, **kwargs):
        kind = request.GET.get(EXPORT_KWARG)
        if kind in ("csv", "xlsx"):
            return self.export(kind)
        return super().get(request, *args, **kwargs)

    def export(self, kind: str) -> HttpResponse:
        rows = self.get_queryset().iterator(chunk_size=CHUNK)
        filename = f"{self.export_name}-{timezone.localdate():%Y%m%d}"
        if kind == "csv":
            return csv_response(self.columns, rows, filename)
        return xlsx_response(self.columns, rows, filename, self.title)

    # ------------------------------------------------------------ page

    def get_paginator(self, queryset, per_page, orphans=0, allow_empty_first_page=True, **kwargs):
        # A page's keys are read off the order's index first, then its rows with their joins: a deep page
        # never joins the rows it skips (one query more per page, whatever the page).
        return super().get_paginator(queryset, per_page, orphans, allow_empty_first_page,
                                     count_limit=self.count_limit, ids_first=True, **kwargs)  # fmt: skip

    def query_url(self, **changes) -> str:
        """This page's URL with its filters and sorting, changed by `changes` (None removes a key)."""
        query = self.request.GET.copy()
        for key in (EXPORT_KWARG, self.page_kwarg, *changes):
            query.pop(key, None)
        for key, value in changes.items():
            if value is not None:
                query[key] = value
        encoded = query.urlencode()
        return f"?{encoded}" if encoded else "?"

    def headers(self) -> list[dict]:
        """Each column's title, its sort state and the URL a click on it opens: a column sorts ascending,
        then descending; the default order shows on its column and flips like an explicit one."""
        key, descending = self.sort
        if key is None:
            default = self.default_ordering[0]
            column = next((c for c in self.columns if c.orderby == default.removeprefix("-")), None)
            key, descending = (column.key, default.startswith("-")) if column else (None, False)
        result = []
        for column in self.columns:
            header = {"column": column, "sort": None, "url": None}
            if column.orderby:
                target = column.key
                if column.key == key:
                    header["sort"] = "desc" if descending else "asc"
                    target = column.key if descending else f"-{column.key}"
                header["url"] = self.query_url(**{ORDERING_KWARG: target})
            result.append(header)
        return result

    def breadcrumbs(self) -> list[tuple[Any, str | None]]:
        crumbs: list[tuple[Any, str | None]] = [(_("Home"), reverse("dashboard:index"))]
        if self.section:
            crumbs.append((self.section[0], reverse(self.section[1])))
        crumbs.append((self.title, None))
        return crumbs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = context.get("page_obj")
        rows = page.object_list if page is not None else context["object_list"]
        context.update(
            view_title=self.title,
            breadcrumbs=self.breadcrumbs(),
            headers=self.headers(),
            rows=[(row, [(column, column.cell(row)) for column in self.columns]) for row in rows],
            filterset=self.filterset,
            csv_url=self.query_url(**{EXPORT_KWARG: "csv"}),
            xlsx_url=self.query_url(**{EXPORT_KWARG: "xlsx"}),
            previous_url=self.query_url(page=page.previous_page_number()) if page and page.has_previous() else None,
            next_url=self.query_url(page=page.next_page_number()) if page and page.has_next() else None,
        )
        return context


def _operator_column() -> Column:
    return Column("operator", _("Operator"), lambda row: staff_name(row.operator), orderby="operator__staff__name")


def _member_column() -> Column:
    return Column(
        "member", _("Member"), lambda row: member_label(row.member), orderby="member__name",
        link=lambda row: member_url(row.member),
    )  # fmt: skip


def _store_column() -> Column:
    return Column("store", _("Store"), lambda row: row.store.name if row.store_id else "", orderby="store__name")


def _number_column() -> Column:
    return Column("number", _("Number"), lambda row: row.number, orderby="number",
                  link=lambda row: member_url(row.member))  # fmt: skip


def _time_column() -> Column:
    return Column("created_at", _("Time"), lambda row: row.created_at, kind=DATETIME, orderby="created_at")


# ---------------------------------------------------------------- members


class MemberListView(PortalListView):
    title = _("Members")
    permission = "members.view_owner"
    filterset_class = filters.MemberFilterSet
    default_ordering = ("-joined_at",)
    export_name = "members"
    paginate_by = 25

    def base_queryset(self) -> QuerySet:
        return member_selectors.owners_visible_to(self.request.user).select_related("level", "merchant")

    def ordering_terms(self) -> list:
        terms = super().ordering_terms()
        if not self.request.GET.get("q", "").strip():
            return terms
        # A search finds its owners through the trigram indexes (PostgreSQL). In join order as such, the
        # planner may instead walk every owner down owner_merchant_joined_idx until it has a page of
        # matches (the LIMIT makes that look cheap), and a match among the oldest owners costs them all.
        # The same order with NULLs placed where that index does not keep them (joined_at is never NULL)
        # leaves it the matches to sort.
        by_join = {
            "joined_at": F("joined_at").asc(nulls_first=True),
            "-joined_at": F("joined_at").desc(nulls_last=True),
        }
        return [by_join.get(term, term) if isinstance(term, str) else term for term in terms]

    def get_columns(self) -> list[Column]:
        link = member_url
        return [
            Column("member_number", _("Member number"), lambda o: o.member_number, orderby="member_number", link=link),
            Column("name", _("Name"), lambda o: o.name, orderby="name", link=link),
            Column("mobile", _("Mobile"), lambda o: o.mobile, orderby="mobile"),
            Column("level", _("Level"), lambda o: o.level.name if o.level_id else "", orderby="level__rank"),
            Column("status", _("Status"), lambda o: o.get_status_display(), orderby="status"),
            Column("joined_at", _("Joined"), lambda o: o.joined_at, kind=DATETIME, orderby="joined_at"),
        ]


# ---------------------------------------------------------------- records


class _RecordListView(PortalListView):
    section = (_("Records"), "records:index")


def recharge_items(recharge: Recharge) -> str:
    """What was bought: "充1000送200 ×1, 洗车10次卡 ×2"; stored value by its amount."""
    parts = []
    for line in recharge.lines.all():
        target = line.plan or line.coupon_template or line.package or line.voucher_template or line.vip_type
        name = str(target) if target is not None else line.get_kind_display()
        parts.append(f"{name} ×{line.quantity}")
    return ", ".join(parts)


class RechargeListView(_RecordListView):
    title = _("Recharges")
    permission = "wallet.view_recharge"
    filterset_class = filters.RechargeFilterSet
    export_name = "recharges"

    def base_queryset(self) -> QuerySet:
        return (
            wallet_selectors.recharges_in(self.scope)
            .select_related("member", "store", "operator__staff", "merchant")
            .prefetch_related(
                "lines__plan", "lines__coupon_template", "lines__package", "lines__voucher_template", "lines__vip_type"
            )
        )

    def get_columns(self) -> list[Column]:
        return [
            _number_column(), _time_column(), _member_column(), _store_column(), _operator_column(),
            Column("payment_method", _("Payment method"), lambda r: r.get_payment_method_display(),
                   orderby="payment_method"),
            Column("items", _("Items"), recharge_items, wrap=True),
            Column("list_total", _("Goods total"), lambda r: r.list_total_fen, kind=MONEY, orderby="list_total_fen"),
            Column("paid_total", _("Amount paid"), lambda r: r.paid_total_fen, kind=MONEY, orderby="paid_total_fen"),
            Column("bonus_total", _("Bonus"), lambda r: r.bonus_total_fen, kind=MONEY, orderby="bonus_total_fen"),
            Column("note", _("Note"), lambda r: r.note, wrap=True),
        ]  # fmt: skip


def _lines_sum(consumption: Consumption, *fields: str) -> int:
    return sum(getattr(line, name) for line in consumption.lines.all() for name in fields)


def consumption_items(consumption: Consumption) -> str:
    return ", ".join(f"{line.service.name} ×{line.quantity}" for line in consumption.lines.all())


def consumption_direct(consumption: Consumption) -> str:
    methods = {line.get_payment_method_display() for line in consumption.lines.all() if line.direct_fen}
    return ", ".join(sorted(str(m) for m in methods))


def consumption_refund_state(consumption: Consumption) -> str:
    lines = list(consumption.lines.all())
    refunded = sum(1 for line in lines if line.status == ConsumptionLine.Status.REFUNDED)
    if not refunded:
        return ""
    if refunded == len(lines):
        return str(_("Refunded"))
    return str(_("%(refunded)s of %(lines)s lines refunded") % {"refunded": refunded, "lines": len(lines)})


class ConsumptionListView(_RecordListView):
    title = _("Consumptions")
    permission = "wallet.view_consumption"
    filterset_class = filters.ConsumptionFilterSet
    export_name = "consumptions"

    def base_queryset(self) -> QuerySet:
        return (
            wallet_selectors.consumptions_in(self.scope)
            .select_related("member", "store", "operator__staff", "merchant", "service_record")
            .prefetch_related("lines__service")
        )

    def get_columns(self) -> list[Column]:
        return [
            _number_column(), _time_column(), _member_column(), _store_column(), _operator_column(),
            Column("items", _("Items"), consumption_items, wrap=True),
            Column("payable", _("Payable"), lambda c: c.payable_total_fen, kind=MONEY, orderby="payable_total_fen"),
            Column("stored_value", _("From stored value"), lambda c: _lines_sum(c, "principal_fen", "bonus_fen"),
                   kind=MONEY),
            Column("voucher", _("From vouchers"), lambda c: _lines_sum(c, "voucher_fen"), kind=MONEY),
            Column("direct", _("Paid directly"), lambda c: _lines_sum(c, "direct_fen"), kind=MONEY),
            Column("direct_method", _("Paid directly by"), consumption_direct),
            Column("uses", _("Uses"), lambda c: _lines_sum(c, "uses"), kind=COUNT),
            Column("status", _("Refund status"), consumption_refund_state),
            Column("service_record", _("Service record"),
                   lambda c: c.service_record.number if c.service_record_id else ""),
        ]  # fmt: skip


class EntitlementRefundListView(_RecordListView):
    title = _("Entitlement refunds")
    permission = "wallet.view_entitlementrefund"
    filterset_class = filters.EntitlementRefundFilterSet
    export_name = "entitlement-refunds"

    def base_queryset(self) -> QuerySet:
        return (
            wallet_selectors.entitlement_refunds_in(self.scope)
            .select_related("member", "store", "operator__staff", "merchant")
            .prefetch_related("lines__consumption", "lines__service")
        )

    def get_columns(self) -> list[Column]:
        def lines(refund: EntitlementRefund) -> str:
            return ", ".join(
                f"{line.consumption.number}/{line.line_no} {line.service.name}" for line in refund.lines.all()
            )

        return [
            _number_column(), _time_column(), _member_column(), _store_column(), _operator_column(),
            Column("lines", _("Refunded lines"), lines, wrap=True),
            Column("total", _("Value restored"), lambda r: r.total_fen, kind=MONEY, orderby="total_fen"),
            Column("reason", _("Reason"), lambda r: r.reason, wrap=True),
        ]  # fmt: skip


class CashRefundListView(_RecordListView):
    title = _("Cash refunds")
    permission = "wallet.view_cashrefund"
    filterset_class = filters.CashRefundFilterSet
    export_name = "cash-refunds"

    def base_queryset(self) -> QuerySet:
        return wallet_selectors.cash_refunds_in(self.scope).select_related(
            "member", "store", "operator__staff", "merchant", "grant__coupon_template", "grant__service"
        )

    def get_columns(self) -> list[Column]:
        def what(refund: CashRefund) -> str:
            return str(refund.grant) if refund.grant_id else refund.get_kind_display()

        return [
            _number_column(), _time_column(), _member_column(), _store_column(), _operator_column(),
            Column("kind", _("Refund of"), what, orderby="kind"),
            Column("payment_method", _("Paid out by"), lambda r: r.get_payment_method_display(),
                   orderby="payment_method"),
            Column("paid_out", _("Paid out"), lambda r: r.paid_out_fen, kind=MONEY, orderby="paid_out_fen"),
            Column("forfeited_bonus", _("Bonus forfeited"), lambda r: r.forfeited_bonus_fen, kind=MONEY,
                   orderby="forfeited_bonus_fen"),
            Column("gifts_charged", _("Used gifts charged"), lambda r: r.gifts_charged_fen, kind=MONEY),
            Column("uses_refunded", _("Uses refunded"), lambda r: r.uses_refunded, kind=COUNT),
            Column("reason", _("Reason"), lambda r: r.reason, wrap=True),
        ]  # fmt: skip


class ServiceRecordListView(_RecordListView):
    title = _("Service records")
    filterset_class = filters.ServiceRecordFilterSet
    export_name = "service-records"

    def has_access(self, user) -> bool:
        # Clerks read the records they served (wallet.selectors.service_records_visible_to).
        return user.has_perm("wallet.view_servicerecord") or member_selectors.staff_of(user) is not None

    def base_queryset(self) -> QuerySet:
        return (
            wallet_selectors.service_records_visible_to(self.request.user, self.scope)
            .select_related("member", "store", "operator__staff", "merchant", "staff")
            .prefetch_related("tags", "consumptions")
        )

    def get_columns(self) -> list[Column]:
        def consumptions(record: ServiceRecord) -> str:
            return ", ".join(c.number for c in record.consumptions.all())

        return [
            _number_column(), _time_column(), _member_column(),
            Column("staff", _("Served by"), lambda r: r.staff.name, orderby="staff__name"),
            _store_column(), _operator_column(),
            Column("tags", _("Tags"), lambda r: ", ".join(t.name for t in r.tags.all()), wrap=True),
            Column("consumptions", _("Consumptions"), consumptions, wrap=True),
            Column("payable", _("Payable"), lambda r: sum(c.payable_total_fen for c in r.consumptions.all()),
                   kind=MONEY),
            Column("notes", _("Notes"), lambda r: r.notes, wrap=True),
        ]  # fmt: skip


# ---------------------------------------------------------------- the Records area's index

RECORD_LISTS = (
    ("records:recharges", RechargeListView),
    ("records:consumptions", ConsumptionListView),
    ("records:entitlement_refunds", EntitlementRefundListView),
    ("records:cash_refunds", CashRefundListView),
    ("records:service_records", ServiceRecordListView),
)


class RecordsIndexView(LoginRequiredMixin, View):
    """The first record list the user may read."""

    def get(self, request, *args, **kwargs):
        for name, view_class in RECORD_LISTS:
            if view_class().has_access(request.user):
                return redirect(name)
        raise PermissionDenied(_("You may not see any records."))
