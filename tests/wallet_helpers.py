"""Catalog fixtures for wallet tests."""

from __future__ import annotations

from dataclasses import dataclass

from members.models import Merchant, Owner, Staff, Store
from tests.factories import MerchantFactory, StoreFactory, make_owner, make_staff
from wallet import services
from wallet.models import (
    CommissionKind,
    CouponTemplate,
    EntitlementPackage,
    PackageItem,
    RechargePlan,
    Service,
    ServiceCategory,
    VipCardType,
    VoucherTemplate,
    WalletSettings,
)


@dataclass
class Shop:
    merchant: Merchant
    store: Store
    member: Owner
    staff: Staff
    cleaning: Service  # 洁牙 ¥100, commission ¥10 fixed per use
    car_wash: Service  # 洗车 ¥30, commission 10%
    massage: Service  # 按摩 ¥200, no commission
    car_wash_coupon: CouponTemplate  # 10 uses for ¥200, covers car wash
    cleaning_package: EntitlementPackage  # cleaning ×5 for ¥500
    plan: RechargePlan  # pay 1000 get 200
    voucher: VoucherTemplate  # ¥50 voucher sold for ¥40
    vip_year: VipCardType


def make_shop(policy: str = "proportional", **settings) -> Shop:
    merchant = MerchantFactory()
    WalletSettings.objects.create(merchant=merchant, spending_policy=policy, **settings)
    store = StoreFactory(merchant=merchant)
    category = ServiceCategory.objects.create(merchant=merchant, name="服务")
    cleaning = Service.objects.create(merchant=merchant, category=category, name="洁牙", list_price_fen=12_000,
                                      member_price_fen=10_000, commission_kind=CommissionKind.FIXED,
                                      commission_value=1_000)  # fmt: skip
    car_wash = Service.objects.create(merchant=merchant, category=category, name="洗车", list_price_fen=3_000,
                                      member_price_fen=3_000, commission_kind=CommissionKind.PERCENT,
                                      commission_value=1_000)  # fmt: skip
    massage = Service.objects.create(merchant=merchant, category=category, name="按摩", list_price_fen=20_000,
                                     member_price_fen=20_000)  # fmt: skip
    coupon = CouponTemplate.objects.create(
        merchant=merchant, name="洗车10次卡", uses=10, price_fen=20_000, valid_days=30
    )
    coupon.services.add(car_wash)
    package = EntitlementPackage.objects.create(merchant=merchant, name="洁牙5次", price_fen=50_000, valid_days=365)
    PackageItem.objects.create(package=package, service=cleaning, quantity=5)
    plan = RechargePlan.objects.create(merchant=merchant, name="充1000送200", pay_fen=100_000, bonus_fen=20_000)
    voucher = VoucherTemplate.objects.create(
        merchant=merchant, name="50元代金券", amount_fen=5_000, price_fen=4_000, valid_days=30
    )
    vip_year = VipCardType.objects.create(merchant=merchant, name="年卡", period="year", price_fen=99_900)
    return Shop(
        merchant=merchant, store=store, member=make_owner(merchant), staff=make_staff(merchant, "clerk", stores=[store]),
        cleaning=cleaning, car_wash=car_wash, massage=massage, car_wash_coupon=coupon, cleaning_package=package,
        plan=plan, voucher=voucher, vip_year=vip_year,
    )  # fmt: skip


def load_plan(shop: Shop, member: Owner | None = None, **kwargs):
    return services.recharge(member=member or shop.member, store=shop.store, payment_method="wechat",
                             items=[services.RechargeItem(kind="plan", plan=shop.plan)], actor=None, **kwargs)  # fmt: skip


def spend_stored_value(shop: Shop, fen: int, service=None, member: Owner | None = None, **kwargs):
    """Consume `fen` worth of massage-like service from stored value (service priced so payable == fen)."""
    service = service or Service.objects.create(
        merchant=shop.merchant, category=shop.massage.category, name=f"服务{fen}-{Service.objects.count()}",
        list_price_fen=fen, member_price_fen=fen,
    )  # fmt: skip
    return services.consume(
        member=member or shop.member, store=shop.store, actor=None,
        items=[services.ConsumptionItem(service=service, stored_value_fen=fen)], **kwargs,
    )  # fmt: skip
