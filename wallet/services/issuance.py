"""Issuing benefits: the coupon, entitlement and voucher lots, points, VIP periods, and free issuance
(coupon batches, marketing vouchers, activity points)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import Entry
from members import services as member_services
from members.models import Merchant, Owner

from .. import rules
from ..accounts import (
    POINT,
    Purpose,
    grant_deferred_account,
    ledger_account,
    points_lot_detail,
    tally_legs,
    voucher_account,
)
from ..models import (
    ActivityPointsRule,
    CouponTemplate,
    EntitlementPackage,
    Grant,
    VipCardType,
    VipMembership,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)
from .checks import (
    check_actor,
    check_free_gift,
    check_member,
    check_same_merchant,
    clean_text,
    recheck_catalog,
    required_reason,
    wallet_settings,
)
from .limits import ApprovedRequest, limits_lifted, refused_approval
from .postings import lock_members


def check_coupon_limit(member: Owner, template: CouponTemplate, adding: int, field: str, pending: dict) -> None:
    """Refuse more coupons of a template than its per-member limit, counting those held and those
    already added by earlier lines or gifts of the same operation (`pending`)."""
    pending[template.pk] = pending.get(template.pk, 0) + adding
    if template.per_member_limit:
        lock_members([member.pk])  # count under the member's lock: parallel grants of the template queue here
        held = Grant.objects.filter(member=member, coupon_template=template).count()
        if held + pending[template.pk] > template.per_member_limit:
            raise fail(
                field,
                "coupon_limit",
                _("%(template)s is limited to %(limit)s per member; the member has %(held)s."),
                template=str(template),
                limit=template.per_member_limit,
                held=held,
            )


def check_template_active(
    template: CouponTemplate | VoucherTemplate | EntitlementPackage | VipCardType, field: str = "template"
) -> None:
    """What is sold or given (a coupon or voucher template, a package, a VIP card type) is still offered."""
    if not template.is_active:
        raise fail(field, "template_inactive", _("%(name)s is no longer offered."), name=str(template))


def new_coupon_grant(member: Owner, template: CouponTemplate, paid: int, source: str, now) -> Grant:
    return Grant(
        merchant=member.merchant, member=member, kind=Grant.Kind.COUPON, coupon_template=template,
        uses_total=template.uses, paid_fen=paid, valid_until=now + datetime.timedelta(days=template.valid_days),
        source_ref=source, created_at=now,
    )  # fmt: skip


def new_package_grants(member: Owner, package: EntitlementPackage, paid: int, source: str, now) -> list[Grant]:
    items = list(package.items.select_related("service").order_by("id"))
    if not items:
        raise fail("package", "package_empty", _("%(package)s has no services."), package=str(package))
    for it in items:
        check_same_merchant(it.service, member, "package")
    # The price paid is spread over the services by their list value, so each use refunds at what it cost.
    shares = rules.allocate(paid, [it.service.list_price_fen * it.quantity or 1 for it in items])
    valid_until = now + datetime.timedelta(days=package.valid_days) if package.valid_days else None
    return [
        Grant(merchant=member.merchant, member=member, kind=Grant.Kind.ENTITLEMENT, service=it.service,
              package=package, uses_total=it.quantity, paid_fen=share, valid_until=valid_until, source_ref=source,
              created_at=now)
        for it, share in zip(items, shares, strict=True)
    ]  # fmt: skip


def grant_issue_legs(merchant: Merchant, grants: list[Grant]) -> list:
    """Credit each grant's uses to its own account against the merchant's issuance account of the unit."""
    legs = []
    by_purpose: dict[tuple[str, str], list[Grant]] = {}
    for grant in grants:
        by_purpose.setdefault((grant.purpose, grant.unit), []).append(grant)
    for (purpose, unit), group in by_purpose.items():
        accounts = ledger.get_or_create_lot_accounts(
            merchant, purpose, unit, [(g.member_id, g.account_detail) for g in group]
        )
        issued = 0
        for grant in group:
            legs.append(ledger.increase(accounts[(grant.member_id, grant.account_detail)], grant.uses_total))
            issued += grant.uses_total
        legs.append(ledger.increase(ledger_account(merchant, Purpose.ISSUANCE, unit), issued))
    for grant in grants:
        if grant.paid_fen:
            legs.append(ledger.increase(grant_deferred_account(grant), grant.paid_fen))
    return legs


def points_legs_for_spend(member: Owner, settings: WalletSettings, now, eligible_fen: int) -> list:
    """Points for `eligible_fen` of spend at the member's level multiplier, into this year's lot."""
    multiplier = member.level.points_multiplier_pct if member.level_id else 100
    points = rules.points_for(eligible_fen, settings.points_per_yuan, multiplier)
    if points <= 0:
        return []
    return points_legs_for_count(member, settings, now, points)


def points_legs_for_count(member: Owner, settings: WalletSettings, now, points: int) -> list:
    """Points into this year's lot, counted as earned for levels (the lot's leg first)."""
    detail = points_lot_detail(timezone.localdate(now), settings.points_valid_years)
    lot = ledger_account(member.merchant, Purpose.POINTS, POINT, member=member, detail=detail)
    return [ledger.increase(lot, points), ledger.increase(ledger_account(member.merchant, Purpose.ISSUANCE, POINT), points),
            *tally_legs(member, points=points)]  # fmt: skip


def extend_vip(member: Owner, vip_type: VipCardType, source: str, now) -> VipMembership:
    """Buy or renew: a renewal extends from the current end, a new card starts now."""
    months = rules.PERIOD_MONTHS[vip_type.period]
    current = (
        VipMembership.objects.select_for_update()
        .filter(member=member, card_type=vip_type, status=VipMembership.Status.ACTIVE)
        .first()
    )
    if current is not None and current.ends_at > now:
        current.ends_at = rules.add_months(current.ends_at, months)
        current.save(update_fields=["ends_at"])
        return current
    if current is not None:  # lapsed but not yet swept by the expiry job
        current.status = VipMembership.Status.EXPIRED
        current.save(update_fields=["status"])
    return VipMembership.objects.create(
        merchant=member.merchant, member=member, card_type=vip_type, starts_at=now,
        ends_at=rules.add_months(now, months), source_ref=source,
    )  # fmt: skip


@dataclass
class IssueResult:
    issued: int
    skipped_at_limit: list[int]
    entry_ids: list[int]


@transaction.atomic
def issue_coupons(
    *,
    template: CouponTemplate,
    member_ids: Sequence[int],
    actor: AbstractBaseUser | None,
    reason: str,
    actor_label: str = "",
    batch_ref: str = "",
    approved_by_request: ApprovedRequest | None = None,
) -> IssueResult:
    """Give one coupon of `template` to each member (free: no money moves). Members at the template's
    per-member limit are skipped and reported. Thousands at once go through the ledger's bulk path:
    one entry per 2,000 grants. A coupon worth more than the merchant's free-gift limit is refused, unless
    `approved_by_request` names the approval request (for one member, under its `batch_ref`) the workflow
    carries out (limits.py)."""
    merchant = template.merchant
    terms = {"template": template, "member_ids": member_ids, "reason": reason, "batch_ref": batch_ref}
    reason = required_reason(reason, _("Say why the coupons are issued (e.g. new member, spend threshold)."))
    check_actor(actor, merchant)
    if approved_by_request is not None:
        # An approval covers one member's coupon under the request's own reference: a retry of it answers
        # with what it issued (the approval was used by then).
        if not batch_ref or len(member_ids) != 1:
            raise refused_approval()
        done = ledger_selectors.entries_for(merchant, "coupon_issue", batch_ref)
        if done.exists():
            return IssueResult(issued=0, skipped_at_limit=[], entry_ids=list(done.values_list("pk", flat=True)))
    check_template_active(template)
    member_ids = list(dict.fromkeys(member_ids))
    lock_members(member_ids)
    approved_for = Owner.objects.filter(pk=member_ids[0]).first() if approved_by_request is not None else None
    if not limits_lifted(approved_by_request, operation="issue_coupons", member=approved_for, terms=terms):
        check_free_gift(template, wallet_settings(merchant), "template")
    # The members are locked (id order, above) before counting what they hold: a parallel batch, recharge line
    # or plan gift of the same template for the same member waits there and then counts this batch's grants.
    members = {m.pk: m for m in Owner.objects.filter(merchant=merchant, pk__in=member_ids, status=Owner.Status.ACTIVE)}
    unknown = [m for m in member_ids if m not in members]
    if unknown:
        # Members of another merchant are reported like unknown ones (no names, no ids).
        raise fail("member_ids", "other_merchant", _("%(count)s of the members are not active members of %(merchant)s."),
                   count=len(unknown), merchant=str(merchant))  # fmt: skip
    skipped: list[int] = []
    if template.per_member_limit:
        held: dict[int, int] = {}
        for member_id in Grant.objects.filter(coupon_template=template, member_id__in=member_ids).values_list(
            "member_id", flat=True
        ):
            held[member_id] = held.get(member_id, 0) + 1
        skipped = [m for m in member_ids if held.get(m, 0) >= template.per_member_limit]
    eligible = [members[m] for m in member_ids if m not in set(skipped)]
    now = timezone.now()
    if batch_ref and ledger_selectors.entries_for(merchant, "coupon_issue", batch_ref).exists():
        # A redelivered batch (Celery at-least-once): it was issued already.
        done = ledger_selectors.entries_for(merchant, "coupon_issue", batch_ref)
        return IssueResult(issued=0, skipped_at_limit=[], entry_ids=list(done.values_list("pk", flat=True)))
    batch_ref = batch_ref or member_services.next_business_number(merchant, "fq")
    entry_ids = []
    for start in range(0, len(eligible), 2000):
        chunk = eligible[start : start + 2000]
        grants = [new_coupon_grant(m, template, 0, batch_ref, now) for m in chunk]
        Grant.objects.bulk_create(grants)
        entry = ledger.post_entry(
            merchant=merchant, legs=grant_issue_legs(merchant, grants), operation_type="coupon_issue",
            operation_ref=batch_ref, idempotency_key=f"coupon_issue:{batch_ref}:{start}", actor=actor,
            actor_label=actor_label, memo=reason[:200],
            member=chunk[0] if len(chunk) == 1 else None,
        )  # fmt: skip
        entry_ids.append(entry.pk)
    return IssueResult(issued=len(eligible), skipped_at_limit=skipped, entry_ids=entry_ids)


@transaction.atomic
def issue_voucher(
    *,
    template: VoucherTemplate,
    member: Owner,
    actor: AbstractBaseUser | None,
    reason: str,
    source_ref: str = "",
    approved_by_request: ApprovedRequest | None = None,
) -> Voucher:
    """Give a member a free voucher (marketing): its face value is a promotion expense. A voucher worth more
    than the merchant's free-gift limit is refused, unless `approved_by_request` names the approval request
    the workflow carries out (limits.py). `source_ref` names the issue (default: a new business number); the
    same member and reference again answers with the voucher issued the first time."""
    terms = {"template": template, "reason": reason, "source_ref": source_ref}
    reason = required_reason(reason, _("Say why the voucher is given."))
    check_member(member, None)
    check_actor(actor, member.merchant)
    check_same_merchant(template, member, "template")
    merchant = member.merchant
    ref = clean_text(source_ref, "source_ref", max_length=64)
    if ref:
        lock_members([member.pk])  # a repeat of the reference waits for the first, then finds its voucher
        issued = Voucher.objects.filter(merchant=merchant, member=member, source_ref=ref).first()
        if issued is not None and issued.template_id != template.pk:
            raise fail("source_ref", "idempotency_conflict",
                       _("This request key was already used for another voucher."))  # fmt: skip
        if issued is not None:
            return issued
    elif approved_by_request is not None:
        raise refused_approval()  # an approval is carried out under its own reference, once
    check_template_active(template)
    if not limits_lifted(approved_by_request, operation="issue_voucher", member=member, terms=terms):
        check_free_gift(template, wallet_settings(merchant), "template")
    now = timezone.now()
    ref = ref or member_services.next_business_number(merchant, "fq")
    voucher = Voucher.objects.create(
        merchant=merchant, member=member, template=template, face_value_fen=template.amount_fen, paid_fen=0,
        valid_from=now, valid_until=now + datetime.timedelta(days=template.valid_days), source_ref=ref,
    )  # fmt: skip
    ledger.post_entry(
        merchant=merchant, legs=[ledger.increase(voucher_account(voucher), template.amount_fen),
                                 ledger.increase(ledger_account(merchant, Purpose.BONUS_EXPENSE), template.amount_fen)],
        operation_type="voucher_issue", operation_ref=ref, idempotency_key=f"voucher_issue:{ref}", actor=actor,
        member=member, memo=reason[:200],
    )  # fmt: skip
    return voucher


@transaction.atomic
def award_activity_points(
    *,
    member: Owner,
    rule: ActivityPointsRule,
    occasion: str,
    actor: AbstractBaseUser | None,
    approved_by_request: ApprovedRequest | None = None,
) -> Entry:
    """Award a rule's points for one occasion (e.g. the activity's id). The same member, rule and
    occasion earn once: a repeat returns the first award. A rule above the merchant's points limit is
    refused, unless `approved_by_request` names the approval request the workflow carries out (limits.py)."""
    terms = {"rule": rule, "occasion": occasion}
    check_member(member, None)
    check_actor(actor, member.merchant)
    check_same_merchant(rule, member, "rule")
    merchant = member.merchant
    if approved_by_request is not None:
        # A retry of an approved award answers with it (the approval was used by then).
        done = ledger_selectors.entries_for(merchant, "points_award", f"{rule.code}:{occasion}"[:64])
        done = done.filter(member=member).first()
        if done is not None:
            return done
    if not rule.is_active:
        raise fail("rule", "rule_inactive", _("%(rule)s is no longer active."), rule=str(rule))
    settings = wallet_settings(merchant)
    if not limits_lifted(approved_by_request, operation="award_activity_points", member=member, terms=terms):
        recheck_catalog(rule, "rule", settings)  # points within max_activity_points (the rule's only catalog check)
    # The occasion is part of the award's reference (at most 64 characters with the rule's code).
    occasion = clean_text(occasion, "occasion", max_length=63 - len(rule.code))
    if not occasion:
        raise fail("occasion", "occasion_required", _("Say which occasion earns the points."))
    ref = f"{rule.code}:{occasion}"[:64]
    return ledger.post_entry(
        merchant=merchant, legs=points_legs_for_count(member, settings, timezone.now(), rule.points),
        operation_type="points_award", operation_ref=ref, idempotency_key=f"points_award:{member.pk}:{ref}",
        actor=actor, member=member, memo=rule.name,
    )  # fmt: skip
