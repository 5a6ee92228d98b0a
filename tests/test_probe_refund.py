"""Adversarial probes of the refund rules (issue 9, items 5-8): a member colluding with an operator tries
to keep value a refund should take back. Each test is a found defect or a guard of its class."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ledger import selectors as ledger_selectors
from tests.wallet_helpers import load_plan, make_shop
from wallet import models as wallet_models
from wallet import selectors, services
from wallet.models import CouponTemplate, EntitlementPackage, Grant, PackageItem, RechargePlan

pytestmark = pytest.mark.django_db

GENEROUS_PLANS = {"max_plan_free_value_bp": 10_000}


def load(shop, plan, member=None):
    return services.recharge(member=member or shop.member, store=shop.store, payment_method="wechat", actor=None,
                             items=[services.RechargeItem(kind="plan", plan=plan)])  # fmt: skip


def use(shop, grant, service, quantity=1):
    return services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=service, grant=grant, quantity=quantity)])  # fmt: skip


def refund_cash(shop):
    return services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退卡", actor=None)


def held_uses(member) -> int:
    return sum(h.balance for h in selectors.member_benefits(member).grants)


def free_coupon_template(shop) -> CouponTemplate:
    """A free-only template (price ¥0): 10 car washes at ¥30 list, worth ¥300 as a gift (docs §4.2)."""
    template = CouponTemplate.objects.create(merchant=shop.merchant, name="赠洗车10次", uses=10, price_fen=0)
    template.services.add(shop.car_wash)
    return template


def free_package(shop) -> EntitlementPackage:
    """A free-only package (price ¥0): 5 cleanings at ¥120 list, worth ¥600 as a gift."""
    package = EntitlementPackage.objects.create(merchant=shop.merchant, name="赠洁牙5次", price_fen=0)
    PackageItem.objects.create(package=package, service=shop.cleaning, quantity=5)
    return package


@pytest.mark.parametrize("gift", ["coupon", "package"])
def test_used_gifts_of_a_free_only_template_are_charged_at_their_list_value(gift):
    """Defect: a plan's gift of a template or package priced ¥0 is worth its uses at list price when the
    plan is validated (§4.2), but the cash refund charged its used uses at the price, ¥0: the member
    used ¥300 of car washes (or ¥600 of cleanings), then got the whole principal back."""
    shop = make_shop(**GENEROUS_PLANS)
    if gift == "coupon":
        plan = RechargePlan.objects.create(merchant=shop.merchant, name="充1000送洗车", pay_fen=100_000, bonus_fen=0,
                                           gift_coupon=free_coupon_template(shop), gift_coupon_quantity=1)  # fmt: skip
        service, list_value, uses = shop.car_wash, 30_000, 10
    else:
        plan = RechargePlan.objects.create(merchant=shop.merchant, name="充1000送洁牙", pay_fen=100_000, bonus_fen=0,
                                           gift_package=free_package(shop))  # fmt: skip
        service, list_value, uses = shop.cleaning, 60_000, 5
    load(shop, plan)
    grant = Grant.objects.get(member=shop.member)
    assert grant.paid_fen == 0
    use(shop, grant, service, quantity=uses)

    refund = refund_cash(shop)

    assert refund.gifts_charged_fen == list_value
    assert refund.paid_out_fen == 100_000 - list_value
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_cash_refund_of_a_gifted_lot_pays_nothing_and_takes_it_back():
    """Guard: a gift lot (paid ¥0) refunded in cash pays ¥0 and closes; its used lines stay charged."""
    shop = make_shop(**GENEROUS_PLANS)
    plan = RechargePlan.objects.create(merchant=shop.merchant, name="充1000送洗车卡", pay_fen=100_000, bonus_fen=0,
                                       gift_coupon=shop.car_wash_coupon, gift_coupon_quantity=1)  # fmt: skip
    load(shop, plan)
    grant = Grant.objects.get(member=shop.member)
    line = use(shop, grant, shop.car_wash).lines.get()
    refund = services.cash_refund_grant(grant=grant, payment_method="cash", reason="退券", actor=None)
    assert refund.paid_out_fen == 0
    assert held_uses(shop.member) == 0
    with pytest.raises(ValidationError) as exc:
        services.refund_consumption_lines(member=shop.member, lines=[line], reason="退", actor=None)
    assert {e.code for e in exc.value.error_dict["lines"]} == {"grant_refunded"}
    # The stored-value refund still charges the use made of the gift.
    assert refund_cash(shop).gifts_charged_fen == 2_000
    assert ledger_selectors.reconcile(shop.merchant).clean


def test_points_that_expired_before_the_purchase_do_not_excuse_its_points():
    """Defect: the cash refund counted every points expiry of the member as purchase points already gone,
    so points earned by an earlier direct payment that lapsed let the member keep as many points earned
    by buying the stored value that is now paid back (1,000 earned, only 500 taken back)."""
    shop = make_shop("principal_first", points_on_stored_value_purchase=True)
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.massage, quantity=1, direct_fen=20_000,
                                                     payment_method="cash")])  # fmt: skip
    assert selectors.member_totals(shop.member).points_balance == 200
    later = timezone.now() + datetime.timedelta(days=366 * 2)
    services.expire_due_benefits(now=later)  # the 200 points of the direct payment lapse
    with mock.patch("django.utils.timezone.now", return_value=later):
        load_plan(shop)  # ¥1,000 principal earns 1,000 points
        assert selectors.member_totals(shop.member).points_balance == 1_000
        refund = services.cash_refund_stored_value(member=shop.member, payment_method="cash", reason="退", actor=None)
    assert refund.paid_out_fen == 100_000
    assert selectors.member_totals(shop.member).points_balance == 0
    assert ledger_selectors.reconcile(shop.merchant).clean


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trial", range(6))
def test_cash_refund_racing_vip_purchase_plan_recharge_and_spend(trial):
    """Lock order (docs §5) between the cash refund of stored value, a paid VIP renewal of the type a plan
    gifts, a second plan recharge and a stored-value spend on one member: no deadlock, no error but a
    refusal, the ledger reconciles, and if the refund ran no gift lot is left usable."""
    import threading

    from tests.test_ledger_postgres import run_threads

    shop = make_shop(**GENEROUS_PLANS)
    shop.plan.gift_vip = shop.vip_year
    shop.plan.gift_coupon, shop.plan.gift_coupon_quantity = shop.car_wash_coupon, 1
    shop.plan.bonus_fen, shop.plan.pay_fen = 0, 300_000
    shop.plan.save()
    shop.car_wash_coupon.per_member_limit = 5
    shop.car_wash_coupon.save()
    load_plan(shop)
    refused: list[ValidationError] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            if i == 0:
                refund_cash(shop)
            elif i == 1:
                services.purchase_vip(member=shop.member, vip_type=shop.vip_year, payment_method="cash",
                                      store=shop.store, actor=None)  # fmt: skip
            elif i == 2:
                load_plan(shop)
            else:
                services.consume(member=shop.member, store=shop.store, actor=None,
                                 items=[services.ConsumptionItem(service=shop.massage, stored_value_fen=20_000)])  # fmt: skip
        except ValidationError as exc:
            with lock:
                refused.append(exc)

    assert run_threads(4, worker) == []
    assert ledger_selectors.reconcile(shop.merchant).clean
    if wallet_models.CashRefund.objects.filter(member=shop.member).exists():
        assert held_uses(shop.member) == 0
        assert not Grant.objects.filter(member=shop.member, paid_fen=0, status="active").exists()


def test_spent_bonus_is_forfeited_not_charged_the_merchants_spending_policy_decides():
    """Decided rule (docs/wallet.md §2.6): a plan's bonus is stored value, not a gift lot. What is left of
    it is forfeited at a cash refund; what was spent is not charged back. How much of each spend comes
    from bonus is the merchant's spending policy (SPEC: proportional by default); a merchant choosing
    bonus-first lets members spend the bonus before their principal. Coupons, packages and VIP time given
    by the plan are lots the member still holds, so their used part is charged."""
    shop = make_shop("bonus_first")
    load_plan(shop)  # ¥1,000 + ¥200 bonus
    services.consume(member=shop.member, store=shop.store, actor=None,
                     items=[services.ConsumptionItem(service=shop.massage, stored_value_fen=20_000)])  # fmt: skip
    refund = refund_cash(shop)
    assert (refund.paid_out_fen, refund.forfeited_bonus_fen) == (100_000, 0)
    proportional = make_shop("proportional")
    load_plan(proportional)
    services.consume(member=proportional.member, store=proportional.store, actor=None,
                     items=[services.ConsumptionItem(service=proportional.massage, stored_value_fen=20_000)])  # fmt: skip
    refund = refund_cash(proportional)
    # ¥200 spent proportionally: ¥166.66 of principal, ¥33.34 of bonus; the rest of the bonus is forfeited.
    assert (refund.paid_out_fen, refund.forfeited_bonus_fen) == (83_334, 16_666)


def test_a_level_set_by_hand_below_the_one_reached_by_spend_is_the_floor_of_the_downgrade():
    """Defect: 银卡 set by hand (no spend), then ¥500 spent reaches 金卡 automatically; refunding that
    spend took the member down to 普通, below the 银卡 the merchant gave by hand. The downgrade stops at
    the level set by hand."""
    from members.models import Level
    from members.services import update_owner

    shop = make_shop()
    Level.objects.create(merchant=shop.merchant, name="普通", rank=0)
    silver = Level.objects.create(merchant=shop.merchant, name="银卡", rank=1, upgrade_spend_fen=20_000)
    gold = Level.objects.create(merchant=shop.merchant, name="金卡", rank=2, upgrade_spend_fen=50_000)
    update_owner(shop.member, actor=None, level=silver, reason="店长特批")
    line = services.consume(member=shop.member, store=shop.store, actor=None,
                            items=[services.ConsumptionItem(service=shop.massage, quantity=3, direct_fen=60_000,
                                                            payment_method="cash")]).lines.get()  # fmt: skip
    shop.member.refresh_from_db()
    assert shop.member.level == gold
    services.refund_consumption_lines(member=shop.member, lines=[line], reason="退", actor=None)
    shop.member.refresh_from_db()
    assert shop.member.level == silver
