"""Double-entry ledger tables. Only ledger.services writes them (see docs/ledger.md).

Sign convention: a leg's amount is positive for a debit and negative for a credit, so the legs of
an entry sum to zero per unit. An account's balance is shown on its normal side:
balance = normal_sign × Σ amounts, where normal_sign is +1 for debit-normal accounts (cash, expenses,
issuance) and −1 for credit-normal ones (what the merchant owes members and staff, revenue).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Merchant, Owner, Staff, Store


class ImmutableRowError(Exception):
    """Raised on any attempt to change or delete a saved ledger row (account, entry or leg); entries are
    corrected by a reversing entry."""


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableRowError(f"{self.model.__name__} rows cannot change once saved.")

    def delete(self):
        raise ImmutableRowError(f"{self.model.__name__} rows are never deleted.")

    _raw_delete = delete


class ImmutableModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRowError(f"{type(self).__name__} #{self.pk} cannot change once saved.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRowError(f"{type(self).__name__} rows are never deleted.")


class Account(ImmutableModel):
    """Created once by ledger.services and never changed or deleted: legs rely on its merchant and unit."""

    class Kind(models.TextChoices):
        ASSET = "asset", _("Asset")
        LIABILITY = "liability", _("Liability")
        INCOME = "income", _("Income")
        EXPENSE = "expense", _("Expense")
        EQUITY = "equity", _("Equity")
        MEMO = "memo", _("Memo (counted units)")

    class Purpose(models.TextChoices):
        # member side
        PRINCIPAL = "principal", _("Stored value principal")
        BONUS = "bonus", _("Stored value bonus")
        VOUCHER = "voucher", _("Voucher")
        COUPON = "coupon", _("Coupon uses")
        ENTITLEMENT = "entitlement", _("Entitlement uses")
        POINTS = "points", _("Points")
        # Running totals a member's level is decided by (memo, never money): kept by the ledger so that
        # reading them does not grow with the member's history. Each is credited in the entries that
        # count towards it, so reversing such an entry takes its part back.
        SPEND = "spend", _("Spend counted for levels")
        POINTS_EARNED = "points_earned", _("Points earned, counted for levels")
        # staff side
        COMMISSION = "commission", _("Commission payable")
        # merchant side
        CASH = "cash", _("Cash / clearing by payment method")
        REVENUE = "revenue", _("Revenue")
        DEFERRED_REVENUE = "deferred_revenue", _("Deferred revenue")
        BONUS_EXPENSE = "bonus_expense", _("Bonus expense")
        COMMISSION_EXPENSE = "commission_expense", _("Commission expense")
        BREAKAGE = "breakage", _("Breakage (expired / forfeited)")
        ISSUANCE = "issuance", _("Issuance (counted units outstanding)")
        TALLY = "tally", _("Members' running totals (counterpart of spend and points earned)")

    class Holder(models.TextChoices):
        MEMBER = "member", _("Member")
        STAFF = "staff", _("Staff member")
        MERCHANT = "merchant", _("Merchant")

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    holder = models.CharField(_("holder type"), max_length=8, choices=Holder.choices)
    member = models.ForeignKey(
        Owner, verbose_name=_("member"), on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts"
    )
    staff = models.ForeignKey(
        Staff,
        verbose_name=_("staff member"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
    )
    # "member:12", "staff:3" or "merchant": one non-null key for the uniqueness constraint.
    holder_key = models.CharField(_("holder key"), max_length=32, editable=False)
    purpose = models.CharField(_("purpose"), max_length=24, choices=Purpose.choices)
    unit = models.CharField(_("unit"), max_length=40)
    # Distinguishes accounts of the same purpose and unit: a payment method, a voucher batch, …
    detail = models.CharField(_("detail"), max_length=64, blank=True, default="")
    kind = models.CharField(_("account kind"), max_length=12, choices=Kind.choices)
    normal_sign = models.SmallIntegerField(_("normal side"), choices=[(1, _("debit")), (-1, _("credit"))])
    allow_negative = models.BooleanField(_("may go negative"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "holder_key", "purpose", "unit", "detail"], name="ledger_account_identity"
            ),
            models.CheckConstraint(condition=models.Q(normal_sign__in=[1, -1]), name="ledger_account_normal_sign"),
        ]
        indexes = [
            models.Index(fields=["member"], name="ledger_acct_member_idx"),
            # A merchant's accounts of a purpose (its cash accounts for the totals), not a scan of every
            # member account of every merchant.
            models.Index(fields=["merchant", "purpose"], name="ledger_acct_purpose_idx"),
        ]

    def __str__(self) -> str:
        # Named by its holder and purpose, never by database ids (list pages select the related rows).
        from .labels import detail_label

        holder = self.member if self.member_id else self.staff if self.staff_id else self.merchant
        detail = f" · {detail_label(self.purpose, self.detail)}" if self.detail else ""
        return f"{holder} · {self.get_purpose_display()}{detail} [{self.unit}]"


class AccountBalance(models.Model):
    """Cached normal-side balance of an account that may not go negative; written only by ledger.services
    in the transaction that posts the legs."""

    account = models.OneToOneField(
        Account, verbose_name=_("account"), on_delete=models.PROTECT, primary_key=True, related_name="cached"
    )
    balance = models.BigIntegerField(_("balance"), default=0)

    class Meta:
        verbose_name = _("account balance")
        verbose_name_plural = _("account balances")
        constraints = [models.CheckConstraint(condition=models.Q(balance__gte=0), name="ledger_balance_non_negative")]

    def __str__(self) -> str:
        return f"{self.account}: {self.balance}"


class Entry(ImmutableModel):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(_("request key"), max_length=128)
    operation_type = models.CharField(_("operation"), max_length=32)
    operation_ref = models.CharField(_("reference"), max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("actor"), on_delete=models.PROTECT, null=True, related_name="+"
    )
    actor_label = models.CharField(_("system actor"), max_length=64, blank=True)
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, related_name="+")
    # The member the entry concerns, if any: member totals and statements read entries by it.
    member = models.ForeignKey(Owner, verbose_name=_("member"), on_delete=models.PROTECT, null=True, related_name="+")
    memo = models.CharField(_("memo"), max_length=200, blank=True)
    posted_at = models.DateTimeField(_("posted at"))
    reverses = models.ForeignKey(
        "self", verbose_name=_("reverses"), on_delete=models.PROTECT, null=True, related_name="reversals"
    )
    # sha256 of the entry's content, to tell a retry from a conflicting reuse of the key.
    fingerprint = models.CharField(_("fingerprint"), max_length=64)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "idempotency_key"], name="ledger_entry_idempotency"),
        ]
        indexes = [
            models.Index(fields=["merchant", "operation_type", "operation_ref"], name="ledger_entry_operation_idx"),
            # The merchant's entries of a period in order (lists, dashboard counts).
            models.Index(fields=["merchant", "posted_at", "id"], name="ledger_entry_posted_id_idx"),
            models.Index(fields=["member", "operation_type"], name="ledger_entry_member_idx"),
        ]

    def __str__(self) -> str:
        from .labels import operation_label

        return f"{operation_label(self.operation_type)} {self.operation_ref} {timezone.localtime(self.posted_at):%Y-%m-%d %H:%M}"


class Leg(ImmutableModel):
    # No database foreign keys here: PostgreSQL would run two referential checks per leg at commit
    # (20,000 for a 10,000-member issuance). The deferred per-entry trigger (migration 0004) checks
    # once per entry that the entry and every leg's account exist, share the merchant and the unit;
    # entries and accounts can never be deleted. ledger_reconcile checks the same.
    entry = models.ForeignKey(
        Entry, verbose_name=_("entry"), on_delete=models.PROTECT, related_name="legs", db_constraint=False
    )
    # Indexed by ledger_leg_account_posted_idx, whose first column it is.
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        on_delete=models.PROTECT,
        related_name="legs",
        db_constraint=False,
        db_index=False,
    )
    unit = models.CharField(_("unit"), max_length=40)
    amount = models.BigIntegerField(_("amount"), help_text=_("Debit positive, credit negative; never zero."))
    # Normal-side balance of a bounded account right after this leg (null for merchant-side accounts).
    balance_after = models.BigIntegerField(_("balance after"), null=True)
    # The entry's posted_at, copied (the post writes both; the deferred per-entry trigger and reconcile check
    # they agree): an account's legs of a period are then a range of ledger_leg_account_posted_idx, in
    # statement order, read without joining their entries.
    posted_at = models.DateTimeField(_("posted at"))

    class Meta:
        verbose_name = _("ledger leg")
        verbose_name_plural = _("ledger legs")
        constraints = [models.CheckConstraint(condition=~models.Q(amount=0), name="ledger_leg_amount_non_zero")]
        # Covering on PostgreSQL: merchant-side balances are index-only sums.
        indexes = [
            models.Index(
                fields=["account", "posted_at", "id"], include=["amount"], name="ledger_leg_account_posted_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.amount:+d}"
