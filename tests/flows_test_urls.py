"""A URL conf with the refund flow's own viewflow views (task pages), for testing the decision view before
the portal wires the flows into its site."""

from django.urls import path
from viewflow.workflow.flow import FlowViewset

from flows.flows import RefundFlow
from project.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("refund/", FlowViewset(RefundFlow).urls), *project_urlpatterns]
