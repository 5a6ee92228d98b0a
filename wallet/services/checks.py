"""Checks every wallet operation shares: the member, the merchant of each related row, the actor, amounts,
quantities, reasons, free text and catalog rows. One home per rule."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, fail
from core.money import MAX_FEN, yuan
from members import selectors as member_selectors
from members import services as member_services
from members.models import Merchant, Owner, Staff, Store, check_merchant_of

from .. import rules
from ..models import (
    CouponTemplate,
    EntitlementPackage,
    Grant,
    PaymentMethod,
    Service,
    StoredValueCard,
    Voucher,
    VoucherTemplate,
    WalletSettings,
)

MAX_LINE_QUANTITY = rules.MAX_LINE_QUANTITY


def wallet_settings(merchant: Merchant) -> WalletSettings:
    return WalletSettings.objects.get_or_create(merchant=merchant)[0]


def local_date(moment: datetime.datetime) -> str:
    """A moment as the local calendar date people read in a message (2026-03-15)."""
    return timezone.localtime(moment).date().isoformat()


def check_member(member: Owner, store: Store | None) -> None:
    if member.status != Owner.Status.ACTIVE:
        raise fail(
            "member", "member_not_active", _("Member %(number)s is %(status)s; no operations are allowed."),
            number=member.member_number, status=member.get_status_display(),
        )  # fmt: skip
    check_kind(store, Store, "store")
    check_merchant(store, member.merchant_id, "store")


def check_merchant(obj: models.Model | None, merchant_id: int, field: str) -> None:
    """Every related object a service receives must be of the operation's merchant (code other_merchant;
    the one rule: members.models.check_merchant_of)."""
    check_merchant_of(obj, merchant_id, field)


def check_actor(actor, merchant: Merchant) -> None:
    """The person acting is a related object too: a signed-in user acts for a merchant only as its active
    staff, or as a platform admin. No actor (a job, the system) is not checked here."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return
    # The usual case first, in one query: active staff of this merchant (a user is staff of one merchant).
    if (
        getattr(actor, "is_superuser", False)
        or Staff.objects.filter(user=actor, merchant=merchant, is_active=True).exists()
    ):
        return
    if member_selectors.is_platform_admin(actor):
        return
    raise fail("actor", "other_merchant", _("You do not act for this merchant."))


def check_kind(obj, kind: type[models.Model], field: str, *, required: bool = False) -> None:
    """A related argument is a row of the expected model (or None where optional), never an id or a row of
    another model that happens to share an id."""
    if obj is None and not required:
        return
    if not isinstance(obj, kind):
        raise fail(field, "choose_kind", _("Choose a %(kind)s."), kind=kind._meta.verbose_name)


def check_same_merchant(obj, member: Owner, field: str) -> None:
    check_merchant(obj, member.merchant_id, field)


def check_quantity(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(field, "quantity_invalid", _("The quantity is a whole number of at least 1."))
    if value > MAX_LINE_QUANTITY:
        raise fail(field, "quantity_too_large", _("At most %(max)s per line."), max=f"{MAX_LINE_QUANTITY:,}")
    return value


def required_reason(reason: str | None, message=None) -> str:
    """The reason an operation needs (refunds, free value): required, no NUL, at most 200 characters."""
    return member_services.required_reason(reason, message, max_length=200)


def clean_text(value: str | None, field: str, max_length: int | None = None) -> str:
    """Free text of an operation (note, notes, tags): no NUL (PostgreSQL refuses it), within its column."""
    return member_services.clean_text(value, field, max_length=max_length)


def check_fen(value, field: str, *, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, "amount_format", _("Amounts are whole fen (integers)."))
    if value < 0:
        raise fail(field, "amount_negative", _("The amount must be positive, got %(value)s."), value=yuan(value))
    if value == 0 and not allow_zero:
        raise fail(field, "amount_zero", _("The amount must be greater than zero."))
    if value > MAX_FEN:
        raise fail(field, "amount_too_large", _("The amount %(value)s is too large."), value=yuan(value))
    return value


def check_ceiling(total: int, ceiling: int, field: str, what: str) -> None:
    """Amount ceilings per operation (WalletSettings.max_recharge_fen / max_consumption_fen). Checked as
    lines are added, before anything is written, so no oversized amount reaches a column. A ceiling set
    above core.money.MAX_FEN counts as MAX_FEN (the largest amount the ledger takes)."""
    ceiling = min(ceiling, MAX_FEN)
    if total > ceiling:
        raise fail(
            field, "amount_over_ceiling", _("The %(what)s comes to %(total)s; this merchant's ceiling is %(ceiling)s."),
            what=what, total=yuan(total), ceiling=yuan(ceiling),
        )  # fmt: skip


def check_benefit_count(count: int, field: str) -> None:
    if count > MAX_LINE_QUANTITY:
        raise fail(field, "quantity_too_large", _("At most %(max)s coupons, entitlements or vouchers per operation."),
                   max=f"{MAX_LINE_QUANTITY:,}")  # fmt: skip


def gift_value(target) -> int:
    """What one unit of a template is worth when it is given away (docs/wallet.md §4)."""
    if isinstance(target, VoucherTemplate):
        return target.amount_fen
    if isinstance(target, CouponTemplate | EntitlementPackage):
        return target.list_value_fen()
    return target.price_fen


def check_free_gift(target, settings: WalletSettings, field: str, count: int = 1, before: int = 0) -> int:
    """A voucher or coupon given away outside a plan is worth at most max_free_gift_fen: one given alone,
    or all units of templates priced 0 in one recharge together (`before`: earlier lines' free value).
    Returns the free value counted so far."""
    value = gift_value(target) * count + before
    if value > settings.max_free_gift_fen:
        raise fail(
            field, "free_value_over_limit", _("%(name)s is worth %(value)s; at most %(limit)s may be given free."),
            name=str(target), value=yuan(value), limit=yuan(settings.max_free_gift_fen),
        )  # fmt: skip
    return value


def recheck_catalog(obj: models.Model, field: str, settings: WalletSettings) -> None:
    """Run a catalog row's sale terms (what its model clean() checks, bar the edit-only frozen-terms
    check) again at the operation, so a row saved around the admin or made invalid by a changed setting
    is refused too. Uses the settings the operation already read."""
    try:
        obj.check_sale_terms(settings)
    except DomainError as exc:
        raise DomainError(field, exc.template, code=exc.code, params=exc.params) from exc


def check_lines(items, kind: type, field: str = "items") -> list:
    """The lines of an operation: a list or tuple of `kind`, never a string or other objects."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise fail(field, "lines_not_list", _("Give the lines as a list of %(kind)s."), kind=kind.__name__)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise fail(f"{field}[{i}]", "line_wrong_type", _("Each line is a %(kind)s."), kind=kind.__name__)
    return list(items)


def check_some_lines(items: list, field: str = "items") -> list:
    """An operation on lines needs at least one."""
    if not items:
        raise fail(field, "lines_empty", _("Choose at least one line."))
    return items


def check_payment_method(method: str, field: str = "payment_method") -> str:
    if method == "stored_value":
        raise fail(
            field,
            "recharge_from_stored_value",
            _("The member's own stored value cannot pay a recharge or take a cash refund."),
        )
    if method not in PaymentMethod.values:
        raise fail(
            field, "payment_method_unknown", _("Unknown payment method; use one of %(methods)s."),
            methods=", ".join(str(label) for label in PaymentMethod.labels),
        )  # fmt: skip
    return method


def past_validity(benefit: Grant | Voucher, now: datetime.datetime) -> bool:
    """A grant or voucher whose validity has ended, whether or not the expiry job has swept it yet (a grant
    without an end date never lapses). The one rule usage, refunds and cash refunds judge expiry by."""
    return benefit.valid_until is not None and benefit.valid_until < now


def check_grant_active(grant: Grant, now: datetime.datetime, field: str) -> None:
    """A lot that still holds what it was given for: active and within its validity (usable, or refundable
    in cash)."""
    if grant.status != Grant.Status.ACTIVE:
        raise fail(field, "grant_not_active", _("%(grant)s is %(status)s."), grant=str(grant),
                   status=grant.get_status_display())  # fmt: skip
    if past_validity(grant, now):
        raise fail(field, "grant_expired", _("%(grant)s expired on %(date)s."), grant=str(grant),
                   date=local_date(grant.valid_until))  # fmt: skip


def check_grant_usable(grant: Grant, member: Owner, service: Service, now: datetime.datetime, field: str) -> None:
    """Whether a coupon or entitlement lot may pay for `service` now: the member's, active, unexpired,
    covering the service. (Uses left are counted against the ledger by the caller.)"""
    if grant.member_id != member.pk:
        raise fail(field, "grant_other_member", _("The coupon or entitlement belongs to another member."))
    check_grant_active(grant, now, field)
    if not grant.covers(service):
        raise fail(field, "grant_not_covering", _("%(grant)s does not cover %(service)s."), grant=str(grant),
                   service=str(service))  # fmt: skip


def check_voucher_usable(voucher: Voucher, member: Owner, now: datetime.datetime, field: str) -> None:
    """Whether a voucher may pay now: the member's, active, within its validity."""
    if voucher.member_id != member.pk:
        raise fail(field, "voucher_other_member", _("The voucher belongs to another member."))
    if voucher.status != Voucher.Status.ACTIVE or past_validity(voucher, now):
        raise fail(
            field, "voucher_expired", _("The voucher expired on %(date)s."), date=local_date(voucher.valid_until)
        )
    if voucher.valid_from > now:
        raise fail(field, "voucher_not_yet_valid", _("The voucher is valid from %(date)s."),
                   date=local_date(voucher.valid_from))  # fmt: skip


def check_card_open(card: StoredValueCard | None, member: Owner, field: str = "stored_value") -> None:
    """The member's stored-value card can take and give value: it exists and no cash refund closed it."""
    if card is None:
        raise fail(field, "card_missing", _("Member %(number)s has no stored-value card."),
                   number=member.member_number)  # fmt: skip
    if card.status == StoredValueCard.Status.CLOSED:
        raise fail(field, "card_closed", _("The stored-value card was closed by a cash refund and cannot be used."))


def user_or_none(actor: AbstractBaseUser | None):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None
