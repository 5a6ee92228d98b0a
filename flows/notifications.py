"""Notifications of the flows: written once per user and event (`dedupe_key`), rendered in the reader's
language when shown. The portal lists them now, the mini-program API later (flows.selectors)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from .models import ApprovalRequest, Notification

Kind = Notification.Kind

MESSAGES = {
    Kind.REMINDER: _("%(request)s %(number)s is waiting for your review."),
    Kind.ESCALATION: _("%(request)s %(number)s has waited past its deadline for review."),
    Kind.APPROVED: _("%(request)s %(number)s was approved."),
    Kind.REJECTED: _("%(request)s %(number)s was rejected: %(reason)s"),
    Kind.EXECUTED: _("%(request)s %(number)s was carried out."),
    Kind.FAILED: _("%(request)s %(number)s could not be carried out: %(reason)s"),
    Kind.ACTIVATED: _("%(name)s activated their account (%(number)s)."),
    Kind.TAKEN_BACK: _("%(request)s %(number)s was taken from your tasks back to the queue by %(by)s: %(reason)s"),
}


def notify(
    users: Iterable[AbstractBaseUser],
    kind: str,
    request: ApprovalRequest,
    *,
    event: str = "",
    **params: Any,
) -> int:
    """One notification of `kind` about `request` for each user, unless that user already has it
    (same request, kind and `event`): repeating a call writes nothing more. Returns how many were asked for."""
    users = [u for u in users if u is not None]
    if not users:
        return 0
    content_type = ContentType.objects.get_for_model(request)
    key = f"{kind}:{request._meta.label_lower}:{request.pk}:{event}"[:100]
    params = {"number": request.number, **params}
    Notification.objects.bulk_create(
        [
            Notification(
                user=user,
                merchant_id=request.merchant_id,
                kind=kind,
                content_type=content_type,
                object_id=request.pk,
                params=params,
                dedupe_key=key,
            )
            for user in {u.pk: u for u in users}.values()
        ],
        ignore_conflicts=True,
    )
    return len(users)


def render(notification: Notification) -> str:
    """The notification's text in the active language."""
    model = ContentType.objects.get_for_id(notification.content_type_id).model_class()
    params = {
        "request": capfirst(model._meta.verbose_name) if model else "",
        "number": "",
        "reason": "",
        "name": "",
        "by": "",
    }
    params.update(notification.params or {})
    return str(MESSAGES.get(notification.kind, "%(number)s")) % params
