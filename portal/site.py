"""The staff portal, built on viewflow's frontend: one Application per area, so the workflow task
queues (FlowAppViewset) of the flows app slot in as further applications."""

from django.urls import path
from django.utils.translation import gettext_lazy as _
from viewflow.urls import Application, Site

from . import task_views as tasks
from .dashboard import DashboardChartView, DashboardView
from .lists import views as lists
from .request_lists import RequestListView
from .request_views import MemberChangeView, OffboardingView, OnboardingView
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
        badges = self.menu_badges(user)
        for link, entry in zip(self.menu_links, self.menu_entries(), strict=True):
            check = link[3:]
            if not check or check[0]().has_access(user):
                yield {**entry, "badge": badges.get(link[1], 0)}

    def menu_badges(self, user) -> dict[str, int]:
        """url name → a count shown beside the menu entry (e.g. unread notifications)."""
        return {}

    def site_badge(self, user) -> int:
        """A count shown beside the area in the site menu, on every page (0: none)."""
        return 0

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
    change_path = path("<int:pk>/change/", MemberChangeView.as_view(), name="change")

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


class ApprovalsApplication(PortalApplication):
    """The approval workflows: task queues (my tasks, the queue for the user's stores and roles, the archive),
    task and request pages, request lists, staff onboarding / offboarding, and the user's notifications."""

    title = _("Approvals")
    icon = "fact_check"
    app_name = "tasks"
    menu_links = (
        (_("My tasks"), "index", "inbox"),
        (_("Task queue"), "queue", "assignment"),
        (_("Archive"), "archive", "history"),
        (_("Notifications"), "notifications", "notifications"),
        (_("Refund requests"), "refund_requests", "undo"),
        (_("Member change requests"), "member_change_requests", "manage_accounts"),
        (_("Staff onboardings"), "onboarding_requests", "person_add"),
        (_("Staff offboardings"), "offboarding_requests", "person_remove"),
        (_("Free value requests"), "free_value_requests", "redeem"),
        (_("Onboard a staff member"), "onboard", "group_add", OnboardingView),
        (_("Offboard a staff member"), "offboard", "group_remove", OffboardingView),
    )

    index_path = path("", tasks.InboxView.as_view(), name="index")
    queue_path = path("queue/", tasks.QueueView.as_view(), name="queue")
    archive_path = path("archive/", tasks.ArchiveView.as_view(), name="archive")
    task_path = path("<int:pk>/", tasks.TaskView.as_view(), name="task")
    claim_path = path("<int:pk>/claim/", tasks.ClaimView.as_view(), name="claim")
    release_path = path("<int:pk>/release/", tasks.ReleaseView.as_view(), name="release")
    decide_path = path("<int:pk>/decide/", tasks.DecideView.as_view(), name="decide")
    notifications_path = path("notifications/", tasks.NotificationsView.as_view(), name="notifications")
    requests_path = path("requests/<slug:kind>/", RequestListView.as_view(), name="requests")
    refund_requests_path = path("requests/refund/", RequestListView.as_view(), {"kind": "refund"},
                                name="refund_requests")  # fmt: skip
    member_change_requests_path = path("requests/member-change/", RequestListView.as_view(),
                                       {"kind": "member-change"}, name="member_change_requests")  # fmt: skip
    onboarding_requests_path = path("requests/onboarding/", RequestListView.as_view(), {"kind": "onboarding"},
                                    name="onboarding_requests")  # fmt: skip
    offboarding_requests_path = path("requests/offboarding/", RequestListView.as_view(), {"kind": "offboarding"},
                                     name="offboarding_requests")  # fmt: skip
    free_value_requests_path = path("requests/free-value/", RequestListView.as_view(), {"kind": "free-value"},
                                    name="free_value_requests")  # fmt: skip
    request_path = path("requests/<slug:kind>/<int:pk>/", tasks.RequestView.as_view(), name="request")
    withdraw_path = path("requests/<slug:kind>/<int:pk>/withdraw/", tasks.WithdrawView.as_view(), name="withdraw")
    onboard_path = path("staff/onboard/", OnboardingView.as_view(), name="onboard")
    offboard_path = path("staff/offboard/", OffboardingView.as_view(), name="offboard")

    def has_access(self, user) -> bool:
        return tasks.may_use_approvals(user)

    def menu_badges(self, user) -> dict[str, int]:
        from flows import selectors as flow_selectors

        return {"index": flow_selectors.inbox_for(user).count(), "notifications": flow_selectors.unread_count(user)}

    def site_badge(self, user) -> int:
        from flows import selectors as flow_selectors

        return flow_selectors.unread_count(user)


site = Site(
    title=_("Member back office"),
    viewsets=[DashboardApplication(), MembersApplication(), ApprovalsApplication(), RecordsApplication()],
)
