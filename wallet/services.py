"""The wallet's operations. Each public function is one atomic transaction that writes its numbered
business record and posts through the ledger API; a failure leaves nothing behind.

Postings per operation are tabled in docs/wallet.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import inspect
import json
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, fail
from core.money import MAX_FEN, yuan
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.errors import InsufficientBalance
from ledger.models import Account, Entry
from members import selectors as member_selectors
from members import services as member_services
from members.models import AuditEvent, Level, Merchant, Owner, Staff, Store

from . import permissions as wallet_permissions
from . import rules
from . import selectors as wallet_selectors
from .models import (
    ActivityPointsRule,
    CashRefund,
    CommissionKind,
    Consumption,
    ConsumptionLine,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    PaymentMethod,
    Recharge,
    RechargeLine,
    RechargePlan,
    Service,
    ServiceRecord,
    ServiceTag,
    StoredValueCard,
    VipCardType,
    VipMembership,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)

CNY = ledger.CNY
POINT = ledger.POINT

MAX_LINE_QUANTITY = rules.MAX_LINE_QUANTITY


def wallet_settings(merchant: Merchant) -> WalletSettings:
    return WalletSettings.objects.get_or_create(merchant=merchant)[0]


# ---------------------------------------------------------------- shared checks and accounts


def _fail(field: str, message: str, code: str = "invalid") -> DomainError:
    return DomainError(field, message, code=code)


def _check_member(member: Owner, store: Store | None) -> None:
    if member.status != Owner.Status.ACTIVE:
        raise _fail("member", f"Member {member.member_number} is {member.get_status_display()}; no operations allowed.")
    _check_kind(store, Store, "store")
    _check_merchant(store, member.merchant_id, "store")


def _check_merchant(obj: models.Model | None, merchant_id: int, field: str) -> None:
    """Every related object a service receives must be of the operation's merchant (code other_merchant).
    The message names the kind of object only: never another merchant's names or internal ids."""
    if obj is not None and obj.merchant_id != merchant_id:
        raise fail(
            field, "other_merchant", _("This %(kind)s belongs to another merchant."), kind=obj._meta.verbose_name
        )


def _check_actor(actor, merchant: Merchant) -> None:
    """The person acting is a related object too: a signed-in user acts for a merchant only as its active
    staff, or as a platform admin. No actor (a job, the system) is not checked here."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return
    if member_selectors.is_platform_admin(actor) or member_selectors.merchant_of(actor) == merchant:
        return
    raise fail("actor", "other_merchant", _("You do not act for this merchant."))


def _check_kind(obj, kind: type[models.Model], field: str, *, required: bool = False) -> None:
    """A related argument is a row of the expected model (or None where optional), never an id or a row of
    another model that happens to share an id."""
    if obj is None and not required:
        return
    if not isinstance(obj, kind):
        raise _fail(field, f"Choose a {kind._meta.verbose_name}.")


def _check_same_merchant(obj, member: Owner, field: str) -> None:
    _check_merchant(obj, member.merchant_id, field)


def _check_positive_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(field, f"Must be a whole number of at least 1, got {value!r}.")
    if value > MAX_LINE_QUANTITY:
        raise fail(field, "quantity_too_large", _("At most %(max)s per line."), max=f"{MAX_LINE_QUANTITY:,}")
    return value


def _reason(reason: str | None, message=None) -> str:
    """The reason an operation needs (refunds, free value): required, no NUL, at most 200 characters."""
    text = member_services.clean_text(reason, "reason", max_length=200)
    if not text:
        raise fail("reason", "reason_required", message or _("A reason is required."))
    return text


def _text(value: str | None, field: str, max_length: int | None = None) -> str:
    """Free text of an operation (note, notes, tags): no NUL (PostgreSQL refuses it), within its column."""
    return member_services.clean_text(value, field, max_length=max_length)


def _check_fen(value, field: str, *, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, "amount_format", _("Amounts are whole fen (integers)."))
    if value < 0 or (value == 0 and not allow_zero):
        raise _fail(field, f"The amount must be {'positive' if allow_zero else 'greater than zero'}, got {value}.")
    if value > MAX_FEN:
        raise fail(field, "amount_too_large", _("The amount %(value)s is too large."), value=yuan(value))
    return value


def _check_ceiling(total: int, ceiling: int, field: str, what: str) -> None:
    """Amount ceilings per operation (WalletSettings.max_recharge_fen / max_consumption_fen). Checked as
    lines are added, before anything is written, so no oversized amount reaches a column. A ceiling set
    above core.money.MAX_FEN counts as MAX_FEN (the largest amount the ledger takes)."""
    ceiling = min(ceiling, MAX_FEN)
    if total > ceiling:
        raise fail(
            field, "amount_over_ceiling", _("The %(what)s comes to %(total)s; this merchant's ceiling is %(ceiling)s."),
            what=what, total=yuan(total), ceiling=yuan(ceiling),
        )  # fmt: skip


def _check_benefit_count(count: int, field: str) -> None:
    if count > MAX_LINE_QUANTITY:
        raise fail(field, "quantity_too_large", _("At most %(max)s coupons, entitlements or vouchers per operation."),
                   max=f"{MAX_LINE_QUANTITY:,}")  # fmt: skip


def _gift_value(target) -> int:
    """What one unit of a template is worth when it is given away (docs/wallet.md §4)."""
    if isinstance(target, VoucherTemplate):
        return target.amount_fen
    if isinstance(target, CouponTemplate | EntitlementPackage):
        return target.list_value_fen()
    return target.price_fen


def _check_free_gift(target, settings: WalletSettings, field: str, count: int = 1, before: int = 0) -> int:
    """A voucher or coupon given away outside a plan is worth at most max_free_gift_fen: one given alone,
    or all units of templates priced 0 in one recharge together (`before`: earlier lines' free value).
    Returns the free value counted so far."""
    value = _gift_value(target) * count + before
    if value > settings.max_free_gift_fen:
        raise fail(
            field, "free_value_over_limit", _("%(name)s is worth %(value)s; at most %(limit)s may be given free."),
            name=str(target), value=yuan(value), limit=yuan(settings.max_free_gift_fen),
        )  # fmt: skip
    return value


def _recheck_catalog(obj: models.Model, field: str) -> None:
    """Run a catalog row's own validation (its model clean(), what the admin form ran) again at the
    operation, so a row saved around the admin or made invalid by a changed setting is refused too."""
    try:
        obj.clean()
    except DomainError as exc:
        raise DomainError(field, exc.template, code=exc.code, params=exc.params) from exc


def _check_lines(items, kind: type, field: str = "items") -> list:
    """The lines of an operation: a list or tuple of `kind`, never a string or other objects."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise _fail(field, f"Give the lines as a list of {kind.__name__}.")
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise _fail(f"{field}[{i}]", f"Each line is a {kind.__name__}.")
    return list(items)


def _check_payment_method(method: str, field: str = "payment_method") -> str:
    if method == "stored_value":
        raise _fail(field, "A recharge cannot be paid from the member's own stored value.")
    if method not in PaymentMethod.values:
        raise _fail(field, f"Unknown payment method '{method}'; use one of {', '.join(PaymentMethod.values)}.")
    return method


def _request_hash(arguments: dict) -> str:
    """A stable fingerprint of an operation's content: every argument but the actor and the key, rows by
    model and primary key, items field by field. Stored on the record as request_hash."""

    def normalized(value):
        if isinstance(value, models.Model):
            return f"{value._meta.label_lower}:{value.pk}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: normalized(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {str(k): normalized(v) for k, v in value.items()}
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        if hasattr(value, "__iter__"):
            return [normalized(v) for v in value]
        return str(value)

    text = json.dumps(normalized(arguments), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _existing(
    model, merchant: Merchant, idempotency_key: str | None, member: Owner | None = None, request_hash: str = ""
):
    """The operation already recorded under this key (a retried request), or None. A key reused for
    another member, or with different content, is refused (idempotency_conflict) rather than answered
    with another request's record. Records from before request_hash existed have none: not compared."""
    if not idempotency_key:
        return None
    found = model.objects.filter(merchant=merchant, idempotency_key=idempotency_key).first()
    if found is None:
        return None
    if member is not None and found.member_id != member.pk:
        raise fail(
            "idempotency_key", "idempotency_conflict", _("This request key was already used for another member.")
        )
    if request_hash and found.request_hash and found.request_hash != request_hash:
        raise fail(
            "idempotency_key", "idempotency_conflict",
            _("This form was already submitted with different content (recorded as %(number)s). Reload the page to "
              "record a new operation."),
            number=found.number,
        )  # fmt: skip
    return found


def _check_record_text(model, arguments: dict) -> None:
    """Text an operation receives must fit where it is stored: the key is text of at most the column's
    length, no argument (nor tag) carries a NUL character (PostgreSQL cannot store one), and an argument
    stored on the record (note, reason) fits its column. Refused with a field error, never a database
    error."""
    key = arguments.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise fail("idempotency_key", "invalid", _("The request key must be text."))
    for name, value in arguments.items():
        if name == "tags" and isinstance(value, Sequence) and not isinstance(value, str):
            for tag in value:
                if isinstance(tag, str):
                    _text(tag, name)
        elif isinstance(value, str):
            try:
                limit = model._meta.get_field(name).max_length
            except FieldDoesNotExist:
                limit = None
            _text(value, name, max_length=limit)  # the one text rule (members.services.clean_text)


def _related_parameters(fn) -> dict[str, tuple[type[models.Model], bool, bool]]:
    """The parameters of `fn` declared as rows: name → (model, required, a sequence of rows)."""
    found = {}
    for name, hint in typing.get_type_hints(fn).items():
        if name in ("return", "actor"):  # the actor may be an anonymous user: checked by _check_actor
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, type) and issubclass(hint, models.Model):
            found[name] = (hint, True, False)
        elif isinstance(hint, types.UnionType | typing._UnionGenericAlias) and len(args) == 1:  # X | None
            if isinstance(args[0], type) and issubclass(args[0], models.Model):
                found[name] = (args[0], False, False)
        elif (
            typing.get_origin(hint) is Sequence
            and len(args) == 1
            and isinstance(args[0], type)
            and issubclass(args[0], models.Model)
        ):
            found[name] = (args[0], True, True)
    return found


def _check_related_kinds(related: dict, arguments: dict) -> None:
    """Every argument declared as a row is one of its model (ids and rows of other models are refused)."""
    for name, (kind, required, many) in related.items():
        value = arguments.get(name)
        if many:
            for i, row in enumerate(_check_lines(value, kind, name)):
                _check_kind(row, kind, f"{name}[{i}]")
        else:
            _check_kind(value, kind, name, required=required)


def _idempotent(model):
    """For every operation taking an idempotency key, one place: the request's content is fingerprinted
    (_request_hash) and stored on its record. A repeat of the key with the same content is answered with
    the first record; with different content it is refused. When two requests race, the second waits on
    the first's row and fails its unique key: it is then answered (or refused) the same way. Put above
    @transaction.atomic; the operation's arguments must be keyword-only."""

    def decorate(fn):
        signature = inspect.signature(fn)
        related = _related_parameters(fn)

        @functools.wraps(fn)
        def wrapper(**kwargs):
            # Lines given as an iterator are read once here, so the fingerprint and the operation see them all.
            kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
            bound = signature.bind(**kwargs)
            bound.apply_defaults()
            _check_record_text(model, bound.arguments)
            _check_related_kinds(related, bound.arguments)
            member = kwargs.get("member") or kwargs["grant"].member
            _check_actor(kwargs.get("actor"), member.merchant)
            key = kwargs.get("idempotency_key")
            if not key:
                # "" is no key, like None: stored as NULL, so requests without a key never collide.
                return fn(**{**kwargs, "idempotency_key": None} if "idempotency_key" in kwargs else kwargs)
            request_hash = _request_hash(
                {k: v for k, v in bound.arguments.items() if k not in ("actor", "idempotency_key")}
            )
            try:
                with transaction.atomic():
                    existing = _existing(model, member.merchant, key, member, request_hash)
                    if existing is not None:
                        return existing
                    record = fn(**kwargs)
                    model.objects.filter(pk=record.pk).update(request_hash=request_hash)
                    record.request_hash = request_hash
                    return record
            except IntegrityError:
                existing = _existing(model, member.merchant, key, member, request_hash)
                if existing is None:
                    raise
                return existing

        return wrapper

    return decorate


# The earlier name of the decorator (race handling only), kept so code written against it still works.
_first_on_race = _idempotent


def _acct(merchant: Merchant, purpose: str, unit: str = CNY, *, member=None, staff=None, detail: str = "") -> Account:
    return ledger.get_or_create_account(merchant, purpose, unit, member=member, staff=staff, detail=detail)


def _stored_value_accounts(member: Owner) -> tuple[Account, Account]:
    return (
        _acct(member.merchant, "principal", member=member),
        _acct(member.merchant, "bonus", member=member),
    )


def _grant_account(grant: Grant) -> Account:
    return _acct(grant.merchant, grant.purpose, grant.unit, member=grant.member, detail=grant.account_detail)


def _grant_deferred_account(grant: Grant) -> Account:
    """The prepaid money of one lot not yet earned: its uses, refund and expiry draw on this alone."""
    return _acct(grant.merchant, "deferred_revenue", detail=grant.account_detail)


def _voucher_account(voucher: Voucher) -> Account:
    return _acct(voucher.merchant, "voucher", member=voucher.member, detail=voucher.account_detail)


def points_lot_detail(earned_on: datetime.date, valid_years: int) -> str:
    """Points earned in year Y expire at the end of year Y + valid_years: one account per expiry year."""
    return f"exp{earned_on.year + valid_years}"


def _lock_members(member_ids: Sequence[int]) -> list[int]:
    """Lock the members' rows, in id order: the first lock taken by every operation that changes what a
    member holds (the global lock order, docs/wallet.md §5: member → card → grants → VIP memberships →
    vouchers → consumption lines → ledger balances). It is what makes the per-member coupon limit and the
    refunds of one member's benefits race-free, on purpose rather than by a shared number row."""
    ids = sorted(set(member_ids))
    # FOR NO KEY UPDATE: serialises these operations without blocking the key-share locks that inserting
    # rows pointing at the member (entries, grants) takes; a plain FOR UPDATE deadlocks against those.
    rows = Owner.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    return list(rows.values_list("pk", flat=True))


def _lock_card(member: Owner, *, create: bool) -> StoredValueCard:
    if create:
        StoredValueCard.objects.get_or_create(member=member, defaults={"merchant": member.merchant})
    card = StoredValueCard.objects.select_for_update().filter(member=member).first()
    if card is None:
        raise _fail("stored_value", f"Member {member.member_number} has no stored-value card.")
    if card.status == StoredValueCard.Status.CLOSED:
        raise _fail("stored_value", "The stored-value card was closed by a cash refund and cannot be used.")
    return card


# ---------------------------------------------------------------- recharge (充值, cz…)


@dataclass
class RechargeItem:
    """One recharge line. kind: stored_value (amount_fen of principal, optional bonus_fen), plan,
    coupon, package, voucher or vip (with the matching template)."""

    kind: str
    quantity: int = 1
    amount_fen: int = 0
    bonus_fen: int = 0
    discount_bp: int = 10000
    plan: RechargePlan | None = None
    coupon_template: CouponTemplate | None = None
    package: EntitlementPackage | None = None
    voucher_template: VoucherTemplate | None = None
    vip_type: VipCardType | None = None


@dataclass
class _Postings:
    legs: list

    def add(self, leg) -> None:
        if leg.amount:
            self.legs.append(leg)


@_idempotent(Recharge)
@transaction.atomic
def recharge(
    *,
    member: Owner,
    store: Store | None,
    payment_method: str,
    items: Sequence[RechargeItem],
    actor: AbstractBaseUser | None,
    idempotency_key: str | None = None,
    note: str = "",
) -> Recharge:
    """Take money in and credit what it buys: principal and bonus, coupons, entitlement packages,
    vouchers, VIP periods."""
    merchant = member.merchant
    note = _text(note, "note", max_length=200)
    _check_member(member, store)
    _check_payment_method(payment_method)
    items = _check_lines(items, RechargeItem)
    if not items:
        raise _fail("items", "A recharge needs at least one line.")
    # Member first, as every operation on what the member holds (docs §5): a VIP renewal or plan recharge
    # locks VIP rows and creates ledger accounts a cash refund of stored value (member → card → VIP) also
    # takes; without the member lock the two deadlocked on PostgreSQL.
    _lock_members([member.pk])
    now = timezone.now()
    settings = wallet_settings(merchant)
    number = member_services.next_business_number(merchant, "cz")
    postings = _Postings([])
    lines: list[RechargeLine] = []
    principal_total = bonus_total = list_total = paid_total = 0
    revenue_total = promo_total = manual_bonus_total = 0
    pending_coupons: dict[int, int] = {}
    free_gifts = [0]  # free value of templates priced 0 sold so far (docs/wallet.md §4.1)
    grants: list[Grant] = []
    vouchers: list[Voucher] = []
    vip_purchases: list[VipCardType] = []

    for i, item in enumerate(items, start=1):
        f = f"items[{i - 1}]"
        quantity = _check_positive_int(item.quantity, f"{f}.quantity")
        if (
            isinstance(item.discount_bp, bool)
            or not isinstance(item.discount_bp, int)
            or not 1 <= item.discount_bp <= 10000
        ):
            raise _fail(f"{f}.discount_bp", "The discount is in basis points from 1 to 10000 (10000 = no discount).")
        if 10000 - item.discount_bp > settings.max_manual_discount_bp:
            raise fail(
                f"{f}.discount_bp", "free_value_over_limit",
                _("At most %(limit)s%% off may be given by hand on a recharge line."),
                limit=f"{settings.max_manual_discount_bp / 100:g}",
            )  # fmt: skip
        line = RechargeLine(line_no=i, kind=item.kind, quantity=quantity, discount_bp=item.discount_bp)
        if item.kind in (RechargeLine.Kind.STORED_VALUE, RechargeLine.Kind.PLAN):
            if item.discount_bp != 10000:
                raise _fail(
                    f"{f}.discount_bp", "Stored value is loaded at face value; use a plan's bonus to promote it."
                )
            if item.kind == RechargeLine.Kind.STORED_VALUE:
                unit_price = _check_fen(item.amount_fen, f"{f}.amount_fen", allow_zero=False)
                bonus = _check_fen(item.bonus_fen, f"{f}.bonus_fen") * quantity
                manual_bonus_total += bonus
                _check_manual_bonus(bonus, unit_price * quantity, manual_bonus_total, settings, f"{f}.bonus_fen")
            else:
                plan = item.plan
                _check_kind(plan, RechargePlan, f"{f}.plan")
                if plan is None or not plan.is_active:
                    raise _fail(f"{f}.plan", "Choose an active recharge plan.")
                _check_same_merchant(plan, member, f"{f}.plan")
                for gift in (plan.gift_coupon, plan.gift_package, plan.gift_vip):
                    _check_same_merchant(gift, member, f"{f}.plan")
                _recheck_catalog(plan, f"{f}.plan")  # bonus and gifts within the plan share
                line.plan = plan
                unit_price, bonus = plan.pay_fen, plan.bonus_fen * quantity
                if plan.gift_coupon_id and plan.gift_coupon_quantity:
                    gifts = plan.gift_coupon_quantity * quantity
                    _check_benefit_count(len(grants) + gifts, f"{f}.quantity")
                    _check_coupon_limit(member, plan.gift_coupon, gifts, f"{f}.plan", pending_coupons)
                    for _n in range(gifts):
                        grants.append(_new_coupon_grant(member, plan.gift_coupon, 0, number, now))
                if plan.gift_package_id:
                    for _n in range(quantity):
                        grants.extend(_new_package_grants(member, plan.gift_package, 0, number, now))
                        _check_benefit_count(len(grants), f"{f}.quantity")
                if plan.gift_vip_id:
                    vip_purchases.extend([plan.gift_vip] * quantity)
            amount = unit_price * quantity
            line.unit_price_fen, line.amount_fen, line.bonus_fen = unit_price, amount, bonus
            principal_total += amount
            bonus_total += bonus
        elif item.kind == RechargeLine.Kind.COUPON:
            template = _priced_line(line, item, "coupon_template", "coupon template", member, f, settings, free_gifts)
            _check_benefit_count(len(grants) + quantity, f"{f}.quantity")
            _check_coupon_limit(member, template, quantity, f"{f}.quantity", pending_coupons)
            shares = _allocate(line.amount_fen, [1] * quantity)
            grants.extend(_new_coupon_grant(member, template, share, number, now) for share in shares)
        elif item.kind == RechargeLine.Kind.PACKAGE:
            package = _priced_line(line, item, "package", "entitlement package", member, f, settings, free_gifts)
            for share in _allocate(line.amount_fen, [1] * quantity):
                grants.extend(_new_package_grants(member, package, share, number, now))
                _check_benefit_count(len(grants), f"{f}.quantity")
        elif item.kind == RechargeLine.Kind.VOUCHER:
            template = _priced_line(line, item, "voucher_template", "voucher template", member, f, settings, free_gifts)
            _check_benefit_count(len(vouchers) + quantity, f"{f}.quantity")
            face_total = template.amount_fen * quantity
            if line.amount_fen > face_total:
                raise _fail(f"{f}.voucher_template", "A voucher cannot be sold for more than its face value.")
            for share in _allocate(line.amount_fen, [1] * quantity):
                vouchers.append(
                    Voucher(merchant=merchant, member=member, template=template, face_value_fen=template.amount_fen,
                            paid_fen=share, valid_from=now, valid_until=now + datetime.timedelta(days=template.valid_days),
                            source_ref=number)
                )  # fmt: skip
            promo_total += face_total - line.amount_fen
        elif item.kind == RechargeLine.Kind.VIP:
            vip_type = _priced_line(line, item, "vip_type", "VIP card type", member, f, settings, free_gifts)
            vip_purchases.extend([vip_type] * quantity)
            revenue_total += line.amount_fen
        else:
            raise _fail(f"{f}.kind", f"Unknown recharge line kind '{item.kind}'.")
        list_total += line.unit_price_fen * quantity
        paid_total += line.amount_fen
        _check_ceiling(paid_total, settings.max_recharge_fen, "items", _("recharge"))
        lines.append(line)

    if paid_total <= 0:
        raise _fail("items", "A recharge must take a positive amount of money.")

    if principal_total or bonus_total:
        _lock_card(member, create=True)
        principal, bonus_account = _stored_value_accounts(member)
        postings.add(ledger.increase(principal, principal_total))
        postings.add(ledger.increase(bonus_account, bonus_total))
        postings.add(ledger.increase(_acct(merchant, "bonus_expense"), bonus_total))
    postings.add(ledger.increase(_acct(merchant, "cash", detail=payment_method), paid_total))
    postings.add(ledger.increase(_acct(merchant, "revenue"), revenue_total))
    if vouchers:
        Voucher.objects.bulk_create(vouchers)
        for voucher in vouchers:
            postings.add(ledger.increase(_voucher_account(voucher), voucher.face_value_fen))
        postings.add(ledger.increase(_acct(merchant, "bonus_expense"), promo_total))
    if grants:
        Grant.objects.bulk_create(grants)
        postings.legs.extend(_grant_issue_legs(merchant, grants))
    if settings.points_on_stored_value_purchase and principal_total:
        postings.legs.extend(_points_legs(member, settings, now, principal_total))

    entry = ledger.post_entry(
        merchant=merchant, legs=_merge(postings.legs), operation_type="recharge", operation_ref=number,
        idempotency_key=f"recharge:{number}", actor=actor, store=store, member=member, memo=note[:200],
    )  # fmt: skip
    record = Recharge.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=_user(actor), created_at=now,
        idempotency_key=idempotency_key, note=note, payment_method=payment_method, list_total_fen=list_total,
        paid_total_fen=paid_total, bonus_total_fen=bonus_total, entry_id=entry.pk,
    )  # fmt: skip
    for line in lines:
        line.recharge = record
    RechargeLine.objects.bulk_create(lines)
    for vip_type in vip_purchases:
        _extend_vip(member, vip_type, number, now)
    return record


def _check_manual_bonus(bonus: int, paid: int, running_total: int, settings: WalletSettings, field: str) -> None:
    """A bonus typed in by hand: at most max_manual_bonus_bp of the stored value it comes with, and at
    most max_manual_bonus_fen over the whole recharge. A plan's bonus is configured, so not counted."""
    share = paid * settings.max_manual_bonus_bp // 10000
    if bonus > share or running_total > settings.max_manual_bonus_fen:
        raise fail(
            field, "free_value_over_limit",
            _("A bonus of %(bonus)s is over the limit: at most %(share)s%% of the stored value paid (%(allowed)s "
              "here) and %(cap)s per recharge. Use a recharge plan."),
            bonus=yuan(bonus), share=f"{settings.max_manual_bonus_bp / 100:g}", allowed=yuan(share),
            cap=yuan(settings.max_manual_bonus_fen),
        )  # fmt: skip


_SOLD = {
    "coupon_template": CouponTemplate,
    "package": EntitlementPackage,
    "voucher_template": VoucherTemplate,
    "vip_type": VipCardType,
}


def _priced_line(
    line: RechargeLine,
    item: RechargeItem,
    attr: str,
    label: str,
    member: Owner,
    field: str,
    settings: WalletSettings,
    free_gifts: list[int],
):
    """Validate the catalog item a recharge line sells (chosen, active, this merchant's), put it on
    the line and price the line: quantity × price × discount, rounded half up. A template priced 0 is
    a gift, bounded like one given free: all such units of the recharge together at most max_free_gift_fen
    (`free_gifts`: a one-element running total)."""
    target = getattr(item, attr)
    _check_kind(target, _SOLD[attr], f"{field}.{attr}")
    if target is None or not target.is_active:
        raise _fail(f"{field}.{attr}", f"Choose an active {label}.")
    _check_same_merchant(target, member, f"{field}.{attr}")
    if not target.price_fen:
        free_gifts[0] = _check_free_gift(target, settings, f"{field}.{attr}", line.quantity, free_gifts[0])
    _recheck_catalog(target, f"{field}.{attr}")  # sold below face or list value within the plan share
    setattr(line, attr, target)
    line.unit_price_fen = target.price_fen
    line.amount_fen = rules.apply_rate_bp(target.price_fen * line.quantity, item.discount_bp)
    return target


def _user(actor: AbstractBaseUser | None):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` fen by weights; the remainder goes to the first parts (deterministic)."""
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    shares = [total * w // weight_sum for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares


def _merge(legs: list) -> list:
    """Merge legs on the same account (e.g. two bonus_expense parts) so each account has one leg."""
    merged: dict[int, ledger.LegSpec] = {}
    for leg in legs:
        if leg.account.pk in merged:
            merged[leg.account.pk] = ledger.LegSpec(leg.account, merged[leg.account.pk].amount + leg.amount)
        else:
            merged[leg.account.pk] = leg
    return [leg for leg in merged.values() if leg.amount]


def _check_coupon_limit(member: Owner, template: CouponTemplate, adding: int, field: str, pending: dict) -> None:
    """Refuse more coupons of a template than its per-member limit, counting those held and those
    already added by earlier lines or gifts of the same operation (`pending`)."""
    pending[template.pk] = pending.get(template.pk, 0) + adding
    if template.per_member_limit:
        _lock_members([member.pk])  # count under the member's lock: parallel grants of the template queue here
        held = Grant.objects.filter(member=member, coupon_template=template).count()
        if held + pending[template.pk] > template.per_member_limit:
            raise fail(
                field,
                "coupon_limit",
                _("%(template)s is limited to %(limit)s per member; the member has %(held)s."),
                template=str(template),
                limit=template.per_member_limit,
                held=held,
            )


def _new_coupon_grant(member: Owner, template: CouponTemplate, paid: int, source: str, now) -> Grant:
    return Grant(
        merchant=member.merchant, member=member, kind=Grant.Kind.COUPON, coupon_template=template,
        uses_total=template.uses, paid_fen=paid, valid_until=now + datetime.timedelta(days=template.valid_days),
        source_ref=source, created_at=now,
    )  # fmt: skip


def _new_package_grants(member: Owner, package: EntitlementPackage, paid: int, source: str, now) -> list[Grant]:
    items = list(package.items.select_related("service").order_by("id"))
    if not items:
        raise _fail("package", f"Package {package} has no services.")
    for it in items:
        _check_same_merchant(it.service, member, "package")
    # The price paid is spread over the services by their list value, so each use refunds at what it cost.
    shares = _allocate(paid, [it.service.list_price_fen * it.quantity or 1 for it in items])
    valid_until = now + datetime.timedelta(days=package.valid_days) if package.valid_days else None
    return [
        Grant(merchant=member.merchant, member=member, kind=Grant.Kind.ENTITLEMENT, service=it.service,
              package=package, uses_total=it.quantity, paid_fen=share, valid_until=valid_until, source_ref=source,
              created_at=now)
        for it, share in zip(items, shares, strict=True)
    ]  # fmt: skip


def _grant_issue_legs(merchant: Merchant, grants: list[Grant]) -> list:
    """Credit each grant's uses to its own account against the merchant's issuance account of the unit."""
    legs = []
    by_purpose: dict[tuple[str, str], list[Grant]] = {}
    for grant in grants:
        by_purpose.setdefault((grant.purpose, grant.unit), []).append(grant)
    for (purpose, unit), group in by_purpose.items():
        accounts = ledger.get_or_create_lot_accounts(
            merchant, purpose, unit, [(g.member_id, g.account_detail) for g in group]
        )
        issued = 0
        for grant in group:
            legs.append(ledger.increase(accounts[(grant.member_id, grant.account_detail)], grant.uses_total))
            issued += grant.uses_total
        legs.append(ledger.increase(_acct(merchant, "issuance", unit), issued))
    for grant in grants:
        if grant.paid_fen:
            legs.append(ledger.increase(_grant_deferred_account(grant), grant.paid_fen))
    return legs


def _points_legs(member: Owner, settings: WalletSettings, now, eligible_fen: int) -> list:
    """Points for `eligible_fen` of spend at the member's level multiplier, into this year's lot."""
    multiplier = member.level.points_multiplier_pct if member.level_id else 100
    points = rules.points_for(eligible_fen, settings.points_per_yuan, multiplier)
    if points <= 0:
        return []
    return _points_for_count(member, settings, now, points)


def _extend_vip(member: Owner, vip_type: VipCardType, source: str, now) -> VipMembership:
    """Buy or renew: a renewal extends from the current end, a new card starts now."""
    months = rules.PERIOD_MONTHS[vip_type.period]
    current = (
        VipMembership.objects.select_for_update()
        .filter(member=member, card_type=vip_type, status=VipMembership.Status.ACTIVE)
        .first()
    )
    if current is not None and current.ends_at > now:
        current.ends_at = rules.add_months(current.ends_at, months)
        current.save(update_fields=["ends_at"])
        return current
    if current is not None:  # lapsed but not yet swept by the expiry job
        current.status = VipMembership.Status.EXPIRED
        current.save(update_fields=["status"])
    return VipMembership.objects.create(
        merchant=member.merchant, member=member, card_type=vip_type, starts_at=now,
        ends_at=rules.add_months(now, months), source_ref=source,
    )  # fmt: skip


def purchase_vip(
    *, member: Owner, vip_type: VipCardType, payment_method: str, store: Store | None, actor, idempotency_key=None
) -> Recharge:
    """VIP purchase or renewal: a recharge with one VIP line."""
    return recharge(member=member, store=store, payment_method=payment_method, actor=actor,
                    items=[RechargeItem(kind="vip", vip_type=vip_type)], idempotency_key=idempotency_key)  # fmt: skip


# ---------------------------------------------------------------- coupon issuance (free, by rule or batch)


@dataclass
class IssueResult:
    issued: int
    skipped_at_limit: list[int]
    entry_ids: list[int]


@transaction.atomic
def issue_coupons(
    *,
    template: CouponTemplate,
    member_ids: Sequence[int],
    actor: AbstractBaseUser | None,
    reason: str,
    actor_label: str = "",
    batch_ref: str = "",
) -> IssueResult:
    """Give one coupon of `template` to each member (free: no money moves). Members at the template's
    per-member limit are skipped and reported. Thousands at once go through the ledger's bulk path:
    one entry per 2,000 grants."""
    merchant = template.merchant
    reason = _reason(reason, _("Say why the coupons are issued (e.g. new member, spend threshold)."))
    _check_actor(actor, merchant)
    if not template.is_active:
        raise _fail("template", f"{template} is not active.")
    _check_free_gift(template, wallet_settings(merchant), "template")
    member_ids = list(dict.fromkeys(member_ids))
    # Lock the members (id order) before counting what they hold: a parallel batch, recharge line or plan
    # gift of the same template for the same member waits here and then counts this batch's grants.
    _lock_members(member_ids)
    members = {m.pk: m for m in Owner.objects.filter(merchant=merchant, pk__in=member_ids, status=Owner.Status.ACTIVE)}
    unknown = [m for m in member_ids if m not in members]
    if unknown:
        # Members of another merchant are reported like unknown ones (no names, no ids).
        raise fail("member_ids", "other_merchant", _("%(count)s of the members are not active members of %(merchant)s."),
                   count=len(unknown), merchant=str(merchant))  # fmt: skip
    skipped: list[int] = []
    if template.per_member_limit:
        held: dict[int, int] = {}
        for member_id in Grant.objects.filter(coupon_template=template, member_id__in=member_ids).values_list(
            "member_id", flat=True
        ):
            held[member_id] = held.get(member_id, 0) + 1
        skipped = [m for m in member_ids if held.get(m, 0) >= template.per_member_limit]
    eligible = [members[m] for m in member_ids if m not in set(skipped)]
    now = timezone.now()
    if batch_ref and ledger_selectors.entries_for(merchant, "coupon_issue", batch_ref).exists():
        # A redelivered batch (Celery at-least-once): it was issued already.
        done = ledger_selectors.entries_for(merchant, "coupon_issue", batch_ref)
        return IssueResult(issued=0, skipped_at_limit=[], entry_ids=list(done.values_list("pk", flat=True)))
    batch_ref = batch_ref or member_services.next_business_number(merchant, "fq")
    entry_ids = []
    for start in range(0, len(eligible), 2000):
        chunk = eligible[start : start + 2000]
        grants = [_new_coupon_grant(m, template, 0, batch_ref, now) for m in chunk]
        Grant.objects.bulk_create(grants)
        entry = ledger.post_entry(
            merchant=merchant, legs=_grant_issue_legs(merchant, grants), operation_type="coupon_issue",
            operation_ref=batch_ref, idempotency_key=f"coupon_issue:{batch_ref}:{start}", actor=actor,
            actor_label=actor_label, memo=reason[:200],
            member=chunk[0] if len(chunk) == 1 else None,
        )  # fmt: skip
        entry_ids.append(entry.pk)
    return IssueResult(issued=len(eligible), skipped_at_limit=skipped, entry_ids=entry_ids)


@transaction.atomic
def issue_voucher(*, template: VoucherTemplate, member: Owner, actor: AbstractBaseUser | None, reason: str) -> Voucher:
    """Give a member a free voucher (marketing): its face value is a promotion expense."""
    reason = _reason(reason, _("Say why the voucher is given."))
    _check_member(member, None)
    _check_actor(actor, member.merchant)
    _check_same_merchant(template, member, "template")
    if not template.is_active:
        raise _fail("template", f"{template} is not active.")
    merchant = member.merchant
    _check_free_gift(template, wallet_settings(merchant), "template")
    now = timezone.now()
    ref = member_services.next_business_number(merchant, "fq")
    voucher = Voucher.objects.create(
        merchant=merchant, member=member, template=template, face_value_fen=template.amount_fen, paid_fen=0,
        valid_from=now, valid_until=now + datetime.timedelta(days=template.valid_days), source_ref=ref,
    )  # fmt: skip
    ledger.post_entry(
        merchant=merchant, legs=[ledger.increase(_voucher_account(voucher), template.amount_fen),
                                 ledger.increase(_acct(merchant, "bonus_expense"), template.amount_fen)],
        operation_type="voucher_issue", operation_ref=ref, idempotency_key=f"voucher_issue:{ref}", actor=actor,
        member=member, memo=reason[:200],
    )  # fmt: skip
    return voucher


@transaction.atomic
def award_activity_points(
    *, member: Owner, rule: ActivityPointsRule, occasion: str, actor: AbstractBaseUser | None
) -> Entry:
    """Award a rule's points for one occasion (e.g. the activity's id). The same member, rule and
    occasion earn once: a repeat returns the first award."""
    _check_member(member, None)
    _check_actor(actor, member.merchant)
    _check_same_merchant(rule, member, "rule")
    if not rule.is_active:
        raise _fail("rule", f"{rule} is not active.")
    _recheck_catalog(rule, "rule")  # points within max_activity_points
    # The occasion is part of the award's reference (at most 64 characters with the rule's code).
    occasion = _text(occasion, "occasion", max_length=63 - len(rule.code))
    if not occasion:
        raise fail("occasion", "occasion_required", _("Say which occasion earns the points."))
    merchant = member.merchant
    ref = f"{rule.code}:{occasion}"[:64]
    return ledger.post_entry(
        merchant=merchant, legs=_points_for_count(member, wallet_settings(merchant), timezone.now(), rule.points),
        operation_type="points_award", operation_ref=ref, idempotency_key=f"points_award:{member.pk}:{ref}",
        actor=actor, member=member, memo=rule.name,
    )  # fmt: skip


def _points_for_count(member: Owner, settings: WalletSettings, now, points: int) -> list:
    detail = points_lot_detail(timezone.localdate(now), settings.points_valid_years)
    lot = _acct(member.merchant, "points", POINT, member=member, detail=detail)
    return [ledger.increase(lot, points), ledger.increase(_acct(member.merchant, "issuance", POINT), points)]


# ---------------------------------------------------------------- service record (服务记录, fw…)


@_idempotent(ServiceRecord)
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
    notes = _text(notes, "notes", max_length=2000)
    tags = [_text(t, "tags", max_length=30) for t in tags]
    _check_member(member, store)
    _check_kind(staff, Staff, "staff", required=True)
    _check_merchant(staff, merchant.pk, "staff")
    record = ServiceRecord.objects.create(
        merchant=merchant, number=member_services.next_business_number(merchant, "fw"), member=member, store=store,
        operator=_user(actor), staff=staff, notes=notes, idempotency_key=idempotency_key,
    )  # fmt: skip
    for name in dict.fromkeys(t for t in tags if t):
        record.tags.add(ServiceTag.objects.get_or_create(merchant=merchant, name=name)[0])
    return record


# ---------------------------------------------------------------- consumption (消费/收银, xf…)


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


@_idempotent(Consumption)
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
    note = _text(note, "note", max_length=200)
    _check_member(member, store)
    items = _check_lines(items, ConsumptionItem)
    if not items:
        raise _fail("items", "A consumption needs at least one line.")
    _check_merchant(service_record, merchant.pk, "service_record")
    if service_record is not None and (service_record.member_id != member.pk):
        raise _fail("service_record", "The service record is of another member.")
    for i, item in enumerate(items):
        # Every row a line names is this merchant's, before anything is locked or counted.
        for name, kind in (("service", Service), ("staff", Staff), ("grant", Grant), ("voucher", Voucher)):
            _check_kind(getattr(item, name), kind, f"items[{i}].{name}", required=name == "service")
            _check_merchant(getattr(item, name), merchant.pk, f"items[{i}].{name}")
    settings = wallet_settings(merchant)
    now = timezone.now()

    # Lock every benefit row the lines draw on, in one stable order (card, grants, vouchers by id).
    _lock_members([member.pk])  # first, as every operation does (a level upgrade below locks it again)
    uses_stored_value = any(it.stored_value_fen for it in items)
    card = _lock_card(member, create=False) if uses_stored_value else None
    grant_ids = sorted({it.grant.pk for it in items if it.grant is not None})
    voucher_ids = sorted({it.voucher.pk for it in items if it.voucher is not None})
    grants = {g.pk: g for g in Grant.objects.select_for_update().filter(pk__in=grant_ids).order_by("pk")}
    vouchers = {v.pk: v for v in Voucher.objects.select_for_update().filter(pk__in=voucher_ids).order_by("pk")}

    principal_acct = bonus_acct = None
    principal_left = bonus_left = 0
    if card is not None:
        principal_acct, bonus_acct = _stored_value_accounts(member)
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
        quantity = _check_positive_int(item.quantity, f"{f}.quantity")
        unit_price = unit_price_for(member, service)
        payable = unit_price * quantity
        _check_ceiling(payable_total + payable, settings.max_consumption_fen, "items", _("consumption"))
        line = ConsumptionLine(line_no=i, service=service, quantity=quantity, unit_price_fen=unit_price,
                               payable_fen=payable, staff=item.staff)  # fmt: skip
        legs: list = []
        revenue = _acct(merchant, "revenue")
        voucher_fen = _check_fen(item.voucher_fen, f"{f}.voucher_fen")
        stored_fen = _check_fen(item.stored_value_fen, f"{f}.stored_value_fen")
        direct_fen = _check_fen(item.direct_fen, f"{f}.direct_fen")
        if item.grant is not None:
            if voucher_fen or stored_fen or direct_fen:
                raise _fail(f"{f}.grant", "A line paid with coupon or entitlement uses takes no money as well.")
            grant = grants[item.grant.pk]
            _check_grant_usable(grant, member, service, now, f"{f}.grant")
            account = _grant_account(grant)
            deferred = _grant_deferred_account(grant)
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
                ledger.decrease(_acct(merchant, "issuance", grant.unit), quantity),
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
                _check_voucher_usable(voucher, member, now, f"{f}.voucher")
                account = _voucher_account(voucher)
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
                    ledger.increase(_acct(merchant, "cash", detail=method), direct_fen),
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
            commission = _commission(service, item.staff, payable, quantity, earned)
            if commission:
                line.commission_fen = commission
                legs += [ledger.increase(_acct(merchant, "commission_expense"), commission),
                         ledger.increase(_acct(merchant, "commission", staff=item.staff), commission)]  # fmt: skip
        # Principal already earned points when it was bought if the merchant rewards buying stored value.
        eligible = line.direct_fen + (0 if settings.points_on_stored_value_purchase else line.principal_fen)
        if settings.points_on_bonus_spend:
            eligible += line.bonus_fen
        if settings.points_on_voucher_spend:
            eligible += line.voucher_fen
        points_legs = _points_legs(member, settings, now, eligible) if eligible else []
        if points_legs:
            line.points = points_legs[0].amount * points_legs[0].account.normal_sign
            legs += points_legs
        payable_total += payable
        planned.append((line, legs))

    number = member_services.next_business_number(merchant, "xf")
    consumption = Consumption.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=_user(actor), created_at=now,
        idempotency_key=idempotency_key, note=note, service_record=service_record, payable_total_fen=payable_total,
    )  # fmt: skip
    for line, legs in planned:
        entry = ledger.post_entry(
            merchant=merchant, legs=legs, operation_type="consumption", operation_ref=f"{number}/{line.line_no}",
            idempotency_key=f"consumption:{number}:{line.line_no}", actor=actor, store=store, member=member,
        )  # fmt: skip
        line.consumption = consumption
        line.entry_id = entry.pk
    ConsumptionLine.objects.bulk_create([line for line, _legs in planned])
    _upgrade_level(member, actor)
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


def _check_grant_usable(grant: Grant, member: Owner, service: Service, now, field: str) -> None:
    if grant.member_id != member.pk:
        raise _fail(field, "The coupon or entitlement belongs to another member.")
    if grant.status != Grant.Status.ACTIVE:
        raise _fail(field, f"{grant} is {grant.get_status_display()}.")
    if grant.valid_until is not None and grant.valid_until < now:
        raise _fail(field, f"{grant} expired on {timezone.localtime(grant.valid_until):%Y-%m-%d}.")
    if not grant.covers(service):
        raise _fail(field, f"{grant} does not cover {service}.")


def _check_voucher_usable(voucher: Voucher, member: Owner, now, field: str) -> None:
    if voucher.member_id != member.pk:
        raise _fail(field, "The voucher belongs to another member.")
    if voucher.status != Voucher.Status.ACTIVE or voucher.valid_until < now:
        raise _fail(field, f"The voucher expired on {timezone.localtime(voucher.valid_until):%Y-%m-%d}.")
    if voucher.valid_from > now:
        raise _fail(field, "The voucher is not valid yet.")


def _commission(service: Service, staff: Staff, payable: int, quantity: int, earned: int) -> int:
    rule = service.commission_rules.filter(staff_level=staff.level).first()
    kind, value = (rule.kind, rule.value) if rule else (service.commission_kind, service.commission_value)
    if kind == CommissionKind.NONE:
        return 0
    return rules.commission_for(kind, value, payable, quantity, earned)


def _upgrade_level(member: Owner, actor) -> None:
    """Move the member up to the best level whose spend or points threshold they have reached."""
    totals = wallet_selectors.member_totals(member)
    current_rank = member.level.rank if member.level_id else -1
    reached = (
        Level.objects.filter(merchant_id=member.merchant_id, rank__gt=current_rank)
        .exclude(upgrade_spend_fen__isnull=True, upgrade_points__isnull=True)
        .order_by("-rank")
    )
    for level in reached:
        by_spend = level.upgrade_spend_fen is not None and totals.consumed_total_fen >= level.upgrade_spend_fen
        by_points = level.upgrade_points is not None and totals.points_earned >= level.upgrade_points
        if by_spend or by_points:
            member_services.update_owner(member, actor=actor, level=level, reason="automatic upgrade by threshold")
            member.level = level
            return


_AUTOMATIC_LEVEL_CHANGE = "automatic"  # reasons of level changes made by the wallet start with this


def _reevaluate_level(member: Owner, actor, *, because: str) -> None:
    """After a refund: a level reached by spending or points that the remaining consumed total and points
    earned no longer reach is taken back, down to the best level they still reach (a level without
    thresholds always counts as reached). A level set by hand (its last change was not automatic) is kept,
    and an audit event says so. The caller holds the member's lock."""
    member = Owner.objects.select_related("level").get(pk=member.pk)
    current = member.level
    if current is None or (current.upgrade_spend_fen is None and current.upgrade_points is None):
        return  # not a level reached by spending
    totals = wallet_selectors.member_totals(member)
    # The level last set by hand is a floor: a downgrade undoes what spending gave, never what the merchant
    # gave (银卡 by hand, 金卡 by a spend that is refunded → back to 银卡, not below it).
    by_hand = (
        AuditEvent.objects.filter(
            content_type=ContentType.objects.get_for_model(Owner),
            object_id=str(member.pk),
            action="owner.changed",
            after__has_key="level",
        )
        .exclude(reason__startswith=_AUTOMATIC_LEVEL_CHANGE)
        .order_by("-at", "-pk")
        .first()
    )
    floor_pk = by_hand.after["level"] if by_hand is not None else None

    def reached(level: Level) -> bool:
        if level.upgrade_spend_fen is None and level.upgrade_points is None:
            return True
        return (level.upgrade_spend_fen is not None and totals.consumed_total_fen >= level.upgrade_spend_fen) or (
            level.upgrade_points is not None and totals.points_earned >= level.upgrade_points
        )

    if reached(current):
        return
    lower = Level.objects.filter(merchant_id=member.merchant_id, rank__lt=current.rank).order_by("-rank")
    target = next((level for level in lower if level.pk == floor_pk or reached(level)), None)
    last_change = (
        AuditEvent.objects.filter(
            content_type=ContentType.objects.get_for_model(Owner),
            object_id=str(member.pk),
            action="owner.changed",
            after__has_key="level",
        )
        .order_by("-at", "-pk")
        .first()
    )
    why = (
        f"{because}: consumed {yuan(totals.consumed_total_fen)} and {totals.points_earned} points earned no "
        f"longer reach {current.name}"
    )
    if target is None or last_change is None or not last_change.reason.startswith(_AUTOMATIC_LEVEL_CHANGE):
        member_services.record_audit(
            actor=_user(actor), action="owner.level_kept", target=member, merchant=member.merchant,
            before={"level": current.pk}, after={"level": current.pk},
            reason=f"{why}; kept: {'set by hand' if target is not None else 'no lower level'}",
        )  # fmt: skip
        return
    member_services.update_owner(
        member, actor=_user(actor), level=target, reason=f"{_AUTOMATIC_LEVEL_CHANGE} downgrade after {why}"
    )


# ---------------------------------------------------------------- entitlement refund (权益退款, tqy…)


@_idempotent(EntitlementRefund)
@transaction.atomic
def refund_consumption_lines(
    *,
    member: Owner,
    lines: Sequence[ConsumptionLine],
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> EntitlementRefund:
    """Reverse chosen consumption lines exactly: the same principal/bonus split, the same voucher and
    grant accounts, the commission and the points they earned. A line is never refunded twice."""
    merchant = member.merchant
    reason = _reason(reason, _("A refund needs a reason."))
    if not lines:
        raise _fail("lines", "Choose the consumption lines to refund.")
    _check_merchant(store, merchant.pk, "store")
    if (
        ConsumptionLine.objects.filter(pk__in=[line.pk for line in lines])
        .exclude(consumption__merchant=merchant)
        .exists()
    ):
        raise fail(
            "lines", "other_merchant", _("This %(kind)s belongs to another merchant."), kind=_("consumption line")
        )
    locked = _lock_lines_for_refund(member, sorted({line.pk for line in lines}))
    if actor is not None:
        # Store scope (members.permissions, issue 9 item 10), here and not only in the portal's form:
        # every entry point refunds through this function. No actor: a script or job of the platform.
        wallet_permissions.check_lines_actionable(actor, locked, member=member)
    number = member_services.next_business_number(merchant, "tqy")
    refund = EntitlementRefund.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=_user(actor), reason=reason,
        idempotency_key=idempotency_key, total_fen=sum(line.payable_fen for line in locked),
    )  # fmt: skip
    now = timezone.now()
    for line in locked:
        _reverse_line(line, number, reason, actor, store, now)
        # Value restored to a lot that has expired meanwhile goes straight to breakage again.
        if line.grant is not None and (
            line.grant.status == Grant.Status.EXPIRED or (line.grant.valid_until and line.grant.valid_until < now)
        ):
            _expire_grant(line.grant_id, now)
        if line.voucher_id is not None:
            voucher = Voucher.objects.get(pk=line.voucher_id)
            if voucher.status == Voucher.Status.EXPIRED or voucher.valid_until < now:
                _expire_voucher(voucher.pk, now)
        line.status = ConsumptionLine.Status.REFUNDED
        line.refund = refund
        line.save(update_fields=["status", "refund"])
    _reevaluate_level(member, actor, because=f"refund {number}")
    return refund


def _lock_lines_for_refund(member: Owner, ids: list[int]) -> list[ConsumptionLine]:
    """Lock what refunding the lines touches, in the global order (member, card, grants, vouchers, then
    the lines; docs/wallet.md §5), and check the lines against the locked rows. A cash refund of a grant
    locks the same member and grant first, so one of the two runs after the other and sees its result:
    a line is never put back on a lot that was paid out or taken back meanwhile (issue 9, item 7)."""
    _lock_members([member.pk])
    seen = list(
        ConsumptionLine.objects.filter(pk__in=ids).values("grant_id", "voucher_id", "principal_fen", "bonus_fen")
    )
    if len(seen) != len(ids):
        raise fail("lines", "line_not_found", _("Some of the lines do not exist."))
    card = None
    if any(row["principal_fen"] or row["bonus_fen"] for row in seen):
        card = StoredValueCard.objects.select_for_update().filter(member=member).first()
    grant_ids = sorted({row["grant_id"] for row in seen if row["grant_id"]})
    grants = {g.pk: g for g in Grant.objects.select_for_update().filter(pk__in=grant_ids).order_by("pk")}
    voucher_ids = sorted({row["voucher_id"] for row in seen if row["voucher_id"]})
    list(Voucher.objects.select_for_update().filter(pk__in=voucher_ids).order_by("pk").values_list("pk", flat=True))
    locked = list(
        ConsumptionLine.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("consumption", "service")
        .order_by("pk")
    )
    for line in locked:
        label = f"{line.consumption.number}/{line.line_no}"
        if line.consumption.member_id != member.pk or line.consumption.merchant_id != member.merchant_id:
            raise fail("lines", "line_of_other_member", _("Line %(line)s is not this member's."), line=label)
        if line.status == ConsumptionLine.Status.REFUNDED:
            raise fail("lines", "line_already_refunded", _("Line %(line)s was already refunded."), line=label)
        if line.grant_id is not None:
            line.grant = grants[line.grant_id]  # the row as locked, not as first read
            if line.grant.status == Grant.Status.REFUNDED:
                raise fail(
                    "lines",
                    "grant_refunded",
                    _("Line %(line)s used %(grant)s, which was refunded in cash; it cannot take uses back."),
                    line=label,
                    grant=str(line.grant),
                )
            if line.grant.status == Grant.Status.REVOKED:
                raise fail(
                    "lines",
                    "grant_revoked",
                    _(
                        "Line %(line)s used %(grant)s, a plan gift taken back (and its uses charged) by the cash "
                        "refund of the stored value; it cannot take uses back."
                    ),
                    line=label,
                    grant=str(line.grant),
                )
        if (line.principal_fen or line.bonus_fen) and (card is None or card.status == StoredValueCard.Status.CLOSED):
            raise fail(
                "lines",
                "card_closed",
                _("Line %(line)s was paid by stored value, but the card is closed by a cash refund."),
                line=label,
            )
    return locked


def _reverse_line(line: ConsumptionLine, number: str, reason: str, actor, store, now) -> None:
    """Reverse a line's ledger entry whole. Points it earned that have since expired with their lot are
    gone already, so only those legs are left out; points still held but spent make the refund fail."""
    entry = Entry.objects.get(pk=line.entry_id)
    label = f"{line.consumption.number}/{line.line_no}"
    common = {"idempotency_key": f"refund-line:{line.pk}", "actor": actor, "operation_type": "consumption_refund",
                  "operation_ref": number, "store": store, "memo": f"{reason[:150]} ({label})"}  # fmt: skip
    try:
        ledger.reverse_entry(entry, **common)
        return
    except InsufficientBalance as exc:
        account = exc.account
        if account.purpose != "points":
            raise
        if not _points_lot_expired(account, now):
            raise fail(
                "lines",
                "line_points_spent",
                _("The %(points)s points line %(line)s earned were already spent; return them before the refund."),
                points=line.points,
                line=label,
            ) from exc
    remaining = ledger.reversible_remaining(entry)
    units = dict(Account.objects.filter(pk__in=remaining).values_list("pk", "unit"))
    ledger.reverse_entry(entry, amounts={acc_id: left for acc_id, left in remaining.items() if left and units[acc_id] != POINT},
                         **common)  # fmt: skip


def _points_lot_expired(account: Account, now) -> bool:
    return account.detail.startswith("exp") and int(account.detail[3:]) < timezone.localdate(now).year


# ---------------------------------------------------------------- cash refund (现金退款, txj…)


@_idempotent(CashRefund)
@transaction.atomic
def cash_refund_stored_value(
    *,
    member: Owner,
    payment_method: str,
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> CashRefund:
    """Pay out the unused principal; the bonus is forfeited to breakage, never paid. Closes the card.
    The gifts of the plans whose principal is paid back go back too: unused gift uses and gifted VIP time
    are taken back, and what was used of them is charged against the payout at list price (refused if
    the principal cannot cover it). Points earned by buying the stored value go back with it."""
    merchant = member.merchant
    _check_payment_method(payment_method)
    reason = _reason(reason, _("A refund needs a reason."))
    _check_merchant(store, merchant.pk, "store")
    _lock_members([member.pk])  # global lock order: member, card, gift grants, VIP memberships (docs §5)
    card = _lock_card(member, create=False)
    now = timezone.now()
    principal_acct, bonus_acct = _stored_value_accounts(member)
    current = ledger_selectors.balances([principal_acct, bonus_acct])
    principal, bonus = current[principal_acct.pk], current[bonus_acct.pk]
    if principal == 0 and bonus == 0:
        raise fail("stored_value", "nothing_to_refund", _("There is nothing on the stored-value card to refund."))
    takeback = _plan_gifts_takeback(member, now)
    if takeback.charge_fen > principal:
        raise fail(
            "stored_value",
            "gifts_exceed_refund",
            _(
                "The plan gifts already used are worth %(charge)s at list price, more than the %(principal)s "
                "of principal left to refund; the refund cannot be made."
            ),
            charge=yuan(takeback.charge_fen),
            principal=yuan(principal),
        )
    payout = principal - takeback.charge_fen
    number = member_services.next_business_number(merchant, "txj")
    legs = _Postings([])
    legs.add(ledger.decrease(principal_acct, principal))
    legs.add(ledger.decrease(_acct(merchant, "cash", detail=payment_method), payout))
    legs.add(ledger.increase(_acct(merchant, "revenue"), takeback.charge_fen))  # used gifts, now paid for
    legs.add(ledger.decrease(bonus_acct, bonus))
    legs.add(ledger.increase(_acct(merchant, "breakage"), bonus))
    legs.legs.extend(takeback.legs)
    legs.legs.extend(_points_clawback_legs(member, payout))
    entry = ledger.post_entry(
        merchant=merchant, legs=legs.legs, operation_type="cash_refund", operation_ref=number,
        idempotency_key=f"cash_refund:{number}", actor=actor, store=store, member=member, memo=reason[:200],
    )  # fmt: skip
    takeback.apply(now)
    card.status = StoredValueCard.Status.CLOSED
    card.closed_at = now
    card.save(update_fields=["status", "closed_at"])
    member_services.record_audit(actor=_user(actor), action="stored_value.closed", target=card, merchant=merchant,
                                 reason=f"cash refund {number}: {reason}")  # fmt: skip
    if takeback.taken:
        member_services.record_audit(
            actor=_user(actor), action="stored_value.gifts_taken_back", target=card, merchant=merchant,
            after={"taken_back": takeback.taken, "charged": yuan(takeback.charge_fen)},
            reason=f"cash refund {number}: plan gifts go back with the principal",
        )  # fmt: skip
    _reevaluate_level(member, actor, because=f"cash refund {number}")
    return CashRefund.objects.create(
        merchant=merchant, number=number, member=member, store=store, operator=_user(actor), reason=reason,
        idempotency_key=idempotency_key, kind=CashRefund.Kind.STORED_VALUE, payment_method=payment_method,
        paid_out_fen=payout, forfeited_bonus_fen=bonus, gifts_charged_fen=takeback.charge_fen, entry_id=entry.pk,
    )  # fmt: skip


@dataclass
class _GiftTakeback:
    """What a cash refund of stored value takes back of its plans' gifts (docs/wallet.md §2.6)."""

    legs: list
    charge_fen: int  # used gifts at list price, kept from the payout
    grants: list[Grant]  # active gift lots to close
    memberships: dict[int, tuple[VipMembership, datetime.datetime]]  # membership id → (row, end without gifts)
    taken: list[str]  # what was taken back or charged, for the audit event

    def apply(self, now: datetime.datetime) -> None:
        for grant in self.grants:
            grant.status = Grant.Status.REVOKED
            grant.save(update_fields=["status"])
        for membership, end in self.memberships.values():
            if membership.status != VipMembership.Status.ACTIVE:
                continue
            if end > now:  # the member keeps the time bought
                membership.ends_at = end
            else:
                membership.status, membership.ends_at = VipMembership.Status.REVOKED, now
            membership.save(update_fields=["status", "ends_at"])


def _plan_gifts_takeback(member: Owner, now: datetime.datetime) -> _GiftTakeback:
    """The gifts of every plan recharge of the member (the whole principal is being paid back, and the
    card closes): each lot the recharge gave for nothing (paid ¥0: the plan's gift coupons and package)
    and each gifted VIP period. Unused uses leave the member (to the issuance account); used uses are
    charged at list price; gifted VIP months come off the end of the membership, and gifted days
    already enjoyed are charged pro rata at the card's list price. Locks the lots, then the VIP rows."""
    takeback = _GiftTakeback(legs=[], charge_fen=0, grants=[], memberships={}, taken=[])
    recharges = list(
        Recharge.objects.filter(merchant_id=member.merchant_id, member=member, lines__kind=RechargeLine.Kind.PLAN)
        .distinct()
        .order_by("-created_at", "-pk")
    )
    if not recharges:
        return takeback
    gifts = list(
        Grant.objects.select_for_update()
        .filter(member=member, source_ref__in=[r.number for r in recharges], paid_fen=0)
        .order_by("pk")
    )
    used = dict(
        ConsumptionLine.objects.filter(grant__in=gifts, status=ConsumptionLine.Status.NORMAL)
        .values("grant_id")
        .annotate(n=Sum("uses"))
        .values_list("grant_id", "n")
    )
    merchant = member.merchant
    for grant in gifts:
        uses_used = used.get(grant.pk, 0)
        if uses_used:
            charge = rules.value_of_uses(_gift_list_value(grant), grant.uses_total, uses_used)
            takeback.charge_fen += charge
            takeback.taken.append(f"{grant}: {uses_used} used, charged {yuan(charge)}")
        if grant.status == Grant.Status.EXPIRED and uses_used:
            takeback.grants.append(grant)  # closed as charged: a later refund of its lines must not undo it
        if grant.status != Grant.Status.ACTIVE:
            continue  # expired or refunded already: nothing left to take back
        left = ledger_selectors.balance(_grant_account(grant))
        if left:
            takeback.legs += [
                ledger.decrease(_grant_account(grant), left),
                ledger.decrease(_acct(merchant, "issuance", grant.unit), left),
            ]
            takeback.taken.append(f"{grant}: {left} unused taken back")
        takeback.grants.append(grant)

    lines = list(
        RechargeLine.objects.filter(recharge__in=recharges, kind=RechargeLine.Kind.PLAN, plan__gift_vip__isnull=False)
        .select_related("recharge", "plan__gift_vip")
        .order_by("-recharge__created_at", "-recharge_id", "-line_no")
    )
    if lines:
        rows = {
            m.pk: m
            for m in VipMembership.objects.select_for_update()
            .filter(member=member, card_type_id__in={line.plan.gift_vip_id for line in lines})
            .order_by("pk")
        }
        for line in lines:  # newest gift first: each comes off the end left by the later ones
            vip_type, bought_at = line.plan.gift_vip, line.recharge.created_at
            candidates = [m for m in rows.values() if m.card_type_id == vip_type.pk and m.starts_at <= bought_at]
            if not candidates:
                continue
            row = max(candidates, key=lambda m: (m.starts_at, m.pk))  # the membership the gift made or extended
            end = takeback.memberships.get(row.pk, (row, row.ends_at))[1]
            start = rules.add_months(end, -rules.PERIOD_MONTHS[vip_type.period] * line.quantity)
            takeback.memberships[row.pk] = (row, start)
            if now > start:
                days = rules.days_begun(start, min(now, end))
                charge = rules.value_of_days(vip_type.price_fen, days, rules.days_begun(start, end))
                takeback.charge_fen += charge
                takeback.taken.append(f"{vip_type}: {days} gifted days enjoyed, charged {yuan(charge)}")
            else:
                takeback.taken.append(f"{vip_type}: gifted period taken back")
    return takeback


def _gift_list_value(grant: Grant) -> int:
    """What the gifted lot sells for: the coupon template's price, or the lot's share of its package's
    price (spread over the services as a sale spreads it: list price × quantity)."""
    # A free-only template or package (price ¥0) has no price to charge: its list value (§4.2, what the
    # plan's free value counted it at) is charged instead, or its used uses would cost nothing.
    if grant.kind == Grant.Kind.COUPON:
        return grant.coupon_template.price_fen or grant.coupon_template.list_value_fen()
    items = list(grant.package.items.select_related("service").order_by("id"))
    price = grant.package.price_fen or grant.package.list_value_fen()
    shares = _allocate(price, [it.service.list_price_fen * it.quantity or 1 for it in items])
    return next((share for it, share in zip(items, shares, strict=True) if it.service_id == grant.service_id), 0)


def _points_clawback_legs(member: Owner, principal_refunded: int) -> list:
    """Points earned by buying the stored value that is now paid back go back too, in proportion to the
    principal paid out, oldest lots first. Decided by what the recharges earned, as recorded in their
    entries at the time, never by today's setting: turning `points_on_stored_value_purchase` off later
    does not let the member keep them, turning it on later takes nothing that was not given."""
    if not principal_refunded:
        return []
    by_lot = dict(  # points lots are credit-normal: a credit is negative
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="recharge", account__purpose="points"
        )
        .values("account_id")
        .annotate(t=Sum("amount"))
        .values_list("account_id", "t")
    )
    earned = -sum(by_lot.values())
    if not earned:
        return []
    bought = -(
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="recharge", account__purpose="principal"
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )
    due = earned * principal_refunded // bought if bought else 0
    # Points that expired left the member without benefit: they count as returned first, so a member
    # whose purchase points lapsed can still be refunded (they cannot be taken back twice).
    # Only expiries of the lots the purchases credited count, each up to what the purchases put in it:
    # points of other spending that lapsed (even before the purchase) do not excuse the purchase's points.
    expired_by_lot = dict(  # an expiry's debit is positive
        ledger_selectors.legs_matching(
            member.merchant, entry__member=member, entry__operation_type="expiry", account_id__in=list(by_lot)
        )
        .values("account_id")
        .annotate(t=Sum("amount"))
        .values_list("account_id", "t")
    )
    expired = sum(min(t, -by_lot[acc]) for acc, t in expired_by_lot.items())
    due = max(0, due - expired)
    lots = sorted(
        (row for row in ledger_selectors.member_balances(member) if row.account.purpose == "points" and row.balance),
        key=lambda row: row.account.detail,
    )
    if sum(row.balance for row in lots) < due:
        raise fail(
            "points",
            "points_spent",
            _("The %(points)s points earned by buying this stored value were spent; return them first."),
            points=due,
        )
    legs, left = [], due
    for row in lots:
        take = min(left, row.balance)
        if take:
            legs.append(ledger.decrease(row.account, take))
            left -= take
    if due:
        legs.append(ledger.decrease(_acct(member.merchant, "issuance", POINT), due))
    return legs


@_idempotent(CashRefund)
@transaction.atomic
def cash_refund_grant(
    *,
    grant: Grant,
    payment_method: str,
    reason: str,
    actor: AbstractBaseUser | None,
    store: Store | None = None,
    idempotency_key: str | None = None,
) -> CashRefund:
    """Pay out the unused uses of a coupon or entitlement at the price actually paid for them; the
    grant is closed."""
    merchant = grant.merchant
    _check_merchant(store, merchant.pk, "store")
    _check_payment_method(payment_method)
    reason = _reason(reason, _("A refund needs a reason."))
    # Member, then grant: the order refunds of the lines that used it take too (docs/wallet.md §5).
    _lock_members([grant.member_id])
    grant = Grant.objects.select_for_update().get(pk=grant.pk)
    if grant.status != Grant.Status.ACTIVE:
        raise fail(
            "grant",
            "grant_not_active",
            _("%(grant)s is %(status)s; nothing to refund."),
            grant=str(grant),
            status=grant.get_status_display(),
        )
    if grant.valid_until is not None and grant.valid_until < timezone.now():
        raise fail(
            "grant",
            "grant_expired",
            _("%(grant)s expired on %(date)s; it is not refundable."),
            grant=str(grant),
            date=f"{timezone.localtime(grant.valid_until):%Y-%m-%d}",
        )
    account = _grant_account(grant)
    left = ledger_selectors.balance(account)
    if left == 0:
        raise fail("grant", "grant_used_up", _("%(grant)s has no unused uses."), grant=str(grant))
    deferred = _grant_deferred_account(grant)
    value = ledger_selectors.balance(deferred)  # all that is left of what was paid for the lot
    number = member_services.next_business_number(merchant, "txj")
    legs = _Postings([])
    legs.add(ledger.decrease(account, left))
    legs.add(ledger.decrease(_acct(merchant, "issuance", grant.unit), left))
    legs.add(ledger.decrease(deferred, value))
    legs.add(ledger.decrease(_acct(merchant, "cash", detail=payment_method), value))
    entry = ledger.post_entry(
        merchant=merchant, legs=legs.legs, operation_type="cash_refund", operation_ref=number,
        idempotency_key=f"cash_refund:{number}", actor=actor, store=store, member=grant.member, memo=reason[:200],
    )  # fmt: skip
    grant.status = Grant.Status.REFUNDED
    grant.save(update_fields=["status"])
    return CashRefund.objects.create(
        merchant=merchant, number=number, member=grant.member, store=store, operator=_user(actor), reason=reason,
        idempotency_key=idempotency_key, kind=CashRefund.Kind.GRANT, grant=grant, payment_method=payment_method,
        paid_out_fen=value, uses_refunded=left, entry_id=entry.pk,
    )  # fmt: skip


# ---------------------------------------------------------------- expiry


@dataclass
class ExpiryResult:
    vouchers: int = 0
    grants: int = 0
    points_lots: int = 0
    vip_memberships: int = 0


def expire_due_benefits(now: datetime.datetime | None = None) -> ExpiryResult:
    """Expire what is past its validity: vouchers, coupon/entitlement grants, points lots, VIP periods,
    posting what was left to breakage. Each item is its own transaction; running again changes nothing."""
    now = now or timezone.now()
    result = ExpiryResult()
    for voucher_id in Voucher.objects.filter(status=Voucher.Status.ACTIVE, valid_until__lt=now).values_list(
        "pk", flat=True
    ):
        result.vouchers += _expire_voucher(voucher_id, now)
    for grant_id in Grant.objects.filter(status=Grant.Status.ACTIVE, valid_until__lt=now).values_list("pk", flat=True):
        result.grants += _expire_grant(grant_id, now)
    today = timezone.localdate(now)
    lots = Account.objects.filter(
        purpose="points", unit=POINT, detail__startswith="exp", cached__balance__gt=0
    ).select_related("merchant", "member")
    for account in lots:
        if int(account.detail[3:]) < today.year:
            result.points_lots += _expire_points_lot(account)
    with transaction.atomic():
        result.vip_memberships = VipMembership.objects.filter(
            status=VipMembership.Status.ACTIVE, ends_at__lt=now
        ).update(status=VipMembership.Status.EXPIRED)
    return result


def _expiry_key(merchant: Merchant, ref: str, left: int) -> str:
    # Counting earlier expiries of the same item makes the key unique per expiry, while two concurrent
    # runs that see the same state produce the same key (and so one entry).
    earlier = ledger_selectors.entries_for(merchant, "expiry", ref).count()
    return f"expire:{ref}:{earlier}:{left}"


@transaction.atomic
def _expire_voucher(voucher_id: int, now) -> int:
    voucher = Voucher.objects.select_for_update().get(pk=voucher_id)
    account = _voucher_account(voucher)
    left = ledger_selectors.balance(account)
    if left:
        ledger.post_entry(
            merchant=voucher.merchant, legs=[ledger.decrease(account, left), ledger.increase(_acct(voucher.merchant, "breakage"), left)],
            operation_type="expiry", operation_ref=f"voucher:{voucher.pk}", idempotency_key=_expiry_key(voucher.merchant, f"voucher:{voucher.pk}", left),
            actor=None, actor_label="system:expiry", member=voucher.member, memo="voucher expired",
        )  # fmt: skip
    if voucher.status != Voucher.Status.EXPIRED:
        voucher.status = Voucher.Status.EXPIRED
        voucher.save(update_fields=["status"])
    return 1


@transaction.atomic
def _expire_grant(grant_id: int, now) -> int:
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    account = _grant_account(grant)
    left = ledger_selectors.balance(account)
    if left:
        merchant = grant.merchant
        deferred = _grant_deferred_account(grant)
        value = ledger_selectors.balance(deferred)
        legs = _Postings([])
        legs.add(ledger.decrease(account, left))
        legs.add(ledger.decrease(_acct(merchant, "issuance", grant.unit), left))
        legs.add(ledger.decrease(deferred, value))
        legs.add(ledger.increase(_acct(merchant, "breakage"), value))
        ledger.post_entry(
            merchant=merchant, legs=legs.legs, operation_type="expiry", operation_ref=f"grant:{grant.pk}",
            idempotency_key=_expiry_key(merchant, f"grant:{grant.pk}", left), actor=None, actor_label="system:expiry",
            member=grant.member, memo=f"{grant} expired",
        )  # fmt: skip
    grant.status = Grant.Status.EXPIRED
    grant.save(update_fields=["status"])
    return 1


@transaction.atomic
def _expire_points_lot(account: Account) -> int:
    left = ledger_selectors.balance(account)  # the balance row is locked by the post below
    if not left:
        return 0
    merchant = account.merchant
    ledger.post_entry(
        merchant=merchant, legs=[ledger.decrease(account, left), ledger.decrease(_acct(merchant, "issuance", POINT), left)],
        operation_type="expiry", operation_ref=f"points:{account.pk}", idempotency_key=_expiry_key(merchant, f"points:{account.pk}", left),
        actor=None, actor_label="system:expiry", member=account.member, memo=f"points {account.detail} expired",
    )  # fmt: skip
    return 1
