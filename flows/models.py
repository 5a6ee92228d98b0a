"""Approval requests with guarded state, their history, per-merchant workflow settings, task reminders and
notifications.

Each request is a django-fsm state machine whose `state` only transitions may change (protected); every
transition writes a `RequestTransition` row (signals.record_transition). A viewflow process drives each
request (flows.flows); the request is the process's artifact and keeps a link to its process.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import GET_STATE, ConcurrentTransitionMixin, FSMField, transition
from viewflow.workflow.models import Process

from core.errors import fail
from members.models import Level, MemberCard, Merchant, Owner, Room, Staff, Store
from wallet.models import (
    ActivityPointsRule,
    CashRefund,
    ConsumptionLine,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    PaymentMethod,
    Recharge,
    RechargeLine,
    VipCardType,
    Voucher,
    VoucherTemplate,
)

from . import rules

# ---------------------------------------------------------------- settings


DEFAULT_FINANCE_THRESHOLD_FEN = 100_000  # ¥1,000.00
DEFAULT_ACTIVATION_VALID_FOR = datetime.timedelta(days=3)


class FlowSettings(models.Model):
    """Per-merchant workflow rules. Without a row, the defaults apply."""

    merchant = models.OneToOneField(Merchant, on_delete=models.PROTECT, related_name="flow_settings")
    refund_finance_threshold_fen = models.BigIntegerField(
        _("finance review above (fen)"),
        default=DEFAULT_FINANCE_THRESHOLD_FEN,
        validators=[MinValueValidator(0)],
        help_text=_("A refund request for more than this amount also needs finance's approval."),
    )
    activation_code_valid_for = models.DurationField(
        _("activation code valid for"), default=DEFAULT_ACTIVATION_VALID_FOR
    )

    class Meta:
        verbose_name = _("workflow settings")
        verbose_name_plural = _("workflow settings")

    def __str__(self) -> str:
        return str(self.merchant)


class TaskKind(models.TextChoices):
    """The human tasks of the flows, for deadlines: "<flow>.<node>"."""

    REFUND_REVIEW = "refund.review", _("Refund: store manager review")
    REFUND_FINANCE_REVIEW = "refund.finance_review", _("Refund: finance review")
    MEMBER_CHANGE_REVIEW = "member_change.review", _("Member change: review")
    ONBOARDING_REVIEW = "onboarding.review", _("Staff onboarding: manager approval")
    OFFBOARDING_REVIEW = "offboarding.review", _("Staff offboarding: approval")
    FREE_VALUE_REVIEW = "free_value.review", _("Free value over the limit: merchant admin approval")


DEFAULT_REMIND_AFTER = datetime.timedelta(hours=24)
DEFAULT_ESCALATE_AFTER = datetime.timedelta(hours=72)


class TaskDeadline(models.Model):
    """When an open task of a kind is reminded to its assignees, and when escalated to the merchant admin
    (both counted from the task's creation). Without a row, DEFAULT_REMIND_AFTER / DEFAULT_ESCALATE_AFTER."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="task_deadlines")
    task = models.CharField(_("task"), max_length=40, choices=TaskKind.choices)
    remind_after = models.DurationField(_("remind after"), default=DEFAULT_REMIND_AFTER)
    escalate_after = models.DurationField(_("escalate after"), default=DEFAULT_ESCALATE_AFTER)

    class Meta:
        verbose_name = _("task deadline")
        verbose_name_plural = _("task deadlines")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "task"], name="task_deadline_unique_per_merchant"),
            models.CheckConstraint(
                condition=models.Q(escalate_after__gte=models.F("remind_after")), name="escalate_after_remind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.merchant} · {self.get_task_display()}"


# ---------------------------------------------------------------- requests


class State(models.TextChoices):
    SUBMITTED = "submitted", _("Awaiting review")
    FINANCE_REVIEW = "finance_review", _("Awaiting finance review")
    APPROVED = "approved", _("Approved, being carried out")
    EXECUTED = "executed", _("Done")
    AWAITING_ACTIVATION = "awaiting_activation", _("Awaiting activation")
    ACTIVE = "active", _("Active")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


OPEN_STATES = (State.SUBMITTED, State.FINANCE_REVIEW, State.APPROVED)
REVIEW_STATES = (State.SUBMITTED, State.FINANCE_REVIEW)


class ApprovalRequest(ConcurrentTransitionMixin, models.Model):
    """What every request shares: merchant and store scope, number, requester, guarded state, process.

    Frozen once submitted: only FLOW_FIELDS (state, outcome, links) may change afterwards; saving any other
    change refuses with `request_frozen` (the requester withdraws and submits a new request)."""

    # Business-number prefix (members.services.next_business_number) and the fields that may still change.
    NUMBER_PREFIX: ClassVar[str] = "sq"
    FLOW_FIELDS: ClassVar[tuple[str, ...]] = ("state", "process", "updated_at")
    # Requests that change nothing of value are carried out in the approval's own transaction (at once); the
    # others (refunds) right after it commits, as a retryable step (flows.tasks.execute_request).
    EXECUTE_ON_APPROVAL: ClassVar[bool] = True

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    number = models.CharField(_("number"), max_length=24, editable=False)
    state = FSMField(_("state"), max_length=24, choices=State.choices, default=State.SUBMITTED, protected=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=200)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    process = models.OneToOneField(
        "viewflow.Process", on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        abstract = True
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        changed = self.frozen_changes()
        if changed:
            raise fail(
                changed[0],
                "request_frozen",
                _("A submitted request cannot be changed; withdraw it and submit a new one."),
            )
        super().save(*args, **kwargs)
        self._loaded = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}

    # -- frozen content

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded = dict(zip(field_names, values, strict=True))
        return instance

    def frozen_changes(self) -> list[str]:
        """Fields of a stored request changed in memory since it was read (other than FLOW_FIELDS)."""
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            return []
        return [
            f.name
            for f in self._meta.concrete_fields
            if f.attname in loaded
            and f.name not in self.FLOW_FIELDS
            and f.attname not in self.FLOW_FIELDS
            and getattr(self, f.attname) != loaded[f.attname]
        ]

    # -- routing

    def needs_finance_review(self) -> bool:
        return False

    def _after_review(self, **kwargs: Any) -> str:
        if self.state == State.SUBMITTED and self.needs_finance_review():
            return State.FINANCE_REVIEW
        return State.APPROVED

    def executed_state(self) -> str:
        return State.EXECUTED

    # -- transitions (who may call them: flows.rules; services check and explain refusals)
    # Every transition takes the acting user (`by`, None for the system) and a reason; the history row is
    # written from them by signals.record_transition.

    @transition(field="state", source=State.SUBMITTED, target=State.WITHDRAWN, permission=rules.may_withdraw)
    def withdraw(self, *, by, reason: str = "") -> None:
        """The requester takes the request back before anyone has reviewed it."""

    @transition(
        field="state",
        source=[State.SUBMITTED, State.FINANCE_REVIEW],
        target=GET_STATE(_after_review, states=[State.FINANCE_REVIEW, State.APPROVED]),
        permission=rules.may_review,
    )
    def approve(self, *, by, reason: str = "") -> None:
        """A reviewer approves the current stage; finance review follows when the request needs it."""

    @transition(
        field="state",
        source=[State.SUBMITTED, State.FINANCE_REVIEW],
        target=State.REJECTED,
        permission=rules.may_review,
    )
    def reject(self, *, by, reason: str) -> None:
        """A reviewer rejects the request (a reason is required: services.reject)."""

    @transition(
        field="state",
        source=State.APPROVED,
        target=GET_STATE(lambda self, **kw: self.executed_state(), states=[State.EXECUTED, State.AWAITING_ACTIVATION]),
        permission=lambda instance, user: False,  # the system carries requests out, never a person directly
    )
    def mark_executed(self, *, by=None, reason: str = "") -> None:
        """The approved change was carried out (services.execute_request)."""

    @transition(field="state", source=State.APPROVED, target=State.FAILED, permission=lambda instance, user: False)
    def mark_failed(self, *, by=None, reason: str = "") -> None:
        """Carrying out the approved change was refused by the domain (the reason says why)."""


class RefundRequest(ApprovalRequest):
    """A refund (退款申请): consumption lines reversed (权益退款), or a cash refund (现金退款) of stored value or of a
    coupon / entitlement lot. Carried out by the wallet services under the key `refund-request:<pk>`."""

    NUMBER_PREFIX = "tksq"
    FLOW_FIELDS = ApprovalRequest.FLOW_FIELDS + (
        "entitlement_refund",
        "cash_refund",
        "failure_code",
        "failure_message",
    )
    EXECUTE_ON_APPROVAL = False

    class Kind(models.TextChoices):
        LINES = "lines", _("Refund of consumption lines")
        STORED_VALUE = "stored_value", _("Cash refund of stored value")
        GRANT = "grant", _("Cash refund of a coupon or entitlement")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    lines = models.ManyToManyField(ConsumptionLine, blank=True, related_name="+", verbose_name=_("lines"))
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment_method = models.CharField(_("paid out by"), max_length=16, choices=PaymentMethod.choices, blank=True)
    # What the refund comes to when submitted: the approvals (and the finance threshold) are for this amount;
    # execution refuses if it has grown meanwhile (refund_amount_changed).
    amount_fen = models.BigIntegerField(_("amount (fen)"), validators=[MinValueValidator(0)])
    # What the member's other refund requests of the 24 hours before this one came to when it was submitted
    # (rules.recent_refunds_fen): counted with `amount_fen` toward the finance threshold, so a refund split
    # into requests under the threshold still reaches finance.
    recent_refunds_fen = models.BigIntegerField(
        _("member's other refunds in the 24 hours before (fen)"), default=0, validators=[MinValueValidator(0)]
    )
    entitlement_refund = models.OneToOneField(
        EntitlementRefund, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    cash_refund = models.OneToOneField(
        CashRefund, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    failure_code = models.CharField(max_length=64, blank=True, editable=False)
    failure_message = models.CharField(max_length=500, blank=True, editable=False)

    class Meta(ApprovalRequest.Meta):
        verbose_name = _("refund request")
        verbose_name_plural = _("refund requests")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="refund_request_number_unique"),
        ]
        indexes = [
            models.Index(fields=["merchant", "state", "store"], name="refund_request_queue_idx"),
            # The request list's order, newest first, read off the index.
            models.Index(fields=["merchant", "requested_at", "id"], name="refund_request_time_idx"),
        ]

    def finance_threshold_fen(self) -> int:
        found = FlowSettings.objects.filter(merchant_id=self.merchant_id).values_list(
            "refund_finance_threshold_fen", flat=True
        )
        return found[0] if found else DEFAULT_FINANCE_THRESHOLD_FEN

    @property
    def tier_amount_fen(self) -> int:
        """The amount the finance threshold applies to: this request's and the member's other recent ones."""
        return self.amount_fen + self.recent_refunds_fen

    def needs_finance_review(self) -> bool:
        return rules.needs_finance_review(self.amount_fen, self.recent_refunds_fen, self.finance_threshold_fen())

    @property
    def idempotency_key(self) -> str:
        """The wallet's request key: however often execution runs, the wallet records one refund."""
        return f"refund-request:{self.pk}"


class MemberChangeRequest(ApprovalRequest):
    """A change of a member (用户变更): phone, name, bound rooms or a room transferred to another owner, level,
    status (freeze, unfreeze, close) or a lost-card replacement. Applied by members.services with a
    before/after record once reviewed."""

    NUMBER_PREFIX = "bgsq"
    FLOW_FIELDS = ApprovalRequest.FLOW_FIELDS + ("before", "after")

    class Kind(models.TextChoices):
        MOBILE = "mobile", _("Mobile phone")
        NAME = "name", _("Name")
        ROOMS = "rooms", _("Bound rooms")
        ROOM_TRANSFER = "room_transfer", _("Room transferred to another owner")
        LEVEL = "level", _("Level")
        STATUS = "status", _("Status (freeze, unfreeze, close)")
        CARD_REPLACEMENT = "card_replacement", _("Lost card replacement")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    new_name = models.CharField(_("new name"), max_length=50, blank=True)
    new_mobile = models.CharField(_("new mobile phone"), max_length=11, blank=True)
    new_level = models.ForeignKey(Level, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    new_status = models.CharField(_("new status"), max_length=16, choices=Owner.Status.choices, blank=True)
    rooms = models.ManyToManyField(Room, blank=True, related_name="+", verbose_name=_("rooms"))
    room = models.ForeignKey(Room, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    transfer_to = models.ForeignKey(Owner, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    card = models.ForeignKey(MemberCard, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    before = models.JSONField(default=dict, blank=True, editable=False)
    after = models.JSONField(default=dict, blank=True, editable=False)

    class Meta(ApprovalRequest.Meta):
        verbose_name = _("member change request")
        verbose_name_plural = _("member change requests")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="member_change_number_unique"),
        ]
        indexes = [models.Index(fields=["merchant", "state", "store"], name="member_change_queue_idx")]


class StaffOnboarding(ApprovalRequest):
    """A staff member proposed (营业员开通) for a store and role. Approved: login, staff record, role group and
    the store's object permissions are created, and a one-time activation code is issued (only its hash is
    kept); the clerk's activation (services.activate_staff) makes the login active."""

    NUMBER_PREFIX = "rzsq"
    FLOW_FIELDS = ApprovalRequest.FLOW_FIELDS + (
        "staff",
        "activation_code_hash",
        "activation_expires_at",
        "activated_at",
    )

    name = models.CharField(_("name"), max_length=50)
    mobile = models.CharField(_("mobile phone"), max_length=11)
    username = models.CharField(_("username"), max_length=150)
    role = models.CharField(_("role"), max_length=32, choices=Staff.Role.choices)
    staff_level = models.PositiveSmallIntegerField(_("staff level"), default=1)
    staff = models.OneToOneField(Staff, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    activation_code_hash = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    activation_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(ApprovalRequest.Meta):
        verbose_name = _("staff onboarding")
        verbose_name_plural = _("staff onboardings")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="onboarding_number_unique"),
        ]

    def executed_state(self) -> str:
        return State.AWAITING_ACTIVATION

    @transition(field="state", source=State.AWAITING_ACTIVATION, target=None, permission=rules.may_reissue_activation)
    def reissue_code(self, *, by, reason: str = "") -> None:
        """A new activation code replaces the old one (lost or expired)."""

    @transition(field="state", source=State.AWAITING_ACTIVATION, target=State.ACTIVE)
    def activate(self, *, by, reason: str = "") -> None:
        """The clerk entered the activation code: the login is active."""


class StaffOffboarding(ApprovalRequest):
    """A staff member leaving. Approved: login deactivated, sessions ended, every store permission revoked and
    their claimed tasks returned to the queue, in the approval's transaction."""

    NUMBER_PREFIX = "lzsq"

    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+", verbose_name=_("staff member"))

    class Meta(ApprovalRequest.Meta):
        verbose_name = _("staff offboarding")
        verbose_name_plural = _("staff offboardings")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="offboarding_number_unique"),
        ]


class FreeValueRequest(ApprovalRequest):
    """Free value above the merchant's limit (赠送审批): a recharge with a manual bonus or discount, or a template
    priced 0, beyond the wallet's limits; a free voucher or coupon worth more than the free-gift limit; a points
    award above the points limit. Refused outright by the wallet, such an operation is requested instead; a
    merchant admin approves it, and the wallet carries it out with the limit lifted for this request only
    (`approved_by_request`, wallet.services.limits) under the key `free-value-request:<pk>`.

    What is given and what the member pays are fixed at submission (`value_fen`, `points`, `paid_fen`: the
    wallet's own dry run); execution refuses if they have changed meanwhile (free_value_changed)."""

    NUMBER_PREFIX = "zssq"
    FLOW_FIELDS = ApprovalRequest.FLOW_FIELDS + ("recharge", "voucher", "entry_id", "failure_code", "failure_message")
    EXECUTE_ON_APPROVAL = False

    class Kind(models.TextChoices):
        RECHARGE = "recharge", _("Recharge with bonus or discount over the limit")
        VOUCHER = "voucher", _("Free voucher")
        COUPON = "coupon", _("Free coupon")
        POINTS = "points", _("Points award")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    member = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    # A recharge: its one line as the operator entered it, and how the member pays.
    line_kind = models.CharField(_("line"), max_length=16, choices=RechargeLine.Kind.choices, blank=True)
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    amount_fen = models.BigIntegerField(_("stored value per unit (fen)"), default=0, validators=[MinValueValidator(0)])
    bonus_fen = models.BigIntegerField(_("bonus per unit (fen)"), default=0, validators=[MinValueValidator(0)])
    discount_bp = models.PositiveIntegerField(_("discount (basis points paid)"), default=10000)
    payment_method = models.CharField(_("payment method"), max_length=16, choices=PaymentMethod.choices, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    coupon_template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("coupon"))  # fmt: skip
    package = models.ForeignKey(EntitlementPackage, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+", verbose_name=_("entitlement package"))  # fmt: skip
    voucher_template = models.ForeignKey(VoucherTemplate, on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("voucher"))  # fmt: skip
    vip_type = models.ForeignKey(VipCardType, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                 verbose_name=_("VIP card"))  # fmt: skip
    points_rule = models.ForeignKey(ActivityPointsRule, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("activity points rule"))  # fmt: skip
    # What the approval is for, as the wallet's dry run computed it at submission.
    paid_fen = models.BigIntegerField(_("paid (fen)"), default=0, validators=[MinValueValidator(0)])
    value_fen = models.BigIntegerField(_("free value (fen)"), default=0, validators=[MinValueValidator(0)])
    points = models.PositiveIntegerField(_("points"), default=0)
    # The portal form's token: the same form posted twice is answered with the request of its first post.
    form_token = models.CharField(max_length=36, blank=True, editable=False)
    recharge = models.OneToOneField(Recharge, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                    editable=False)  # fmt: skip
    voucher = models.OneToOneField(Voucher, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   editable=False)  # fmt: skip
    entry_id = models.BigIntegerField(null=True, blank=True, editable=False)  # the coupon's or points' ledger entry
    failure_code = models.CharField(max_length=64, blank=True, editable=False)
    failure_message = models.CharField(max_length=500, blank=True, editable=False)

    class Meta(ApprovalRequest.Meta):
        verbose_name = _("free value request")
        verbose_name_plural = _("free value requests")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="free_value_number_unique"),
            models.UniqueConstraint(
                fields=["merchant", "requested_by", "form_token"],
                condition=~models.Q(form_token=""),
                name="free_value_form_token_unique",
            ),
        ]
        indexes = [models.Index(fields=["merchant", "state", "store"], name="free_value_queue_idx")]

    @property
    def idempotency_key(self) -> str:
        """The wallet's key for carrying it out: however often execution runs, the value is given once."""
        return f"free-value-request:{self.pk}"


REQUEST_MODELS: tuple[type[ApprovalRequest], ...] = (
    RefundRequest,
    MemberChangeRequest,
    StaffOnboarding,
    StaffOffboarding,
    FreeValueRequest,
)


# ---------------------------------------------------------------- history


class RequestTransition(models.Model):
    """One transition of a request: who, when, from, to, why; for member changes the before/after values.
    Append-only; written by signals.record_transition for every transition."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.PositiveBigIntegerField()
    request = GenericForeignKey("content_type", "object_id")
    name = models.CharField(_("action"), max_length=32)
    source = models.CharField(_("from"), max_length=24, blank=True)
    target = models.CharField(_("to"), max_length=24)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    actor_label = models.CharField(max_length=64, blank=True, help_text="For system actors (jobs).")
    at = models.DateTimeField(_("at"), default=timezone.now)
    reason = models.TextField(_("reason"), blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("request history")
        verbose_name_plural = _("request history")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["content_type", "object_id", "at"], name="request_transition_idx")]

    def __str__(self) -> str:
        return f"{self.name}: {self.source or '-'} → {self.target}"


# ---------------------------------------------------------------- processes


class RequestProcess(Process):
    """A viewflow process whose artifact is a request (flows.flows)."""

    class Meta:
        proxy = True

    @property
    def request(self) -> ApprovalRequest:
        return request_of_process(self)


def request_of_process(process: Process) -> ApprovalRequest:
    """The request a process drives, read afresh (gateways decide on its current state)."""
    model = ContentType.objects.get_for_id(process.artifact_content_type_id).model_class()
    return model.objects.select_related("store").get(pk=process.artifact_object_id)


class RefundProcess(RequestProcess):
    class Meta:
        proxy = True
        verbose_name = _("refund process")
        verbose_name_plural = _("refund processes")


class MemberChangeProcess(RequestProcess):
    class Meta:
        proxy = True
        verbose_name = _("member change process")
        verbose_name_plural = _("member change processes")


class StaffOnboardingProcess(RequestProcess):
    class Meta:
        proxy = True
        verbose_name = _("staff onboarding process")
        verbose_name_plural = _("staff onboarding processes")


class StaffOffboardingProcess(RequestProcess):
    class Meta:
        proxy = True
        verbose_name = _("staff offboarding process")
        verbose_name_plural = _("staff offboarding processes")


class FreeValueProcess(RequestProcess):
    class Meta:
        proxy = True
        verbose_name = _("free value process")
        verbose_name_plural = _("free value processes")


# ---------------------------------------------------------------- reminders and notifications


class TaskReminder(models.Model):
    """A reminder or escalation sent for an open task: at most one of each per task, so the deadline job
    can run any number of times (flows.deadlines)."""

    class Kind(models.TextChoices):
        REMINDER = "reminder", _("Reminder")
        ESCALATION = "escalation", _("Escalation")

    task = models.ForeignKey("viewflow.Task", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "kind"], name="one_reminder_per_task_and_kind")]


class Notification(models.Model):
    """A message for one user: a reminder of a task, an escalation, or the outcome of a request. Rendered in
    the reader's language when shown (`message`); `dedupe_key` makes each one written once."""

    class Kind(models.TextChoices):
        REMINDER = "reminder", _("Reminder")
        ESCALATION = "escalation", _("Escalation")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        EXECUTED = "executed", _("Carried out")
        FAILED = "failed", _("Failed")
        ACTIVATED = "activated", _("Activated")
        TAKEN_BACK = "taken_back", _("Task taken back")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flow_notifications")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.PositiveBigIntegerField()
    request = GenericForeignKey("content_type", "object_id")
    params = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "dedupe_key"], name="notification_once_per_user")]
        indexes = [models.Index(fields=["user", "read_at", "-created_at"], name="notification_inbox_idx")]

    def __str__(self) -> str:
        return str(self.message)

    @property
    def message(self) -> str:
        from .notifications import render

        return render(self)
