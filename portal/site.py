"""The staff portal, built on viewflow's frontend: one Application per area, so the workflow task
queues (FlowAppViewset) of the flows app slot in as further applications."""

from django.urls import path
from django.utils.translation import gettext_lazy as _
from viewflow.urls import Application, Site

from .dashboard import DashboardChartView, DashboardView
from .lists import views as lists
from .wallet_views import ConsumptionView, MemberDetailView, RechargeView, RefundView


class PortalApplication(Application):
    """An area of the portal. Its menu lists `menu_links`: (title, url name, icon) triples, or
    quadruples whose fourth item is a view class with `has_access(user)` deciding who sees the entry;
    the areas are plain Django views rather than viewflow viewsets."""

    menu_template_name = "portal/app_menu.html"
    menu_links: tuple = ()

    def menu_entries(self):
        for title, name, icon, *_check in self.menu_links:
            yield {"title": title, "url": self.reverse(name), "icon": icon}

    def menu_entries_for(self, user):
        for link, entry in zip(self.menu_links, self.menu_entries(), strict=True):
            check = link[3:]
            if not check or check[0]().has_access(user):
                yield entry

    def has_view_permission(self, user, obj=None):
        # Anonymous users get through here so that the views' LoginRequiredMixin sends them to log in.
        return not user.is_authenticated or self.has_access(user)

    def has_access(self, user) -> bool:
        return True


class DashboardApplication(PortalApplication):
    # The site menu links every area; an area of one page needs no menu of its own (it showed the
    # dashboard twice).
    title = _("Dashboard")
    icon = "dashboard"
    app_name = "dashboard"

    index_path = path("", DashboardView.as_view(), name="index")
    chart_path = path("chart/", DashboardChartView.as_view(), name="chart")


class MembersApplication(PortalApplication):
    """The member list, the member page (member 360) and the operator forms for the wallet."""

    title = _("Members")
    icon = "people"
    app_name = "members"
    menu_links = ((_("Member list"), "index", "list"),)

    index_path = path("", lists.MemberListView.as_view(), name="index")
    member_path = path("<int:pk>/", MemberDetailView.as_view(), name="member")
    recharge_path = path("<int:pk>/recharge/", RechargeView.as_view(), name="recharge")
    consume_path = path("<int:pk>/consume/", ConsumptionView.as_view(), name="consume")
    refund_path = path("<int:pk>/refund/", RefundView.as_view(), name="refund")

    def has_access(self, user) -> bool:
        return user.has_perm("members.view_owner")


class RecordsApplication(PortalApplication):
    """Back-office lists of the business records, with filters and exports."""

    title = _("Records")
    icon = "receipt_long"
    app_name = "records"
    menu_links = (
        (_("Recharges"), "recharges", "savings", lists.RechargeListView),
        (_("Consumptions"), "consumptions", "shopping_cart", lists.ConsumptionListView),
        (_("Entitlement refunds"), "entitlement_refunds", "undo", lists.EntitlementRefundListView),
        (_("Cash refunds"), "cash_refunds", "payments", lists.CashRefundListView),
        (_("Service records"), "service_records", "room_service", lists.ServiceRecordListView),
    )

    index_path = path("", lists.RecordsIndexView.as_view(), name="index")
    recharges_path = path("recharges/", lists.RechargeListView.as_view(), name="recharges")
    consumptions_path = path("consumptions/", lists.ConsumptionListView.as_view(), name="consumptions")
    entitlement_refunds_path = path(
        "refunds/entitlement/", lists.EntitlementRefundListView.as_view(), name="entitlement_refunds"
    )
    cash_refunds_path = path("refunds/cash/", lists.CashRefundListView.as_view(), name="cash_refunds")
    service_records_path = path("service-records/", lists.ServiceRecordListView.as_view(), name="service_records")

    def has_access(self, user) -> bool:
        return any(view_class().has_access(user) for _title, _name, _icon, view_class in self.menu_links)


site = Site(
    title=_("Member back office"),
    viewsets=[DashboardApplication(), MembersApplication(), RecordsApplication()],
)
