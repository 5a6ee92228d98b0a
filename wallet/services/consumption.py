"""Consumption (消费/收银, xf…) and the service record (服务记录, fw…)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.money import yuan
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from members import services as member_services
from members.models import Owner, Staff, Store

from .. import rules
from ..accounts import (
    Purpose,
    consumption_specs,
    grant_account,
    grant_deferred_account,
    ledger_account,
    prefetch,
    stored_value_accounts,
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
    Voucher,
)
from .checks import (
    _fail,
    check_ceiling,
    check_fen,
    check_grant_usable,
    check_kind,
    check_lines,
    check_member,
    check_merchant,
    check_quantity,
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


def unit_price_for(member: Owner, service: Service) -> int:
    """Member price after the member's level rate."""
    rate = member.level.discount_rate_bp if member.level_id else 10000
    return rules.apply_rate_bp(service.member_price_fen, rate)


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
    exactly."""
    merchant = member.merchant
    note = clean_text(note, "note", max_length=200)
    check_member(member, store)
    items = check_lines(items, ConsumptionItem)
    if not items:
        raise _fail("items", "A consumption needs at least one line.")
    check_merchant(service_record, merchant.pk, "service_record")
    if service_record is not None and (service_record.member_id != member.pk):
        raise _fail("service_record", "The service record is of another member.")
    for i, item in enumerate(items):
        # Every row a line names is this merchant's, before anything is locked or counted.
        for name, kind in (("service", Service), ("staff", Staff), ("grant", Grant), ("voucher", Voucher)):
            check_kind(getattr(item, name), kind, f"items[{i}].{name}", required=name == "service")
            check_merchant(getattr(item, name), merchant.pk, f"items[{i}].{name}")
    settings = wallet_settings(merchant)
    now = timezone.now()

    # Lock every benefit row the lines draw on, in one stable order (card, grants, vouchers by id).
    lock_members([member.pk])  # first, as every operation does (a level upgrade below locks it again)
    uses_stored_value = any(it.stored_value_fen for it in items)
    card = lock_card(member, create=False) if uses_stored_value else None
    grant_ids = sorted({it.grant.pk for it in items if it.grant is not None})
    voucher_ids = sorted({it.voucher.pk for it in items if it.voucher is not None})
    grants = {g.pk: g for g in Grant.objects.select_for_update().filter(pk__in=grant_ids).order_by("pk")}
    vouchers = {v.pk: v for v in Voucher.objects.select_for_update().filter(pk__in=voucher_ids).order_by("pk")}

    prefetch(
        merchant, consumption_specs(member, items, card is not None, grants, vouchers, settings.points_valid_years, now)
    )
    commission_rules = _commission_rules(items)
    principal_acct = bonus_acct = None
    principal_left = bonus_left = 0
    if card is not None:
        principal_acct, bonus_acct = stored_value_accounts(member)
        current = ledger_selectors.balances([principal_acct, bonus_acct])
        principal_left, bonus_left = current[principal_acct.pk], current[bonus_acct.pk]
    grant_left: dict[int, int] = {}
    deferred_left: dict[int, int] = {}
    voucher_left: dict[int, int] = {}

    planned: list[tuple[ConsumptionLine, list]] = []
    payable_total = 0
    for i, item in enumerate(items, start=1):
        f = f"items[{i - 1}]"
        service = item.service
        if not service.is_active:
            raise _fail(f"{f}.service", f"{service} is not on sale.")
        quantity = check_quantity(item.quantity, f"{f}.quantity")
        unit_price = unit_price_for(member, service)
        payable = unit_price * quantity
        check_ceiling(payable_total + payable, settings.max_consumption_fen, "items", _("consumption"))
        line = ConsumptionLine(line_no=i, service=service, quantity=quantity, unit_price_fen=unit_price,
                               payable_fen=payable, staff=item.staff)  # fmt: skip
        legs: list = []
        revenue = ledger_account(merchant, Purpose.REVENUE)
        voucher_fen = check_fen(item.voucher_fen, f"{f}.voucher_fen")
        stored_fen = check_fen(item.stored_value_fen, f"{f}.stored_value_fen")
        direct_fen = check_fen(item.direct_fen, f"{f}.direct_fen")
        if item.grant is not None:
            if voucher_fen or stored_fen or direct_fen:
                raise _fail(f"{f}.grant", "A line paid with coupon or entitlement uses takes no money as well.")
            grant = grants[item.grant.pk]
            check_grant_usable(grant, member, service, now, f"{f}.grant")
            account = grant_account(grant)
            deferred = grant_deferred_account(grant)
            if grant.pk not in grant_left:
                grant_left[grant.pk] = ledger_selectors.balance(account)
                deferred_left[grant.pk] = ledger_selectors.balance(deferred)
            if quantity > grant_left[grant.pk]:
                raise _fail(f"{f}.quantity", f"{grant} has {grant_left[grant.pk]} uses left, {quantity} asked.")
            value = rules.value_of_uses(deferred_left[grant.pk], grant_left[grant.pk], quantity)
            grant_left[grant.pk] -= quantity
            deferred_left[grant.pk] -= value
            line.grant, line.uses, line.deferred_fen = grant, quantity, value
            legs += [
                ledger.decrease(account, quantity),
                ledger.decrease(ledger_account(merchant, Purpose.ISSUANCE, grant.unit), quantity),
            ]
            if value:
                legs += [ledger.decrease(deferred, value), ledger.increase(revenue, value)]
        else:
            for name, amount in (
                ("voucher_fen", voucher_fen),
                ("stored_value_fen", stored_fen),
                ("direct_fen", direct_fen),
            ):
                if amount > payable:
                    raise fail(f"{f}.{name}", "deduction_over_payable",
                               _("The deduction %(amount)s is larger than the line's payable amount %(payable)s."),
                               amount=yuan(amount), payable=yuan(payable))  # fmt: skip
            if voucher_fen + stored_fen + direct_fen != payable:
                raise fail(f"{f}", "payment_mismatch",
                           _("The line's payable amount is %(payable)s but voucher + stored value + direct payment "
                             "give %(given)s."),
                           payable=yuan(payable), given=yuan(voucher_fen + stored_fen + direct_fen))  # fmt: skip
            if voucher_fen:
                if item.voucher is None:
                    raise _fail(f"{f}.voucher", "Choose the voucher to deduct from.")
                voucher = vouchers[item.voucher.pk]
                check_voucher_usable(voucher, member, now, f"{f}.voucher")
                account = voucher_account(voucher)
                if voucher.pk not in voucher_left:
                    voucher_left[voucher.pk] = ledger_selectors.balance(account)
                if voucher_fen > voucher_left[voucher.pk]:
                    raise fail(f"{f}.voucher_fen", "voucher_insufficient",
                               _("The voucher has %(left)s left, %(asked)s asked."),
                               left=yuan(voucher_left[voucher.pk]), asked=yuan(voucher_fen))  # fmt: skip
                voucher_left[voucher.pk] -= voucher_fen
                line.voucher, line.voucher_fen = voucher, voucher_fen
                legs += [ledger.decrease(account, voucher_fen), ledger.increase(revenue, voucher_fen)]
            if stored_fen:
                if stored_fen > principal_left + bonus_left:
                    raise fail(f"{f}.stored_value_fen", "stored_value_insufficient",
                               _("The stored value %(left)s does not cover %(asked)s."),
                               left=yuan(principal_left + bonus_left), asked=yuan(stored_fen))  # fmt: skip
                from_principal, from_bonus = rules.split_stored_value(
                    stored_fen, principal_left, bonus_left, settings.spending_policy
                )
                principal_left -= from_principal
                bonus_left -= from_bonus
                line.principal_fen, line.bonus_fen = from_principal, from_bonus
                if from_principal:
                    legs.append(ledger.decrease(principal_acct, from_principal))
                if from_bonus:
                    legs.append(ledger.decrease(bonus_acct, from_bonus))
                legs.append(ledger.increase(revenue, stored_fen))
            if direct_fen:
                method = item.payment_method
                if method not in PaymentMethod.values:
                    raise fail(f"{f}.payment_method", "payment_method_required",
                               _("Say how the %(amount)s were paid."), amount=yuan(direct_fen))  # fmt: skip
                line.direct_fen, line.payment_method = direct_fen, method
                legs += [
                    ledger.increase(ledger_account(merchant, Purpose.CASH, detail=method), direct_fen),
                    ledger.increase(revenue, direct_fen),
                ]
            if payable == 0:
                raise _fail(f"{f}.service", f"{service} has no price to charge; record it with a grant or not at all.")

        if item.staff is not None:
            # Never more than was paid for the line: the money (principal, direct), the paid share of the
            # voucher, or the prepaid value a grant's uses recognise. Bonus and gifted value pay no commission.
            earned = line.deferred_fen if line.grant is not None else line.principal_fen + line.direct_fen
            if line.voucher_fen:
                earned += line.voucher_fen * line.voucher.paid_fen // line.voucher.face_value_fen
            commission = _commission(service, item.staff, payable, quantity, earned, commission_rules)
            if commission:
                line.commission_fen = commission
                legs += [ledger.increase(ledger_account(merchant, Purpose.COMMISSION_EXPENSE), commission),
                         ledger.increase(ledger_account(merchant, Purpose.COMMISSION, staff=item.staff), commission)]  # fmt: skip
        # Principal already earned points when it was bought if the merchant rewards buying stored value.
        eligible = line.direct_fen + (0 if settings.points_on_stored_value_purchase else line.principal_fen)
        if settings.points_on_bonus_spend:
            eligible += line.bonus_fen
        if settings.points_on_voucher_spend:
            eligible += line.voucher_fen
        points_legs = points_legs_for_spend(member, settings, now, eligible) if eligible else []
        if points_legs:
            line.points = points_legs[0].amount * points_legs[0].account.normal_sign
            legs += points_legs
        payable_total += payable
        planned.append((line, legs))

    number = member_services.next_business_number(merchant, "xf")
    consumption = Consumption.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=user_or_none(actor), created_at=now,
        idempotency_key=idempotency_key, note=note, service_record=service_record, payable_total_fen=payable_total,
    )  # fmt: skip
    for line, legs in planned:
        entry = ledger.post_entry(
            merchant=merchant, legs=with_spend_tally(member, legs), operation_type="consumption", operation_ref=f"{number}/{line.line_no}",
            idempotency_key=f"consumption:{number}:{line.line_no}", actor=actor, store=store, member=member,
        )  # fmt: skip
        line.consumption = consumption
        line.entry_id = entry.pk
    ConsumptionLine.objects.bulk_create([line for line, _legs in planned])
    upgrade_level(member, actor)
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
