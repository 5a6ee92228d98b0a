"""The staff portal, built on viewflow's frontend: one Application per area, so the workflow task
queues (FlowAppViewset) of the flows app slot in as further applications."""

from django.urls import path
from django.utils.translation import gettext_lazy as _
from viewflow.urls import Application, Site

from .views import DashboardView
from .wallet_views import ConsumptionView, MemberDetailView, MemberListView, RechargeView, RefundView


class PortalApplication(Application):
    """An area of the portal. Its menu lists `menu_links` ((title, url name, icon) triples), since the
    areas are plain Django views rather than viewflow viewsets."""

    menu_template_name = "portal/app_menu.html"
    menu_links: tuple = ()

    def menu_entries(self):
        for title, name, icon in self.menu_links:
            yield {"title": title, "url": self.reverse(name), "icon": icon}

    def has_view_permission(self, user, obj=None):
        # Anonymous users get through here so that the views' LoginRequiredMixin sends them to log in.
        return not user.is_authenticated or self.has_access(user)

    def has_access(self, user) -> bool:
        return True


class DashboardApplication(PortalApplication):
    title = _("Dashboard")
    icon = "dashboard"
    app_name = "dashboard"
    menu_links = ((_("Overview"), "index", "dashboard"),)

    index_path = path("", DashboardView.as_view(), name="index")


class MembersApplication(PortalApplication):
    """Member search, the member page (member 360) and the operator forms for the wallet."""

    title = _("Members")
    icon = "people"
    app_name = "members"
    menu_links = ((_("Member search"), "index", "search"),)

    index_path = path("", MemberListView.as_view(), name="index")
    member_path = path("<int:pk>/", MemberDetailView.as_view(), name="member")
    recharge_path = path("<int:pk>/recharge/", RechargeView.as_view(), name="recharge")
    consume_path = path("<int:pk>/consume/", ConsumptionView.as_view(), name="consume")
    refund_path = path("<int:pk>/refund/", RefundView.as_view(), name="refund")

    def has_access(self, user) -> bool:
        return user.has_perm("members.view_owner")


site = Site(title=_("Member back office"), viewsets=[DashboardApplication(), MembersApplication()])
