"""The Approvals area of the portal (issue 12): the task queues of the approval workflows ("my tasks", the
unassigned queue for the user's roles and stores, the archive), the task page (the request, its history and,
for refunds, what will be reversed and where the money goes), claim / release / approve / reject, the request
pages (withdraw) and the user's notifications.

Thin: the queues and lookups are flows.selectors (offered by the guardian permission on the task's store,
never a task of the user's own request: maker-checker), and every change is a flows.services call, which
checks everything again under its locks. viewflow's own queue views are not used: they know neither
maker-checker nor the merchant. A task or request out of the user's reach is simply not there (404),
whatever URL is typed."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import InvalidPage, Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView, View
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from core.errors import DomainError
from core.money import yuan
from flows import rules
from flows import selectors as flow_selectors
from flows import services as flow_services
from flows.models import ApprovalRequest, FreeValueRequest, RefundRequest, State
from flows.views import DecisionForm

from . import approvals

PAGE_SIZE = 25

# Any of these opens the Approvals area (members.roles gives them to every back-office role).
APPROVALS_PERMISSIONS = tuple(f"flows.view_{model._meta.model_name}" for model in approvals.KINDS.values())


def may_use_approvals(user) -> bool:
    return user.is_authenticated and any(user.has_perm(perm) for perm in APPROVALS_PERMISSIONS)


def _paginate(request, queryset, per_page: int = PAGE_SIZE):
    try:
        return Paginator(queryset, per_page).page(request.GET.get("page") or 1)
    except InvalidPage:
        raise Http404(_("No such page.")) from None


def _page_query(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


class ApprovalsMixin(LoginRequiredMixin):
    """Signed-in users holding a flows view permission (back-office roles); others get a 403."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not may_use_approvals(request.user):
            raise PermissionDenied(_("You may not see the approvals."))
        return super().dispatch(request, *args, **kwargs)


# ---------------------------------------------------------------- queues


class TaskListView(ApprovalsMixin, TemplateView):
    """One of the three task lists, a page at a time; the requests behind a page's tasks are read in one
    query per kind of request, so the queries do not grow with the tasks."""

    template_name = "portal/tasks/list.html"
    which = ""
    title = ""
    empty = ""

    def tasks(self):
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = _paginate(self.request, self.tasks())
        found = flow_selectors.requests_of_tasks(page.object_list)
        rows = []
        for task in page.object_list:
            request = found.get(task.pk)
            if request is None:
                continue
            rows.append({
                "task": task, "request": request, "url": reverse("tasks:task", kwargs={"pk": task.pk}),
                "stage": task.flow_task.task_title if task.flow_task else "", "summary": approvals.summary(request),
                "amount_fen": approvals.amount_fen(request), "requested_by": approvals.person(request.requested_by),
                "created": task.created, "finished": task.finished,
                "outcome": request.get_state_display() if self.which == "archive" else "",
            })  # fmt: skip
        context.update(
            title=self.title, which=self.which, empty=self.empty, rows=rows, page_obj=page,
            page_query=_page_query(self.request),
            tabs=[("inbox", gettext_lazy("My tasks"), reverse("tasks:index")),
                  ("queue", gettext_lazy("Queue"), reverse("tasks:queue")),
                  ("archive", gettext_lazy("Archive"), reverse("tasks:archive"))],
        )  # fmt: skip
        return context


class InboxView(TaskListView):
    which = "inbox"
    title = gettext_lazy("My tasks")
    empty = gettext_lazy("You have claimed no task. Take one from the queue.")

    def tasks(self):
        return flow_selectors.inbox_for(self.request.user)


class QueueView(TaskListView):
    which = "queue"
    title = gettext_lazy("Task queue")
    empty = gettext_lazy("No task is waiting for your stores and roles.")

    def tasks(self):
        return flow_selectors.task_queue_for(self.request.user)


class ArchiveView(TaskListView):
    which = "archive"
    title = gettext_lazy("Archive")
    empty = gettext_lazy("You have not completed any task yet.")

    def tasks(self):
        return flow_selectors.archive_for(self.request.user)


# ---------------------------------------------------------------- a request's details, shared by its pages


def request_context(request: ApprovalRequest) -> dict:
    """What the task page and the request page show of a request: facts, history and, for refunds, what
    carrying it out does (the wallet's dry run while it is open; what was recorded once it is carried out)."""
    context = {
        "request_obj": request,
        "request_label": request._meta.verbose_name,
        "facts": approvals.facts(request),
        "history": [
            {
                "row": row,
                "actor": approvals.person(row.actor) if row.actor_id else (row.actor_label or _("System")),
                "source": _state_label(row.source),
                "target": _state_label(row.target),
                "at": row.at,
                "note": _history_note(row),
            }
            for row in flow_selectors.history_of(request).select_related("actor__staff")
        ],  # fmt: skip
    }
    if isinstance(request, RefundRequest):
        context["refund"] = refund_effect(request)
    if isinstance(request, FreeValueRequest):
        context["free_value"] = free_value_effect(request)
    return context


def _history_note(row) -> str:
    """What a history row that is no transition says: a claim taken back to the queue (flows.services.release
    by a merchant admin, or return_tasks_out_of_reach when the claimer lost the role)."""
    if row.name == "release":
        return _("Task taken from %(user)s and returned to the queue.") % {
            "user": (row.before or {}).get("claimed_by_name") or "—"}  # fmt: skip
    return ""


def _state_label(state: str) -> str:
    return str(dict(State.choices).get(state, state)) if state else "—"


def refund_effect(request: RefundRequest) -> dict:
    """For an open refund request: the wallet's quote of carrying it out now (lines and amounts reversed,
    where the money goes) or why the wallet would refuse it now. Once carried out: what was recorded."""
    effect: dict = {"quote": None, "error": "", "record": None}
    if request.state == State.EXECUTED:
        effect["record"] = request.entitlement_refund or request.cash_refund
        effect["lines"] = list(
            request.lines.select_related("consumption", "service", "grant__coupon_template", "grant__service")
            .order_by("pk")
        )  # fmt: skip
    elif approvals.is_open(request):
        try:
            effect["quote"] = flow_selectors.refund_preview(request)
        except DomainError as exc:
            effect["error"] = exc.message_text
    return effect


def free_value_effect(request: FreeValueRequest) -> dict:
    """For an open free value request: the wallet's dry run of giving it now with the limit lifted as the
    approval will (what the member receives and pays, the free value), or why the wallet would refuse it now.
    Once carried out: what was recorded."""
    effect: dict = {"quote": None, "error": "", "record": ""}
    if request.state == State.EXECUTED:
        effect["record"] = _free_value_record(request)
    elif approvals.is_open(request):
        try:
            effect["quote"] = flow_selectors.free_value_preview(request)
        except DomainError as exc:
            effect["error"] = exc.message_text
    return effect


def _free_value_record(request: FreeValueRequest) -> str:
    if request.recharge_id:
        recharge = request.recharge
        return _("Recharge %(number)s recorded: %(paid)s paid by %(method)s, bonus %(bonus)s.") % {
            "number": recharge.number, "paid": yuan(recharge.paid_total_fen),
            "method": recharge.get_payment_method_display(), "bonus": yuan(recharge.bonus_total_fen),
        }  # fmt: skip
    if request.voucher_id:
        voucher = request.voucher
        return _("Voucher %(name)s of %(value)s given (%(ref)s).") % {
            "name": request.voucher_template.name, "value": yuan(voucher.face_value_fen), "ref": voucher.source_ref,
        }  # fmt: skip
    return _("%(given)s given to the member.") % {"given": approvals.free_value_given(request)}


# ---------------------------------------------------------------- the task page and its actions


class TaskMixin(ApprovalsMixin):
    """The task of the URL, if the user may open it (flows.selectors.task_for), and its request. Views that
    allow it (the task page, the release) also find a task someone else claimed that the user may take back to
    the queue (a merchant admin: selectors.tasks_to_take_back); deciding or claiming it never does."""

    taking_back = False

    @cached_property
    def task(self) -> Task:
        user = self.request.user
        try:
            return flow_selectors.task_for(user, int(self.kwargs["pk"]))
        except (Task.DoesNotExist, ValueError, OverflowError):
            found = None
            if self.taking_back:
                try:
                    found = flow_selectors.tasks_to_take_back(user).filter(pk=int(self.kwargs["pk"])).first()
                except (ValueError, OverflowError):
                    found = None
            if found is None:
                raise Http404(_("No such task.")) from None
            return found

    @cached_property
    def request_obj(self) -> ApprovalRequest:
        found = flow_selectors.requests_of_tasks([self.task]).get(self.task.pk)
        if found is None:
            raise Http404(_("No such task."))
        return found

    @property
    def task_url(self) -> str:
        return reverse("tasks:task", kwargs={"pk": self.task.pk})

    def is_mine(self) -> bool:
        return self.task.owner_id == self.request.user.pk and self.task.status == STATUS.ASSIGNED

    def is_taken_by_other(self) -> bool:
        return self.task.status == STATUS.ASSIGNED and self.task.owner_id != self.request.user.pk


class TaskView(TaskMixin, TemplateView):
    template_name = "portal/tasks/task.html"
    taking_back = True

    def get_context_data(self, form: DecisionForm | None = None, **kwargs):
        context = super().get_context_data(**kwargs)
        task, user = self.task, self.request.user
        context.update(request_context(self.request_obj))
        context.update(
            task=task, stage=task.flow_task.task_title if task.flow_task else "",
            task_open=task.status in (STATUS.NEW, STATUS.ASSIGNED),
            claimable=task.status == STATUS.NEW, mine=self.is_mine(),
            owner=approvals.person(task.owner) if task.owner_id else "",
            form=form or DecisionForm(), request_url=approvals.request_url(self.request_obj),
            title=f"{task.flow_task.task_title if task.flow_task else ''} · {self.request_obj.number}",
            may_review=rules.may_review(self.request_obj, user),
            may_take_back=self.is_taken_by_other() and rules.may_take_back(self.request_obj, user),
        )  # fmt: skip
        return context


class _TaskAction(TaskMixin, View):
    http_method_names = ["post"]

    def refused(self, exc: DomainError) -> HttpResponseRedirect:
        messages.error(self.request, exc.message_text)
        return redirect(self.task_url)


class ClaimView(_TaskAction):
    """Take a task of the queue into "my tasks"."""

    def post(self, request, *args, **kwargs):
        if self.is_mine():
            return redirect(self.task_url)
        if self.task.status != STATUS.NEW:
            raise Http404(_("No such task."))
        try:
            flow_services.claim(self.request_obj, actor=request.user)
        except DomainError as exc:
            return self.refused(exc)
        messages.success(request, _("%(number)s is in your tasks now.") % {"number": self.request_obj.number})
        return redirect(self.task_url)


class ReleaseView(_TaskAction):
    """Give a claimed task back to the queue: one's own, or, for a merchant admin, one someone else claimed
    (with a reason; flows.services.release checks again and tells the claimer)."""

    taking_back = True

    def post(self, request, *args, **kwargs):
        if self.is_mine():
            try:
                flow_services.release(self.request_obj, actor=request.user)
            except DomainError as exc:
                return self.refused(exc)
            messages.success(request, _("%(number)s is back in the queue.") % {"number": self.request_obj.number})
            return redirect("tasks:queue")
        if not self.is_taken_by_other():
            raise Http404(_("No such task."))
        claimer = approvals.person(self.task.owner)
        try:
            flow_services.release(self.request_obj, actor=request.user, reason=request.POST.get("reason", ""))
        except DomainError as exc:
            return self.refused(exc)
        messages.success(request, _("%(number)s was taken from %(user)s and is back in the queue.") % {
            "number": self.request_obj.number, "user": claimer})  # fmt: skip
        return redirect(approvals.request_url(self.request_obj))


class DecideView(TaskView):
    """Approve, or reject with a reason, through flows.services (maker-checker, the store permission and
    the stage are checked there again, under the request's locks). A refusal shows on the task page."""

    http_method_names = ["post"]
    taking_back = False  # a task someone else claimed is not there to decide

    def post(self, request, *args, **kwargs):
        if self.task.status not in (STATUS.NEW, STATUS.ASSIGNED):
            raise Http404(_("No such task."))
        form = DecisionForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        approve = form.cleaned_data["decision"] == DecisionForm.APPROVE
        decide = flow_services.approve if approve else flow_services.reject
        try:
            done = decide(self.request_obj, actor=request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message_text)
            return self.render_to_response(self.get_context_data(form=form))
        number = done.number
        if not approve:
            messages.success(request, _("%(number)s was rejected.") % {"number": number})
        elif done.state == State.FINANCE_REVIEW:
            messages.success(request, _("%(number)s was approved; finance reviews it next.") % {"number": number})
        else:
            messages.success(request, _("%(number)s was approved.") % {"number": number})
        code = getattr(done, "activation_code", None)
        if code:
            messages.warning(request, _(
                "Activation code for %(name)s: %(code)s. Give it to them in person; it is shown only this once."
            ) % {"name": done.name, "code": code})  # fmt: skip
        return redirect("tasks:index")


# ---------------------------------------------------------------- request pages


class RequestMixin(ApprovalsMixin):
    @cached_property
    def model(self) -> type[ApprovalRequest]:
        model = approvals.KINDS.get(self.kwargs["kind"])
        if model is None:
            raise Http404(_("No such request."))
        return model

    @cached_property
    def request_obj(self) -> ApprovalRequest:
        try:
            return (
                flow_selectors.requests_visible_to(self.request.user, self.model)
                .select_related(*flow_selectors.related_for(self.model))
                .get(pk=int(self.kwargs["pk"]))
            )
        except (self.model.DoesNotExist, ValueError, OverflowError):
            raise Http404(_("No such request.")) from None


class RequestView(RequestMixin, TemplateView):
    """A request as anyone who may see it reads it (the requester, the store's staff, the merchant admin),
    with the link to its open task when that task is the user's to take or decide."""

    template_name = "portal/tasks/request.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        request, user = self.request_obj, self.request.user
        context.update(request_context(request))
        task = flow_selectors.open_task_of(request)
        task_url = None
        if task is not None:
            try:
                task_url = reverse("tasks:task", kwargs={"pk": flow_selectors.task_for(user, task.pk).pk})
            except Task.DoesNotExist:
                # A merchant admin opens a task someone else claimed to take it back to the queue.
                if flow_selectors.tasks_to_take_back(user).filter(pk=task.pk).exists():
                    task_url = reverse("tasks:task", kwargs={"pk": task.pk})
        context.update(
            title=f"{request._meta.verbose_name} {request.number}", task=task, task_url=task_url,
            waiting_for=approvals.person(task.owner) if task is not None and task.owner_id else "",
            may_withdraw=request.state == State.SUBMITTED and rules.may_withdraw(request, user),
            list_url=reverse("tasks:requests", kwargs={"kind": self.kwargs["kind"]}),
            list_title=approvals.LIST_TITLES[self.kwargs["kind"]],
        )  # fmt: skip
        return context


class WithdrawView(RequestMixin, View):
    """The requester takes their request back before its first review."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        url = approvals.request_url(self.request_obj)
        try:
            done = flow_services.withdraw(self.request_obj, actor=request.user, reason=request.POST.get("reason", ""))
        except DomainError as exc:
            messages.error(request, exc.message_text)
            return redirect(url)
        messages.success(request, _("%(number)s was withdrawn.") % {"number": done.number})
        return redirect(url)


# ---------------------------------------------------------------- notifications


class NotificationsView(LoginRequiredMixin, TemplateView):
    """The user's notifications (reminders, escalations, outcomes of their requests), newest first; POST
    marks them read (all, or the ones posted)."""

    template_name = "portal/tasks/notifications.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = _paginate(self.request, flow_selectors.notifications_for(self.request.user))
        context.update(
            title=_("Notifications"), page_obj=page, page_query=_page_query(self.request),
            rows=[{"note": note, "url": approvals.request_url_of(note.content_type_id, note.object_id)}
                  for note in page.object_list],
            unread=flow_selectors.unread_count(self.request.user),
        )  # fmt: skip
        return context

    def post(self, request, *args, **kwargs):
        ids = None
        if request.POST.get("all") != "1":
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            ids = [int(v) for v in request.POST.getlist("id") if v.isascii() and v.isdigit() and len(v) < 19]
        count = flow_services.mark_notifications_read(request.user, ids)
        if count:
            messages.success(request, _("Marked as read."))
        return redirect("tasks:notifications")
