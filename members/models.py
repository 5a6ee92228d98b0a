"""Merchants, stores, estates, owners (members), cards, levels and staff."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import fail

MAINLAND_MOBILE_RE = r"^1[3-9][0-9]{9}\Z"  # ASCII digits only (\d is any Unicode digit); \Z: no "\n"
mobile_validator = RegexValidator(
    MAINLAND_MOBILE_RE, _("Enter an 11-digit mainland mobile number starting with 13–19.")
)


def check_merchant_of(obj: models.Model | None, merchant_id: int | None, field: str) -> None:
    """The one merchant check: a related row an action or a catalog row receives is of its merchant (code
    other_merchant). The message names the kind of row only, never another merchant's names or ids. No
    row, or no merchant yet (a row being built), is nothing to check."""
    if obj is not None and merchant_id and obj.merchant_id != merchant_id:
        raise fail(
            field, "other_merchant", _("This %(kind)s belongs to another merchant."), kind=obj._meta.verbose_name
        )


class Merchant(models.Model):
    class Kind(models.TextChoices):
        PROPERTY = "property", _("Property developer")
        GENERAL = "general", _("General merchant")

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.GENERAL)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Store(models.Model):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="stores")
    code = models.SlugField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    address = models.CharField(_("address"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["merchant", "code"], name="store_code_unique_per_merchant")]
        # Object permissions granted per store by roles (see members.roles).
        permissions = [
            ("operate_store", "Can register members and record operations at the store"),
            ("approve_store", "Can approve requests of the store"),
            ("finance_store", "Can review finance matters of the store"),
            ("redeem_store", "Can redeem member benefits at the store"),
            ("manage_store", "Can manage the store and its staff"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant.name} · {self.name}"


class Estate(models.Model):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="estates")
    name = models.CharField(_("name"), max_length=100)
    address = models.CharField(_("address"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("estate")
        verbose_name_plural = _("estates")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["merchant", "name"], name="estate_name_unique_per_merchant")]

    def __str__(self) -> str:
        return self.name


class Building(models.Model):
    estate = models.ForeignKey(Estate, verbose_name=_("estate"), on_delete=models.PROTECT, related_name="buildings")
    name = models.CharField(_("name"), max_length=50)

    class Meta:
        verbose_name = _("building")
        verbose_name_plural = _("buildings")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["estate", "name"], name="building_name_unique_per_estate")]

    def __str__(self) -> str:
        return f"{self.estate.name} {self.name}"


class Room(models.Model):
    building = models.ForeignKey(Building, verbose_name=_("building"), on_delete=models.PROTECT, related_name="rooms")
    number = models.CharField(_("room number"), max_length=20)
    area_sqm = models.DecimalField(_("area (m²)"), max_digits=8, decimal_places=2, null=True, blank=True)

    class Meta:
        verbose_name = _("room")
        verbose_name_plural = _("rooms")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["building", "number"], name="room_number_unique_per_building")]

    def __str__(self) -> str:
        return f"{self.building} {self.number}"

    @property
    def merchant_id(self) -> int:
        return self.building.estate.merchant_id


class Level(models.Model):
    """Member level (普通/银卡/金卡…) and its benefits."""

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="levels")
    name = models.CharField(_("name"), max_length=50)
    rank = models.PositiveSmallIntegerField(_("rank"), help_text=_("Higher rank is a better level."))
    # Basis points of the member price: 10000 = no discount, 9500 = 95折.
    discount_rate_bp = models.PositiveIntegerField(
        _("member price rate (basis points)"),
        default=10000,
        validators=[MinValueValidator(1), MaxValueValidator(10000)],
    )
    # Hundredths: 100 = ×1.00, 150 = ×1.5.
    points_multiplier_pct = models.PositiveIntegerField(_("points multiplier (%)"), default=100)
    birthday_gift = models.CharField(_("birthday gift"), max_length=200, blank=True)
    birthday_gift_points = models.PositiveIntegerField(_("birthday gift points"), default=0)
    upgrade_spend_fen = models.BigIntegerField(
        _("upgrade at cumulative spend (yuan)"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    upgrade_points = models.BigIntegerField(
        _("upgrade at cumulative points"), null=True, blank=True, validators=[MinValueValidator(0)]
    )

    class Meta:
        verbose_name = _("level")
        verbose_name_plural = _("levels")
        ordering = ["merchant", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "rank"], name="level_rank_unique_per_merchant"),
            models.UniqueConstraint(fields=["merchant", "name"], name="level_name_unique_per_merchant"),
        ]

    def __str__(self) -> str:
        return self.name


class Owner(models.Model):
    """An owner (业主) or member (会员) of one merchant."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        FROZEN = "frozen", _("Frozen")
        CLOSED = "closed", _("Closed")

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="owners")
    member_number = models.CharField(_("member number"), max_length=20, editable=False)
    name = models.CharField(_("name"), max_length=50)
    mobile = models.CharField(_("mobile phone"), max_length=11, validators=[mobile_validator])
    joined_at = models.DateTimeField(_("joined at"), default=timezone.now)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    level = models.ForeignKey(
        Level, verbose_name=_("level"), on_delete=models.PROTECT, null=True, blank=True, related_name="owners"
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    rooms = models.ManyToManyField(Room, blank=True, related_name="owners", verbose_name=_("rooms"))
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("registered by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("owner")
        verbose_name_plural = _("owners")
        ordering = ["-joined_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "mobile"], name="owner_mobile_unique_per_merchant"),
            models.UniqueConstraint(fields=["merchant", "member_number"], name="owner_number_unique_per_merchant"),
        ]
        # The member list's order and the dashboard's new owners per period, read off the index; the
        # dashboard's owner counts by status from an index alone. Member search has trigram indexes on
        # PostgreSQL (migration 0008).
        indexes = [
            models.Index(fields=["merchant", "joined_at", "id"], name="owner_merchant_joined_idx"),
            models.Index(fields=["merchant", "status"], name="owner_merchant_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.member_number})"


class MemberCard(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REPLACED = "replaced", _("Replaced (lost)")
        CLOSED = "closed", _("Closed")

    owner = models.ForeignKey(Owner, verbose_name=_("owner"), on_delete=models.PROTECT, related_name="cards")
    card_number = models.CharField(_("card number"), max_length=24, unique=True, editable=False)
    # Per-card key of the dynamic code (HMAC); never shown in the admin.
    secret = models.CharField(_("secret"), max_length=64, editable=False, default=secrets.token_hex)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    replaced_by = models.OneToOneField(
        "self", verbose_name=_("replaced by"), on_delete=models.PROTECT, null=True, blank=True, related_name="replaces"
    )

    class Meta:
        verbose_name = _("member card")
        verbose_name_plural = _("member cards")
        ordering = ["-issued_at", "-id"]
        constraints = [
            # One live card per owner: replacement kills the old one in the same transaction.
            models.UniqueConstraint(
                fields=["owner"], condition=models.Q(status="active"), name="one_active_card_per_owner"
            )
        ]

    def __str__(self) -> str:
        return self.card_number


class Staff(models.Model):
    class Role(models.TextChoices):
        PLATFORM_ADMIN = "platform_admin", _("Platform admin")
        MERCHANT_ADMIN = "merchant_admin", _("Merchant admin")
        OPERATOR = "operator", _("Operator")
        APPROVER = "approver", _("Approver / store manager")
        FINANCE = "finance", _("Finance")
        CLERK = "clerk", _("Clerk")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("login"), on_delete=models.PROTECT, related_name="staff"
    )
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="staff")
    name = models.CharField(_("name"), max_length=50)
    mobile = models.CharField(_("mobile phone"), max_length=11, validators=[mobile_validator], blank=True)
    role = models.CharField(_("primary role"), max_length=32, choices=Role.choices)
    # Staff level drives per-level commission rules (wallet).
    level = models.PositiveSmallIntegerField(_("staff level"), default=1)
    stores = models.ManyToManyField(Store, blank=True, related_name="staff", verbose_name=_("stores"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"


class DailySequence(models.Model):
    """Per-merchant, per-day counters behind every business number (member numbers, cz…, xf…).

    No database foreign key: on PostgreSQL the counter is bumped on a connection of its own
    (members.numbering), which cannot see a merchant created in a transaction not yet committed."""

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    key = models.CharField(_("key"), max_length=16)
    day = models.DateField(_("day"))
    last_value = models.BigIntegerField(_("last value"), default=0)

    class Meta:
        verbose_name = _("daily sequence")
        verbose_name_plural = _("daily sequences")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "key", "day"], name="daily_sequence_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.day:%Y-%m-%d}: {self.last_value}"


class AuditEvent(models.Model):
    """Who changed what, when, from what to what, and why. Append-only."""

    # The actions the services record (`action` codes), by name.
    ACTION_LABELS = {
        "owner.registered": _("Member registered"),
        "owner.changed": _("Member changed"),
        "owner.status": _("Member status changed"),
        "owner.level_kept": _("Member level kept"),
        "card.replaced": _("Card reported lost and replaced"),
        "card.closed": _("Card closed"),
        "staff.created": _("Staff member created"),
        "staff.changed": _("Staff member changed"),
        "staff.role_granted": _("Role granted"),
        "staff.role_revoked": _("Role revoked"),
        "staff.role_changed": _("Role changed"),
        "staff.deactivated": _("Staff member deactivated"),
        "staff.reactivated": _("Staff member reactivated"),
        "stored_value.closed": _("Stored-value card closed by a cash refund"),
        "stored_value.gifts_taken_back": _("Plan gifts taken back"),
    }
    # Labels of actors that are not people (jobs, scripts).
    SYSTEM_ACTORS = {
        "system": _("System"),
        "system:expiry": _("System (expiry job)"),
        "system:batch": _("System (batch issuance)"),
    }

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("actor"), on_delete=models.PROTECT, null=True, related_name="+"
    )
    actor_label = models.CharField(
        _("system actor"), max_length=100, blank=True, help_text=_("For system actors (jobs).")
    )
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, null=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=64)
    content_type = models.ForeignKey(ContentType, verbose_name=_("object type"), on_delete=models.PROTECT)
    object_id = models.CharField(_("object id"), max_length=64)
    target = GenericForeignKey("content_type", "object_id")
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{timezone.localtime(self.at):%Y-%m-%d %H:%M} {self.get_action_display()}"

    def get_action_display(self) -> str:
        return self.ACTION_LABELS.get(self.action, self.action)

    def get_actor_display(self) -> str:
        if self.actor_id:
            return str(self.actor)
        return self.SYSTEM_ACTORS.get(self.actor_label, self.actor_label)
