"""The portal's dashboard: one page per role with what concerns it. Thin: the figures come from the
wallet selectors (records and the ledger's totals), scoped by members.selectors.RecordScope like the
lists, so a dashboard counts exactly the rows its lists show.

- platform and merchant admins: the counts, the chart, figures per store and money by payment method;
- approver / store manager: the counts, the chart and figures of their stores;
- finance: money in and out by payment method, the counts and the chart;
- operator: the counts, the chart and today's operations at their stores;
- clerk: today's service records they served, their counts and their commission.
The approval queues join the approver's and finance's pages with the workflows.
"""

from __future__ import annotations

import datetime

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView, View
from viewflow.forms import Layout, Row

from core.money import format_fen
from ledger import selectors as ledger_selectors
from members import roles
from members import selectors as member_selectors
from members.models import Merchant, Staff, Store
from members.selectors import RecordScope
from wallet import selectors as wallet_selectors
from wallet.models import PaymentMethod

DEFAULT_DAYS = 30
MAX_DAYS = 366

# What each role's page shows (see the module docstring).
FIGURES, CHART, STORES, PAYMENTS, TODAY, MINE = "figures", "chart", "stores", "payments", "today", "mine"
PANELS: dict[str, tuple[str, ...]] = {
    roles.PLATFORM_ADMIN: (FIGURES, CHART, STORES, PAYMENTS),
    roles.MERCHANT_ADMIN: (FIGURES, CHART, STORES, PAYMENTS),
    roles.APPROVER: (FIGURES, CHART, STORES),
    roles.FINANCE: (PAYMENTS, FIGURES, CHART),
    roles.OPERATOR: (FIGURES, TODAY, CHART),
    roles.CLERK: (MINE,),
}


def role_of(staff: Staff | None, platform: bool) -> str | None:
    """The role whose dashboard the user sees: the platform admin's, else the staff record's primary role."""
    if platform:
        return roles.PLATFORM_ADMIN
    return staff.role if staff else None


def periods(now: datetime.datetime) -> dict[str, wallet_selectors.Period]:
    """Today, this week (from Monday) and this month, as local [start, end) instants."""
    today = timezone.localdate(now)
    monday = today - datetime.timedelta(days=today.weekday())
    first = today.replace(day=1)
    next_month = (first + datetime.timedelta(days=32)).replace(day=1)
    return {
        "today": wallet_selectors.local_day_bounds(today, today),
        "week": wallet_selectors.local_day_bounds(monday, monday + datetime.timedelta(days=6)),
        "month": wallet_selectors.local_day_bounds(first, next_month - datetime.timedelta(days=1)),
    }


class _DateInput(forms.DateInput):
    def __init__(self):
        super().__init__(format="%Y-%m-%d")


FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(9000, 12, 31)


class DashboardFilterForm(forms.Form):
    """The date range of the chart and of the per-store and payment figures, and the store (and, for
    platform admins, the merchant) every figure is narrowed to. Choices come from the user's scope."""

    start = forms.DateField(label=_("From"), required=False, widget=_DateInput())
    end = forms.DateField(label=_("To"), required=False, widget=_DateInput())
    store = forms.ModelChoiceField(
        label=_("Store"), queryset=Store.objects.none(), required=False, empty_label=_("All stores")
    )
    merchant = forms.ModelChoiceField(
        label=_("Merchant"), queryset=Merchant.objects.none(), required=False, empty_label=_("All merchants")
    )

    def __init__(self, data, *, scope: RecordScope, today: datetime.date):
        super().__init__(data, initial={"start": today - datetime.timedelta(days=DEFAULT_DAYS - 1), "end": today})
        self.today = today
        self.fields["store"].queryset = scope.stores()
        several = scope.merchant_ids is None or len(scope.merchant_ids) > 1
        if several:
            self.fields["merchant"].queryset = scope.merchants().order_by("name", "pk")
            self.fields["store"].label_from_instance = lambda store: f"{store.merchant.name} · {store.name}"
        else:
            del self.fields["merchant"]
            self.fields["store"].label_from_instance = lambda store: store.name

    def clean(self):
        data = super().clean()
        for name in ("start", "end"):
            # The range is widened to whole days and counted back from its end: a date at the edge of the
            # calendar (0001-01-01, 9999-12-31) would overflow there.
            value = data.get(name)
            if value is not None and not FIRST_DAY <= value <= LAST_DAY:
                self.add_error(name, _("Choose a date between 1900 and 9000."))
                data.pop(name, None)
        if self.errors:
            return data
        end = data.get("end") or self.today
        start = data.get("start") or end - datetime.timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            self.add_error("start", _("The start is after the end."))
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", _("Choose at most %(days)s days.") % {"days": MAX_DAYS})
        data["start"], data["end"] = start, end
        return data

    def choices(self) -> tuple[datetime.date, datetime.date, Store | None, Merchant | None]:
        """The range and narrowing chosen; the last 30 days and everything when the form is invalid."""
        if self.is_valid():
            data = self.cleaned_data
            return data["start"], data["end"], data.get("store"), data.get("merchant")
        return self.today - datetime.timedelta(days=DEFAULT_DAYS - 1), self.today, None, None


class _DashboardMixin(LoginRequiredMixin):
    @cached_property
    def staff(self) -> Staff | None:
        return member_selectors.staff_of(self.request.user)

    @cached_property
    def platform(self) -> bool:
        return member_selectors.is_platform_admin(self.request.user)

    @cached_property
    def role(self) -> str | None:
        return role_of(self.staff, self.platform)

    @cached_property
    def panels(self) -> tuple[str, ...]:
        return PANELS.get(self.role, ())

    @cached_property
    def base_scope(self) -> RecordScope:
        return member_selectors.record_scope(self.request.user, staff=self.staff, platform=self.platform)

    @cached_property
    def today(self) -> datetime.date:
        return timezone.localdate()

    @cached_property
    def form(self) -> DashboardFilterForm:
        return DashboardFilterForm(self.request.GET or None, scope=self.base_scope, today=self.today)

    @cached_property
    def choices(self):
        return self.form.choices()

    @cached_property
    def scope(self) -> RecordScope:
        start, end, store, merchant = self.choices
        return self.base_scope.narrow(merchant_id=merchant.pk if merchant else None, store=store)

    @cached_property
    def daily_totals(self) -> wallet_selectors.DailyStoreTotals:
        start, end, _store, _merchant = self.choices
        return wallet_selectors.daily_store_totals(self.scope, start, end)

    def chart_data(self) -> dict:
        start, end, _store, _merchant = self.choices
        totals = self.daily_totals
        names = dict(totals.stores)

        def series(kind: str) -> list[dict]:
            return [
                {
                    "store_id": store_id,
                    "store": names[store_id] or str(_("No store")),
                    "amounts": [format_fen(day.fen) for day in days],
                    "counts": [day.count for day in days],
                }
                for store_id, days in getattr(totals, kind).items()
            ]

        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "days": [day.isoformat() for day in totals.days],
            "labels": [day.strftime("%m-%d") for day in totals.days],
            "recharges": series("recharges"),
            "consumptions": series("consumptions"),
            "totals": {
                "recharges": format_fen(totals.total_fen("recharges")),
                "consumptions": format_fen(totals.total_fen("consumptions")),
            },
            "titles": {
                "recharges": str(_("Recharges (amount paid)")),
                "consumptions": str(_("Consumptions (payable)")),
            },
        }


class DashboardView(_DashboardMixin, TemplateView):
    template_name = "portal/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        staff = self.staff
        start, end, store, merchant = self.choices
        context.update(
            role=self.role,
            role_label=Staff.Role(self.role).label if self.role else "",
            staff=staff,
            merchant=staff.merchant if staff else merchant,
            staff_stores=list(staff.stores.all()) if staff else [],
            panels=self.panels,
            form=self.form,
            layout=Layout(Row(*self.form.fields)),
            start=start,
            end=end,
            chosen_store=store,
            chosen_merchant=merchant,
            can_see_members=user.has_perm("members.view_owner"),
            can_see_records=user.has_perm("wallet.view_recharge"),
        )
        if FIGURES in self.panels:
            context["owners"] = wallet_selectors.owner_counts(self.scope)
            context["figure_rows"] = self.figure_rows()
        if CHART in self.panels:
            context["chart"] = self.chart_data()
            context["chart_recharged_fen"] = self.daily_totals.total_fen("recharges")
            context["chart_consumed_fen"] = self.daily_totals.total_fen("consumptions")
        if STORES in self.panels:
            context["store_rows"] = self.store_rows(start, end)
        if PAYMENTS in self.panels:
            context["payment_rows"] = self.payment_rows(start, end)
        if TODAY in self.panels:
            context.update(self.today_at_my_stores())
        if MINE in self.panels and staff is not None:
            context.update(self.mine(staff))
        return context

    def figure_rows(self) -> list[dict]:
        figures = wallet_selectors.activity_figures(self.scope, periods(timezone.now()))
        today, week, month = figures["today"], figures["week"], figures["month"]

        def row(label, attr: str, money: bool = False) -> dict:
            return {"label": label, "money": money, "key": attr,
                    "values": [getattr(today, attr), getattr(week, attr), getattr(month, attr)]}  # fmt: skip

        return [
            row(_("New owners"), "new_owners"),
            row(_("Recharges"), "recharges"),
            row(_("Recharged (amount paid)"), "recharged_fen", money=True),
            row(_("Consumptions"), "consumptions"),
            row(_("Consumed (payable)"), "consumed_fen", money=True),
            row(_("Entitlement refunds"), "entitlement_refunds"),
            row(_("Value restored by entitlement refunds"), "entitlement_refunded_fen", money=True),
            row(_("Cash refunds"), "cash_refunds"),
            row(_("Paid out by cash refunds"), "cash_refunded_fen", money=True),
            row(_("Coupons issued"), "coupons_issued"),
            row(_("Coupon uses redeemed"), "coupon_uses"),
            row(_("Service records"), "service_records"),
        ]

    def store_rows(self, start: datetime.date, end: datetime.date) -> list[dict]:
        rows = wallet_selectors.store_totals(self.scope, start, end)
        names = dict(Store.objects.filter(pk__in=[r.store_id for r in rows if r.store_id]).values_list("pk", "name"))
        return [{"name": names.get(r.store_id) or _("No store"), "totals": r} for r in rows]

    def payment_rows(self, start: datetime.date, end: datetime.date) -> list[dict] | None:
        totals = wallet_selectors.cash_by_payment_method(self.scope, start, end)
        if totals is None:
            return None
        labels = dict(PaymentMethod.choices)
        return [{"label": labels.get(t.method, t.method or _("Unknown")), "totals": t} for t in totals]

    def today_at_my_stores(self) -> dict:
        today = wallet_selectors.local_day_bounds(self.today, self.today)
        in_today = {"created_at__gte": today[0], "created_at__lt": today[1]}
        return {
            "today_recharges": wallet_selectors.recharges_in(self.scope)
            .filter(**in_today)
            .select_related("member", "store")
            .order_by("-created_at", "-pk")[:10],
            "today_consumptions": wallet_selectors.consumptions_in(self.scope)
            .filter(**in_today)
            .select_related("member", "store")
            .order_by("-created_at", "-pk")[:10],
        }

    def mine(self, staff: Staff) -> dict:
        records = wallet_selectors.service_records_visible_to(self.request.user, self.base_scope).filter(staff=staff)
        today = wallet_selectors.local_day_bounds(self.today, self.today)
        counts = wallet_selectors.per_period(records, "created_at", periods(timezone.now()))
        commission = sum(
            row.balance for row in ledger_selectors.staff_balances(staff) if row.account.purpose == "commission"
        )
        return {
            "my_records_today": records.filter(created_at__gte=today[0], created_at__lt=today[1])
            .select_related("member", "store")
            .prefetch_related("tags", "consumptions")
            .order_by("-created_at", "-pk")[:50],
            "my_counts": [counts["today"]["count"], counts["week"]["count"], counts["month"]["count"]],
            "my_commission_fen": commission,
        }


class DashboardChartView(_DashboardMixin, View):
    """The chart's data as JSON (amounts as decimal strings in yuan), for the same filters as the page."""

    def get(self, request, *args, **kwargs):
        if CHART not in self.panels:
            raise PermissionDenied(_("Your dashboard has no chart."))
        if self.form.is_bound and not self.form.is_valid():
            return JsonResponse({"errors": self.form.errors}, status=400)
        return JsonResponse(self.chart_data(), json_dumps_params={"ensure_ascii": False})
