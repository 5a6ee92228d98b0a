"""Property-based guard of the ledger: random posts, reversals, partial reversals and refused overdrafts
across several units and accounts, checked against an independent model after every step."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from ledger import selectors, services
from ledger.errors import InsufficientBalance, ReversalError
from ledger.models import Leg
from tests.factories import MerchantFactory, make_owner

UNITS = ("CNY", "POINT", "CPN:1")
MEMBER_PURPOSE = {"CNY": "principal", "POINT": "points", "CPN:1": "coupon"}
MERCHANT_PURPOSE = {"CNY": "cash", "POINT": "issuance", "CPN:1": "issuance"}


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.merchant = MerchantFactory()
        members = [make_owner(self.merchant) for _ in range(3)]
        self.member_accounts = {
            unit: [services.get_or_create_account(self.merchant, MEMBER_PURPOSE[unit], unit, member=m) for m in members]
            for unit in UNITS
        }
        self.merchant_accounts = {
            unit: services.get_or_create_account(self.merchant, MERCHANT_PURPOSE[unit], unit) for unit in UNITS
        }
        self.all_accounts = [a for accs in self.member_accounts.values() for a in accs] + list(
            self.merchant_accounts.values()
        )
        # Independent model: normal-side balance per account, and per entry what is left to reverse.
        self.expected = {a.pk: 0 for a in self.all_accounts}
        self.remaining: dict[int, dict[int, int]] = {}
        self.accounts_by_id = {a.pk: a for a in self.all_accounts}
        self.n = 0

    def _key(self) -> str:
        self.n += 1
        return f"h-{self.merchant.pk}-{self.n}"

    def _would_overdraw(self, legs: dict[int, int]) -> bool:
        for acc_id, amount in legs.items():
            account = self.accounts_by_id[acc_id]
            if not account.allow_negative and self.expected[acc_id] + amount * account.normal_sign < 0:
                return True
        return False

    def _apply(self, legs: dict[int, int]) -> None:
        for acc_id, amount in legs.items():
            self.expected[acc_id] += amount * self.accounts_by_id[acc_id].normal_sign

    def _post(self, specs: list[services.LegSpec]) -> None:
        legs: dict[int, int] = {}
        for spec in specs:
            legs[spec.account.pk] = legs.get(spec.account.pk, 0) + spec.amount
        overdraw = self._would_overdraw(legs)
        try:
            entry = services.post_entry(merchant=self.merchant, legs=specs, operation_type="h", operation_ref="h",
                                        idempotency_key=self._key(), actor=None)  # fmt: skip
        except InsufficientBalance:
            assert overdraw, "refused an entry the model allows"
            return
        assert not overdraw, "posted an entry that overdraws a bounded account"
        self._apply(legs)
        self.remaining[entry.pk] = legs

    @rule(unit=st.sampled_from(UNITS), who=st.integers(0, 2), amount=st.integers(1, 500))
    def issue(self, unit, who, amount):
        member = self.member_accounts[unit][who]
        merchant = self.merchant_accounts[unit]
        self._post([services.increase(member, amount), services.increase(merchant, amount)])

    @rule(unit=st.sampled_from(UNITS), who=st.integers(0, 2), amount=st.integers(1, 800))
    def spend(self, unit, who, amount):
        member = self.member_accounts[unit][who]
        merchant = self.merchant_accounts[unit]
        self._post([services.decrease(member, amount), services.decrease(merchant, amount)])

    @rule(unit=st.sampled_from(UNITS), a=st.integers(0, 2), b=st.integers(0, 2), amount=st.integers(1, 400))
    def transfer(self, unit, a, b, amount):
        if a == b:
            return
        source, target = self.member_accounts[unit][a], self.member_accounts[unit][b]
        self._post([services.decrease(source, amount), services.increase(target, amount)])

    @rule(cny=st.integers(1, 300), points=st.integers(1, 300), who=st.integers(0, 2))
    def multi_unit(self, cny, points, who):
        """One entry in two units at once (a recharge that also grants points)."""
        self._post([
            services.increase(self.member_accounts["CNY"][who], cny),
            services.increase(self.merchant_accounts["CNY"], cny),
            services.increase(self.member_accounts["POINT"][who], points),
            services.increase(self.merchant_accounts["POINT"], points),
        ])  # fmt: skip

    @precondition(lambda self: self.remaining)
    @rule(data=st.data())
    def reverse_whole(self, data):
        entry_id = data.draw(st.sampled_from(sorted(self.remaining)))
        left = {acc: amt for acc, amt in self.remaining[entry_id].items() if amt}
        undo = {acc: -amt for acc, amt in left.items()}
        entry = services.Entry.objects.get(pk=entry_id)
        try:
            services.reverse_entry(entry, idempotency_key=self._key(), actor=None)
        except ReversalError:
            assert not left, "refused to reverse an entry with something left"
            return
        except InsufficientBalance:
            assert self._would_overdraw(undo)
            return
        assert left and not self._would_overdraw(undo)
        self._apply(undo)
        self.remaining[entry_id] = dict.fromkeys(self.remaining[entry_id], 0)

    @precondition(lambda self: self.remaining)
    @rule(data=st.data())
    def reverse_part(self, data):
        entry_id = data.draw(st.sampled_from(sorted(self.remaining)))
        legs = self.remaining[entry_id]
        # Pick one unit's pair of legs and a part of it, possibly more than is left.
        by_unit: dict[str, list[int]] = {}
        for acc_id in legs:
            by_unit.setdefault(self.accounts_by_id[acc_id].unit, []).append(acc_id)
        unit = data.draw(st.sampled_from(sorted(by_unit)))
        a, b = by_unit[unit]
        left_a = abs(legs[a])
        # Edges matter most: exactly what is left, one more, or anything up to a little beyond.
        part = data.draw(st.one_of(st.just(max(left_a, 1)), st.just(left_a + 1), st.integers(1, left_a + 3)))
        sign_a = 1 if legs[a] > 0 else -1
        sign_b = -sign_a
        amounts = {self.accounts_by_id[a]: part * sign_a, self.accounts_by_id[b]: part * sign_b}
        fits = legs[a] != 0 and part <= abs(legs[a]) and part <= abs(legs[b])
        undo = {a: -part * sign_a, b: -part * sign_b}
        entry = services.Entry.objects.get(pk=entry_id)
        try:
            services.reverse_entry(entry, idempotency_key=self._key(), actor=None, amounts=amounts)
        except ReversalError:
            assert not fits, "refused a partial reversal within what is left"
            return
        except InsufficientBalance:
            assert fits and self._would_overdraw(undo)
            return
        assert fits, "reversed beyond what the entry moved"
        assert not self._would_overdraw(undo)
        self._apply(undo)
        legs[a] -= part * sign_a
        legs[b] -= part * sign_b

    @invariant()
    def balances_match_model_and_ledger_reconciles(self):
        actual = selectors.balances(self.all_accounts)
        assert actual == self.expected
        for account in self.all_accounts:
            if not account.allow_negative:
                assert actual[account.pk] >= 0
        report = selectors.reconcile(self.merchant)
        assert report.clean, report.problems

    @invariant()
    def every_entry_sums_to_zero_per_unit(self):
        sums: dict[tuple[int, str], int] = {}
        for entry_id, unit, amount in Leg.objects.filter(entry__merchant=self.merchant).values_list(
            "entry_id", "unit", "amount"
        ):
            sums[(entry_id, unit)] = sums.get((entry_id, unit), 0) + amount
        assert all(total == 0 for total in sums.values())


@pytest.mark.django_db
def test_ledger_state_machine():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
