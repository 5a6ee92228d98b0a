"""The Members area of the portal: member search, the member page (member 360) and the operator
forms on it. Thin: views look members up through the user's scope, read through selectors, and hand
parsed form input to the wallet services; every rule lives in the services."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.views.generic import ListView, TemplateView

from ledger import selectors as ledger_selectors
from ledger.services import CNY
from members import selectors as member_selectors
from members.models import Owner
from wallet import selectors as wallet_selectors
from wallet import services as wallet_services

from .forms import ConsumptionForm, MemberSearchForm, OperationForm, RechargeForm, RefundForm

STATEMENT_DAYS = 30


def member_url(member: Owner) -> str:
    return reverse("members:member", kwargs={"pk": member.pk})


class MemberListView(LoginRequiredMixin, ListView):
    template_name = "portal/members/list.html"
    context_object_name = "owners"
    paginate_by = 25

    def get_queryset(self):
        self.search_form = MemberSearchForm(self.request.GET or None)
        term = self.search_form.cleaned_data["q"] if self.search_form.is_valid() else ""
        return member_selectors.search_owners(member_selectors.owners_visible_to(self.request.user), term)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(search_form=self.search_form, merchant=member_selectors.merchant_of(self.request.user))
        return context


class MemberDetailView(LoginRequiredMixin, TemplateView):
    """Member 360: balances, recharges, consumptions, refunds, service records, the principal
    account's statement, and the operator forms."""

    template_name = "portal/members/detail.html"

    @cached_property
    def member(self) -> Owner:
        # Another merchant's member is simply not in the user's scope: 404.
        return get_object_or_404(member_selectors.owners_visible_to(self.request.user), pk=self.kwargs["pk"])

    @cached_property
    def stores(self):
        return member_selectors.operable_stores(self.request.user, self.member.merchant)

    @cached_property
    def benefits(self) -> wallet_selectors.MemberBenefits:
        return wallet_selectors.member_benefits(self.member)

    def form_kwargs(self) -> dict:
        return {"member": self.member, "stores": self.stores, "user": self.request.user}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        member = self.member
        can_operate = self.stores.exists()
        if can_operate:
            kwargs.setdefault("recharge_form", RechargeForm(**self.form_kwargs()))
            kwargs.setdefault("consumption_form", ConsumptionForm(benefits=self.benefits, **self.form_kwargs()))
            kwargs.setdefault("refund_form", RefundForm(**self.form_kwargs()))
        entitlement_refunds, cash_refunds = wallet_selectors.refunds_of(member)
        context.update(kwargs)
        context.update(
            member=member,
            card=member_selectors.active_card_of(member),
            benefits=self.benefits,
            totals=wallet_selectors.member_totals(member),
            recharges=wallet_selectors.recharges_of(member)
            .select_related("store__merchant", "operator")
            .prefetch_related(
                "lines__plan", "lines__coupon_template", "lines__package", "lines__voucher_template", "lines__vip_type"
            )[:50],
            consumptions=wallet_selectors.consumptions_of(member)
            .select_related("store__merchant", "service_record")
            .prefetch_related("lines__staff", "lines__grant__coupon_template", "lines__grant__service")[:50],
            entitlement_refunds=entitlement_refunds.select_related("store__merchant").prefetch_related(
                "lines__consumption"
            )[:50],
            cash_refunds=cash_refunds.select_related("store__merchant", "grant")[:50],
            service_records=wallet_selectors.service_records_of(member)
            .select_related("staff", "store__merchant")
            .prefetch_related("consumptions")[:50],
            statement=self.principal_statement(),
            statement_days=STATEMENT_DAYS,
            can_operate=can_operate,
        )
        return context

    def principal_statement(self) -> ledger_selectors.Statement | None:
        member = self.member
        account = ledger_selectors.find_account(member.merchant, "principal", CNY, member=member)
        if account is None:
            return None
        today = timezone.localdate()
        return ledger_selectors.statement(account, today - datetime.timedelta(days=STATEMENT_DAYS), today)


class _OperationView(MemberDetailView):
    """POST one operator form; on success redirect to the member page, otherwise show the member page
    with the form and its errors. Only staff holding members.operate_store on a store of the member's
    merchant may post; the form limits the store to those."""

    http_method_names = ["get", "post"]
    form_class: type[OperationForm]
    context_name: str

    def get(self, request, *args, **kwargs):
        return redirect(member_url(self.member))

    def post(self, request, *args, **kwargs):
        if not self.stores.exists():
            raise PermissionDenied(_("You may not operate on any store of this merchant."))
        form = self.build_form(request.POST)
        if form.is_valid():
            try:
                message = self.perform(form)
            except ValidationError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, message)
                return redirect(member_url(self.member))
        return self.render_to_response(self.get_context_data(**{self.context_name: form}))

    def build_form(self, data) -> OperationForm:
        return self.form_class(data, **self.form_kwargs())

    def perform(self, form) -> str:
        raise NotImplementedError


class RechargeView(_OperationView):
    form_class = RechargeForm
    context_name = "recharge_form"

    def perform(self, form: RechargeForm) -> str:
        cd = form.cleaned_data
        record = wallet_services.recharge(
            member=self.member, store=cd["store"], payment_method=cd["payment_method"], items=[form.item()],
            actor=self.request.user, idempotency_key=form.idempotency_key, note=cd["note"],
        )  # fmt: skip
        return _("Recharge %(number)s recorded.") % {"number": record.number}


class ConsumptionView(_OperationView):
    form_class = ConsumptionForm
    context_name = "consumption_form"

    def build_form(self, data) -> OperationForm:
        return self.form_class(data, benefits=self.benefits, **self.form_kwargs())

    def perform(self, form: ConsumptionForm) -> str:
        cd = form.cleaned_data
        consumption = wallet_services.consume_with_service_record(
            member=self.member, staff=cd["staff"], store=cd["store"], items=[form.item()], actor=self.request.user,
            notes=cd["notes"], tags=form.tag_names, idempotency_key=form.idempotency_key,
        )  # fmt: skip
        record = consumption.service_record
        return _("Consumption %(number)s recorded with service record %(record)s.") % {
            "number": consumption.number,
            "record": record.number,
        }


class RefundView(_OperationView):
    form_class = RefundForm
    context_name = "refund_form"

    def perform(self, form: RefundForm) -> str:
        cd = form.cleaned_data
        refund = wallet_services.refund_consumption_lines(
            member=self.member, lines=list(cd["lines"]), reason=cd["reason"], actor=self.request.user,
            store=cd["store"], idempotency_key=form.idempotency_key,
        )  # fmt: skip
        return _("Refund %(number)s executed.") % {"number": refund.number}
