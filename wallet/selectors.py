"""Reads of the wallet. Every amount comes from the ledger; nothing here is stored twice."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import CharField, Count, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ledger import labels as ledger_labels
from ledger import selectors as ledger_selectors
from ledger.models import Account
from members import selectors as member_selectors
from members.models import Merchant, Owner, Store
from members.selectors import RecordScope

from .accounts import Purpose, level_tally_accounts, points_lot_expiry_year
from .models import (
    CashRefund,
    Consumption,
    ConsumptionLine,
    CouponTemplate,
    EntitlementPackage,
    EntitlementRefund,
    Grant,
    PaymentMethod,
    Recharge,
    RechargePlan,
    Service,
    ServiceRecord,
    StoredValueCard,
    VipMembership,
    Voucher,
)


@dataclass(frozen=True)
class MemberTotals:
    """The totals seed 002 shows on a member (充值总额, 现金余额, 消费金额) and the other balances."""

    recharge_total_fen: int  # money taken in by recharges (before any refund)
    cash_balance_fen: int  # unused principal: what a cash refund would pay out
    bonus_balance_fen: int
    consumed_total_fen: int  # revenue from the member's consumptions, net of refunded lines
    refunded_cash_fen: int
    points_balance: int
    points_earned: int  # points credited by consumptions, recharges and awards, less those refunds took back


def member_totals(member: Owner) -> MemberTotals:
    """Two queries whatever the member's history: the balances, and the recharge and cash refund totals
    (sums of the cash legs of the member's recharge and cash refund entries: they grow with the member's
    recharges, nothing else); the consumed total and points earned are the member's level tallies
    (wallet.accounts), balances the ledger keeps."""
    balances = {}
    points_balance = 0
    for row in ledger_selectors.member_balances(member):
        if row.account.purpose == Purpose.POINTS:
            points_balance += row.balance
        else:
            balances[(row.account.purpose, row.account.detail)] = row.balance
    # Cash is debit-normal: debits of cash accounts in recharge entries are the money taken in.
    cash = ledger_selectors.member_operation_sums(member, [Purpose.CASH], ["recharge", "cash_refund"])
    recharge_total = cash["recharge"]
    refunded_cash = -cash["cash_refund"]
    return MemberTotals(
        recharge_total_fen=recharge_total,
        cash_balance_fen=balances.get((Purpose.PRINCIPAL, ""), 0),
        bonus_balance_fen=balances.get((Purpose.BONUS, ""), 0),
        consumed_total_fen=balances.get((Purpose.SPEND, ""), 0),
        refunded_cash_fen=refunded_cash,
        points_balance=points_balance,
        points_earned=balances.get((Purpose.POINTS_EARNED, ""), 0),
    )


def level_totals(member: Owner) -> tuple[int, int]:
    """(consumed total in fen, points earned) that the member's level is decided by: the balances of the
    member's level tallies (one query, whatever the member's history)."""
    tallies = level_tally_accounts(member)
    current = ledger_selectors.balances([account for account in tallies if account is not None])
    spend, points = (current[account.pk] if account is not None else 0 for account in tallies)
    return spend, points


@dataclass
class HeldBenefit:
    label: str
    kind: str
    balance: int
    unit: str
    valid_until: object = None
    obj: object = None


@dataclass
class MemberBenefits:
    principal_fen: int = 0
    bonus_fen: int = 0
    stored_value_open: bool = False
    vouchers: list[HeldBenefit] = field(default_factory=list)
    grants: list[HeldBenefit] = field(default_factory=list)
    points: list[HeldBenefit] = field(default_factory=list)
    vip: list[VipMembership] = field(default_factory=list)


def member_benefits(member: Owner) -> MemberBenefits:
    """What the member holds now, with balances from the ledger (one query for all accounts)."""
    result = MemberBenefits()
    result.stored_value_open = StoredValueCard.objects.filter(
        member=member, status=StoredValueCard.Status.ACTIVE
    ).exists()
    vouchers = {v.account_detail: v for v in Voucher.objects.filter(member=member).select_related("template")}
    grants = {
        g.account_detail: g for g in Grant.objects.filter(member=member).select_related("coupon_template", "service")
    }
    for row in ledger_selectors.member_balances(member):
        account: Account = row.account
        if account.purpose == Purpose.PRINCIPAL:
            result.principal_fen = row.balance
        elif account.purpose == Purpose.BONUS:
            result.bonus_fen = row.balance
        elif account.purpose == Purpose.VOUCHER and row.balance and account.detail in vouchers:
            v = vouchers[account.detail]
            result.vouchers.append(HeldBenefit(v.template.name, "voucher", row.balance, "CNY", v.valid_until, v))
        elif account.purpose in (Purpose.COUPON, Purpose.ENTITLEMENT) and row.balance and account.detail in grants:
            g = grants[account.detail]
            result.grants.append(HeldBenefit(str(g), g.kind, row.balance, account.unit, g.valid_until, g))
        elif account.purpose == Purpose.POINTS and row.balance:
            result.points.append(
                HeldBenefit(
                    _("points expiring at the end of %(year)s") % {"year": points_lot_expiry_year(account)},
                    "points",
                    row.balance,
                    "POINT",
                )
            )
    result.vip = list(
        VipMembership.objects.filter(member=member, status="active", ends_at__gte=timezone.now()).select_related(
            "card_type"
        )
    )
    return result


def usable_grants(member: Owner, service: Service) -> QuerySet[Grant]:
    """Active, unexpired grants of the member that cover the service, soonest expiry first."""
    return (
        usable_grants_of(member)
        .filter(
            Q(kind=Grant.Kind.ENTITLEMENT, service=service)
            | Q(kind=Grant.Kind.COUPON, coupon_template__services=service)
        )
        .order_by("valid_until", "pk")
        .distinct()
    )


def recharges_of(member: Owner) -> QuerySet[Recharge]:
    return Recharge.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("lines")


def consumptions_of(member: Owner) -> QuerySet[Consumption]:
    return Consumption.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("lines__service")


def refundable_lines(member: Owner) -> QuerySet[ConsumptionLine]:
    return ConsumptionLine.objects.filter(
        consumption__member=member, consumption__merchant_id=member.merchant_id, status=ConsumptionLine.Status.NORMAL
    ).select_related("consumption", "service")


def refunds_of(member: Owner) -> tuple[QuerySet[EntitlementRefund], QuerySet[CashRefund]]:
    return (
        EntitlementRefund.objects.filter(merchant_id=member.merchant_id, member=member),
        CashRefund.objects.filter(merchant_id=member.merchant_id, member=member),
    )


def service_records_of(member: Owner) -> QuerySet[ServiceRecord]:
    return ServiceRecord.objects.filter(merchant_id=member.merchant_id, member=member).prefetch_related("tags")


def services_for(merchant: Merchant) -> QuerySet[Service]:
    return Service.objects.filter(merchant=merchant, is_active=True).select_related("category")


def coupon_templates_for(merchant: Merchant) -> QuerySet[CouponTemplate]:
    return CouponTemplate.objects.filter(merchant=merchant, is_active=True)


def recharge_plans_for(merchant: Merchant) -> QuerySet[RechargePlan]:
    return RechargePlan.objects.filter(merchant=merchant, is_active=True).order_by("pay_fen", "pk")


def packages_for(merchant: Merchant) -> QuerySet[EntitlementPackage]:
    return EntitlementPackage.objects.filter(merchant=merchant, is_active=True).order_by("name", "pk")


def usable_grants_of(member: Owner) -> QuerySet[Grant]:
    """The member's active coupons and entitlements that have not expired (uses left: member_benefits).
    The query form of wallet.services.checks.check_grant_active (a lot past its validity is not usable)."""
    now = timezone.now()
    return (
        Grant.objects.filter(member=member, status=Grant.Status.ACTIVE)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=now))
        .select_related("coupon_template", "service")
    )


def usable_vouchers_of(member: Owner) -> QuerySet[Voucher]:
    now = timezone.now()
    return Voucher.objects.filter(
        member=member, status=Voucher.Status.ACTIVE, valid_from__lte=now, valid_until__gte=now
    ).select_related("template")


# ---------------------------------------------------------------- lists and dashboards (portal)
# Reads of business records across members, scoped by members.selectors.RecordScope: the portal's
# record lists, their exports and the dashboards all read through these, so what a page shows, what
# its export contains and what its dashboard counts are the same rows.

Period = tuple[datetime.datetime, datetime.datetime]  # [start, end)


def recharges_in(scope: RecordScope) -> QuerySet[Recharge]:
    return scope.apply(Recharge.objects.all())


def consumptions_in(scope: RecordScope) -> QuerySet[Consumption]:
    return scope.apply(Consumption.objects.all())


def entitlement_refunds_in(scope: RecordScope) -> QuerySet[EntitlementRefund]:
    return scope.apply(EntitlementRefund.objects.all())


def cash_refunds_in(scope: RecordScope) -> QuerySet[CashRefund]:
    return scope.apply(CashRefund.objects.all())


def service_records_visible_to(user: AbstractBaseUser | AnonymousUser, scope: RecordScope) -> QuerySet[ServiceRecord]:
    """Service records in the scope for roles that read records; a clerk (who reads no records) sees the
    ones they served, wherever (SPEC: a clerk sees their own service records)."""
    if user.has_perm("wallet.view_servicerecord"):
        return scope.apply(ServiceRecord.objects.all())
    staff = member_selectors.staff_of(user)
    if staff is None:
        return ServiceRecord.objects.none()
    return ServiceRecord.objects.filter(merchant_id=staff.merchant_id, staff=staff)


def coupon_grants_in(scope: RecordScope) -> QuerySet[Grant]:
    """Coupon lots issued in the scope. A lot has no store of its own: a scope limited to stores counts
    the lots its recharges sold or gave (source_ref is the recharge number); batch issuance belongs to
    no store, so only whole-merchant scopes count it."""
    grants = scope.apply(Grant.objects.filter(kind=Grant.Kind.COUPON), store_path="")
    if scope.store_ids is not None and not scope.is_empty:
        grants = grants.filter(source_ref__in=recharges_in(scope).values("number"))
    return grants


def owners_in(scope: RecordScope) -> QuerySet[Owner]:
    """Members of the scope's merchants (members are merchant-wide: a store scope does not narrow them)."""
    return scope.apply(Owner.objects.all(), store_path="")


def _in_period(at: str, period: Period) -> Q:
    return Q(**{f"{at}__gte": period[0], f"{at}__lt": period[1]})


def per_period(queryset: QuerySet, at: str, periods: dict[str, Period], **sums: str) -> dict[str, dict[str, int]]:
    """In one query, for each named period: the number of rows whose `at` falls in it ("count") and
    the sum of each field of `sums` over them (0 when none)."""
    lowest, highest = min(p[0] for p in periods.values()), max(p[1] for p in periods.values())
    aggregates = {}
    for name, period in periods.items():
        aggregates[f"{name}__count"] = Count("pk", filter=_in_period(at, period))
        for key, field_name in sums.items():
            aggregates[f"{name}__{key}"] = Coalesce(Sum(field_name, filter=_in_period(at, period)), 0)
    row = queryset.filter(_in_period(at, (lowest, highest))).aggregate(**aggregates)
    return {name: {key: row[f"{name}__{key}"] for key in ("count", *sums)} for name in periods}


@dataclass(frozen=True)
class PeriodFigures:
    """What happened in one period, in the scope. Amounts in fen."""

    new_owners: int = 0
    recharges: int = 0
    recharged_fen: int = 0
    consumptions: int = 0
    consumed_fen: int = 0  # payable of the consumptions (before any refund)
    entitlement_refunds: int = 0
    entitlement_refunded_fen: int = 0  # value restored to the members' accounts
    cash_refunds: int = 0
    cash_refunded_fen: int = 0  # paid out
    coupons_issued: int = 0  # coupon lots (张)
    coupon_uses: int = 0  # coupon uses redeemed (次)
    service_records: int = 0


@dataclass(frozen=True)
class OwnerCounts:
    total: int
    active: int


def owner_counts(scope: RecordScope) -> OwnerCounts:
    """Members of the scope's merchants (members are merchant-wide: a store scope does not narrow them)."""
    owners = (
        Owner.objects.all() if scope.merchant_ids is None else Owner.objects.filter(merchant_id__in=scope.merchant_ids)
    )
    if scope.is_empty:
        owners = owners.none()
    row = owners.aggregate(total=Count("pk"), active=Count("pk", filter=Q(status=Owner.Status.ACTIVE)))
    return OwnerCounts(total=row["total"], active=row["active"])


def activity_figures(
    scope: RecordScope, periods: dict[str, Period], service_records: QuerySet[ServiceRecord] | None = None
) -> dict[str, PeriodFigures]:
    """The dashboard's counts and sums per named period (today, this week, this month…), one query per
    kind of record whatever the number of rows or periods."""
    owners = (
        Owner.objects.all() if scope.merchant_ids is None else Owner.objects.filter(merchant_id__in=scope.merchant_ids)
    )
    if scope.is_empty:
        owners = owners.none()
    new_owners = per_period(owners, "joined_at", periods)
    recharges = per_period(recharges_in(scope), "created_at", periods, fen="paid_total_fen")
    consumptions = per_period(consumptions_in(scope), "created_at", periods, fen="payable_total_fen")
    entitlement_refunds = per_period(entitlement_refunds_in(scope), "created_at", periods, fen="total_fen")
    cash_refunds = per_period(cash_refunds_in(scope), "created_at", periods, fen="paid_out_fen")
    coupons_issued = per_period(coupon_grants_in(scope), "created_at", periods)
    coupon_lines = scope.apply(
        ConsumptionLine.objects.filter(grant__kind=Grant.Kind.COUPON), "consumption__merchant", "consumption__store"
    )
    coupon_uses = per_period(coupon_lines, "consumption__created_at", periods, uses="uses")
    if service_records is None:
        service_records = scope.apply(ServiceRecord.objects.all())
    records = per_period(service_records, "created_at", periods)
    return {
        name: PeriodFigures(
            new_owners=new_owners[name]["count"],
            recharges=recharges[name]["count"],
            recharged_fen=recharges[name]["fen"],
            consumptions=consumptions[name]["count"],
            consumed_fen=consumptions[name]["fen"],
            entitlement_refunds=entitlement_refunds[name]["count"],
            entitlement_refunded_fen=entitlement_refunds[name]["fen"],
            cash_refunds=cash_refunds[name]["count"],
            cash_refunded_fen=cash_refunds[name]["fen"],
            coupons_issued=coupons_issued[name]["count"],
            coupon_uses=coupon_uses[name]["uses"],
            service_records=records[name]["count"],
        )  # fmt: skip
        for name in periods
    }


def local_day_bounds(start: datetime.date, end: datetime.date) -> Period:
    """Whole local days from `start` to `end` inclusive, as [start, end) instants."""
    tz = timezone.get_current_timezone()
    return (
        datetime.datetime.combine(start, datetime.time.min, tzinfo=tz),
        datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz),
    )


@dataclass
class StoreDay:
    count: int = 0
    fen: int = 0


@dataclass
class DailyStoreTotals:
    """Recharges and consumptions per local day and store over a date range: the dashboard chart."""

    days: list[datetime.date]
    stores: list[tuple[int | None, str]]  # (store id or None for no store, label), in display order
    recharges: dict[int | None, list[StoreDay]]  # store → one StoreDay per day of `days`
    consumptions: dict[int | None, list[StoreDay]]

    def total_fen(self, kind: str) -> int:
        return sum(day.fen for days in getattr(self, kind).values() for day in days)


def _per_day_and_store(queryset: QuerySet, period: Period, fen_field: str) -> list[dict]:
    tz = timezone.get_current_timezone()
    return list(
        queryset.filter(_in_period("created_at", period))
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "store_id")
        .annotate(count=Count("pk"), fen=Coalesce(Sum(fen_field), 0))
        .order_by("day", "store_id")
    )


def daily_store_totals(scope: RecordScope, start: datetime.date, end: datetime.date) -> DailyStoreTotals:
    """Three queries whatever the range: recharges and consumptions grouped by day and store, and the
    names of the stores that had any."""
    period = local_day_bounds(start, end)
    days = [start + datetime.timedelta(days=n) for n in range((end - start).days + 1)]
    index = {day: n for n, day in enumerate(days)}
    rows = {
        "recharges": _per_day_and_store(recharges_in(scope), period, "paid_total_fen"),
        "consumptions": _per_day_and_store(consumptions_in(scope), period, "payable_total_fen"),
    }
    store_ids = sorted({row["store_id"] for kind in rows.values() for row in kind}, key=lambda s: (s is None, s or 0))
    names = dict(Store.objects.filter(pk__in=[s for s in store_ids if s is not None]).values_list("pk", "name"))
    result = DailyStoreTotals(
        days=days,
        stores=[(s, names.get(s, "") if s is not None else "") for s in store_ids],
        recharges={s: [StoreDay() for _ in days] for s in store_ids},
        consumptions={s: [StoreDay() for _ in days] for s in store_ids},
    )
    for kind, kind_rows in rows.items():
        series = getattr(result, kind)
        for row in kind_rows:
            day = row["day"]
            if day in index:  # always, unless the database's day differs from ours at a DST edge
                series[row["store_id"]][index[day]] = StoreDay(row["count"], row["fen"])
    return result


@dataclass(frozen=True)
class StoreTotals:
    store_id: int | None
    recharges: StoreDay
    consumptions: StoreDay
    entitlement_refunds: StoreDay
    cash_refunds: StoreDay
    service_records: int


def store_totals(scope: RecordScope, start: datetime.date, end: datetime.date) -> list[StoreTotals]:
    """Per store over the date range (a store manager's figures): five grouped queries."""
    period = local_day_bounds(start, end)

    def grouped(queryset: QuerySet, fen_field: str | None) -> dict[int | None, StoreDay]:
        rows = queryset.filter(_in_period("created_at", period)).values("store_id").order_by("store_id")
        rows = rows.annotate(count=Count("pk"), fen=Coalesce(Sum(fen_field), 0) if fen_field else Value(0))
        return {row["store_id"]: StoreDay(row["count"], row["fen"]) for row in rows}

    recharges = grouped(recharges_in(scope), "paid_total_fen")
    consumptions = grouped(consumptions_in(scope), "payable_total_fen")
    entitlement_refunds = grouped(entitlement_refunds_in(scope), "total_fen")
    cash_refunds = grouped(cash_refunds_in(scope), "paid_out_fen")
    records = grouped(scope.apply(ServiceRecord.objects.all()), None)
    stores = set(recharges) | set(consumptions) | set(entitlement_refunds) | set(cash_refunds) | set(records)
    return [
        StoreTotals(
            store_id=store,
            recharges=recharges.get(store, StoreDay()),
            consumptions=consumptions.get(store, StoreDay()),
            entitlement_refunds=entitlement_refunds.get(store, StoreDay()),
            cash_refunds=cash_refunds.get(store, StoreDay()),
            service_records=records.get(store, StoreDay()).count,
        )
        for store in sorted(stores, key=lambda s: (s is None, s or 0))
    ]


@dataclass(frozen=True)
class PaymentMethodTotals:
    method: str  # PaymentMethod value (the cash account's detail)
    in_fen: int  # taken in: recharges paid, consumptions paid directly
    out_fen: int  # paid out: cash refunds, refunds of directly paid lines

    @property
    def net_fen(self) -> int:
        return self.in_fen - self.out_fen


def cash_by_payment_method(
    scope: RecordScope, start: datetime.date, end: datetime.date
) -> list[PaymentMethodTotals] | None:
    """Money in and out per payment method over the date range, from the ledger's cash accounts
    (ledger.selectors.totals); None when the scope spans several merchants (the ledger totals one
    merchant at a time: a platform admin picks one)."""
    if scope.merchant_ids is None or len(scope.merchant_ids) != 1 or scope.is_empty:
        return None
    merchant = Merchant(pk=scope.merchant_ids[0])  # totals filters by the merchant's key alone
    rows = ledger_selectors.totals(
        merchant, purposes=[Purpose.CASH], period="month", by_store=True, by_detail=True, start=start, end=end
    )
    sums: dict[str, list[int]] = {}
    for row in rows:
        if scope.store_ids is not None and row["store_id"] not in scope.store_ids:
            continue
        in_out = sums.setdefault(row["detail"], [0, 0])
        in_out[0] += row["debit"]
        in_out[1] += row["credit"]
    order = {value: n for n, value in enumerate(PaymentMethod.values)}
    return [
        PaymentMethodTotals(method, in_fen, out_fen)
        for method, (in_fen, out_fen) in sorted(sums.items(), key=lambda item: (order.get(item[0], 99), item[0]))
    ]


# ---------------------------------------------------------------- member 360 and the operator pages


def refund_rows(member: Owner) -> QuerySet:
    """Both kinds of refund of a member as one list, newest first: (kind, pk, created_at) rows that
    page in the database; `refunds_for_rows` fetches the page's records."""
    entitlement = (
        EntitlementRefund.objects.filter(merchant_id=member.merchant_id, member=member)
        .annotate(refund_kind=Value("entitlement", output_field=CharField()))
        .values_list("refund_kind", "pk", "created_at")
        .order_by()  # no ORDER BY inside a compound statement (SQLite refuses it); the union is ordered
    )
    cash = (
        CashRefund.objects.filter(merchant_id=member.merchant_id, member=member)
        .annotate(refund_kind=Value("cash", output_field=CharField()))
        .values_list("refund_kind", "pk", "created_at")
        .order_by()  # no ORDER BY inside a compound statement (SQLite refuses it); the union is ordered
    )
    return entitlement.union(cash, all=True).order_by("-created_at", "-pk")


def refunds_for_rows(member: Owner, rows) -> list:
    """(kind, record) of `refund_rows` rows, in their order (kind: "entitlement" or "cash"); a few
    queries for any number of rows."""
    wanted = {"entitlement": [pk for kind, pk, _at in rows if kind == "entitlement"],
              "cash": [pk for kind, pk, _at in rows if kind == "cash"]}  # fmt: skip
    entitlement, cash = refunds_of(member)
    # The lines with their consumption's number and service's name in one query (not one per relation);
    # only what the tab shows is read, which is most of the tab's time on a full page.
    lines = Prefetch(
        "lines",
        queryset=ConsumptionLine.objects.select_related("consumption", "service").only(
            "refund_id", "line_no", "quantity", "status", "consumption__number", "service__name"
        ),
    )
    found = {("entitlement", r.pk): r for r in entitlement.filter(pk__in=wanted["entitlement"])
             .prefetch_related(lines)}  # fmt: skip
    # A lot is shown by its template or service (Grant.__str__): read with it, not once per row.
    found |= {
        ("cash", r.pk): r
        for r in cash.filter(pk__in=wanted["cash"]).select_related("grant__coupon_template", "grant__service")
    }
    return [(kind, found[(kind, pk)]) for kind, pk, _at in rows if (kind, pk) in found]


@dataclass(frozen=True)
class StatementAccount:
    """A ledger account of a member a statement can be asked for, labelled for people."""

    account: Account
    label: str
    balance: int


def statement_accounts(member: Owner) -> list[StatementAccount]:
    """The member's accounts (principal, bonus, each voucher, each coupon or entitlement lot, each points
    lot) with their balances, in that order. Three queries whatever the number of lots."""
    vouchers = {v.account_detail: v for v in Voucher.objects.filter(member=member).select_related("template")}
    grants = {
        g.account_detail: g for g in Grant.objects.filter(member=member).select_related("coupon_template", "service")
    }
    order = {Purpose.PRINCIPAL: 0, Purpose.BONUS: 1, Purpose.VOUCHER: 2, Purpose.COUPON: 3, Purpose.ENTITLEMENT: 3,
             Purpose.POINTS: 4}  # fmt: skip
    found = []
    for row in ledger_selectors.member_balances(member):
        account = row.account
        if account.purpose == Purpose.PRINCIPAL:
            label = _("Principal")
        elif account.purpose == Purpose.BONUS:
            label = _("Bonus")
        elif account.purpose == Purpose.VOUCHER and account.detail in vouchers:
            voucher = vouchers[account.detail]
            label = _("Voucher %(name)s, valid until %(date)s") % {
                "name": voucher.template.name, "date": timezone.localtime(voucher.valid_until).strftime("%Y-%m-%d"),
            }  # fmt: skip
        elif account.purpose in (Purpose.COUPON, Purpose.ENTITLEMENT) and account.detail in grants:
            label = str(grants[account.detail])
        elif account.purpose == Purpose.POINTS:
            label = _("Points expiring at the end of %(year)s") % {"year": points_lot_expiry_year(account)}
        else:
            continue
        found.append((order[account.purpose], account.pk, StatementAccount(account, label, row.balance)))
    return [item for _order, _pk, item in sorted(found, key=lambda t: (t[0], t[1]))]


def account_statement(account: Account, start, end, *, offset: int, limit: int) -> ledger_selectors.StatementPage:
    """One page of an account's statement (see ledger.selectors.statement_page)."""
    return ledger_selectors.statement_page(account, start, end, offset=offset, limit=limit)


# The wallet's ledger operation types (Entry.operation_type) as people read them on a statement.
OPERATION_LABELS = {
    "recharge": gettext_lazy("Recharge"),
    "consumption": gettext_lazy("Consumption"),
    "consumption_refund": gettext_lazy("Refund of consumption lines"),
    "cash_refund": gettext_lazy("Cash refund"),
    "coupon_issue": gettext_lazy("Coupons issued"),
    "voucher_issue": gettext_lazy("Voucher issued"),
    "points_award": gettext_lazy("Points awarded"),
    "expiry": gettext_lazy("Expiry"),
}


def operation_label(operation_type: str) -> str:
    return str(OPERATION_LABELS.get(operation_type, operation_type))


def memo_label(memo: str) -> str:
    """An entry's memo as people read it: a code the system wrote (an expiry's) by its name in the
    active language, a person's reason or note as written."""
    return ledger_labels.memo_label(memo)


OPERATION_MODELS = {"recharge": Recharge, "consumption": Consumption, "refund": EntitlementRefund}


def operation_by_key(member: Owner, operation: str, idempotency_key: str):
    """The operation already recorded for the member under this request key, or None: a form posted
    again (a double click, a reload, the back button) is answered with what it recorded the first time."""
    model = OPERATION_MODELS[operation]
    return model.objects.filter(merchant_id=member.merchant_id, member=member, idempotency_key=idempotency_key).first()
