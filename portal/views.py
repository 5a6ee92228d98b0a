"""Portal pages. Thin: they ask selectors and render."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from members import selectors


class DashboardView(LoginRequiredMixin, TemplateView):
    template_name = "portal/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        merchant = selectors.merchant_of(user)
        owners = selectors.scope_to_user(selectors.Owner.objects.all(), user, "merchant")
        context.update(
            merchant=merchant,
            staff=selectors.staff_of(user),
            owner_count=owners.count(),
            active_owner_count=owners.filter(status="active").count(),
            store_count=selectors.scope_to_user(selectors.Store.objects.all(), user, "merchant").count(),
            recent_owners=owners.order_by("-joined_at")[:10],
        )
        return context
