"""Hypothesis (issue 9): whatever sequence of recharges (with a plan that gifts coupons and a package),
consumptions and refunds (line refunds, cash refunds of stored value and of lots), the value a member
has had, holds or was paid never exceeds what they paid plus the gifts configured for them, and every
refusal is for the reason the state explains (its field and code are checked, never swallowed)."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from ledger import selectors as ledger_selectors
from ledger.models import AccountBalance, Leg
from tests.factories import make_owner
from tests.wallet_helpers import make_shop
from wallet import accounts as wallet_accounts
from wallet import selectors, services
from wallet.models import (
    CashRefund,
    ConsumptionLine,
    Grant,
    Recharge,
    RechargeLine,
    RechargePlan,
    Service,
    StoredValueCard,
)


def refusal(exc: ValidationError) -> tuple[str, str]:
    """The (field, code) of a refusal with a single error."""
    [(field, errors)] = exc.error_dict.items()
    return field, errors[0].code


def machine_for(policy: str):
    class RefundMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            # Plans may give up to their whole price (the limit's ceiling) so that the gifts weigh heavily.
            self.shop = shop = make_shop(policy, max_plan_free_value_bp=10_000)
            # ¥1,000 + ¥100 bonus, with 1 car-wash coupon (¥200 for 10) and the cleaning package (¥500 for 5).
            self.plan = RechargePlan.objects.create(
                merchant=shop.merchant, name="充1000送礼", pay_fen=100_000, bonus_fen=10_000,
                gift_coupon=shop.car_wash_coupon, gift_coupon_quantity=1, gift_package=shop.cleaning_package,
            )  # fmt: skip
            self.gift_value = shop.car_wash_coupon.price_fen + shop.cleaning_package.price_fen
            self.members = [shop.member, make_owner(shop.merchant)]
            self.priced = [
                Service.objects.create(merchant=shop.merchant, category=shop.massage.category, name=f"p{fen}",
                                       list_price_fen=fen, member_price_fen=fen)
                for fen in (1, 333, 29_999, 90_000)
            ]  # fmt: skip
            self.lines: list[ConsumptionLine] = []

        def _member(self, i: int):
            member = self.members[i]
            member.refresh_from_db()
            return member

        def _card_open(self, member) -> bool | None:
            card = StoredValueCard.objects.filter(member=member).first()
            return None if card is None else card.status == StoredValueCard.Status.ACTIVE

        def _card_refusal(self, member) -> str | None:
            """The code a use of the card is refused with, by the state: none yet, or closed."""
            return {None: "card_missing", False: "card_closed", True: None}[self._card_open(member)]

        # ------------------------------------------------------------ recharges

        @rule(who=st.integers(0, 1), quantity=st.integers(1, 2))
        def recharge_plan(self, who, quantity):
            member = self._member(who)
            try:
                services.recharge(member=member, store=self.shop.store, payment_method="cash", actor=None,
                                  items=[services.RechargeItem(kind="plan", plan=self.plan, quantity=quantity)])  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == ("stored_value", "card_closed") and self._card_open(member) is False, exc
                return
            assert self._card_open(member), "a closed card took a recharge"

        @rule(who=st.integers(0, 1), principal=st.integers(1, 150_000), bonus=st.integers(0, 30_000))
        def recharge_stored_value(self, who, principal, bonus):
            member = self._member(who)
            settings = self.shop.merchant.wallet_settings
            over_limit = bonus * 10_000 > principal * settings.max_manual_bonus_bp
            try:
                services.recharge(
                    member=member, store=self.shop.store, payment_method="cash", actor=None,
                    items=[services.RechargeItem(kind="stored_value", amount_fen=principal, bonus_fen=bonus)],
                )  # fmt: skip
            except ValidationError as exc:
                if over_limit:
                    assert refusal(exc) == ("items[0].bonus_fen", "free_value_over_limit"), exc
                else:
                    assert refusal(exc) == ("stored_value", "card_closed") and self._card_open(member) is False, exc
                return
            assert not over_limit and self._card_open(member), "a recharge the state refuses was taken"

        @rule(who=st.integers(0, 1))
        def buy_coupon(self, who):
            services.recharge(member=self._member(who), store=self.shop.store, payment_method="wechat", actor=None,
                              items=[services.RechargeItem(kind="coupon", coupon_template=self.shop.car_wash_coupon)])  # fmt: skip

        # ------------------------------------------------------------ consumption

        @rule(who=st.integers(0, 1), service=st.integers(0, 3), quantity=st.integers(1, 2))
        def spend_stored_value(self, who, service, quantity):
            member = self._member(who)
            svc = self.priced[service]
            fen = services.unit_price_for(member, svc) * quantity
            benefits = selectors.member_benefits(member)
            if self._card_refusal(member):  # no card, or closed by a cash refund
                expected = ("stored_value", self._card_refusal(member))
            elif fen > benefits.principal_fen + benefits.bonus_fen:  # an overdraft
                expected = ("items[0].stored_value_fen", "stored_value_insufficient")
            else:
                expected = None
            try:
                consumption = services.consume(
                    member=member, store=self.shop.store, actor=None,
                    items=[services.ConsumptionItem(service=svc, quantity=quantity, stored_value_fen=fen)],
                )  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == expected, exc
                return
            assert expected is None, f"spent although {expected}"
            self.lines.extend(consumption.lines.all())

        def _active_grant(self, pick: int) -> Grant | None:
            """The pick-th active lot of this merchant (picked by number: the database is not a strategy)."""
            active = list(Grant.objects.filter(merchant=self.shop.merchant, status="active").order_by("pk"))
            return active[pick % len(active)] if active else None

        @rule(pick=st.integers(0, 1_000), quantity=st.integers(1, 3))
        def use_grant(self, pick, quantity):
            grant = self._active_grant(pick)
            if grant is None:
                return
            member = self._member(self.members.index(grant.member))
            service = self.shop.car_wash if grant.kind == "coupon" else self.shop.cleaning
            left = ledger_selectors.balance(wallet_accounts.grant_account(grant))
            if grant.valid_until is not None and grant.valid_until < timezone.now():  # not swept yet
                expected = ("items[0].grant", "grant_expired")
            elif quantity > left:  # not enough uses left
                expected = ("items[0].quantity", "grant_uses_insufficient")
            else:
                expected = None
            try:
                consumption = services.consume(member=member, store=self.shop.store, actor=None,
                                               items=[services.ConsumptionItem(service=service, grant=grant,
                                                                               quantity=quantity)])  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == expected, exc
                return
            assert expected is None, f"used although {expected}"
            self.lines.extend(consumption.lines.all())

        # ------------------------------------------------------------ refunds

        @precondition(lambda self: self.lines)
        @rule(data=st.data())
        def refund_line(self, data):
            line = data.draw(st.sampled_from(self.lines))
            line.refresh_from_db()
            member = line.consumption.member
            grant = Grant.objects.get(pk=line.grant_id) if line.grant_id else None
            try:
                services.refund_consumption_lines(member=member, lines=[line], reason="random", actor=None)
            except ValidationError as exc:
                field, code = refusal(exc)
                assert field == "lines", exc
                if line.status == ConsumptionLine.Status.REFUNDED:
                    assert code == "line_already_refunded"
                elif grant is not None and grant.status in ("refunded", "revoked"):
                    assert code == {"refunded": "grant_refunded", "revoked": "grant_revoked"}[grant.status]
                elif (line.principal_fen or line.bonus_fen) and not self._card_open(member):
                    assert code == "card_closed"
                elif code == "line_points_spent":  # the points lot it earned into holds less than it earned
                    lot = Leg.objects.get(entry_id=line.entry_id, account__purpose="points").account
                    assert ledger_selectors.balance(lot) < line.points
                else:
                    raise AssertionError(f"refused for no reason the state explains: {exc}") from exc

        @rule(who=st.integers(0, 1))
        def cash_refund_card(self, who):
            member = self._member(who)
            benefits = selectors.member_benefits(member)
            try:
                services.cash_refund_stored_value(member=member, payment_method="cash", reason="r", actor=None)
            except ValidationError as exc:
                field, code = refusal(exc)
                assert field == "stored_value", exc
                if self._card_refusal(member):
                    assert code == self._card_refusal(member), exc
                elif code == "nothing_to_refund":
                    assert benefits.principal_fen == benefits.bonus_fen == 0
                else:  # used plan gifts (lots given for ¥0) at list price are worth more than the principal
                    used_gifts = ConsumptionLine.objects.filter(consumption__member=member, status="normal",
                                                                grant__paid_fen=0)  # fmt: skip
                    assert code == "gifts_exceed_refund" and used_gifts.exists(), exc
                return
            assert not (benefits.principal_fen == benefits.bonus_fen == 0), "refunded an empty card"
            assert not self._card_open(member)
            held_gifts = Grant.objects.filter(member=member, status="active", paid_fen=0,
                                              source_ref__in=Recharge.objects.filter(member=member).values("number"))  # fmt: skip
            assert not held_gifts.exists()  # no gift of a refunded plan stays usable

        @rule(pick=st.integers(0, 1_000))
        def cash_refund_grant(self, pick):
            grant = self._active_grant(pick)
            if grant is None:
                return
            left = ledger_selectors.balance(wallet_accounts.grant_account(grant))
            try:
                services.cash_refund_grant(grant=grant, payment_method="cash", reason="r", actor=None)
            except ValidationError as exc:
                assert refusal(exc) == ("grant", "grant_used_up") and left == 0, exc
                return
            assert left > 0, "a used-up lot was refunded"

        @rule(days=st.sampled_from([0, 40, 800]))
        def expire(self, days):
            services.expire_due_benefits(now=timezone.now() + datetime.timedelta(days=days))

        # ------------------------------------------------------------ the promise

        def _list_value(self, grant: Grant) -> int:
            return grant.coupon_template.price_fen if grant.kind == "coupon" else self.shop.cleaning_package.price_fen

        def _obtained(self, member) -> int:
            """Value consumed (net of refunded lines) + value still held + cash paid out."""
            value = 0
            for line in ConsumptionLine.objects.filter(consumption__member=member, status="normal").select_related(
                "grant__coupon_template"
            ):
                if line.grant is None:
                    value += line.payable_fen
                elif line.grant.paid_fen:
                    value += line.deferred_fen  # the money the use recognised
                else:
                    value += self._list_value(line.grant) * line.uses // line.grant.uses_total
            benefits = selectors.member_benefits(member)
            value += benefits.principal_fen + benefits.bonus_fen
            for held in benefits.grants:
                grant = held.obj
                if grant.paid_fen:
                    value += ledger_selectors.balance(wallet_accounts.grant_deferred_account(grant))
                else:
                    value += self._list_value(grant) * held.balance // grant.uses_total
            value += CashRefund.objects.filter(member=member).aggregate(t=Sum("paid_out_fen"))["t"] or 0
            return value

        def _allowed(self, member) -> int:
            """Paid in, plus the bonus not forfeited, plus the plan gifts unless the plans were refunded."""
            recharges = Recharge.objects.filter(member=member)
            paid = recharges.aggregate(t=Sum("paid_total_fen"))["t"] or 0
            bonus = recharges.aggregate(t=Sum("bonus_total_fen"))["t"] or 0
            forfeited = CashRefund.objects.filter(member=member).aggregate(t=Sum("forfeited_bonus_fen"))["t"] or 0
            plans = RechargeLine.objects.filter(recharge__member=member, kind="plan").aggregate(t=Sum("quantity"))["t"]
            gifts = (plans or 0) * self.gift_value if self._card_open(member) else 0
            return paid + bonus - forfeited + gifts

        @invariant()
        def never_more_than_paid_plus_gifts(self):
            for member in self.members:
                obtained, allowed = self._obtained(member), self._allowed(member)
                assert obtained <= allowed, f"member obtained {obtained} fen, only {allowed} paid in or given"
            assert not AccountBalance.objects.filter(account__merchant=self.shop.merchant, balance__lt=0).exists()
            report = ledger_selectors.reconcile(self.shop.merchant)
            assert report.clean, report.problems

    return RefundMachine


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["proportional", "principal_first"])
def test_refunds_never_leave_more_than_paid_plus_gifts(policy):
    run_state_machine_as_test(
        machine_for(policy),
        settings=settings(max_examples=15, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )  # fmt: skip
