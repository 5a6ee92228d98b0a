"""Pages that start approval requests (issue 12): a member change (operators, from the member's page) and
staff onboarding / offboarding (merchant admins). Each posts its parsed form to the flows.services start
function, which checks the store permission and the request's content, and shows a refusal on the form.
Nothing changes before the approval: the page ends on the new request's page."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from flows import rules
from flows import services as flow_services
from members import selectors as member_selectors
from members.models import Store
from wallet import selectors as wallet_selectors

from . import approvals
from .request_forms import MemberChangeForm, OffboardingForm, OnboardingForm
from .task_views import ApprovalsMixin
from .wallet_views import MemberMixin


class _RequestFormView(TemplateView):
    template_name = "portal/tasks/request_form.html"
    title = ""
    intro = ""

    def render_form(self, form, **extra):
        context = {
            "form": form, "title": self.title, "intro": self.intro, "action_url": self.request.path,
            "errors": form.error_summary() if form.is_bound else [], **extra,
        }  # fmt: skip
        return self.render_to_response(self.get_context_data(**context))

    def started(self, request_obj):
        messages.success(self.request, _(
            "%(request)s %(number)s submitted: nothing changes until it is approved."
        ) % {"request": request_obj._meta.verbose_name, "number": request_obj.number})  # fmt: skip
        return redirect(approvals.request_url(request_obj))


class MemberChangeView(MemberMixin, _RequestFormView):
    """/members/<pk>/change/: request a change of the member (reviewed by another operator of the store)."""

    title = gettext_lazy("Request a member change")
    intro = gettext_lazy(
        "The change is a request: another operator of the store reviews it, and it is applied (with a record of "
        "the values before and after) once approved."
    )

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.member  # noqa: B018 - 404 for a member out of scope before anything else
            if not self.can_operate:
                raise PermissionDenied(_("You may not operate on any store of this merchant."))
        return super().dispatch(request, *args, **kwargs)

    def build_form(self, data=None, **kwargs) -> MemberChangeForm:
        return MemberChangeForm(data, member=self.member, stores=self.stores, user=self.request.user, **kwargs)

    def render_form(self, form, **extra):
        kinds = [(value, label, f"{self.request.path}?kind={value}") for value, label in form.fields["kind"].choices]
        return super().render_form(
            form, member=self.member, benefits=wallet_selectors.member_benefits(self.member), kinds=kinds,
            chosen_kind=form.chosen_kind, **extra,
        )  # fmt: skip

    def get(self, request, *args, **kwargs):
        return self.render_form(self.build_form(initial={"kind": request.GET.get("kind", "")}))

    def post(self, request, *args, **kwargs):
        form = self.build_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        try:
            started = flow_services.start_member_change(
                member=self.member, store=form.cleaned_data["store"], actor=request.user,
                reason=form.cleaned_data["reason"], **form.service_kwargs(),
            )  # fmt: skip
        except ValidationError as exc:
            form.add_service_error(exc)
            return self.render_form(form)
        return self.started(started)


class _StaffRequestView(ApprovalsMixin, _RequestFormView):
    """Merchant admins (manage_store on a store; platform admins anywhere)."""

    @cached_property
    def stores(self):
        user = self.request.user
        if member_selectors.is_platform_admin(user):
            return Store.objects.filter(is_active=True).select_related("merchant").order_by("merchant_id", "code")
        merchant = member_selectors.merchant_of(user)
        if merchant is None:
            return Store.objects.none()
        return (
            member_selectors.stores_where(user, rules.MANAGE).filter(merchant=merchant, is_active=True).order_by("code")
        )

    def has_access(self, user) -> bool:
        return user.is_authenticated and (
            member_selectors.is_platform_admin(user)
            or (member_selectors.merchant_of(user) is not None and self.stores.exists())
        )

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not self.has_access(request.user):
            raise PermissionDenied(_("Only the merchant admin proposes staff changes."))
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        return self.render_form(self.build_form())

    def post(self, request, *args, **kwargs):
        form = self.build_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        try:
            started = self.start(form.cleaned_data)
        except ValidationError as exc:
            form.add_service_error(exc)
            return self.render_form(form)
        return self.started(started)


class OnboardingView(_StaffRequestView):
    title = gettext_lazy("Onboard a staff member")
    intro = gettext_lazy(
        "The store's manager approves the proposal; then the login is created (inactive) with the role on the "
        "store, and a one-time activation code is shown to the approver for the new staff member."
    )

    def has_access(self, user) -> bool:
        # The view is also asked without a request (the menu's entries, two of them on every page): no store
        # list then, only the rule, remembered on the request's user object.
        if not hasattr(self, "request"):
            if not user.is_authenticated:
                return False
            if not hasattr(user, "_may_propose_staff"):
                user._may_propose_staff = member_selectors.is_platform_admin(user) or (
                    member_selectors.stores_where(user, rules.MANAGE).exists()
                )
            return user._may_propose_staff
        return super().has_access(user)

    def build_form(self, data=None) -> OnboardingForm:
        return OnboardingForm(data, stores=self.stores)

    def start(self, cd: dict):
        store = cd["store"]
        return flow_services.start_staff_onboarding(
            merchant=store.merchant, store=store, actor=self.request.user, name=cd["name"], mobile=cd["mobile"],
            username=cd["username"], role=cd["role"], level=cd["level"], reason=cd["reason"],
        )  # fmt: skip


class OffboardingView(OnboardingView):
    title = gettext_lazy("Offboard a staff member")
    intro = gettext_lazy(
        "Once the store's manager approves, the login is deactivated, its sessions end, every store permission "
        "is revoked and the tasks it had claimed go back to the queue, at once."
    )

    def build_form(self, data=None) -> OffboardingForm:
        return OffboardingForm(
            data, merchant=member_selectors.merchant_of(self.request.user), stores=self.stores, user=self.request.user
        )

    def start(self, cd: dict):
        return flow_services.start_staff_offboarding(
            staff=cd["staff"], store=cd["store"], actor=self.request.user, reason=cd["reason"]
        )
