"""Hypothesis: random recharges, consumptions, refunds, cash refunds and expiries under each spending
policy keep the wallet's promises. A rule that is refused asserts why: the refusal's field and code are
the one the model state explains, and an operation the state allows is never refused."""

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
    EntitlementRefund,
    Grant,
    RechargeLine,
    Service,
    StoredValueCard,
)


def refusal(exc: ValidationError) -> tuple[str, str]:
    """The (field, code) of a refusal with a single error."""
    [(field, errors)] = exc.error_dict.items()
    return field, errors[0].code


def card_refusal(member) -> str | None:
    """Why the member's stored-value card cannot be used, by the state: none yet, or closed."""
    card = StoredValueCard.objects.filter(member=member).first()
    if card is None:
        return "card_missing"
    return "card_closed" if card.status == StoredValueCard.Status.CLOSED else None


def grant_refusal(grant: Grant) -> str | None:
    """Why a lot the database holds as active cannot give a use or be refunded: its validity has ended (the
    expiry job has not swept it). Uses left are judged by each rule."""
    if grant.valid_until is not None and grant.valid_until < timezone.now():
        return "grant_expired"
    return None


def machine_for(policy: str):
    class WalletMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.shop = make_shop(policy)
            self.members = [self.shop.member, make_owner(self.shop.merchant)]
            self.priced = [
                Service.objects.create(merchant=self.shop.merchant, category=self.shop.massage.category,
                                       name=f"p{fen}", list_price_fen=fen, member_price_fen=fen)
                for fen in (1, 333, 5_000, 29_999)
            ]  # fmt: skip
            self.lines: list[ConsumptionLine] = []

        def _member(self, i: int):
            member = self.members[i]
            member.refresh_from_db()
            return member

        @rule(who=st.integers(0, 1), principal=st.integers(1, 200_000), bonus=st.integers(0, 50_000))
        def recharge(self, who, principal, bonus):
            member = self._member(who)
            closed = card_refusal(member) == "card_closed"
            try:
                services.recharge(
                    member=member, store=self.shop.store, payment_method="cash", actor=None,
                    items=[services.RechargeItem(kind="stored_value", amount_fen=principal,
                                             bonus_fen=min(bonus, principal // 5))],  # within the manual-bonus limit
                )  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == ("stored_value", "card_closed") and closed, exc  # only a closed card refuses
                return
            assert not closed, "a closed card took a recharge"

        @rule(who=st.integers(0, 1))
        def buy_coupon(self, who):
            services.recharge(member=self._member(who), store=self.shop.store, payment_method="wechat", actor=None,
                              items=[services.RechargeItem(kind="coupon", coupon_template=self.shop.car_wash_coupon)])  # fmt: skip

        @rule(who=st.integers(0, 1), service=st.integers(0, 3), quantity=st.integers(1, 3), staff=st.booleans())
        def spend_stored_value(self, who, service, quantity, staff):
            member = self._member(who)
            svc = self.priced[service]
            fen = services.unit_price_for(member, svc) * quantity
            benefits = selectors.member_benefits(member)
            if card_refusal(member):
                expected = ("stored_value", card_refusal(member))
            elif fen > benefits.principal_fen + benefits.bonus_fen:
                expected = ("items[0].stored_value_fen", "stored_value_insufficient")
            else:
                expected = None
            try:
                consumption = services.consume(
                    member=member, store=self.shop.store, actor=None,
                    items=[services.ConsumptionItem(service=svc, quantity=quantity, stored_value_fen=fen,
                                                    staff=self.shop.staff if staff else None)],
                )  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == expected, exc  # refused, nothing posted (checked by the invariants)
                return
            assert expected is None, f"spent although {expected}"
            self.lines.extend(consumption.lines.all())

        @rule(who=st.integers(0, 1))
        def use_coupon(self, who):
            member = self._member(who)
            grant = Grant.objects.filter(member=member, status="active").order_by("pk").first()
            if grant is None:
                return
            left = ledger_selectors.balance(wallet_accounts.grant_account(grant))
            if grant_refusal(grant):
                expected = ("items[0].grant", grant_refusal(grant))
            elif left < 1:
                expected = ("items[0].quantity", "grant_uses_insufficient")
            else:
                expected = None
            try:
                consumption = services.consume(member=member, store=self.shop.store, actor=None,
                                               items=[services.ConsumptionItem(service=self.shop.car_wash, grant=grant)])  # fmt: skip
            except ValidationError as exc:
                assert refusal(exc) == expected, exc
                return
            assert expected is None, f"used although {expected}"
            self.lines.extend(consumption.lines.all())

        @precondition(lambda self: self.lines)
        @rule(data=st.data())
        def refund_line(self, data):
            line = data.draw(st.sampled_from(self.lines))
            line.refresh_from_db()
            member = line.consumption.member
            grant = Grant.objects.get(pk=line.grant_id) if line.grant_id else None
            if line.status == ConsumptionLine.Status.REFUNDED:
                expected = "line_already_refunded"
            elif grant is not None and grant.status in (Grant.Status.REFUNDED, Grant.Status.REVOKED):
                expected = {Grant.Status.REFUNDED: "grant_refunded", Grant.Status.REVOKED: "grant_revoked"}[
                    grant.status
                ]
            elif (line.principal_fen or line.bonus_fen) and card_refusal(member):
                expected = "card_closed"
            else:
                expected = None  # or the points the line earned are no longer held (checked below)
            try:
                services.refund_consumption_lines(member=member, lines=[line], reason="random", actor=None)
            except ValidationError as exc:
                field, code = refusal(exc)
                assert field == "lines", exc
                if expected is None and code == "line_points_spent":  # the lot holds less than the line earned
                    lot = Leg.objects.get(entry_id=line.entry_id, account__purpose="points").account
                    assert ledger_selectors.balance(lot) < line.points, exc
                else:
                    assert code == expected, exc
                return
            assert expected is None, f"refunded although {expected}"

        @rule(who=st.integers(0, 1))
        def cash_refund_card(self, who):
            member = self._member(who)
            benefits = selectors.member_benefits(member)
            if card_refusal(member):
                expected = card_refusal(member)
            elif benefits.principal_fen == benefits.bonus_fen == 0:
                expected = "nothing_to_refund"
            else:
                expected = None  # no plan gifts to charge, no points for buying stored value here
            try:
                services.cash_refund_stored_value(member=member, payment_method="cash", reason="r", actor=None)
            except ValidationError as exc:
                assert refusal(exc) == ("stored_value", expected), exc
                return
            assert expected is None, f"refunded although {expected}"
            assert card_refusal(member) == "card_closed"

        @rule(who=st.integers(0, 1))
        def cash_refund_coupon(self, who):
            grant = Grant.objects.filter(member=self.members[who], status="active").order_by("pk").first()
            if grant is None:
                return
            left = ledger_selectors.balance(wallet_accounts.grant_account(grant))
            expected = grant_refusal(grant) or ("grant_used_up" if left == 0 else None)
            try:
                services.cash_refund_grant(grant=grant, payment_method="cash", reason="r", actor=None)
            except ValidationError as exc:
                assert refusal(exc) == ("grant", expected), exc
                return
            assert expected is None, f"refunded although {expected}"
            grant.refresh_from_db()
            assert grant.status == Grant.Status.REFUNDED

        @rule(days=st.sampled_from([0, 40, 800]))
        def expire(self, days):
            services.expire_due_benefits(now=timezone.now() + datetime.timedelta(days=days))

        @invariant()
        def promises_hold(self):
            merchant = self.shop.merchant
            # Member balances never negative.
            assert not AccountBalance.objects.filter(account__merchant=merchant, balance__lt=0).exists()
            # Cash paid out for stored value never exceeds the principal paid in; bonus is never paid.
            principal_in = (
                RechargeLine.objects.filter(recharge__merchant=merchant, kind__in=["stored_value", "plan"]).aggregate(
                    t=Sum("amount_fen")
                )["t"]
                or 0
            )
            stored_out = (
                CashRefund.objects.filter(merchant=merchant, kind="stored_value").aggregate(t=Sum("paid_out_fen"))["t"]
                or 0
            )
            assert stored_out <= principal_in
            for refund in CashRefund.objects.filter(merchant=merchant, kind="stored_value"):
                principal = ledger_selectors.find_account(merchant, "principal", "CNY", member=refund.member)
                credited = -sum(leg.amount for leg in principal.legs.filter(entry__operation_type="recharge"))
                assert refund.paid_out_fen <= credited
            # Refunds never exceed what was consumed, line by line and in total.
            consumed = (
                ConsumptionLine.objects.filter(consumption__merchant=merchant).aggregate(t=Sum("payable_fen"))["t"] or 0
            )
            refunded = EntitlementRefund.objects.filter(merchant=merchant).aggregate(t=Sum("total_fen"))["t"] or 0
            assert refunded <= consumed
            for refund in EntitlementRefund.objects.filter(merchant=merchant):
                assert refund.total_fen == sum(line.payable_fen for line in refund.lines.all())
            # Coupon cash refunds never pay more than the coupon cost.
            for refund in CashRefund.objects.filter(merchant=merchant, kind="grant").select_related("grant"):
                assert refund.paid_out_fen <= refund.grant.paid_fen
            report = ledger_selectors.reconcile(merchant)
            assert report.clean, report.problems

    return WalletMachine


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["proportional", "principal_first", "bonus_first"])
def test_wallet_state_machine(policy):
    run_state_machine_as_test(
        machine_for(policy),
        settings=settings(max_examples=12, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )  # fmt: skip
