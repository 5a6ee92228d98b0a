"""Every transition of a request writes its history row, whoever calls it: the transition's `by` and
`reason` arguments, and the before/after values the caller left on the request (`_history_before`,
`_history_after`, e.g. a member change applied)."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _
from django_fsm.signals import post_transition

from core.errors import fail
from members.signals import store_roles_revoked

from .models import ApprovalRequest, MemberChangeRequest, RefundRequest, RequestTransition


@receiver(post_transition, dispatch_uid="flows.record_transition")
def record_transition(sender, instance, name, source, target, **kwargs) -> None:
    if not isinstance(instance, ApprovalRequest) or "exception" in kwargs:
        return
    method_kwargs = kwargs.get("method_kwargs") or {}
    actor = method_kwargs.get("by")
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    RequestTransition.objects.create(
        merchant_id=instance.merchant_id,
        content_type=ContentType.objects.get_for_model(instance),
        object_id=instance.pk,
        name=name,
        source=str(source or ""),
        target=str(target if target is not None else source),
        actor=actor,
        actor_label="" if actor else "system",
        reason=method_kwargs.get("reason", "") or "",
        before=getattr(instance, "_history_before", None) or {},
        after=getattr(instance, "_history_after", None) or {},
    )
    instance._history_before = instance._history_after = None


@receiver(m2m_changed, dispatch_uid="flows.frozen_m2m")
def refuse_m2m_change_after_submission(sender, instance, action, **kwargs) -> None:
    """The lines of a refund request and the rooms of a member change are part of what was submitted."""
    if sender not in (RefundRequest.lines.through, MemberChangeRequest.rooms.through):
        return
    if (
        action in ("pre_add", "pre_remove", "pre_clear")
        and isinstance(instance, ApprovalRequest)
        and instance.process_id
    ):
        raise fail(
            "lines" if isinstance(instance, RefundRequest) else "rooms",
            "request_frozen",
            _("A submitted request cannot be changed; withdraw it and submit a new one."),
        )


@receiver(store_roles_revoked, dispatch_uid="flows.return_tasks_out_of_reach")
def return_tasks_out_of_reach(sender, staff, store_ids, actor=None, reason: str = "", **kwargs) -> None:
    """A staff member lost permissions on stores (members.services): the tasks they claimed there and may no
    longer decide go back to the queue at once, in the same transaction, instead of waiting on someone who
    cannot decide them (and whom nobody else could take them from)."""
    from .services import return_tasks_out_of_reach as return_tasks

    return_tasks(staff.user, store_ids=store_ids, actor=actor, reason=reason)
