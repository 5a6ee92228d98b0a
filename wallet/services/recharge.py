"""Recharge (充值, cz…): money in, and what it buys."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from ledger import services as ledger
from members import services as member_services
from members.models import Owner, Store

from .. import rules
from ..accounts import (
    Purpose,
    ledger_account,
    prefetch,
    recharge_specs,
    stored_value_accounts,
    voucher_account,
)
from ..models import (
    CouponTemplate,
    EntitlementPackage,
    Grant,
    Recharge,
    RechargeLine,
    RechargePlan,
    VipCardType,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)
from .checks import (
    check_benefit_count,
    check_ceiling,
    check_fen,
    check_free_gift,
    check_kind,
    check_lines,
    check_member,
    check_payment_method,
    check_quantity,
    check_same_merchant,
    check_some_lines,
    clean_text,
    recheck_catalog,
    user_or_none,
    wallet_settings,
)
from .idempotency import (
    idempotent,
)
from .issuance import (
    check_coupon_limit,
    check_template_active,
    extend_vip,
    grant_issue_legs,
    new_coupon_grant,
    new_package_grants,
    points_legs_for_spend,
)
from .limits import ApprovedRequest, limits_lifted
from .postings import Postings, lock_card, lock_members, merge_legs


@dataclass
class RechargeItem:
    """One recharge line. kind: stored_value (amount_fen of principal, optional bonus_fen), plan,
    coupon, package, voucher or vip (with the matching template)."""

    kind: str
    quantity: int = 1
    amount_fen: int = 0
    bonus_fen: int = 0
    discount_bp: int = 10000
    plan: RechargePlan | None = None
    coupon_template: CouponTemplate | None = None
    package: EntitlementPackage | None = None
    voucher_template: VoucherTemplate | None = None
    vip_type: VipCardType | None = None


@idempotent(Recharge)
@transaction.atomic
def recharge(
    *,
    member: Owner,
    store: Store | None,
    payment_method: str,
    items: Sequence[RechargeItem],
    actor: AbstractBaseUser | None,
    idempotency_key: str | None = None,
    note: str = "",
    approved_by_request: ApprovedRequest | None = None,
) -> Recharge:
    """Take money in and credit what it buys: principal and bonus, coupons, entitlement packages,
    vouchers, VIP periods. A manual bonus, manual discount or template priced 0 above the merchant's limits
    is refused, unless `approved_by_request` names the approval request the workflow carries out (limits.py)."""
    merchant = member.merchant
    terms = {"store": store, "payment_method": payment_method, "items": items, "note": note,
             "idempotency_key": idempotency_key}  # fmt: skip
    note = clean_text(note, "note", max_length=200)
    check_member(member, store)
    check_payment_method(payment_method)
    items = check_some_lines(check_lines(items, RechargeItem))
    # Member first, as every operation on what the member holds (docs §5): a VIP renewal or plan recharge
    # locks VIP rows and creates ledger accounts a cash refund of stored value (member → card → VIP) also
    # takes; without the member lock the two deadlocked on PostgreSQL.
    lock_members([member.pk])
    lifted = limits_lifted(approved_by_request, operation="recharge", member=member, terms=terms)
    now = timezone.now()
    settings = wallet_settings(merchant)
    number = member_services.next_business_number(merchant, "cz")
    postings = Postings([])
    lines: list[RechargeLine] = []
    principal_total = bonus_total = list_total = paid_total = 0
    revenue_total = promo_total = manual_bonus_total = 0
    pending_coupons: dict[int, int] = {}
    free_gifts = [0]  # free value of templates priced 0 sold so far (docs/wallet.md §4.1)
    grants: list[Grant] = []
    vouchers: list[Voucher] = []
    vip_purchases: list[VipCardType] = []

    for i, item in enumerate(items, start=1):
        f = f"items[{i - 1}]"
        quantity = check_quantity(item.quantity, f"{f}.quantity")
        if (
            isinstance(item.discount_bp, bool)
            or not isinstance(item.discount_bp, int)
            or not 1 <= item.discount_bp <= 10000
        ):
            raise fail(
                f"{f}.discount_bp", "discount_invalid",
                _("The discount is in basis points from 1 to 10000 (10000 = no discount)."),
            )  # fmt: skip
        if not lifted and 10000 - item.discount_bp > settings.max_manual_discount_bp:
            raise fail(
                f"{f}.discount_bp", "free_value_over_limit",
                _("At most %(limit)s%% off may be given by hand on a recharge line."),
                limit=f"{settings.max_manual_discount_bp / 100:g}",
            )  # fmt: skip
        line = RechargeLine(line_no=i, kind=item.kind, quantity=quantity, discount_bp=item.discount_bp)
        if item.kind in (RechargeLine.Kind.STORED_VALUE, RechargeLine.Kind.PLAN):
            if item.discount_bp != 10000:
                raise fail(
                    f"{f}.discount_bp", "discount_not_allowed",
                    _("Stored value is loaded at face value; use a plan's bonus to promote it."),
                )  # fmt: skip
            if item.kind == RechargeLine.Kind.STORED_VALUE:
                unit_price = check_fen(item.amount_fen, f"{f}.amount_fen", allow_zero=False)
                bonus = check_fen(item.bonus_fen, f"{f}.bonus_fen") * quantity
                manual_bonus_total += bonus
                if not lifted:
                    _check_manual_bonus(bonus, unit_price * quantity, manual_bonus_total, settings, f"{f}.bonus_fen")
            else:
                plan = item.plan
                check_kind(plan, RechargePlan, f"{f}.plan")
                if plan is None:
                    raise fail(
                        f"{f}.plan", "choose_kind", _("Choose a %(kind)s."), kind=RechargePlan._meta.verbose_name
                    )
                if not plan.is_active:
                    raise fail(f"{f}.plan", "plan_inactive", _("%(plan)s is no longer offered."), plan=str(plan))
                check_same_merchant(plan, member, f"{f}.plan")
                for gift in (plan.gift_coupon, plan.gift_package, plan.gift_vip):
                    check_same_merchant(gift, member, f"{f}.plan")
                recheck_catalog(plan, f"{f}.plan", settings)  # bonus and gifts within the plan share
                line.plan = plan
                unit_price, bonus = plan.pay_fen, plan.bonus_fen * quantity
                if plan.gift_coupon_id and plan.gift_coupon_quantity:
                    gifts = plan.gift_coupon_quantity * quantity
                    check_benefit_count(len(grants) + gifts, f"{f}.quantity")
                    check_coupon_limit(member, plan.gift_coupon, gifts, f"{f}.plan", pending_coupons)
                    for _n in range(gifts):
                        grants.append(new_coupon_grant(member, plan.gift_coupon, 0, number, now))
                if plan.gift_package_id:
                    for _n in range(quantity):
                        grants.extend(new_package_grants(member, plan.gift_package, 0, number, now))
                        check_benefit_count(len(grants), f"{f}.quantity")
                if plan.gift_vip_id:
                    vip_purchases.extend([plan.gift_vip] * quantity)
            amount = unit_price * quantity
            line.unit_price_fen, line.amount_fen, line.bonus_fen = unit_price, amount, bonus
            principal_total += amount
            bonus_total += bonus
        elif item.kind == RechargeLine.Kind.COUPON:
            template = _priced_line(line, item, "coupon_template", member, f, settings, free_gifts, lifted)
            check_benefit_count(len(grants) + quantity, f"{f}.quantity")
            check_coupon_limit(member, template, quantity, f"{f}.quantity", pending_coupons)
            shares = rules.allocate(line.amount_fen, [1] * quantity)
            grants.extend(new_coupon_grant(member, template, share, number, now) for share in shares)
        elif item.kind == RechargeLine.Kind.PACKAGE:
            package = _priced_line(line, item, "package", member, f, settings, free_gifts, lifted)
            for share in rules.allocate(line.amount_fen, [1] * quantity):
                grants.extend(new_package_grants(member, package, share, number, now))
                check_benefit_count(len(grants), f"{f}.quantity")
        elif item.kind == RechargeLine.Kind.VOUCHER:
            template = _priced_line(line, item, "voucher_template", member, f, settings, free_gifts, lifted)
            check_benefit_count(len(vouchers) + quantity, f"{f}.quantity")
            face_total = template.amount_fen * quantity
            if line.amount_fen > face_total:
                raise fail(
                    f"{f}.voucher_template", "voucher_price_over_face",
                    _("A voucher is not sold for more than its face value."),
                )  # fmt: skip
            for share in rules.allocate(line.amount_fen, [1] * quantity):
                vouchers.append(
                    Voucher(merchant=merchant, member=member, template=template, face_value_fen=template.amount_fen,
                            paid_fen=share, valid_from=now, valid_until=now + datetime.timedelta(days=template.valid_days),
                            source_ref=number)
                )  # fmt: skip
            promo_total += face_total - line.amount_fen
        elif item.kind == RechargeLine.Kind.VIP:
            vip_type = _priced_line(line, item, "vip_type", member, f, settings, free_gifts, lifted)
            vip_purchases.extend([vip_type] * quantity)
            revenue_total += line.amount_fen
        else:
            raise fail(f"{f}.kind", "line_kind_unknown", _("Unknown kind of recharge line; use one of %(kinds)s."),
                       kinds=", ".join(RechargeLine.Kind.values))  # fmt: skip
        list_total += line.unit_price_fen * quantity
        paid_total += line.amount_fen
        check_ceiling(paid_total, settings.max_recharge_fen, "items", _("recharge"))
        lines.append(line)

    if paid_total <= 0:
        raise fail("items", "amount_not_positive", _("A recharge must take a positive amount of money."))

    prefetch(merchant, recharge_specs(member, payment_method, settings.points_valid_years, now))
    if principal_total or bonus_total:
        lock_card(member, create=True)
        principal, bonus_account = stored_value_accounts(member)
        postings.add(ledger.increase(principal, principal_total))
        postings.add(ledger.increase(bonus_account, bonus_total))
        postings.add(ledger.increase(ledger_account(merchant, Purpose.BONUS_EXPENSE), bonus_total))
    postings.add(ledger.increase(ledger_account(merchant, Purpose.CASH, detail=payment_method), paid_total))
    postings.add(ledger.increase(ledger_account(merchant, Purpose.REVENUE), revenue_total))
    if vouchers:
        Voucher.objects.bulk_create(vouchers)
        for voucher in vouchers:
            postings.add(ledger.increase(voucher_account(voucher), voucher.face_value_fen))
        postings.add(ledger.increase(ledger_account(merchant, Purpose.BONUS_EXPENSE), promo_total))
    if grants:
        Grant.objects.bulk_create(grants)
        postings.legs.extend(grant_issue_legs(merchant, grants))
    if settings.points_on_stored_value_purchase and principal_total:
        postings.legs.extend(points_legs_for_spend(member, settings, now, principal_total))

    entry = ledger.post_entry(
        merchant=merchant, legs=merge_legs(postings.legs), operation_type="recharge", operation_ref=number,
        idempotency_key=f"recharge:{number}", actor=actor, store=store, member=member, memo=note[:200],
    )  # fmt: skip
    record = Recharge.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=user_or_none(actor), created_at=now,
        idempotency_key=idempotency_key, note=note, payment_method=payment_method, list_total_fen=list_total,
        paid_total_fen=paid_total, bonus_total_fen=bonus_total, entry_id=entry.pk,
    )  # fmt: skip
    for line in lines:
        line.recharge = record
    RechargeLine.objects.bulk_create(lines)
    for vip_type in vip_purchases:
        extend_vip(member, vip_type, number, now)
    return record


def _check_manual_bonus(bonus: int, paid: int, running_total: int, settings: WalletSettings, field: str) -> None:
    """A bonus typed in by hand: at most max_manual_bonus_bp of the stored value it comes with, and at
    most max_manual_bonus_fen over the whole recharge. A plan's bonus is configured, so not counted."""
    share = paid * settings.max_manual_bonus_bp // 10000
    if bonus > share or running_total > settings.max_manual_bonus_fen:
        raise fail(
            field, "free_value_over_limit",
            _("A bonus of %(bonus)s is over the limit: at most %(share)s%% of the stored value paid (%(allowed)s "
              "here) and %(cap)s per recharge. Use a recharge plan."),
            bonus=yuan(bonus), share=f"{settings.max_manual_bonus_bp / 100:g}", allowed=yuan(share),
            cap=yuan(settings.max_manual_bonus_fen),
        )  # fmt: skip


_SOLD = {
    "coupon_template": CouponTemplate,
    "package": EntitlementPackage,
    "voucher_template": VoucherTemplate,
    "vip_type": VipCardType,
}


def _priced_line(
    line: RechargeLine,
    item: RechargeItem,
    attr: str,
    member: Owner,
    field: str,
    settings: WalletSettings,
    free_gifts: list[int],
    lifted: bool = False,
):
    """Validate the catalog item a recharge line sells (chosen, active, this merchant's), put it on
    the line and price the line: quantity × price × discount, rounded half up. A template priced 0 is
    a gift, bounded like one given free: all such units of the recharge together at most max_free_gift_fen
    (`free_gifts`: a one-element running total), unless the limits are `lifted` for an approved request."""
    target = getattr(item, attr)
    check_kind(target, _SOLD[attr], f"{field}.{attr}")
    if target is None:
        raise fail(f"{field}.{attr}", "choose_kind", _("Choose a %(kind)s."), kind=_SOLD[attr]._meta.verbose_name)
    check_template_active(target, f"{field}.{attr}")
    check_same_merchant(target, member, f"{field}.{attr}")
    if not target.price_fen and not lifted:
        free_gifts[0] = check_free_gift(target, settings, f"{field}.{attr}", line.quantity, free_gifts[0])
    recheck_catalog(target, f"{field}.{attr}", settings)  # sold below face or list value within the plan share
    setattr(line, attr, target)
    line.unit_price_fen = target.price_fen
    line.amount_fen = rules.apply_rate_bp(target.price_fen * line.quantity, item.discount_bp)
    return target


def purchase_vip(
    *, member: Owner, vip_type: VipCardType, payment_method: str, store: Store | None, actor, idempotency_key=None
) -> Recharge:
    """VIP purchase or renewal: a recharge with one VIP line."""
    return recharge(member=member, store=store, payment_method=payment_method, actor=actor,
                    items=[RechargeItem(kind="vip", vip_type=vip_type)], idempotency_key=idempotency_key)  # fmt: skip
