"""The Members area of the portal: member search, the member page (member 360, in tabs) and the
operator pages (recharge, consumption with service record, refund).

Thin: views look members up through the user's scope, read through selectors, and hand parsed form
input to the wallet. Each operation goes form → confirmation (what will happen, in yuan, computed by
`wallet.quotes`) → a second confirmation above the merchant's threshold → the service. The form's
token travels through every step as the operation's idempotency key, so a page posted twice records
once."""

from __future__ import annotations

import datetime
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import InvalidPage, Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import ListView, TemplateView
from viewflow.forms import Row

from core.errors import DomainError
from core.money import yuan
from flows import selectors as flow_selectors
from flows import services as flow_services
from members import selectors as member_selectors
from members.models import Owner
from wallet import quotes as wallet_quotes
from wallet import selectors as wallet_selectors
from wallet import services as wallet_services

from . import approvals
from .forms import ConsumptionForm, MemberSearchForm, OperationForm, RechargeForm, RefundForm, SummaryLayout
from .pagination import TwoEndedPaginator

PAGE_SIZE = 20
STATEMENT_DAYS = 30
# Past any statement's last page (10 million lines), and an offset PostgreSQL's bigint still takes.
MAX_STATEMENT_PAGE = 500_000

TABS = (
    ("overview", gettext_lazy("Overview")),
    ("service_records", gettext_lazy("Service records")),
    ("recharges", gettext_lazy("Recharges")),
    ("consumptions", gettext_lazy("Consumptions")),
    ("refunds", gettext_lazy("Refunds")),
    ("statement", gettext_lazy("Ledger statement")),
    ("audit", gettext_lazy("Audit history")),
)


def member_url(member: Owner, tab: str = "") -> str:
    url = reverse("members:member", kwargs={"pk": member.pk})
    return f"{url}?tab={tab}" if tab else url


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


class MemberMixin(LoginRequiredMixin):
    """A member in the user's scope (another merchant's member is simply not there: 404) and the stores
    of its merchant where the user may operate."""

    @cached_property
    def member(self) -> Owner:
        return get_object_or_404(
            member_selectors.owners_visible_to(self.request.user).select_related("level"), pk=self.kwargs["pk"]
        )

    @cached_property
    def stores(self):
        return member_selectors.operable_stores(self.request.user, self.member.merchant)

    @cached_property
    def can_operate(self) -> bool:
        return self.stores.exists()


# ---------------------------------------------------------------- member 360


class StatementFilterForm(forms.Form):
    """The ledger tab's filter: which of the member's accounts, and the date range (whole local days)."""

    account = forms.TypedChoiceField(label=gettext_lazy("Account"), coerce=int, required=False)
    start = forms.DateField(label=gettext_lazy("From"), required=False)
    end = forms.DateField(label=gettext_lazy("To"), required=False)

    def __init__(self, *args, accounts: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [
            (item.account.pk, f"{item.label} · {self.balance_text(item)}") for item in accounts
        ]

    @staticmethod
    def balance_text(item) -> str:
        return yuan(item.balance) if item.account.unit == wallet_services.CNY else f"{item.balance:,}"

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        for name in ("start", "end"):
            value = cleaned.get(name)
            if value is not None and not datetime.date(1900, 1, 1) <= value <= datetime.date(9000, 12, 31):
                self.add_error(name, gettext_lazy("Choose a date between 1900 and 9000."))
        if start and end and start > end:
            self.add_error("end", gettext_lazy("The end of the range is before its start."))
        return cleaned

    @property
    def layout(self):
        return SummaryLayout(Row("account", "start", "end"))


class MemberDetailView(MemberMixin, TemplateView):
    """Member 360 in tabs (?tab=…&page=…): overview (balances, entitlements, benefits), service records,
    recharges, consumptions, refunds, ledger statement and audit history. Each tab reads only its own
    rows, one page at a time, so the queries do not grow with the member's history."""

    template_name = "portal/members/detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tab = self.request.GET.get("tab", "overview")
        if tab not in dict(TABS):
            tab = "overview"
        member = self.member
        context.update(
            member=member,
            card=member_selectors.active_card_of(member),
            tabs=TABS,
            tab=tab,
            tab_label=dict(TABS)[tab],
            can_operate=self.can_operate,
        )
        context.update(getattr(self, f"tab_{tab}")())
        return context

    def paginate(self, queryset, per_page: int = PAGE_SIZE, param: str = "page"):
        paginator = TwoEndedPaginator(queryset, per_page)
        try:
            return paginator.page(self.request.GET.get(param) or 1)
        except InvalidPage:
            raise Http404(_("No such page.")) from None

    def page_query(self, param: str = "page") -> str:
        """The query string of this tab without the page number (for the pagination links)."""
        query = self.request.GET.copy()
        query.pop(param, None)
        return query.urlencode()

    def tab_overview(self) -> dict:
        # A member can hold thousands of coupon lots (a bulk sale): the lists page like the other tabs.
        benefits = wallet_selectors.member_benefits(self.member)
        return {
            "benefits": benefits,
            "totals": wallet_selectors.member_totals(self.member),
            "grants_page": self.paginate(benefits.grants, param="grants_page"),
            "grants_query": self.page_query("grants_page"),
            "vouchers_page": self.paginate(benefits.vouchers, param="vouchers_page"),
            "vouchers_query": self.page_query("vouchers_page"),
        }

    def tab_service_records(self) -> dict:
        records = (
            wallet_selectors.service_records_of(self.member)
            .select_related("staff", "store__merchant", "operator")
            .prefetch_related("consumptions")
        )
        return {"page_obj": self.paginate(records), "page_query": self.page_query()}

    def tab_recharges(self) -> dict:
        recharges = (
            wallet_selectors.recharges_of(self.member)
            .select_related("store__merchant", "operator")
            .prefetch_related(
                "lines__plan", "lines__coupon_template", "lines__package", "lines__voucher_template", "lines__vip_type"
            )
        )
        return {"page_obj": self.paginate(recharges), "page_query": self.page_query()}

    def tab_consumptions(self) -> dict:
        consumptions = (
            wallet_selectors.consumptions_of(self.member)
            .select_related("store__merchant", "service_record", "operator")
            .prefetch_related(
                "lines__staff", "lines__grant__coupon_template", "lines__grant__service", "lines__voucher__template"
            )
        )
        return {"page_obj": self.paginate(consumptions), "page_query": self.page_query()}

    def tab_refunds(self) -> dict:
        page = self.paginate(wallet_selectors.refund_rows(self.member))
        return {
            "page_obj": page,
            "refunds": wallet_selectors.refunds_for_rows(self.member, list(page.object_list)),
            "page_query": self.page_query(),
        }

    def tab_statement(self) -> dict:
        accounts = wallet_selectors.statement_accounts(self.member)
        today = timezone.localdate()
        initial = {"start": today - datetime.timedelta(days=STATEMENT_DAYS), "end": today}
        data = self.request.GET.copy()
        for name, value in initial.items():
            data.setdefault(name, value.isoformat())
        if accounts:
            data.setdefault("account", str(accounts[0].account.pk))
        form = StatementFilterForm(data, accounts=accounts)
        context = {"statement_form": form, "statement_accounts": accounts, "statement": None}
        if not accounts or not form.is_valid():
            return context
        chosen = {item.account.pk: item for item in accounts}.get(form.cleaned_data["account"])
        if chosen is None:
            return context
        start = form.cleaned_data["start"] or initial["start"]
        end = form.cleaned_data["end"] or initial["end"]
        # One read of the asked page (statement_page counts the range in the same call), then the page number
        # is checked against that count like the other tabs: a page past the end is a 404.
        try:
            number = int(self.request.GET.get("page") or 1)
        except ValueError:
            raise Http404(_("No such page.")) from None
        if not 1 <= number <= MAX_STATEMENT_PAGE:
            raise Http404(_("No such page."))
        statement = wallet_selectors.account_statement(
            chosen.account, start, end, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        try:
            page = Paginator(range(statement.line_count), PAGE_SIZE).page(number)
        except InvalidPage:
            raise Http404(_("No such page.")) from None
        context.update(
            statement=statement,
            statement_rows=[
                (line, wallet_selectors.operation_label(line.operation_type), wallet_selectors.memo_label(line.memo))
                for line in statement.lines
            ],
            statement_account=chosen,
            statement_is_money=chosen.account.unit == wallet_services.CNY,
            page_obj=page,
            page_query=self.page_query(),
        )
        return context

    def tab_audit(self) -> dict:
        return {
            "page_obj": self.paginate(member_selectors.audit_events_of(self.member)),
            "page_query": self.page_query(),
        }


# ---------------------------------------------------------------- operator pages


def _split_text(principal=0, bonus=0, voucher=0, direct=0, method="", uses=0) -> str:
    """'principal ¥83.33, bonus ¥16.67': where money came from or went back to, for messages."""
    parts = []
    if principal:
        parts.append(_("principal %(amount)s") % {"amount": yuan(principal)})
    if bonus:
        parts.append(_("bonus %(amount)s") % {"amount": yuan(bonus)})
    if voucher:
        parts.append(_("voucher %(amount)s") % {"amount": yuan(voucher)})
    if direct:
        parts.append(_("%(method)s %(amount)s") % {"method": method, "amount": yuan(direct)})
    if uses:
        parts.append(_("%(uses)s uses") % {"uses": uses})
    return _(", ").join(parts) if parts else "—"


class OperationView(MemberMixin, TemplateView):
    """One operation for one member on a page of its own. GET: the form (its kind chosen first, ?kind=
    or ?funding=). POST: validate → confirmation page (the quote) → second confirmation above the
    merchant's threshold → the service → back to the member page with a message giving the business
    number and the amounts. Only staff holding members.operate_store on a store of the member's
    merchant may open or post it; the form limits the store to those."""

    http_method_names = ["get", "post"]
    template_name = "portal/members/operation.html"
    confirm_template_name = "portal/members/confirm.html"
    form_class: type[OperationForm]
    context_name: str
    operation: str  # recharge, consumption, refund (wallet.selectors.OPERATION_MODELS)
    title = ""
    intro = ""
    done_tab = ""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.member  # noqa: B018 - 404 for a member out of scope before anything else
            if not self.can_operate:
                raise PermissionDenied(_("You may not operate on any store of this merchant."))
        return super().dispatch(request, *args, **kwargs)

    def build_form(self, data=None, **kwargs) -> OperationForm:
        return self.form_class(data, member=self.member, stores=self.stores, user=self.request.user, **kwargs)

    def get(self, request, *args, **kwargs):
        initial = {}
        if self.form_class.kind_field:
            initial[self.form_class.kind_field] = request.GET.get(self.form_class.kind_field, "")
        return self.render_form(self.build_form(initial=initial))

    def post(self, request, *args, **kwargs):
        form = self.build_form(request.POST)
        done = self.already_recorded(form)
        if done is not None:
            # Posted again (a double click, a reload, the back button): no new confirmation. The service
            # answers the same content with the first record and refuses other content under the same
            # token (idempotency_conflict); a form no longer valid (its lines refunded) is that replay too.
            if form.is_valid():
                try:
                    self.record(form)
                except ValidationError as exc:
                    form.add_service_error(exc)
                    return self.render_form(form)
            messages.info(request, _("This form was already submitted: it is recorded as %(number)s.") % {
                "number": done.number,
            })  # fmt: skip
            return redirect(member_url(self.member, self.done_tab))
        if request.POST.get("step") == "edit" or not form.is_valid():
            return self.render_form(form)
        try:
            quote = self.quote(form)
        except ValidationError as exc:
            return self.refused(form, exc)
        confirmed = request.POST.get("confirm", "")
        if confirmed != quote.digest:
            return self.render_confirmation(form, quote, stage=1, changed=bool(confirmed))
        if quote.large and request.POST.get("confirm_large", "") != quote.digest:
            return self.render_confirmation(form, quote, stage=2)
        try:
            record = self.record(form)
        except ValidationError as exc:
            form.add_service_error(exc)
            return self.render_form(form)
        messages.success(request, self.success_message(record, quote))
        return redirect(member_url(self.member, self.done_tab))

    def refused(self, form: OperationForm, exc: ValidationError):
        """The service refused the operation at the confirmation step: the form again, with the reasons."""
        form.add_service_error(exc)
        return self.render_form(form)

    def already_recorded(self, form: OperationForm):
        """The operation this form's token already recorded, if any (a second post of the same page)."""
        try:
            token = str(uuid.UUID(str(form.data.get(form.add_prefix("token"), ""))))
        except ValueError:
            return None
        return wallet_selectors.operation_by_key(self.member, self.operation, token)

    def base_context(self, form: OperationForm) -> dict:
        return {
            "member": self.member,
            "benefits": wallet_selectors.member_benefits(self.member),
            "form": form,
            self.context_name: form,
            "title": self.title,
            "intro": self.intro,
            "operation": self.operation,
            "action_url": self.request.path,
            "kind_field": form.kind_field,
            "kinds": [
                (value, label, f"{self.request.path}?{form.kind_field}={value}")
                for value, label in form.fields[form.kind_field].choices
            ]
            if form.kind_field
            else [],
            "chosen_kind": form.chosen_kind,
        }

    def render_form(self, form: OperationForm):
        context = self.base_context(form)
        context["errors"] = form.error_summary() if form.is_bound else []
        return self.render_to_response(self.get_context_data(**context))

    def render_confirmation(self, form: OperationForm, quote, *, stage: int, changed: bool = False):
        context = self.base_context(form)
        context.update(quote=quote, stage=stage, changed=changed)
        return self.response_class(
            request=self.request,
            template=[self.confirm_template_name],
            context=self.get_context_data(**context),
            using=self.template_engine,
        )

    def quote(self, form) -> wallet_quotes.Quote:
        raise NotImplementedError

    def record(self, form):
        """Call the wallet service with the form's input and its token as the idempotency key."""
        raise NotImplementedError

    def success_message(self, record, quote: wallet_quotes.Quote) -> str:
        raise NotImplementedError


class RechargeView(OperationView):
    form_class = RechargeForm
    context_name = "recharge_form"
    operation = "recharge"
    title = gettext_lazy("Recharge")
    done_tab = "recharges"

    def quote(self, form: RechargeForm, *, lift: bool = False) -> wallet_quotes.Quote:
        cd = form.cleaned_data
        return wallet_quotes.quote_recharge(
            member=self.member,
            store=cd["store"],
            items=[form.item()],
            payment_method=cd["payment_method"],
            actor=self.request.user,
            lift_free_value_limits=lift,
        )

    # -- over the merchant's free-value limit: submit for approval (issue 12) instead of refusing

    def post(self, request, *args, **kwargs):
        if "approval" in request.POST and request.POST.get("step") != "edit":
            return self.submit_for_approval(request)
        return super().post(request, *args, **kwargs)

    def refused(self, form: RechargeForm, exc: ValidationError):
        """Refused only for a free-value limit (a manual bonus or discount over it): offer to submit the recharge
        for a merchant admin's approval, showing what it would record once approved (the wallet's dry run with
        the limit lifted). Anything else the wallet refuses, even with the limit lifted, is shown on the form."""
        if isinstance(exc, DomainError) and exc.code == "free_value_over_limit":
            try:
                lifted = self.quote(form, lift=True)
            except ValidationError:
                lifted = None
            if lifted is not None:
                return self.render_approval(form, lifted, exc)
        return super().refused(form, exc)

    def render_approval(self, form: RechargeForm, quote, refusal: DomainError, *, changed: bool = False,
                        errors: list[str] | None = None):  # fmt: skip
        context = self.base_context(form)
        context.update(
            quote=quote, refusal=refusal.message_text, changed=changed, errors=errors or [],
            approval_reason=self.request.POST.get("approval_reason", ""),
        )  # fmt: skip
        return self.response_class(
            request=self.request,
            template=["portal/members/free_value.html"],
            context=self.get_context_data(**context),
            using=self.template_engine,
        )

    def submit_for_approval(self, request):
        """Start a free value request (flows.services) for the recharge as confirmed on the approval page; the
        form's token makes a second post answer with the request of the first."""
        form = self.build_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        cd = form.cleaned_data
        try:
            self.quote(form)
        except DomainError as exc:
            if exc.code != "free_value_over_limit":
                return super().refused(form, exc)
            refusal = exc
        except ValidationError as exc:
            return super().refused(form, exc)
        else:
            form.add_error(None, _("This is within the merchant's limits now: record it directly."))
            return self.render_form(form)
        try:
            lifted = self.quote(form, lift=True)
        except ValidationError as exc:
            return super().refused(form, exc)
        if request.POST.get("approval") != lifted.digest:
            return self.render_approval(form, lifted, refusal, changed=True)
        try:
            started = flow_services.start_free_value_request(
                member=self.member, store=cd["store"], kind="recharge", actor=request.user,
                reason=request.POST.get("approval_reason", ""), item=form.item(), payment_method=cd["payment_method"],
                note=cd["note"], form_token=form.idempotency_key,
            )  # fmt: skip
        except DomainError as exc:
            if exc.field == "reason":
                return self.render_approval(form, lifted, refusal, errors=[exc.message_text])
            return super().refused(form, exc)
        if getattr(started, "posted_again", False):
            messages.info(request, _("This form was already submitted: it is recorded as %(number)s.") % {
                "number": started.number,
            })  # fmt: skip
        else:
            messages.success(request, _(
                "Free value request %(number)s submitted: nothing is recorded or given until a merchant admin "
                "approves it."
            ) % {"number": started.number})  # fmt: skip
        return redirect(approvals.request_url(started))

    def record(self, form: RechargeForm):
        cd = form.cleaned_data
        return wallet_services.recharge(
            member=self.member, store=cd["store"], payment_method=cd["payment_method"], items=[form.item()],
            actor=self.request.user, idempotency_key=form.idempotency_key, note=cd["note"],
        )  # fmt: skip

    def success_message(self, record, quote) -> str:
        return _(
            "Recharge %(number)s recorded: %(paid)s paid by %(method)s; principal +%(principal)s, bonus +%(bonus)s."
        ) % {
            "number": record.number, "paid": yuan(record.paid_total_fen), "method": record.get_payment_method_display(),
            "principal": yuan(quote.principal_fen), "bonus": yuan(record.bonus_total_fen),
        }  # fmt: skip


class ConsumptionView(OperationView):
    form_class = ConsumptionForm
    context_name = "consumption_form"
    operation = "consumption"
    title = gettext_lazy("Consumption with service record")
    intro = gettext_lazy(
        "The payable amount is the member's price for the service times the quantity; it is taken whole from "
        "the chosen source."
    )
    done_tab = "consumptions"

    def build_form(self, data=None, **kwargs) -> OperationForm:
        return super().build_form(data, benefits=wallet_selectors.member_benefits(self.member), **kwargs)

    def quote(self, form: ConsumptionForm) -> wallet_quotes.Quote:
        return wallet_quotes.quote_consumption(
            member=self.member, store=form.cleaned_data["store"], items=[form.item()], actor=self.request.user
        )

    def record(self, form: ConsumptionForm):
        cd = form.cleaned_data
        return wallet_services.consume_with_service_record(
            member=self.member, staff=cd["staff"], store=cd["store"], items=[form.item()], actor=self.request.user,
            notes=cd["notes"], tags=form.tag_names, idempotency_key=form.idempotency_key,
        )  # fmt: skip

    def success_message(self, consumption, quote) -> str:
        lines = list(consumption.lines.all())
        return _(
            "Consumption %(number)s recorded with service record %(record)s: payable %(payable)s, paid from %(split)s."
        ) % {
            "number": consumption.number, "record": consumption.service_record.number,
            "payable": yuan(consumption.payable_total_fen),
            "split": _split_text(
                principal=sum(x.principal_fen for x in lines), bonus=sum(x.bonus_fen for x in lines),
                voucher=sum(x.voucher_fen for x in lines), direct=sum(x.direct_fen for x in lines),
                method=", ".join(sorted({str(x.get_payment_method_display()) for x in lines if x.direct_fen})),
                uses=sum(x.uses for x in lines),
            ),
        }  # fmt: skip


class RefundView(OperationView):
    """A refund request (issue 12): every refund is one, started through flows.services; nothing is paid
    back or restored before the store manager (and finance above the merchant's threshold) approve it. The
    confirmation step shows what the refund will do once approved: the wallet's own dry run (wallet.quotes)."""

    form_class = RefundForm
    context_name = "refund_form"
    operation = "refund"
    title = gettext_lazy("Request a refund")
    intro = gettext_lazy(
        "Every refund is a request: nothing is paid back or restored until the store manager approves it (and "
        "finance, above the merchant's threshold). Consumption lines are reversed exactly: what each took goes "
        "back where it came from. A cash refund pays out what is left and closes the stored value or the lot."
    )
    done_tab = "refunds"

    def already_recorded(self, form: OperationForm):
        # A request is not a wallet operation under the form's token: a second post of the same page is
        # answered in `record` with the request its first post made (the service refuses a second one).
        return None

    def base_context(self, form: OperationForm) -> dict:
        context = super().base_context(form)
        chosen = {str(value) for value in (form["lines"].value() or [])}
        lines = list(form.fields["lines"].queryset.select_related(
            "consumption__store__merchant", "grant__coupon_template", "grant__service"
        ))  # fmt: skip
        pending = flow_selectors.open_refund_requests_of_lines(self.member, lines)
        context["line_choices"] = [(line, str(line.pk) in chosen, pending.get(line.pk)) for line in lines]
        context["is_request"] = True
        context["finance_threshold_fen"] = flow_selectors.finance_threshold_fen(self.member.merchant)
        context["recent_refunds_fen"] = flow_selectors.recent_refunds_fen(self.member)
        return context

    def quote(self, form: RefundForm) -> wallet_quotes.Quote:
        cd, user = form.cleaned_data, self.request.user
        if cd["kind"] == "lines":
            return wallet_quotes.quote_refund(
                member=self.member, store=cd["store"], lines=list(cd["lines"]), reason=cd["reason"], actor=user
            )
        if cd["kind"] == "stored_value":
            return wallet_quotes.quote_cash_refund_stored_value(
                member=self.member, store=cd["store"], payment_method=cd["payment_method"], reason=cd["reason"],
                actor=user,
            )  # fmt: skip
        return wallet_quotes.quote_cash_refund_grant(
            grant=cd["grant"], store=cd["store"], payment_method=cd["payment_method"], reason=cd["reason"], actor=user
        )

    def record(self, form: RefundForm):
        cd, user = form.cleaned_data, self.request.user
        lines = list(cd["lines"] or [])
        try:
            return flow_services.start_refund_request(
                member=self.member, store=cd["store"], kind=cd["kind"], actor=user, reason=cd["reason"],
                lines=lines, grant=cd.get("grant"), payment_method=cd.get("payment_method") or "",
            )  # fmt: skip
        except DomainError as exc:
            # Posted twice (a double click, the back button): the request of the first post, if it is this one.
            first = exc.code == "request_pending" and flow_selectors.open_refund_request_for(
                self.member, cd["kind"], lines=lines, grant=cd.get("grant"), requested_by=user
            )
            if not first:
                raise
            first.posted_again = True
            return first

    def success_message(self, request, quote) -> str:
        if getattr(request, "posted_again", False):
            return _("This form was already submitted: it is recorded as %(number)s.") % {"number": request.number}
        if request.needs_finance_review():
            waits = _("It waits for the store manager's approval, then finance's.")
        else:
            waits = _("It waits for the store manager's approval.")
        return _("Refund request %(number)s submitted for %(total)s; nothing is refunded yet. %(waits)s") % {
            "number": request.number, "total": yuan(request.amount_fen), "waits": waits,
        }  # fmt: skip
