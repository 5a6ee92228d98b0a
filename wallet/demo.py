"""Demo wallet data for `make run`: a catalog, recharges, consumptions, refunds and benefits about to
expire, so a newcomer sees real balances. Idempotent: it does nothing once the demo merchant has
recharges."""

from __future__ import annotations

import datetime
import random

from django.utils import timezone

from members.models import Merchant, Owner, Staff, Store

from . import services
from .models import (
    CommissionKind,
    CouponTemplate,
    EntitlementPackage,
    Grant,
    PackageItem,
    Recharge,
    RechargePlan,
    Service,
    ServiceCategory,
    VipCardType,
    VoucherTemplate,
    WalletSettings,
)


def load(merchant: Merchant, stores: list[Store], stdout) -> None:
    if Recharge.objects.filter(merchant=merchant).exists():
        stdout.write("Demo wallet data already there.")
        return
    WalletSettings.objects.get_or_create(merchant=merchant)
    care = ServiceCategory.objects.create(merchant=merchant, name="家政服务", tax_rate_bp=600)
    car = ServiceCategory.objects.create(merchant=merchant, name="汽车服务", tax_rate_bp=600)
    cleaning = Service.objects.create(merchant=merchant, category=care, name="洁牙", list_price_fen=12_000,
                                      member_price_fen=10_000, commission_kind=CommissionKind.FIXED,
                                      commission_value=1_000)  # fmt: skip
    dry_clean = Service.objects.create(merchant=merchant, category=care, name="干洗", list_price_fen=5_000,
                                       member_price_fen=4_000, commission_kind=CommissionKind.PERCENT,
                                       commission_value=800)  # fmt: skip
    massage = Service.objects.create(merchant=merchant, category=care, name="肩颈按摩", list_price_fen=16_800,
                                     member_price_fen=12_800, commission_kind=CommissionKind.PERCENT,
                                     commission_value=1_500)  # fmt: skip
    wash = Service.objects.create(merchant=merchant, category=car, name="洗车", list_price_fen=3_000,
                                  member_price_fen=2_500, commission_kind=CommissionKind.FIXED, commission_value=300)  # fmt: skip
    coupon = CouponTemplate.objects.create(merchant=merchant, name="洗车10次卡", uses=10, price_fen=20_000, valid_days=90,
                                           per_member_limit=5)  # fmt: skip
    coupon.services.add(wash)
    short_coupon = CouponTemplate.objects.create(
        merchant=merchant, name="干洗体验券", uses=2, price_fen=0, valid_days=3
    )
    short_coupon.services.add(dry_clean)
    package = EntitlementPackage.objects.create(merchant=merchant, name="洁牙5次+干洗10次", price_fen=80_000,
                                                valid_days=365)  # fmt: skip
    PackageItem.objects.create(package=package, service=cleaning, quantity=5)
    PackageItem.objects.create(package=package, service=dry_clean, quantity=10)
    plan = RechargePlan.objects.create(merchant=merchant, name="充1000送200", pay_fen=100_000, bonus_fen=20_000)
    big_plan = RechargePlan.objects.create(merchant=merchant, name="充3000送800+洗车卡", pay_fen=300_000, bonus_fen=80_000,
                                           gift_coupon=coupon, gift_coupon_quantity=1)  # fmt: skip
    voucher = VoucherTemplate.objects.create(merchant=merchant, name="50元代金券", amount_fen=5_000, valid_days=30)
    vip = VipCardType.objects.create(merchant=merchant, name="VIP年卡", period="year", price_fen=99_900)
    vip.services.add(wash)

    clerk = Staff.objects.filter(merchant=merchant, role="clerk").first()
    operator = Staff.objects.filter(merchant=merchant, role="operator").first()
    actor = operator.user if operator else None
    store = stores[0]
    rng = random.Random(7)
    owners = list(Owner.objects.filter(merchant=merchant).order_by("pk")[:24])
    counts = {"recharges": 0, "consumptions": 0, "refunds": 0}
    for i, owner in enumerate(owners):
        chosen = plan if i % 3 else big_plan
        services.recharge(member=owner, store=stores[i % 2], payment_method=rng.choice(["wechat", "alipay", "cash"]),
                          items=[services.RechargeItem(kind="plan", plan=chosen)], actor=actor)  # fmt: skip
        counts["recharges"] += 1
        if i % 4 == 0:
            services.recharge(member=owner, store=store, payment_method="wechat", actor=actor,
                              items=[services.RechargeItem(kind="package", package=package)])  # fmt: skip
            counts["recharges"] += 1
        if i % 6 == 0:
            services.purchase_vip(member=owner, vip_type=vip, payment_method="wechat", store=store, actor=actor)
        record = services.record_service(member=owner, staff=clerk, store=store, actor=actor, notes="到店服务",
                                         tags=["回头客"] if i % 2 else ["新客"])  # fmt: skip
        consumption = services.consume(
            member=owner, store=store, actor=actor, service_record=record,
            items=[services.funded_item(owner, massage, 1, funding="stored_value", staff=clerk)],
        )  # fmt: skip
        counts["consumptions"] += 1
        grant = Grant.objects.filter(member=owner, kind="entitlement", service=cleaning).first()
        if grant is not None:
            services.consume(member=owner, store=store, actor=actor,
                             items=[services.ConsumptionItem(service=cleaning, staff=clerk, grant=grant)])  # fmt: skip
            counts["consumptions"] += 1
        if i % 5 == 1:
            services.refund_consumption_lines(member=owner, lines=list(consumption.lines.all()),
                                              reason="服务不满意", actor=actor)  # fmt: skip
            counts["refunds"] += 1
        if i % 7 == 3:
            services.issue_voucher(template=voucher, member=owner, actor=actor, reason="生日礼")
    # Benefits about to expire, for the expiry job to find.
    services.issue_coupons(template=short_coupon, member_ids=[o.pk for o in owners[:10]], actor=actor,
                           reason="体验券（3天有效）")  # fmt: skip
    soon = timezone.now() - datetime.timedelta(days=1)
    Grant.objects.filter(coupon_template=short_coupon, member__in=owners[:3]).update(valid_until=soon)
    leaver = owners[-1]
    services.cash_refund_stored_value(member=leaver, payment_method="wechat", reason="业主搬离，退卡", actor=actor)
    counts["refunds"] += 1
    stdout.write(
        f"Demo wallet: {counts['recharges']} recharges, {counts['consumptions']} consumptions, "
        f"{counts['refunds']} refunds; 3 trial coupons already past their date for the expiry job."
    )
