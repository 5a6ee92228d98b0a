"""Consumption (消费/收银, xf…) and the service record (服务记录, fw…)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import Account
from members import services as member_services
from members.models import Owner, Staff, Store

from .. import rules
from ..accounts import (
    Purpose,
    balance_of,
    consumption_specs,
    grant_account,
    grant_deferred_account,
    ledger_account,
    prefetch,
    stored_value_balances,
    voucher_account,
    with_spend_tally,
)
from ..models import (
    CommissionKind,
    CommissionRule,
    Consumption,
    ConsumptionLine,
    Grant,
    PaymentMethod,
    Service,
    ServiceRecord,
    ServiceTag,
    StoredValueCard,
    Voucher,
)
from .checks import (
    check_ceiling,
    check_fen,
    check_grant_usable,
    check_kind,
    check_lines,
    check_member,
    check_merchant,
    check_quantity,
    check_some_lines,
    check_voucher_usable,
    clean_text,
    user_or_none,
    wallet_settings,
)
from .idempotency import (
    idempotent,
)
from .issuance import (
    points_legs_for_spend,
)
from .levels import upgrade_level
from .postings import lock_card, lock_members


@idempotent(ServiceRecord)
@transaction.atomic
def record_service(
    *,
    member: Owner,
    staff: Staff,
    store: Store | None,
    actor: AbstractBaseUser | None,
    notes: str = "",
    tags: Sequence[str] = (),
    idempotency_key: str | None = None,
) -> ServiceRecord:
    merchant = member.merchant
    notes = clean_text(notes, "notes", max_length=2000)
    tags = [clean_text(t, "tags", max_length=30) for t in tags]
    check_member(member, store)
    check_kind(staff, Staff, "staff", required=True)
    check_merchant(staff, merchant.pk, "staff")
    record = ServiceRecord.objects.create(
        merchant=merchant, number=member_services.next_business_number(merchant, "fw"), member=member, store=store,
        operator=user_or_none(actor), staff=staff, notes=notes, idempotency_key=idempotency_key,
    )  # fmt: skip
    for name in dict.fromkeys(t for t in tags if t):
        record.tags.add(ServiceTag.objects.get_or_create(merchant=merchant, name=name)[0])
    return record


@dataclass
class ConsumptionItem:
    """One consumption line: a service × quantity, served by `staff`, paid by exactly one of: a grant
    (coupon or entitlement uses, quantity uses), or money from voucher_fen + stored_value_fen +
    direct_fen (with payment_method) adding up to the payable amount."""

    service: Service
    quantity: int = 1
    staff: Staff | None = None
    grant: Grant | None = None
    voucher: Voucher | None = None
    voucher_fen: int = 0
    stored_value_fen: int = 0
    direct_fen: int = 0
    payment_method: str = ""


# ---------------------------------------------------------------- the price rule


@dataclass(frozen=True)
class LinePrice:
    unit_price_fen: int
    payable_fen: int


def unit_price_for(member: Owner, service: Service) -> int:
    """Member price after the member's level rate."""
    rate = member.level.discount_rate_bp if member.level_id else 10000
    return rules.apply_rate_bp(service.member_price_fen, rate)


def price_line(member: Owner, service: Service, quantity: int) -> LinePrice:
    """What a line of `quantity` × `service` costs this member: the one price rule, used by `consume` and by
    every screen or API that proposes a line (`funded_item`)."""
    unit_price = unit_price_for(member, service)
    return LinePrice(unit_price_fen=unit_price, payable_fen=unit_price * quantity)


class Funding(models.TextChoices):
    """How an operator pays a whole line (`funded_item`)."""

    STORED_VALUE = "stored_value", _("Stored value")
    DIRECT = "direct", _("Direct payment")
    GRANT = "grant", _("Coupon / entitlement uses")
    VOUCHER = "voucher", _("Voucher")


def funded_item(
    member: Owner,
    service: Service,
    quantity: int,
    *,
    funding: str,
    staff: Staff | None = None,
    grant: Grant | None = None,
    voucher: Voucher | None = None,
    voucher_fen: int | None = None,
    payment_method: str = "",
) -> ConsumptionItem:
    """A line paid whole from the source an operator chose, priced by `price_line`: the grant's uses;
    stored value or a direct payment of the whole payable amount; or a voucher for `voucher_fen` (None:
    the whole amount) with the rest paid directly when a payment method is given, otherwise from stored
    value. Nothing is checked here beyond the choice of funding: `consume` decides."""
    item = ConsumptionItem(service=service, quantity=quantity, staff=staff)
    if funding == Funding.GRANT:
        item.grant = grant
        return item
    payable = price_line(member, service, quantity).payable_fen
    if funding == Funding.STORED_VALUE:
        item.stored_value_fen = payable
    elif funding == Funding.DIRECT:
        item.direct_fen, item.payment_method = payable, payment_method
    elif funding == Funding.VOUCHER:
        item.voucher = voucher
        item.voucher_fen = payable if voucher_fen is None else voucher_fen
        rest = max(payable - item.voucher_fen, 0)
        if rest and payment_method:
            item.direct_fen, item.payment_method = rest, payment_method
        else:
            item.stored_value_fen = rest
    else:
        raise fail("funding", "funding_unknown", _("Choose how the line is paid."))
    return item


# ---------------------------------------------------------------- consumption


@idempotent(Consumption)
@transaction.atomic
def consume(
    *,
    member: Owner,
    store: Store | None,
    items: Sequence[ConsumptionItem],
    actor: AbstractBaseUser | None,
    service_record: ServiceRecord | None = None,
    idempotency_key: str | None = None,
    note: str = "",
) -> Consumption:
    """Charge a member for services: deduct from the chosen accounts, credit commission, accrue points,
    upgrade the level when a threshold is crossed. One ledger entry per line, so a line can be refunded
    exactly. Steps: check the request, lock what the lines draw on, then per line price, fund, commission
    and points; post; upgrade the level."""
    merchant = member.merchant
    note = clean_text(note, "note", max_length=200)
    items = _checked_request(member, store, items, service_record)
    settings = wallet_settings(merchant)
    now = timezone.now()
    held = _lock_benefits(member, items, settings, now)
    commission_rules = _commission_rules(items)
    planned: list[tuple[ConsumptionLine, list]] = []
    payable_total = 0
    for i, item in enumerate(items, start=1):
        field = f"items[{i - 1}]"
        line = _priced_line(member, item, i, field)
        check_ceiling(payable_total + line.payable_fen, settings.max_consumption_fen, "items", _("consumption"))
        legs = _funding_legs(line, item, member, held, settings, now, field)
        legs += _commission_legs(line, item, merchant, commission_rules)
        legs += _points_legs(line, member, settings, now)
        payable_total += line.payable_fen
        planned.append((line, legs))
    consumption = _post(member, store, actor, planned, now=now, note=note, service_record=service_record,
                        idempotency_key=idempotency_key, payable_total=payable_total)  # fmt: skip
    upgrade_level(member, actor)
    return consumption


def _checked_request(
    member: Owner, store: Store | None, items, service_record: ServiceRecord | None
) -> list[ConsumptionItem]:
    """The member may be served at the store; the lines are ConsumptionItems, at least one; every row they
    name (and the service record) is this merchant's, before anything is locked or counted."""
    merchant = member.merchant
    check_member(member, store)
    items = check_some_lines(check_lines(items, ConsumptionItem))
    check_merchant(service_record, merchant.pk, "service_record")
    if service_record is not None and service_record.member_id != member.pk:
        raise fail("service_record", "service_record_other_member", _("The service record is of another member."))
    for i, item in enumerate(items):
        for name, kind in (("service", Service), ("staff", Staff), ("grant", Grant), ("voucher", Voucher)):
            check_kind(getattr(item, name), kind, f"items[{i}].{name}", required=name == "service")
            check_merchant(getattr(item, name), merchant.pk, f"items[{i}].{name}")
    return items


@dataclass
class _Held:
    """The benefit rows the lines draw on, locked, and what is left on them as the lines are planned
    (balances read once per account, then counted down line by line)."""

    card: StoredValueCard | None
    grants: dict[int, Grant]
    vouchers: dict[int, Voucher]
    principal_acct: Account | None = None
    bonus_acct: Account | None = None
    principal_left: int = 0
    bonus_left: int = 0
    grant_left: dict[int, int] = dataclasses.field(default_factory=dict)
    deferred_left: dict[int, int] = dataclasses.field(default_factory=dict)
    voucher_left: dict[int, int] = dataclasses.field(default_factory=dict)
    # Bounded balances read with the accounts after the locks (wallet.accounts.prefetch): account id → balance.
    known: dict[int, int] = dataclasses.field(default_factory=dict)


def _lock_benefits(member: Owner, items: list[ConsumptionItem], settings, now) -> _Held:
    """Lock every benefit row the lines draw on, in one stable order (member, card, grants, vouchers by id;
    docs/wallet.md §5), fetch the ledger accounts the lines post to (one query) and read the stored value
    left."""
    lock_members([member.pk])  # first, as every operation does (a level upgrade below locks it again)
    uses_stored_value = any(it.stored_value_fen for it in items)
    card = lock_card(member, create=False) if uses_stored_value else None
    grant_ids = sorted({it.grant.pk for it in items if it.grant is not None})
    voucher_ids = sorted({it.voucher.pk for it in items if it.voucher is not None})
    grants = {g.pk: g for g in Grant.objects.select_for_update().filter(pk__in=grant_ids).order_by("pk")}
    vouchers = {v.pk: v for v in Voucher.objects.select_for_update().filter(pk__in=voucher_ids).order_by("pk")}
    held = _Held(card=card, grants=grants, vouchers=vouchers)
    held.known = prefetch(  # the accounts the lines post to, in one query, with the balances after the locks
        member.merchant,
        consumption_specs(member, items, card is not None, grants, vouchers, settings.points_valid_years, now),
    )
    if card is not None:
        held.principal_acct, held.bonus_acct, held.principal_left, held.bonus_left = stored_value_balances(
            member, held.known
        )
    return held


def _priced_line(member: Owner, item: ConsumptionItem, line_no: int, field: str) -> ConsumptionLine:
    """The line for a service on sale × a valid quantity, at the member's price (`price_line`)."""
    service = item.service
    if not service.is_active:
        raise fail(f"{field}.service", "service_inactive", _("%(service)s is not on sale."), service=str(service))
    quantity = check_quantity(item.quantity, f"{field}.quantity")
    price = price_line(member, service, quantity)
    return ConsumptionLine(line_no=line_no, service=service, quantity=quantity, unit_price_fen=price.unit_price_fen,
                           payable_fen=price.payable_fen, staff=item.staff)  # fmt: skip


def _funding_legs(
    line: ConsumptionLine, item: ConsumptionItem, member: Owner, held: _Held, settings, now, field: str
) -> list:
    """Pay the line: with a grant's uses, or with money from a voucher, stored value and a direct payment."""
    revenue = ledger_account(member.merchant, Purpose.REVENUE)
    voucher_fen = check_fen(item.voucher_fen, f"{field}.voucher_fen")
    stored_fen = check_fen(item.stored_value_fen, f"{field}.stored_value_fen")
    direct_fen = check_fen(item.direct_fen, f"{field}.direct_fen")
    if item.grant is not None:
        if voucher_fen or stored_fen or direct_fen:
            raise fail(f"{field}.grant", "grant_with_money",
                       _("A line paid with coupon or entitlement uses takes no money as well."))  # fmt: skip
        return _grant_legs(line, item, member, held, revenue, now, field)
    payable = line.payable_fen
    for name, amount in (("voucher_fen", voucher_fen), ("stored_value_fen", stored_fen), ("direct_fen", direct_fen)):
        if amount > payable:
            raise fail(f"{field}.{name}", "deduction_over_payable",
                       _("The deduction %(amount)s is larger than the line's payable amount %(payable)s."),
                       amount=yuan(amount), payable=yuan(payable))  # fmt: skip
    if voucher_fen + stored_fen + direct_fen != payable:
        raise fail(f"{field}", "payment_mismatch",
                   _("The line's payable amount is %(payable)s but voucher + stored value + direct payment "
                     "give %(given)s."),
                   payable=yuan(payable), given=yuan(voucher_fen + stored_fen + direct_fen))  # fmt: skip
    legs: list = []
    if voucher_fen:
        legs += _voucher_legs(line, item, member, held, voucher_fen, revenue, now, field)
    if stored_fen:
        legs += _stored_value_legs(line, held, stored_fen, revenue, settings, field)
    if direct_fen:
        legs += _direct_legs(line, item, member, direct_fen, revenue, field)
    if payable == 0:
        raise fail(f"{field}.service", "nothing_to_charge",
                   _("%(service)s has no price to charge; record it with a coupon or entitlement, or not at all."),
                   service=str(line.service))  # fmt: skip
    return legs


def _grant_legs(line: ConsumptionLine, item: ConsumptionItem, member: Owner, held: _Held, revenue, now, field: str):
    """Uses of a coupon or entitlement lot: the uses leave the lot, the prepaid value they stand for is earned."""
    merchant = member.merchant
    quantity = line.quantity
    grant = held.grants[item.grant.pk]
    check_grant_usable(grant, member, line.service, now, f"{field}.grant")
    account = grant_account(grant)
    deferred = grant_deferred_account(grant)
    if grant.pk not in held.grant_left:
        held.grant_left[grant.pk] = balance_of(account, held.known)
        held.deferred_left[grant.pk] = ledger_selectors.balance(deferred)
    if quantity > held.grant_left[grant.pk]:
        raise fail(f"{field}.quantity", "grant_uses_insufficient",
                   _("%(grant)s has %(left)s uses left, %(asked)s asked."),
                   grant=str(grant), left=held.grant_left[grant.pk], asked=quantity)  # fmt: skip
    value = rules.value_of_uses(held.deferred_left[grant.pk], held.grant_left[grant.pk], quantity)
    held.grant_left[grant.pk] -= quantity
    held.deferred_left[grant.pk] -= value
    line.grant, line.uses, line.deferred_fen = grant, quantity, value
    legs = [
        ledger.decrease(account, quantity),
        ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, grant.unit), quantity),
    ]
    if value:
        legs += [ledger.decrease(deferred, value), ledger.increase(revenue, value)]
    return legs


def _voucher_legs(line, item: ConsumptionItem, member: Owner, held: _Held, voucher_fen: int, revenue, now, field):
    if item.voucher is None:
        raise fail(f"{field}.voucher", "voucher_required", _("Choose the voucher to deduct from."))
    voucher = held.vouchers[item.voucher.pk]
    check_voucher_usable(voucher, member, now, f"{field}.voucher")
    account = voucher_account(voucher)
    if voucher.pk not in held.voucher_left:
        held.voucher_left[voucher.pk] = ledger_selectors.balance(account)
    if voucher_fen > held.voucher_left[voucher.pk]:
        raise fail(f"{field}.voucher_fen", "voucher_insufficient",
                   _("The voucher has %(left)s left, %(asked)s asked."),
                   left=yuan(held.voucher_left[voucher.pk]), asked=yuan(voucher_fen))  # fmt: skip
    held.voucher_left[voucher.pk] -= voucher_fen
    line.voucher, line.voucher_fen = voucher, voucher_fen
    return [ledger.decrease(account, voucher_fen), ledger.increase(revenue, voucher_fen)]


def _stored_value_legs(line, held: _Held, stored_fen: int, revenue, settings, field: str) -> list:
    """Principal and bonus split by the merchant's spending policy (wallet.rules.split_stored_value)."""
    if stored_fen > held.principal_left + held.bonus_left:
        raise fail(f"{field}.stored_value_fen", "stored_value_insufficient",
                   _("The stored value %(left)s does not cover %(asked)s."),
                   left=yuan(held.principal_left + held.bonus_left), asked=yuan(stored_fen))  # fmt: skip
    from_principal, from_bonus = rules.split_stored_value(
        stored_fen, held.principal_left, held.bonus_left, settings.spending_policy
    )
    held.principal_left -= from_principal
    held.bonus_left -= from_bonus
    line.principal_fen, line.bonus_fen = from_principal, from_bonus
    legs = []
    if from_principal:
        legs.append(ledger.decrease(held.principal_acct, from_principal))
    if from_bonus:
        legs.append(ledger.decrease(held.bonus_acct, from_bonus))
    legs.append(ledger.increase(revenue, stored_fen))
    return legs


def _direct_legs(line, item: ConsumptionItem, member: Owner, direct_fen: int, revenue, field: str) -> list:
    merchant = member.merchant
    method = item.payment_method
    if method not in PaymentMethod.values:
        raise fail(f"{field}.payment_method", "payment_method_required",
                   _("Say how the %(amount)s were paid."), amount=yuan(direct_fen))  # fmt: skip
    line.direct_fen, line.payment_method = direct_fen, method
    return [
        ledger.increase(ledger_account(merchant, Purpose.CASH, detail=method), direct_fen),
        ledger.increase(revenue, direct_fen),
    ]


def _commission_legs(line: ConsumptionLine, item: ConsumptionItem, merchant, by_level: dict) -> list:
    """The staff member's commission on the line. Never more than was paid for the line: the money
    (principal, direct), the paid share of the voucher, or the prepaid value a grant's uses recognise.
    Bonus and gifted value pay no commission."""
    if item.staff is None:
        return []
    earned = line.deferred_fen if line.grant is not None else line.principal_fen + line.direct_fen
    if line.voucher_fen:
        earned += line.voucher_fen * line.voucher.paid_fen // line.voucher.face_value_fen
    commission = _commission(line.service, item.staff, line.payable_fen, line.quantity, earned, by_level)
    if not commission:
        return []
    line.commission_fen = commission
    return [ledger.increase(ledger_account(merchant, Purpose.COMMISSION_EXPENSE), commission),
            ledger.increase(ledger_account(merchant, Purpose.COMMISSION, staff=item.staff), commission)]  # fmt: skip


def _points_legs(line: ConsumptionLine, member: Owner, settings, now) -> list:
    """Points for what the line paid that earns points under the merchant's settings."""
    # Principal already earned points when it was bought if the merchant rewards buying stored value.
    eligible = line.direct_fen + (0 if settings.points_on_stored_value_purchase else line.principal_fen)
    if settings.points_on_bonus_spend:
        eligible += line.bonus_fen
    if settings.points_on_voucher_spend:
        eligible += line.voucher_fen
    points_legs = points_legs_for_spend(member, settings, now, eligible) if eligible else []
    if points_legs:
        line.points = points_legs[0].amount * points_legs[0].account.normal_sign
    return points_legs


def _post(member: Owner, store, actor, planned: list, *, now, note: str, service_record, idempotency_key,
          payable_total: int) -> Consumption:  # fmt: skip
    """Number and record the consumption, one ledger entry per line (a line is refunded exactly)."""
    merchant = member.merchant
    number = member_services.next_business_number(merchant, "xf")
    consumption = Consumption.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=user_or_none(actor), created_at=now,
        idempotency_key=idempotency_key, note=note, service_record=service_record, payable_total_fen=payable_total,
    )  # fmt: skip
    for line, legs in planned:
        entry = ledger.post_entry(
            merchant=merchant, legs=with_spend_tally(member, legs), operation_type="consumption",
            operation_ref=f"{number}/{line.line_no}",
            idempotency_key=f"consumption:{number}:{line.line_no}", actor=actor, store=store, member=member,
        )  # fmt: skip
        line.consumption = consumption
        line.entry_id = entry.pk
    ConsumptionLine.objects.bulk_create([line for line, _legs in planned])
    return consumption


@transaction.atomic
def consume_with_service_record(
    *,
    member: Owner,
    staff: Staff,
    store: Store | None,
    items: Sequence[ConsumptionItem],
    actor: AbstractBaseUser | None,
    notes: str = "",
    tags: Sequence[str] = (),
    idempotency_key: str | None = None,
) -> Consumption:
    """A visit (服务记录 fw…) and the consumption that pays for it, standing or falling together. Both
    records take the key; a replay is answered (or refused as a conflict) by each of the two calls."""
    record = record_service(member=member, staff=staff, store=store, actor=actor, notes=notes, tags=tags,
                            idempotency_key=idempotency_key)  # fmt: skip
    return consume(member=member, store=store, items=items, actor=actor, service_record=record,
                   idempotency_key=idempotency_key)  # fmt: skip


def _commission_rules(items: Sequence[ConsumptionItem]) -> dict[tuple[int, int], CommissionRule]:
    """The per-staff-level commission rules of the lines' services, in one query: (service id, level) → rule."""
    services = {item.service.pk for item in items if item.staff is not None}
    if not services:
        return {}
    return {(r.service_id, r.staff_level): r for r in CommissionRule.objects.filter(service_id__in=services)}


def _commission(
    service: Service,
    staff: Staff,
    payable: int,
    quantity: int,
    earned: int,
    by_level: dict[tuple[int, int], CommissionRule],
) -> int:
    rule = by_level.get((service.pk, staff.level))
    kind, value = (rule.kind, rule.value) if rule else (service.commission_kind, service.commission_value)
    if kind == CommissionKind.NONE:
        return 0
    return rules.commission_for(kind, value, payable, quantity, earned)
