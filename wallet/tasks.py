"""Celery tasks of the wallet: thin wrappers that call the services."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.contrib.auth import get_user_model

from . import services
from .models import CouponTemplate


@shared_task(name="wallet.expire_due_benefits")
def expire_due_benefits_task() -> dict:
    """Nightly (beat): expire vouchers, grants, points lots and VIP periods past their validity."""
    return asdict(services.expire_due_benefits())


@shared_task(name="wallet.issue_coupons", acks_late=True)
def issue_coupons_task(
    template_id: int, member_ids: list[int], actor_id: int | None, reason: str, batch_ref: str
) -> dict:
    """Issue one coupon to each of thousands of members through the ledger's bulk path. The batch
    reference makes a redelivered task a no-op (see services.issue_coupons)."""
    template = CouponTemplate.objects.select_related("merchant").get(pk=template_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    return asdict(services.issue_coupons(template=template, member_ids=member_ids, actor=actor, reason=reason,
                                         batch_ref=batch_ref, actor_label="" if actor else "system:batch"))  # fmt: skip
