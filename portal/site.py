"""The staff portal, built on viewflow's frontend: one Application per area, so the workflow task
queues (FlowAppViewset) of the flows app slot in as further applications."""

from django.urls import path
from django.utils.translation import gettext_lazy as _
from viewflow.urls import Application, Site

from .views import DashboardView


class DashboardApplication(Application):
    title = _("Dashboard")
    icon = "dashboard"
    app_name = "dashboard"

    index_path = path("", DashboardView.as_view(), name="index")

    def has_view_permission(self, user, obj=None):
        return user.is_authenticated


site = Site(title=_("Member back office"), viewsets=[DashboardApplication()])
