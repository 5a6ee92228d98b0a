"""What an operation will do, computed before it is recorded: the portal's confirmation step shows a
quote, and only then calls the service.

A quote is the operation itself, run in a savepoint that is rolled back (a dry run): the same service
function with the same arguments (but no idempotency key), so every price, split, limit, ceiling and
refusal is the service's own, never a second copy of its rules. Nothing of the dry run stays: its rows,
ledger entries and audit events are rolled back, and its business number is a placeholder that never
touches the merchant's counter (members.numbering.preview). The service stays the authority at the
real call, under its locks; a quote whose figures moved in between (another operation spent the
balance) is caught by the portal comparing `digest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from members import numbering
from members.models import Owner, Store

from . import services
from .models import (
    ActivityPointsRule,
    ConsumptionLine,
    CouponTemplate,
    Grant,
    PaymentMethod,
    RechargeLine,
    VoucherTemplate,
    WalletSettings,
)
from .selectors import member_benefits
from .services.checks import gift_value
from .services.consumption import ConsumptionItem
from .services.limits import preview_lifted, recharge_free_value_fen
from .services.recharge import RechargeItem

T = TypeVar("T")


@dataclass(frozen=True)
class QuoteLine:
    """One line of an operation in fen. For a recharge the money columns are what the member receives
    (principal and bonus credited); for a consumption what is taken from where; for a refund what
    goes back where. `key` names the rows involved (for the digest), `label` is for people."""

    key: str
    label: str
    quantity: int
    amount_fen: int  # paid (recharge), payable (consumption), refunded (refund)
    principal_fen: int = 0
    bonus_fen: int = 0
    voucher_fen: int = 0
    voucher: str = ""
    direct_fen: int = 0
    payment_method: str = ""  # code; `payment_method_label` for people
    uses: int = 0
    grant: str = ""
    gifts: tuple[str, ...] = ()

    @property
    def payment_method_label(self) -> str:
        return str(PaymentMethod(self.payment_method).label) if self.payment_method else ""


@dataclass(frozen=True)
class Quote:
    operation: str  # "recharge", "consumption", "refund" (consumption lines) or "cash_refund"
    total_fen: int  # paid (recharge), payable (consumption), refunded (refund): what a second confirmation is about
    lines: tuple[QuoteLine, ...]
    confirm_above_fen: int
    payment_method: str = ""  # the recharge's
    spending_policy: str = ""  # the consumption's, as a label
    principal_before_fen: int = 0
    bonus_before_fen: int = 0
    principal_after_fen: int = 0
    bonus_after_fen: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def principal_fen(self) -> int:
        return sum(line.principal_fen for line in self.lines)

    @property
    def bonus_fen(self) -> int:
        return sum(line.bonus_fen for line in self.lines)

    @property
    def voucher_fen(self) -> int:
        return sum(line.voucher_fen for line in self.lines)

    @property
    def direct_fen(self) -> int:
        return sum(line.direct_fen for line in self.lines)

    @property
    def uses(self) -> int:
        return sum(line.uses for line in self.lines)

    @property
    def payment_method_label(self) -> str:
        return str(PaymentMethod(self.payment_method).label) if self.payment_method else ""

    @property
    def large(self) -> bool:
        """Above the merchant's threshold the portal asks for a second confirmation."""
        return self.total_fen > self.confirm_above_fen

    @property
    def digest(self) -> str:
        """A fingerprint of every figure and row of the quote (labels left out, so the language does not
        matter): what the operator confirmed is what gets recorded, or the portal asks again."""
        content = asdict(self)
        for line in content["lines"]:
            line.pop("label")
            line.pop("gifts")
        content.pop("spending_policy")
        text = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _settings(member: Owner) -> WalletSettings:
    return WalletSettings.of(member.merchant_id)  # read-only: the defaults when the merchant has no row


class _RolledBack(Exception):
    def __init__(self, result) -> None:
        self.result = result


def _dry_run(operation: Callable[[], T], *, lift: bool = False) -> T:
    """Run `operation` (which calls a wallet service and reads what it did) in a savepoint, then roll
    the savepoint back and return what `operation` returned. A refusal propagates unchanged. With `lift`, the
    free-value limits are lifted inside (what an approved request would do: services.limits); the savepoint
    is rolled back all the same, so nothing given stays."""
    try:
        with numbering.preview(), transaction.atomic(), preview_lifted() if lift else nullcontext():
            raise _RolledBack(operation())
    except _RolledBack as done:
        return done.result


def _gifts(line: RechargeLine) -> tuple[str, ...]:
    """What a recharge line gives besides stored value, for people: a plan's gifts, or what it sells."""
    quantity = line.quantity
    if line.kind == RechargeLine.Kind.PLAN:
        plan, gifts = line.plan, []
        if plan.gift_coupon_id and plan.gift_coupon_quantity:
            gifts.append(f"{plan.gift_coupon} × {plan.gift_coupon_quantity * quantity}")
        if plan.gift_package_id:
            gifts.append(f"{plan.gift_package} × {quantity}")
        if plan.gift_vip_id:
            gifts.append(f"{plan.gift_vip} × {quantity}")
        return tuple(gifts)
    target = line.coupon_template or line.package or line.voucher_template or line.vip_type
    return (f"{target} × {quantity}",) if target is not None else ()


def quote_recharge(
    *,
    member: Owner,
    store: Store | None,
    items: Sequence[RechargeItem],
    payment_method: str,
    actor: AbstractBaseUser | None,
    note: str = "",
    lift_free_value_limits: bool = False,
) -> Quote:
    """What a recharge takes in and credits: paid, principal and bonus, and what else it gives (a plan's
    gift coupons, package and VIP period; the coupons, packages, vouchers or VIP time bought), and the value
    it gives away by hand (`extra["free_value_fen"]`). With `lift_free_value_limits`: what it would do once
    approved, above the merchant's free-value limits."""

    def run() -> Quote:
        record = services.recharge(member=member, store=store, payment_method=payment_method, items=items,
                                   actor=actor, note=note)  # fmt: skip
        lines = []
        recorded = list(record.lines.select_related(
            "plan__gift_coupon", "plan__gift_package", "plan__gift_vip", "coupon_template", "package",
            "voucher_template", "vip_type",
        ).order_by("line_no"))  # fmt: skip
        for line in recorded:
            target = line.plan or line.coupon_template or line.package or line.voucher_template or line.vip_type
            stored = line.kind in (RechargeLine.Kind.STORED_VALUE, RechargeLine.Kind.PLAN)
            lines.append(QuoteLine(
                key=f"{line.line_no - 1}:{line.kind}:{getattr(target, 'pk', '')}",
                label=str(target) if target is not None else str(RechargeLine.Kind.STORED_VALUE.label),
                quantity=line.quantity, amount_fen=line.amount_fen,
                principal_fen=line.amount_fen if stored else 0, bonus_fen=line.bonus_fen, gifts=_gifts(line),
            ))  # fmt: skip
        return Quote(operation="recharge", total_fen=record.paid_total_fen, lines=tuple(lines),
                     payment_method=payment_method, confirm_above_fen=_settings(member).confirm_above_fen,
                     extra={"free_value_fen": recharge_free_value_fen(recorded)})  # fmt: skip

    return _dry_run(run, lift=lift_free_value_limits)


def quote_consumption(
    *, member: Owner, store: Store | None, items: Sequence[ConsumptionItem], actor: AbstractBaseUser | None
) -> Quote:
    """What a consumption takes from where: per line the payable amount at the member's price, split
    between principal and bonus by the merchant's spending policy on the balances held now, the voucher
    share, the direct payment, or the coupon/entitlement uses. Refused as the service refuses."""

    def run() -> Quote:
        before = member_benefits(member)
        consumption = services.consume(member=member, store=store, items=items, actor=actor)
        after = member_benefits(member)
        settings = _settings(member)
        lines = []
        for i, line in enumerate(
            consumption.lines.select_related(
                "service", "staff", "voucher__template", "grant__coupon_template", "grant__service"
            ).order_by("line_no")  # fmt: skip
        ):
            lines.append(QuoteLine(
                key=f"{i}:service:{line.service_id}:{line.staff_id or ''}",
                label=f"{line.service.name} × {line.quantity}", quantity=line.quantity, amount_fen=line.payable_fen,
                principal_fen=line.principal_fen, bonus_fen=line.bonus_fen, voucher_fen=line.voucher_fen,
                voucher=line.voucher.template.name if line.voucher_id else "", direct_fen=line.direct_fen,
                payment_method=line.payment_method if line.direct_fen else "", uses=line.uses,
                grant=str(line.grant) if line.grant_id else "",
            ))  # fmt: skip
        return Quote(
            operation="consumption", total_fen=consumption.payable_total_fen, lines=tuple(lines),
            confirm_above_fen=settings.confirm_above_fen,
            spending_policy=str(WalletSettings.SpendingPolicy(settings.spending_policy).label),
            principal_before_fen=before.principal_fen, bonus_before_fen=before.bonus_fen,
            principal_after_fen=after.principal_fen, bonus_after_fen=after.bonus_fen,
        )  # fmt: skip

    return _dry_run(run)


def quote_refund(
    *,
    member: Owner,
    store: Store | None,
    lines: Sequence[ConsumptionLine],
    reason: str,
    actor: AbstractBaseUser | None,
) -> Quote:
    """What refunding consumption lines gives back: each line is reversed exactly (the service reverses
    its ledger entry), so the line's own split is what returns: principal, bonus, voucher, uses, and
    the direct payment to hand back."""

    def run() -> Quote:
        before = member_benefits(member)
        refund = services.refund_consumption_lines(member=member, lines=lines, reason=reason, actor=actor,
                                                   store=store)  # fmt: skip
        after = member_benefits(member)
        quoted = [
            QuoteLine(
                key=f"line:{line.pk}",
                label=f"{line.consumption.number}/{line.line_no} {line.service.name}",
                quantity=line.quantity,
                amount_fen=line.payable_fen,
                principal_fen=line.principal_fen,
                bonus_fen=line.bonus_fen,
                voucher_fen=line.voucher_fen,
                voucher=line.voucher.template.name if line.voucher_id else "",
                direct_fen=line.direct_fen,
                payment_method=line.payment_method if line.direct_fen else "",
                uses=line.uses,
                grant=str(line.grant) if line.grant_id else "",
            )  # fmt: skip
            for line in refund.lines.select_related(
                "consumption", "service", "voucher__template", "grant__coupon_template", "grant__service"
            ).order_by("pk")
        ]
        return Quote(
            operation="refund", total_fen=refund.total_fen, lines=tuple(quoted),
            confirm_above_fen=_settings(member).confirm_above_fen,
            principal_before_fen=before.principal_fen, bonus_before_fen=before.bonus_fen,
            principal_after_fen=after.principal_fen, bonus_after_fen=after.bonus_fen,
        )  # fmt: skip

    return _dry_run(run)


def _cash_refund_quote(refund, *, label: str, before=None, after=None) -> Quote:
    """A cash refund as a quote: one line, what is paid out and how, what is taken back with it."""
    line = QuoteLine(
        key=f"{refund.kind}:{refund.grant_id or refund.member_id}:{refund.payment_method}",
        label=label,
        quantity=refund.uses_refunded or 1,
        amount_fen=refund.paid_out_fen,
        principal_fen=refund.paid_out_fen + refund.gifts_charged_fen if refund.kind == "stored_value" else 0,
        bonus_fen=refund.forfeited_bonus_fen,
        direct_fen=refund.paid_out_fen,
        payment_method=refund.payment_method,
        uses=refund.uses_refunded,
        grant=str(refund.grant) if refund.grant_id else "",
    )
    return Quote(
        operation="cash_refund", total_fen=refund.paid_out_fen, lines=(line,), payment_method=refund.payment_method,
        confirm_above_fen=_settings(refund.member).confirm_above_fen,
        principal_before_fen=before.principal_fen if before else 0, bonus_before_fen=before.bonus_fen if before else 0,
        principal_after_fen=after.principal_fen if after else 0, bonus_after_fen=after.bonus_fen if after else 0,
        extra={"kind": refund.kind, "forfeited_bonus_fen": refund.forfeited_bonus_fen,
               "gifts_charged_fen": refund.gifts_charged_fen, "uses_refunded": refund.uses_refunded},
    )  # fmt: skip


def quote_cash_refund_stored_value(
    *, member: Owner, store: Store | None, payment_method: str, reason: str, actor: AbstractBaseUser | None
) -> Quote:
    """What a cash refund of stored value pays out (the unused principal, less the plan gifts already used,
    charged at list price) and what goes with it (the bonus is forfeited, the card closes)."""

    def run() -> Quote:
        before = member_benefits(member)
        refund = services.cash_refund_stored_value(member=member, payment_method=payment_method, reason=reason,
                                                   actor=actor, store=store)  # fmt: skip
        return _cash_refund_quote(refund, label=str(refund.get_kind_display()), before=before,
                                  after=member_benefits(member))  # fmt: skip

    return _dry_run(run)


def quote_cash_refund_grant(
    *, grant: Grant, store: Store | None, payment_method: str, reason: str, actor: AbstractBaseUser | None
) -> Quote:
    """What a cash refund of a coupon or entitlement lot pays out: what is left of the price paid for it; its
    unused uses go back and the lot is closed."""

    def run() -> Quote:
        refund = services.cash_refund_grant(grant=grant, payment_method=payment_method, reason=reason, actor=actor,
                                            store=store)  # fmt: skip
        return _cash_refund_quote(refund, label=str(grant))

    return _dry_run(run)


# ---------------------------------------------------------------- free value given outside a sale


def _free_quote(operation: str, line: QuoteLine, member: Owner, **extra) -> Quote:
    return Quote(operation=operation, total_fen=0, lines=(line,), confirm_above_fen=_settings(member).confirm_above_fen,
                 extra=extra)  # fmt: skip


def quote_free_voucher(
    *, template: VoucherTemplate, member: Owner, reason: str, actor: AbstractBaseUser | None,
    lift_free_value_limits: bool = False,
) -> Quote:  # fmt: skip
    """What giving the member a free voucher does: one voucher of the template's face value, a promotion
    expense (`extra["free_value_fen"]`). With `lift_free_value_limits`: above the free-gift limit, once approved."""

    def run() -> Quote:
        voucher = services.issue_voucher(template=template, member=member, actor=actor, reason=reason)
        line = QuoteLine(key=f"voucher:{template.pk}", label=template.name, quantity=1, amount_fen=0,
                         voucher_fen=voucher.face_value_fen, voucher=template.name)  # fmt: skip
        return _free_quote("voucher_issue", line, member, free_value_fen=voucher.face_value_fen)

    return _dry_run(run, lift=lift_free_value_limits)


def quote_free_coupon(
    *, template: CouponTemplate, member: Owner, reason: str, actor: AbstractBaseUser | None,
    lift_free_value_limits: bool = False,
) -> Quote:  # fmt: skip
    """What giving the member one coupon of the template free does: its uses, worth their list value
    (`extra["free_value_fen"]`). A member at the template's per-member limit is refused (a batch would skip
    them). With `lift_free_value_limits`: above the free-gift limit, once approved."""

    def run() -> Quote:
        issued = services.issue_coupons(template=template, member_ids=[member.pk], actor=actor, reason=reason)
        if issued.skipped_at_limit:
            raise fail("template", "coupon_limit", _("%(template)s is limited to %(limit)s per member; the member has "
                                                     "%(held)s."), template=str(template),
                       limit=template.per_member_limit,
                       held=Grant.objects.filter(member=member, coupon_template=template).count())  # fmt: skip
        line = QuoteLine(key=f"coupon:{template.pk}", label=str(template), quantity=1, amount_fen=0,
                         uses=template.uses, grant=str(template))  # fmt: skip
        return _free_quote("coupon_issue", line, member, free_value_fen=gift_value(template))

    return _dry_run(run, lift=lift_free_value_limits)


def quote_points_award(
    *, rule: ActivityPointsRule, member: Owner, occasion: str, actor: AbstractBaseUser | None,
    lift_free_value_limits: bool = False,
) -> Quote:  # fmt: skip
    """What awarding the rule's points for the occasion does (`extra["points"]`). With
    `lift_free_value_limits`: above the merchant's points limit, once approved."""

    def run() -> Quote:
        services.award_activity_points(member=member, rule=rule, occasion=occasion, actor=actor)
        line = QuoteLine(key=f"points:{rule.pk}", label=rule.name, quantity=rule.points, amount_fen=0)
        return _free_quote("points_award", line, member, points=rule.points)

    return _dry_run(run, lift=lift_free_value_limits)
