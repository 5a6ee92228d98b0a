"""What an operation will do, computed before it is recorded: the portal's confirmation step shows a
quote, and only then calls the service. Read-only: nothing is written, locked or numbered here.

A quote prices the same items the service will receive, with the same rules (`unit_price_for`,
`rules.apply_rate_bp`, `rules.split_stored_value` under the merchant's spending policy, the balances
the ledger holds now) and the same read-only checks (`check_ceiling`, what is left to spend). The
service stays the authority: it runs every check again under its locks, and a quote whose figures
moved in between (another operation spent the balance) is caught by the portal comparing `digest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from members.models import Owner

from . import rules
from .models import ConsumptionLine, PaymentMethod, RechargeLine, WalletSettings
from .selectors import member_benefits
from .services.checks import check_ceiling, recheck_catalog
from .services.consumption import ConsumptionItem, unit_price_for
from .services.recharge import RechargeItem


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
    operation: str  # "recharge", "consumption" or "refund"
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


def quote_recharge(*, member: Owner, items: Sequence[RechargeItem], payment_method: str) -> Quote:
    """What a recharge takes in and credits: paid, principal and bonus, and what else it gives (a plan's
    gift coupons, package and VIP period; the coupons, packages, vouchers or VIP time bought)."""
    settings = _settings(member)
    lines = []
    paid_total = 0
    for i, item in enumerate(items):
        quantity = item.quantity
        principal = bonus = 0
        gifts: list[str] = []
        if item.kind == RechargeLine.Kind.STORED_VALUE:
            paid = item.amount_fen * quantity
            principal, bonus = paid, item.bonus_fen * quantity
            key, label = "stored_value", str(RechargeLine.Kind.STORED_VALUE.label)
        elif item.kind == RechargeLine.Kind.PLAN:
            plan = item.plan
            recheck_catalog(plan, f"items[{i}].plan")  # bonus and gifts within the plan share, as the service checks
            paid = plan.pay_fen * quantity
            principal, bonus = paid, plan.bonus_fen * quantity
            key, label = f"plan:{plan.pk}", plan.name
            if plan.gift_coupon_id and plan.gift_coupon_quantity:
                gifts.append(f"{plan.gift_coupon} × {plan.gift_coupon_quantity * quantity}")
            if plan.gift_package_id:
                gifts.append(f"{plan.gift_package} × {quantity}")
            if plan.gift_vip_id:
                gifts.append(f"{plan.gift_vip} × {quantity}")
        else:
            attr = {"coupon": "coupon_template", "package": "package", "voucher": "voucher_template", "vip": "vip_type"}
            target = getattr(item, attr[item.kind])
            recheck_catalog(target, f"items[{i}].{attr[item.kind]}")
            paid = rules.apply_rate_bp(target.price_fen * quantity, item.discount_bp)
            key, label = f"{item.kind}:{target.pk}", str(target)
            gifts.append(f"{target} × {quantity}")
        paid_total += paid
        check_ceiling(paid_total, settings.max_recharge_fen, "items", _("recharge"))  # the service's own check
        lines.append(QuoteLine(key=f"{i}:{key}", label=label, quantity=quantity, amount_fen=paid,
                               principal_fen=principal, bonus_fen=bonus, gifts=tuple(gifts)))  # fmt: skip
    return Quote(operation="recharge", total_fen=paid_total, lines=tuple(lines), payment_method=payment_method,
                 confirm_above_fen=settings.confirm_above_fen)  # fmt: skip


def quote_consumption(*, member: Owner, items: Sequence[ConsumptionItem]) -> Quote:
    """What a consumption takes from where: per line the payable amount at the member's price, split
    between principal and bonus by the merchant's spending policy on the balances held now, the voucher
    share, the direct payment, or the coupon/entitlement uses. Refused like the service refuses when
    what is held does not cover it."""
    settings = _settings(member)
    benefits = member_benefits(member)
    principal_left, bonus_left = benefits.principal_fen, benefits.bonus_fen
    voucher_left = {held.obj.pk: held.balance for held in benefits.vouchers}
    grant_left = {held.obj.pk: held.balance for held in benefits.grants}
    lines = []
    payable_total = 0
    for i, item in enumerate(items):
        f = f"items[{i}]"
        service, quantity = item.service, item.quantity
        payable = unit_price_for(member, service) * quantity
        payable_total += payable
        check_ceiling(payable_total, settings.max_consumption_fen, "items", _("consumption"))
        values: dict = {}
        if item.grant is not None:
            left = grant_left.get(item.grant.pk, 0)
            if quantity > left:
                raise fail(f"{f}.quantity", "grant_insufficient", _("%(grant)s has %(left)s uses left, %(asked)s asked."),
                           grant=str(item.grant), left=left, asked=quantity)  # fmt: skip
            grant_left[item.grant.pk] = left - quantity
            values.update(uses=quantity, grant=str(item.grant))
        if item.voucher is not None and item.voucher_fen:
            left = voucher_left.get(item.voucher.pk, 0)
            if item.voucher_fen > left:
                raise fail(f"{f}.voucher_fen", "voucher_insufficient", _("The voucher has %(left)s left, %(asked)s asked."),
                           left=yuan(left), asked=yuan(item.voucher_fen))  # fmt: skip
            voucher_left[item.voucher.pk] = left - item.voucher_fen
            values.update(voucher_fen=item.voucher_fen, voucher=item.voucher.template.name)
        if item.stored_value_fen:
            try:
                from_principal, from_bonus = rules.split_stored_value(
                    item.stored_value_fen, principal_left, bonus_left, settings.spending_policy
                )
            except ValueError:
                raise fail(f"{f}.stored_value_fen", "stored_value_insufficient",
                           _("The stored value %(left)s does not cover %(asked)s."),
                           left=yuan(principal_left + bonus_left), asked=yuan(item.stored_value_fen)) from None  # fmt: skip
            principal_left -= from_principal
            bonus_left -= from_bonus
            values.update(principal_fen=from_principal, bonus_fen=from_bonus)
        if item.direct_fen:
            values.update(direct_fen=item.direct_fen, payment_method=item.payment_method)
        label = f"{service.name} × {quantity}"
        lines.append(QuoteLine(key=f"{i}:service:{service.pk}:{getattr(item.staff, 'pk', '')}", label=label,
                               quantity=quantity, amount_fen=payable, **values))  # fmt: skip
    return Quote(
        operation="consumption", total_fen=payable_total, lines=tuple(lines),
        confirm_above_fen=settings.confirm_above_fen,
        spending_policy=str(WalletSettings.SpendingPolicy(settings.spending_policy).label),
        principal_before_fen=benefits.principal_fen, bonus_before_fen=benefits.bonus_fen,
        principal_after_fen=principal_left, bonus_after_fen=bonus_left,
    )  # fmt: skip


def quote_refund(*, member: Owner, lines: Sequence[ConsumptionLine]) -> Quote:
    """What refunding consumption lines gives back: each line is reversed exactly (the service reverses
    its ledger entry), so the line's own split is what returns: principal, bonus, voucher, uses, and
    the direct payment to hand back."""
    settings = _settings(member)
    quoted = []
    for line in sorted(lines, key=lambda line: line.pk):
        quoted.append(
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
        )
    benefits = member_benefits(member)
    return Quote(
        operation="refund", total_fen=sum(line.amount_fen for line in quoted), lines=tuple(quoted),
        confirm_above_fen=settings.confirm_above_fen,
        principal_before_fen=benefits.principal_fen, bonus_before_fen=benefits.bonus_fen,
        principal_after_fen=benefits.principal_fen + sum(line.principal_fen for line in quoted),
        bonus_after_fen=benefits.bonus_fen + sum(line.bonus_fen for line in quoted),
    )  # fmt: skip
