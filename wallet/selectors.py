"""Reads of the wallet. Every amount comes from the ledger; nothing here is stored twice."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger.models import Account, Leg
from members.models import Merchant, Owner

from .accounts import Purpose, level_tally_accounts, points_lot_expiry_year
from .models import (
    CashRefund,
    Consumption,
    ConsumptionLine,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    Recharge,
    RechargePlan,
    Service,
    ServiceRecord,
    StoredValueCard,
    VipMembership,
    Voucher,
)


@dataclass(frozen=True)
class MemberTotals:
    """The totals seed 002 shows on a member (充值总额, 现金余额, 消费金额) and the other balances."""

    recharge_total_fen: int  # money taken in by recharges (before any refund)
    cash_balance_fen: int  # unused principal: what a cash refund would pay out
    bonus_balance_fen: int
    consumed_total_fen: int  # revenue from the member's consumptions, net of refunded lines
    refunded_cash_fen: int
    points_balance: int
    points_earned: int  # points credited by consumptions, recharges and awards, less those refunds took back


def _legs_of(member: Owner, purposes: list[str], operation_types: list[str]) -> int:
    return Leg.objects.filter(
        entry__member=member, entry__operation_type__in=operation_types, account__purpose__in=purposes,
        account__merchant_id=member.merchant_id,
    ).aggregate(t=Coalesce(Sum("amount"), 0))["t"]  # fmt: skip


def member_totals(member: Owner) -> MemberTotals:
    """Three queries whatever the member's history, but for the recharge and cash refund totals (sums of
    the member's cash legs): the consumed total and points earned are the member's level tallies
    (wallet.accounts), balances the ledger keeps."""
    balances = {}
    points_balance = 0
    for row in ledger_selectors.member_balances(member):
        if row.account.purpose == Purpose.POINTS:
            points_balance += row.balance
        else:
            balances[(row.account.purpose, row.account.detail)] = row.balance
    # Cash is debit-normal: debits of cash accounts in recharge entries are the money taken in.
    recharge_total = _legs_of(member, [Purpose.CASH], ["recharge"])
    refunded_cash = -_legs_of(member, [Purpose.CASH], ["cash_refund"])
    return MemberTotals(
        recharge_total_fen=recharge_total,
        cash_balance_fen=balances.get((Purpose.PRINCIPAL, ""), 0),
        bonus_balance_fen=balances.get((Purpose.BONUS, ""), 0),
        consumed_total_fen=balances.get((Purpose.SPEND, ""), 0),
        refunded_cash_fen=refunded_cash,
        points_balance=points_balance,
        points_earned=balances.get((Purpose.POINTS_EARNED, ""), 0),
    )


def level_totals(member: Owner) -> tuple[int, int]:
    """(consumed total in fen, points earned) that the member's level is decided by: the balances of the
    member's level tallies (one query, whatever the member's history)."""
    tallies = level_tally_accounts(member)
    current = ledger_selectors.balances([account for account in tallies if account is not None])
    spend, points = (current[account.pk] if account is not None else 0 for account in tallies)
    return spend, points


@dataclass
class HeldBenefit:
    label: str
    kind: str
    balance: int
    unit: str
    valid_until: object = None
    obj: object = None


@dataclass
class MemberBenefits:
    principal_fen: int = 0
    bonus_fen: int = 0
    stored_value_open: bool = False
    vouchers: list[HeldBenefit] = field(default_factory=list)
    grants: list[HeldBenefit] = field(default_factory=list)
    points: list[HeldBenefit] = field(default_factory=list)
    vip: list[VipMembership] = field(default_factory=list)


def member_benefits(member: Owner) -> MemberBenefits:
    """What the member holds now, with balances from the ledger (one query for all accounts)."""
    result = MemberBenefits()
    result.stored_value_open = StoredValueCard.objects.filter(
        member=member, status=StoredValueCard.Status.ACTIVE
    ).exists()
    vouchers = {v.account_detail: v for v in Voucher.objects.filter(member=member).select_related("template")}
    grants = {
        g.account_detail: g for g in Grant.objects.filter(member=member).select_related("coupon_template", "service")
    }
    for row in ledger_selectors.member_balances(member):
        account: Account = row.account
        if account.purpose == Purpose.PRINCIPAL:
            result.principal_fen = row.balance
        elif account.purpose == Purpose.BONUS:
            result.bonus_fen = row.balance
        elif account.purpose == Purpose.VOUCHER and row.balance and account.detail in vouchers:
            v = vouchers[account.detail]
            result.vouchers.append(HeldBenefit(v.template.name, "voucher", row.balance, "CNY", v.valid_until, v))
        elif account.purpose in (Purpose.COUPON, Purpose.ENTITLEMENT) and row.balance and account.detail in grants:
            g = grants[account.detail]
            result.grants.append(HeldBenefit(str(g), g.kind, row.balance, account.unit, g.valid_until, g))
        elif account.purpose == Purpose.POINTS and row.balance:
            result.points.append(
                HeldBenefit(f"points expiring end of {points_lot_expiry_year(account)}", "points", row.balance, "POINT")
            )
    result.vip = list(
        VipMembership.objects.filter(member=member, status="active", ends_at__gte=timezone.now()).select_related(
            "card_type"
        )
    )
    return result


def usable_grants(member: Owner, service: Service) -> QuerySet[Grant]:
    """Active, unexpired grants of the member that cover the service, soonest expiry first."""
    now = timezone.now()
    return (
        Grant.objects.filter(member=member, status=Grant.Status.ACTIVE)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=now))
        .filter(
            Q(kind=Grant.Kind.ENTITLEMENT, service=service)
            | Q(kind=Grant.Kind.COUPON, coupon_template__services=service)
        )
        .order_by("valid_until", "pk")
        .distinct()
    )


def recharges_of(member: Owner) -> QuerySet[Recharge]:
    return Recharge.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("lines")


def consumptions_of(member: Owner) -> QuerySet[Consumption]:
    return Consumption.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("lines__service")


def refundable_lines(member: Owner) -> QuerySet[ConsumptionLine]:
    return ConsumptionLine.objects.filter(
        consumption__member=member, consumption__merchant_id=member.merchant_id, status=ConsumptionLine.Status.NORMAL
    ).select_related("consumption", "service")


def refunds_of(member: Owner) -> tuple[QuerySet[EntitlementRefund], QuerySet[CashRefund]]:
    return (
        EntitlementRefund.objects.filter(merchant_id=member.merchant_id, member=member),
        CashRefund.objects.filter(merchant_id=member.merchant_id, member=member),
    )


def service_records_of(member: Owner) -> QuerySet[ServiceRecord]:
    return ServiceRecord.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("tags")


def services_for(merchant: Merchant) -> QuerySet[Service]:
    return Service.objects.filter(merchant=merchant, is_active=True).select_related("category")


def coupon_templates_for(merchant: Merchant) -> QuerySet[CouponTemplate]:
    return CouponTemplate.objects.filter(merchant=merchant, is_active=True)


def recharge_plans_for(merchant: Merchant) -> QuerySet[RechargePlan]:
    return RechargePlan.objects.filter(merchant=merchant, is_active=True).order_by("pay_fen", "pk")


def packages_for(merchant: Merchant) -> QuerySet[EntitlementPackage]:
    return EntitlementPackage.objects.filter(merchant=merchant, is_active=True).order_by("name", "pk")


def usable_grants_of(member: Owner) -> QuerySet[Grant]:
    """The member's active coupons and entitlements that have not expired (uses left: member_benefits)."""
    now = timezone.now()
    return (
        Grant.objects.filter(member=member, status=Grant.Status.ACTIVE)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=now))
        .select_related("coupon_template", "service")
    )


def usable_vouchers_of(member: Owner) -> QuerySet[Voucher]:
    now = timezone.now()
    return Voucher.objects.filter(
        member=member, status=Voucher.Status.ACTIVE, valid_from__lte=now, valid_until__gte=now
    ).select_related("template")
