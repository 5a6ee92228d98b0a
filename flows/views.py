"""The one view the flows' human tasks need: approve, or reject with a reason. Thin: the decision goes
through flows.services (which lock, check maker-checker and the store permission, and complete the task).
The portal styles it and shows the request beside it (template `flows/<flow>/task.html` or the portal's own)."""

from __future__ import annotations

from django import forms
from django.http import HttpResponseRedirect
from django.utils.translation import gettext_lazy as _
from django.views import generic
from viewflow.views import FormLayoutMixin
from viewflow.workflow.flow.views import mixins

from core.errors import DomainError


class DecisionForm(forms.Form):
    APPROVE, REJECT = "approve", "reject"

    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=((APPROVE, _("Approve")), (REJECT, _("Reject"))),
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False, widget=forms.Textarea)


class DecisionView(
    FormLayoutMixin,
    mixins.TaskSuccessUrlMixin,
    mixins.TaskViewTemplateNames,
    generic.FormView,
):
    form_class = DecisionForm
    template_filename = "task.html"

    def form_valid(self, form: DecisionForm):
        from . import services  # flows.flows imports this module, and services the flows

        request_obj = self.request.activation.process.request
        decide = services.approve if form.cleaned_data["decision"] == DecisionForm.APPROVE else services.reject
        try:
            decide(request_obj, actor=self.request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            form.add_error(None if exc.field == "__all__" else (exc.field if exc.field in form.fields else None),
                           exc.message_text)  # fmt: skip
            return self.form_invalid(form)
        return HttpResponseRedirect(self.get_success_url())


decision_view = DecisionView.as_view()
