"""Portal pages on PostgreSQL, a small and a large merchant, through Django's test client (issue 11, Performance).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/portal_pages.py
    DATABASE_URL=... .venv/bin/python benchmarks/portal_pages.py --owners 10000 --entries 100000 --runs 10

The script migrates the database of DATABASE_URL first (call_command("migrate")). Use a scratch database:
every run adds two merchants (codes pb-small-<ms>, pb-large-<ms>) and their data stays (about 3 GB with the
defaults).

Datasets (benchmark data, not product code), each a merchant of its own, built in this order:

  small   --small-owners owners (default 1,000) and --small-entries ledger entries (default 10,000)
  large   --owners owners (default 100,000) and --entries ledger entries (default 1,000,000)

Each has 5 stores, a merchant admin (whose pages are timed: the fullest dashboard, every record), two
operators, a clerk who serves the service records, a service 洗车 (¥10), 3 levels and a tag. Owners, their
member cards, stored-value cards, "registered" audit events and ledger accounts (principal, bonus, this
year's points lot, the level tallies) are bulk-created (bulk_create and ledger.services'
get_or_create_member_accounts). Member 0 has 5,000 entries and member 1 has 10 (the member pages timed),
the others share the rest (about 10 each in the large set, 5 in the small one). Member numbers are
yyyymmdd + a counter like the product's; 1 owner in 100 is named 王秀英 (the "common name"), the others get
one of 30 × 40 names.

History: every entry is a business record with its ledger entry and legs, inserted in time order by one
INSERT ... SELECT per table per block of --block entries (PostgreSQL assigns no id the script has not
reserved from the table's sequence first, so records, lines and reversals reference each other directly),
the way benchmarks/wallet_ops.py builds its history: the deferred per-entry check trigger is skipped
(session_replication_role = replica, when the role may), legs carry balance_after as the wallet posts it
(running sums per member and account) and the cached balances are set from the legs at the end;
ledger.selectors.reconcile over each merchant checks every entry, leg and balance. A member's first entry
is a recharge of ¥1,000; after it, by (k + member offset) mod 100: every 10th a recharge of ¥100 (WeChat,
Alipay or cash), 1 an entitlement refund of the consumption just before (reversing entry, refunded line,
and an executed refund request with that line), 1 a cash refund of ¥50 of principal, the rest a
consumption of one line 洗车 ¥10 from stored value (principal, revenue, 10 points, the level tallies),
every other one with a service record (one tag) served by the clerk. Each member's entries are spread
evenly over the dataset's span, which is entries ÷ --per-day days (default 400 a day: about 25 days for
the small set, 6.8 years for the large): both merchants do the same business a day, the large one has a
long history, so the dashboard's today / week / month and 30-day figures hold about as many records in
both and what is measured is whether a page reads the history it does not show. Owners' join dates are
spread evenly over the span too.

Timed through Django's test client (URL resolution, middleware, session, the views' selectors and templates;
DEBUG off), as the merchant admin, --runs times each after --warmup untimed requests (default 20 and 2), in
rounds (each round requests every page once, so a passing load falls on all pages alike), the small set first
(before the large one exists), then the large set:

  dashboard                        GET /                  (figures, chart, stores, payment methods)
  members_first / members_last     GET /members/          and ?page=last
  recharges_first / _last          GET /records/recharges/
  consumptions_first / _last       GET /records/consumptions/
  entitlement_refunds_first/_last  GET /records/refunds/entitlement/
  cash_refunds_first / _last       GET /records/refunds/cash/
  refund_requests_first / _last    GET /tasks/requests/refund/
  service_records_first / _last    GET /records/service-records/
  search_mobile                    GET /members/?q=<a mobile number>
  search_number                    GET /members/?q=<a member number>
  search_name                      GET /members/?q=王秀英
  member10_<tab>, member5000_<tab> GET /members/<pk>/?tab=<tab> for each tab of the member page (overview,
                                   service_records, recharges, consumptions, refunds, statement, audit) of
                                   member 1 (10 entries) and member 0 (5,000 entries)

A list of more than portal.lists.views.COUNT_LIMIT rows (10,000) is shown as its first 10,000 rows: its last
page (?page=last) is page 400 of those, not the oldest rows (which the other sort order or a date filter
shows); a shorter list's last page holds its oldest rows. The mobile and member number searched are those
of the owners in the middle and at a third of the join order; a search matches them anywhere in the list.

Options: --runs, --warmup, --per-day, --block (entries per INSERT), --no-reconcile; --reuse times the newest
datasets already in the database instead of building (after a code change; the small one then shares its
tables with the large one); --pages a,b,… times only the pages whose names contain one of those.

Queries per page: every statement of one request (a connection.execute_wrapper: session and user
lookups included). Printed per page: p50 and p95 in each set, growth (large p95 ÷ small p95) and the
queries in each set; then the member pages' ratio (5,000-entry member p95 ÷ 10-entry member p95, per tab and
set). Goals (issue 11): growth ≤ 2 for every page, the 5,000-entry member's tabs ≤ 1.5 × the 10-entry
member's, queries the same in both sets. The machine's other load shows in the figures: compare ratios.

The last line of stdout is one JSON object: per page <page>_p95_ms (large), <page>_growth and <page>_queries
(large), per tab member5000_<tab>_ratio (large), plus owners, entries, runs, queries_same (every page the
same number of queries in both sets), goals_met and the pages missing a goal (failed).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from ledger_throughput import _bootstrap_django, _log, _percentile  # noqa: E402

HEAVY_ENTRIES = 5_000
LIGHT_ENTRIES = 10
INITIAL_FEN = 100_000  # every member's first recharge: ¥1,000
RECHARGE_FEN = 10_000
CONSUMPTION_FEN = 1_000
CASH_REFUND_FEN = 5_000
POINTS = 10
STORES = 5
COMMON_NAME = "王秀英"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = [*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚"] + [
    "桂英", "秀兰", "玉兰", "桂兰", "秀珍", "凤英", "玉珍", "玉英", "兰英", "建华",
    "建国", "建军", "志强", "海燕", "文华", "红梅", "晓东", "国平", "丽娟", "子豪",
]  # fmt: skip
PASSWORD = "bench-pass-2026"
TABS = ("overview", "service_records", "recharges", "consumptions", "refunds", "statement", "audit")
GROWTH_GOAL = 2.0
MEMBER_GOAL = 1.5


# ---------------------------------------------------------------- fixture


def _reserve_ids(cursor, table: str, n: int) -> int:
    """Reserve n ids of `table`'s sequence and return the first: the script inserts them itself, in time order."""
    if n <= 0:
        return 0
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT nextval(%s)", [sequence])
    first = cursor.fetchone()[0]
    cursor.execute("SELECT setval(%s, %s)", [sequence, first + n - 1])
    return first


def _histories(owners: int, entries: int) -> list[int]:
    """Entries per member: member 0 the heavy one, member 1 the light one, the rest shared evenly."""
    rest = entries - HEAVY_ENTRIES - LIGHT_ENTRIES
    others = owners - 2
    base, extra = divmod(rest, others)
    return [HEAVY_ENTRIES, LIGHT_ENTRIES] + [base + (1 if i < extra else 0) for i in range(others)]


def _name(i: int) -> str:
    if i % 100 == 7:
        return COMMON_NAME
    return SURNAMES[(i * 7) % len(SURNAMES)] + GIVEN[(i * 13) % len(GIVEN)]


def _build(label: str, owners: int, entries: int, per_day: float, block: int, tag: str, mobile_prefix: str) -> dict:
    import datetime

    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction
    from django.utils import timezone

    from ledger import services as ledger
    from members import roles
    from members import services as member_services
    from members.models import AuditEvent, Level, MemberCard, Merchant, Owner, Store
    from wallet.accounts import points_lot_detail
    from wallet.models import Service, ServiceCategory, ServiceTag, StoredValueCard, WalletSettings

    t_start = time.perf_counter()
    now = timezone.now()
    span = datetime.timedelta(days=entries / per_day)
    merchant = Merchant.objects.create(code=f"pb-{label}-{tag}", name=f"页面基准 {label} {tag}")
    WalletSettings.objects.create(merchant=merchant)
    stores = [Store.objects.create(merchant=merchant, code=f"s{i}", name=f"门店{i + 1}") for i in range(STORES)]
    category = ServiceCategory.objects.create(merchant=merchant, name="服务")
    service = Service.objects.create(merchant=merchant, category=category, name="洗车", list_price_fen=CONSUMPTION_FEN,
                                     member_price_fen=CONSUMPTION_FEN)  # fmt: skip
    tag_row = ServiceTag.objects.create(merchant=merchant, name="护理")
    levels = [Level.objects.create(merchant=merchant, name=name, rank=rank, upgrade_spend_fen=10**14)
              for rank, name in enumerate(("银卡", "金卡", "钻石卡"), start=1)]  # fmt: skip

    def staff(name: str, role: str) -> object:
        return member_services.create_staff(merchant=merchant, username=f"{merchant.code}-{name}", name=name,
                                            role=role, stores=stores, actor=None, password=PASSWORD)  # fmt: skip

    admin = staff("店主", roles.MERCHANT_ADMIN)
    operators = [staff("操作员甲", roles.OPERATOR), staff("操作员乙", roles.OPERATOR)]
    clerk = staff("营业员", roles.CLERK)

    # Owners: joined evenly over the span, member numbers yyyymmdd + the day's counter.
    histories = _histories(owners, entries)
    tz = timezone.get_current_timezone()
    rows, per_day_counter = [], {}
    for i in range(owners):
        joined = now - span * (1 - i / owners)
        day = timezone.localtime(joined, tz).date()
        per_day_counter[day] = per_day_counter.get(day, 0) + 1
        rows.append(
            Owner(merchant=merchant, member_number=f"{day:%Y%m%d}{per_day_counter[day]:04d}", name=_name(i),
                  mobile=f"{mobile_prefix}{i:08d}", joined_at=joined,
                  level=levels[i % 4] if i % 4 < 3 and i % 5 == 0 else None)
        )  # fmt: skip
    with transaction.atomic():
        Owner.objects.bulk_create(rows, batch_size=5000)
    owner_ids = list(Owner.objects.filter(merchant=merchant).order_by("joined_at", "pk").values_list("pk", flat=True))
    found = dict(Owner.objects.filter(merchant=merchant).values_list("pk", "member_number"))
    MemberCard.objects.bulk_create(
        [MemberCard(owner_id=m, card_number=f"{merchant.pk:04d}{found[m]}01", issued_at=rows[n].joined_at)
         for n, m in enumerate(owner_ids)], batch_size=5000,
    )  # fmt: skip
    StoredValueCard.objects.bulk_create(
        [StoredValueCard(merchant=merchant, member_id=m, opened_at=rows[n].joined_at) for n, m in enumerate(owner_ids)],
        batch_size=5000,
    )  # fmt: skip
    owner_type = ContentType.objects.get_for_model(Owner)
    AuditEvent.objects.bulk_create(
        [AuditEvent(at=rows[n].joined_at, actor=operators[n % 2].user, merchant=merchant, action="owner.registered",
                    content_type=owner_type, object_id=str(m), after={"name": rows[n].name})
         for n, m in enumerate(owner_ids)], batch_size=5000,
    )  # fmt: skip
    _log(f"{label}: {owners} owners, cards and audit events in {time.perf_counter() - t_start:.1f}s")

    t0 = time.perf_counter()
    principals = ledger.get_or_create_member_accounts(merchant, "principal", "CNY", owner_ids)
    ledger.get_or_create_member_accounts(merchant, "bonus", "CNY", owner_ids)
    lot = points_lot_detail(timezone.localdate(), WalletSettings.objects.get(merchant=merchant).points_valid_years)
    points = ledger.get_or_create_member_accounts(merchant, "points", "POINT", owner_ids, detail=lot)
    spends = ledger.get_or_create_member_accounts(merchant, "spend", "CNY", owner_ids)
    earned = ledger.get_or_create_member_accounts(merchant, "points_earned", "POINT", owner_ids)
    cash = {m: ledger.get_or_create_account(merchant, "cash", "CNY", detail=m).pk for m in ("wechat", "alipay", "cash")}
    merchant_accounts = {
        "revenue": ledger.get_or_create_account(merchant, "revenue", "CNY").pk,
        "issuance": ledger.get_or_create_account(merchant, "issuance", "POINT").pk,
        "tally_cny": ledger.get_or_create_account(merchant, "tally", "CNY").pk,
        "tally_point": ledger.get_or_create_account(merchant, "tally", "POINT").pk,
        "cash_wechat": cash["wechat"], "cash_alipay": cash["alipay"], "cash_cash": cash["cash"],
    }  # fmt: skip
    _log(f"{label}: {owners * 5} member accounts in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    members = {
        "m_owner": owner_ids, "m_hist": histories, "m_offset": [(n * 37) % 100 for n in range(owners)],
        "m_phase": [((n * 0.6180339887) % 1.0) for n in range(owners)],
        "m_principal": [principals[m].pk for m in owner_ids], "m_points": [points[m].pk for m in owner_ids],
        "m_spend": [spends[m].pk for m in owner_ids], "m_earned": [earned[m].pk for m in owner_ids],
    }  # fmt: skip
    ctx = {
        "merchant": merchant.pk, "stores": [s.pk for s in stores], "operators": [o.user_id for o in operators],
        "clerk": clerk.pk, "service": service.pk, "tag": tag_row.pk, "now": now, "span_s": span.total_seconds(),
        **merchant_accounts,
    }  # fmt: skip
    replica, counts = _insert_history(members, ctx, block)
    history_s = time.perf_counter() - t0
    _log(f"{label}: {entries} entries with their records in {history_s:.1f}s (triggers skipped: {replica})")
    return {
        "label": label, "merchant": merchant, "admin": admin.user, "owners": owners, "entries": entries,
        "heavy": owner_ids[0], "light": owner_ids[1], "history_s": history_s, "counts": counts,
        "search_mobile": f"{mobile_prefix}{owners // 2:08d}", "search_number": found[owner_ids[owners // 3]],
        "span_days": span.total_seconds() / 86400, "replica": replica,
    }  # fmt: skip


# The plan of every entry of the dataset: one row per (member, k) in time order, with the ids it will get.
_PLAN_SQL = """
CREATE TEMP TABLE bench_ops ON COMMIT PRESERVE ROWS AS
WITH m AS (
    SELECT * FROM unnest(%(m_owner)s::bigint[], %(m_hist)s::int[], %(m_offset)s::int[], %(m_phase)s::float8[],
                         %(m_principal)s::bigint[], %(m_points)s::bigint[], %(m_spend)s::bigint[],
                         %(m_earned)s::bigint[])
        AS m(owner_id, hist, off, phase, principal_id, points_id, spend_id, earned_id)
), o AS (
    SELECT m.*, k, (k + m.off) %% 100 AS r,
           %(now)s::timestamptz - make_interval(secs => %(span_s)s * (1 - (k + m.phase) / m.hist)) AS at
    FROM m CROSS JOIN LATERAL generate_series(0, m.hist - 1) AS k
)
SELECT o.*,
       CASE WHEN k = 0 OR r %% 10 = 0 THEN 'recharge'
            WHEN r = 49 AND k >= 2 THEN 'refund'
            WHEN r = 99 THEN 'cash_refund'
            ELSE 'consumption' END AS kind,
       row_number() OVER (ORDER BY at, owner_id, k) AS seq
FROM o
"""

_PLAN_IDS_SQL = """
CREATE TEMP TABLE bench_plan ON COMMIT PRESERVE ROWS AS
SELECT o.*,
    %(entry0)s + seq - 1 AS entry_id,
    (%(stores)s::bigint[])[1 + (owner_id + k) %% %(n_stores)s] AS store_id,
    (%(operators)s::int[])[1 + seq %% 2] AS operator_id,
    (ARRAY['wechat', 'alipay', 'cash'])[1 + (owner_id + k) %% 3] AS pay,
    CASE WHEN kind = 'recharge' THEN CASE WHEN k = 0 THEN %(initial)s ELSE %(recharge)s END
         WHEN kind = 'cash_refund' THEN -%(cash_refund)s
         WHEN kind = 'consumption' THEN -%(consumption)s ELSE %(consumption)s END AS principal_delta,
    CASE WHEN kind = 'consumption' THEN 1 WHEN kind = 'refund' THEN -1 ELSE 0 END AS tally_sign,
    (kind = 'consumption' AND (owner_id + k) %% 2 = 0) AS with_record,
    to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || lpad(seq::text, 7, '0') AS day_seq
FROM bench_ops o
"""

_PLAN_FINISH_SQL = [
    # Running balances per member and account, as the wallet posts them (balance_after of bounded accounts).
    """
    CREATE TEMP TABLE bench_run ON COMMIT PRESERVE ROWS AS
    SELECT p.*,
        sum(principal_delta) OVER w AS principal_after,
        sum(tally_sign) OVER w * %(points)s AS points_after,
        sum(tally_sign) OVER w * %(consumption)s AS spend_after,
        row_number() OVER (PARTITION BY kind ORDER BY seq) AS kind_n,
        row_number() OVER (PARTITION BY with_record ORDER BY seq) AS record_n
    FROM bench_plan p
    WINDOW w AS (PARTITION BY owner_id ORDER BY k)
    """,
    "CREATE INDEX ON bench_run (seq)",
    "CREATE INDEX ON bench_run (owner_id, k)",
    "ANALYZE bench_run",
]

# One block of the plan (seq in [%(s0)s, %(s1)s)): entries, legs, records, lines, refunds, requests.
_BLOCK_SQL = [
    """
    INSERT INTO ledger_entry (id, merchant_id, idempotency_key, operation_type, operation_ref, actor_id, actor_label,
                              store_id, member_id, memo, posted_at, reverses_id, fingerprint)
    SELECT b.entry_id, %(merchant)s,
           CASE b.kind WHEN 'recharge' THEN 'recharge:cz' || b.day_seq WHEN 'consumption' THEN 'consumption:xf' || b.day_seq || ':1'
                       WHEN 'refund' THEN 'refund-line:' || b.day_seq ELSE 'cash_refund:txj' || b.day_seq END,
           CASE b.kind WHEN 'refund' THEN 'consumption_refund' ELSE b.kind END,
           CASE b.kind WHEN 'recharge' THEN 'cz' || b.day_seq WHEN 'consumption' THEN 'xf' || b.day_seq || '/1'
                       WHEN 'refund' THEN 'tqy' || b.day_seq ELSE 'txj' || b.day_seq END,
           b.operator_id, '', b.store_id, b.owner_id, '', b.at,
           CASE WHEN b.kind = 'refund' THEN prev.entry_id END,
           md5(b.entry_id::text) || md5(b.seq::text)
    FROM bench_run b LEFT JOIN bench_run prev ON b.kind = 'refund' AND prev.owner_id = b.owner_id AND prev.k = b.k - 1
    WHERE b.seq >= %(s0)s AND b.seq < %(s1)s
    ORDER BY b.seq
    """,
    """
    INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)
    SELECT b.entry_id, v.account_id, v.unit, v.amount, v.balance_after, b.at
    FROM bench_run b CROSS JOIN LATERAL (VALUES
        -- recharge: cash Dr, principal Cr; cash refund: principal Dr, cash Cr
        (1, CASE b.pay WHEN 'wechat' THEN %(cash_wechat)s WHEN 'alipay' THEN %(cash_alipay)s ELSE %(cash_cash)s END,
            'CNY', b.principal_delta, NULL::bigint),
        (2, b.principal_id, 'CNY', -b.principal_delta, b.principal_after),
        -- consumption (and, negated, its refund): principal Dr, revenue Cr, points Cr, issuance Dr, tallies
        (3, b.principal_id, 'CNY', -b.principal_delta, b.principal_after),
        (4, %(revenue)s::bigint, 'CNY', b.principal_delta, NULL),
        (5, b.points_id, 'POINT', -b.tally_sign * %(points)s, b.points_after),
        (6, %(issuance)s::bigint, 'POINT', b.tally_sign * %(points)s, NULL),
        (7, b.spend_id, 'CNY', -b.tally_sign * %(consumption)s, b.spend_after),
        (8, %(tally_cny)s::bigint, 'CNY', b.tally_sign * %(consumption)s, NULL),
        (9, b.earned_id, 'POINT', -b.tally_sign * %(points)s, b.points_after),
        (10, %(tally_point)s::bigint, 'POINT', b.tally_sign * %(points)s, NULL)
    ) AS v(n, account_id, unit, amount, balance_after)
    WHERE b.seq >= %(s0)s AND b.seq < %(s1)s
      AND (b.kind IN ('recharge', 'cash_refund')) = (v.n <= 2)
    ORDER BY b.seq, v.n
    """,
    """
    INSERT INTO wallet_recharge (id, merchant_id, number, member_id, store_id, operator_id, created_at,
                                 idempotency_key, request_hash, note, payment_method, list_total_fen, paid_total_fen,
                                 bonus_total_fen, entry_id)
    SELECT %(recharge0)s + kind_n - 1, %(merchant)s, 'cz' || day_seq, owner_id, store_id, operator_id, at, NULL, '', '',
           pay, principal_delta, principal_delta, 0, entry_id
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND kind = 'recharge' ORDER BY seq
    """,
    """
    INSERT INTO wallet_rechargeline (recharge_id, line_no, kind, quantity, unit_price_fen, discount_bp, amount_fen,
                                     bonus_fen)
    SELECT %(recharge0)s + kind_n - 1, 1, 'stored_value', 1, principal_delta, 10000, principal_delta, 0
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND kind = 'recharge' ORDER BY seq
    """,
    """
    INSERT INTO wallet_servicerecord (id, merchant_id, number, member_id, store_id, operator_id, created_at,
                                      idempotency_key, request_hash, note, staff_id, notes)
    SELECT %(record0)s + record_n - 1, %(merchant)s, 'fw' || day_seq, owner_id, store_id, operator_id, at, NULL, '',
           '', %(clerk)s, '服务正常'
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND with_record ORDER BY seq
    """,
    """
    INSERT INTO wallet_servicerecord_tags (servicerecord_id, servicetag_id)
    SELECT %(record0)s + record_n - 1, %(tag)s FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND with_record
    ORDER BY seq
    """,
    """
    INSERT INTO wallet_entitlementrefund (id, merchant_id, number, member_id, store_id, operator_id, created_at,
                                          idempotency_key, request_hash, note, reason, total_fen)
    SELECT %(refund0)s + kind_n - 1, %(merchant)s, 'tqy' || day_seq, owner_id, store_id, operator_id, at, NULL, '',
           '', '顾客不满意', %(consumption)s
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND kind = 'refund' ORDER BY seq
    """,
    """
    INSERT INTO wallet_consumption (id, merchant_id, number, member_id, store_id, operator_id, created_at,
                                    idempotency_key, request_hash, note, service_record_id, payable_total_fen)
    SELECT %(consumption0)s + b.kind_n - 1, %(merchant)s, 'xf' || b.day_seq, b.owner_id, b.store_id, b.operator_id,
           b.at, NULL, '', '', CASE WHEN b.with_record THEN %(record0)s + b.record_n - 1 END, %(consumption)s
    FROM bench_run b WHERE b.seq >= %(s0)s AND b.seq < %(s1)s AND b.kind = 'consumption' ORDER BY b.seq
    """,
    # A line refunded later (the next entry of its member is its refund) is inserted refunded: the refund's
    # id is reserved already.
    """
    INSERT INTO wallet_consumptionline (id, consumption_id, line_no, service_id, quantity, unit_price_fen, payable_fen,
                                        staff_id, payment_method, principal_fen, bonus_fen, voucher_fen, direct_fen,
                                        uses, deferred_fen, commission_fen, points, entry_id, status, refund_id)
    SELECT %(consumption0)s + b.kind_n - 1, %(consumption0)s + b.kind_n - 1, 1, %(service)s, 1, %(consumption)s,
           %(consumption)s, %(clerk)s, '', %(consumption)s, 0, 0, 0, 0, 0, 0, %(points)s, b.entry_id,
           CASE WHEN nxt.kind = 'refund' THEN 'refunded' ELSE 'normal' END,
           CASE WHEN nxt.kind = 'refund' THEN %(refund0)s + nxt.kind_n - 1 END
    FROM bench_run b LEFT JOIN bench_run nxt ON nxt.owner_id = b.owner_id AND nxt.k = b.k + 1
    WHERE b.seq >= %(s0)s AND b.seq < %(s1)s AND b.kind = 'consumption' ORDER BY b.seq
    """,
    """
    INSERT INTO wallet_cashrefund (id, merchant_id, number, member_id, store_id, operator_id, created_at,
                                   idempotency_key, request_hash, note, kind, grant_id, payment_method, paid_out_fen,
                                   forfeited_bonus_fen, gifts_charged_fen, uses_refunded, reason, entry_id)
    SELECT %(cash0)s + kind_n - 1, %(merchant)s, 'txj' || day_seq, owner_id, store_id, operator_id, at, NULL, '', '',
           'stored_value', NULL, pay, -principal_delta, 0, 0, 0, '退部分余额', entry_id
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND kind = 'cash_refund' ORDER BY seq
    """,
    # The approval request each entitlement refund carried out (requested an hour before, executed).
    """
    INSERT INTO flows_refundrequest (id, merchant_id, store_id, number, state, requested_by_id, requested_at, reason,
                                     updated_at, process_id, kind, member_id, grant_id, payment_method, amount_fen,
                                     entitlement_refund_id, cash_refund_id, failure_code, failure_message,
                                     recent_refunds_fen)
    SELECT %(request0)s + kind_n - 1, %(merchant)s, store_id, 'tksq' || day_seq, 'executed', operator_id,
           at - interval '1 hour', '顾客不满意', at, NULL, 'lines', owner_id, NULL, '', %(consumption)s,
           %(refund0)s + kind_n - 1, NULL, '', '', 0
    FROM bench_run WHERE seq >= %(s0)s AND seq < %(s1)s AND kind = 'refund' ORDER BY seq
    """,
    """
    INSERT INTO flows_refundrequest_lines (refundrequest_id, consumptionline_id)
    SELECT %(request0)s + b.kind_n - 1, %(consumption0)s + prev.kind_n - 1
    FROM bench_run b JOIN bench_run prev ON prev.owner_id = b.owner_id AND prev.k = b.k - 1
    WHERE b.seq >= %(s0)s AND b.seq < %(s1)s AND b.kind = 'refund' ORDER BY b.seq
    """,
]


def _insert_history(members: dict, ctx: dict, block: int) -> tuple[bool, dict]:
    """Plan every entry (a temp table in time order), reserve the ids, insert block by block, then set the
    cached balances from the legs. Returns whether the deferred check trigger was skipped and the counts."""
    from django.db import connection, transaction

    params = {"initial": INITIAL_FEN, "recharge": RECHARGE_FEN, "consumption": CONSUMPTION_FEN,
              "cash_refund": CASH_REFUND_FEN, "points": POINTS, "n_stores": len(ctx["stores"]), **ctx}  # fmt: skip
    with connection.cursor() as cursor:
        for table in ("bench_run", "bench_plan", "bench_ops"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(_PLAN_SQL, {**members, **params})
        cursor.execute("SELECT kind, count(*) FROM bench_ops GROUP BY kind")
        counts = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM bench_ops")
        total = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM bench_ops WHERE kind = 'consumption' AND (owner_id + k) % 2 = 0")
        counts["service_record"] = cursor.fetchone()[0]
        with transaction.atomic():
            params.update(
                entry0=_reserve_ids(cursor, "ledger_entry", total),
                recharge0=_reserve_ids(cursor, "wallet_recharge", counts.get("recharge", 0)),
                consumption0=max(
                    _reserve_ids(cursor, "wallet_consumption", counts.get("consumption", 0)),
                    _reserve_ids(cursor, "wallet_consumptionline", counts.get("consumption", 0)),
                ),
                record0=_reserve_ids(cursor, "wallet_servicerecord", counts["service_record"]),
                refund0=_reserve_ids(cursor, "wallet_entitlementrefund", counts.get("refund", 0)),
                cash0=_reserve_ids(cursor, "wallet_cashrefund", counts.get("cash_refund", 0)),
                request0=_reserve_ids(cursor, "flows_refundrequest", counts.get("refund", 0)),
            )
        # Consumptions and their lines share ids (one line each): both sequences must be past the larger start.
        for table in ("wallet_consumption", "wallet_consumptionline"):
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            cursor.execute(
                "SELECT setval(%s, GREATEST((SELECT last_value FROM " + sequence + "), %s))",
                [sequence, params["consumption0"] + counts.get("consumption", 0)],
            )
        cursor.execute(_PLAN_IDS_SQL, params)
        for sql in _PLAN_FINISH_SQL:
            cursor.execute(sql, params)
    replica = False
    t0 = time.perf_counter()
    for s0 in range(1, total + 1, block):
        s1 = min(total + 1, s0 + block)
        with transaction.atomic(), connection.cursor() as cursor:
            try:
                with transaction.atomic():
                    cursor.execute("SET LOCAL session_replication_role = replica")
                replica = True
            except Exception:
                replica = False  # not a superuser: the deferred checks run at commit, only slower
            for sql in _BLOCK_SQL:
                cursor.execute(sql, dict(params, s0=s0, s1=s1))
        done = s1 - 1
        _log(f"  entries {done:,} of {total:,} ({time.perf_counter() - t0:.0f}s)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_accountbalance b SET balance = s.total FROM ("
            " SELECT l.account_id, a.normal_sign * SUM(l.amount) AS total FROM ledger_leg l"
            " JOIN ledger_account a ON a.id = l.account_id"
            " WHERE a.merchant_id = %s AND a.holder = 'member' GROUP BY l.account_id, a.normal_sign) s"
            " WHERE b.account_id = s.account_id",
            [ctx["merchant"]],
        )
        for table in ("bench_run", "bench_plan", "bench_ops"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    counts["entries"] = total
    return replica, counts


def _existing(label: str) -> dict:
    """The newest dataset `label` already in the database (--reuse), described as _build describes it."""
    from django.db import connection

    from members.models import Merchant, Owner, Staff

    merchant = Merchant.objects.filter(code__startswith=f"pb-{label}-").order_by("-pk").first()
    if merchant is None:
        raise SystemExit(f"--reuse: no {label} dataset in this database; run without --reuse first")
    owners = Owner.objects.filter(merchant=merchant).order_by("joined_at", "pk")
    ids = list(owners.values_list("pk", flat=True))
    first = owners.first()
    counts = {}
    with connection.cursor() as cursor:
        for kind, table in (("recharge", "wallet_recharge"), ("consumption", "wallet_consumption"),
                            ("service_record", "wallet_servicerecord"), ("refund", "wallet_entitlementrefund"),
                            ("cash_refund", "wallet_cashrefund"), ("entries", "ledger_entry")):  # fmt: skip
            cursor.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = %s", [merchant.pk])
            counts[kind] = cursor.fetchone()[0]
        cursor.execute("SELECT min(posted_at), max(posted_at) FROM ledger_entry WHERE merchant_id = %s", [merchant.pk])
        low, high = cursor.fetchone()
    return {
        "label": label, "merchant": merchant, "owners": len(ids), "entries": counts["entries"],
        "admin": Staff.objects.get(merchant=merchant, role="merchant_admin").user, "heavy": ids[0], "light": ids[1],
        "history_s": 0.0, "counts": counts, "search_mobile": f"{first.mobile[:3]}{len(ids) // 2:08d}",
        "search_number": owners.get(pk=ids[len(ids) // 3]).member_number, "span_days": (high - low).days,
    }  # fmt: skip


def _maintenance() -> None:
    """Fresh statistics and visibility maps after the bulk inserts, as autovacuum would leave them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------- pages


def _pages(fx: dict) -> list[tuple[str, str, dict]]:
    from django.urls import reverse

    pages: list[tuple[str, str, dict]] = [("dashboard", reverse("dashboard:index"), {})]
    for key, name in (
        ("members", "members:index"),
        ("recharges", "records:recharges"),
        ("consumptions", "records:consumptions"),
        ("entitlement_refunds", "records:entitlement_refunds"),
        ("cash_refunds", "records:cash_refunds"),
        ("refund_requests", "tasks:refund_requests"),
        ("service_records", "records:service_records"),
    ):
        pages.append((f"{key}_first", reverse(name), {}))
        pages.append((f"{key}_last", reverse(name), {"page": "last"}))
    members = reverse("members:index")
    pages += [
        ("search_mobile", members, {"q": fx["search_mobile"]}),
        ("search_number", members, {"q": fx["search_number"]}),
        ("search_name", members, {"q": COMMON_NAME}),
    ]
    for who, pk in (("member10", fx["light"]), ("member5000", fx["heavy"])):
        url = reverse("members:member", kwargs={"pk": pk})
        pages += [(f"{who}_{tab}", url, {"tab": tab}) for tab in TABS]
    return pages


def _prepare_page(client, url: str, params: dict, warmup: int) -> tuple[int, int]:
    """Warm the page up, then count the statements of one request: (statements, response size)."""
    from django.db import connection

    for _ in range(warmup):
        response = client.get(url, params)
        assert response.status_code == 200, (url, params, response.status_code)
    counted = [0]

    def count(execute, sql, sql_params, many, context):
        counted[0] += 1
        return execute(sql, sql_params, many, context)

    # Django resets its query log per request: every statement is counted by a wrapper instead.
    with connection.execute_wrapper(count):
        response = client.get(url, params)
    return counted[0], len(response.content)


def _measure(fx: dict, runs: int, warmup: int, only: list[str]) -> dict[str, dict]:
    """Times the pages in rounds: each round requests every page once, in turn, so the machine's passing
    load (other processes, autovacuum, CPU steal on a shared host) falls on all pages alike instead of on
    whichever page was being timed then; the ratios between pages (growth, the member pages) compare
    requests made under the same conditions. A garbage collection between rounds keeps one round's garbage
    out of the next."""
    from django.test import Client

    client = Client()
    client.force_login(fx["admin"])
    pages = [(name, url, params) for name, url, params in _pages(fx) if not only or any(p in name for p in only)]
    prepared = {name: _prepare_page(client, url, params, warmup) for name, url, params in pages}
    times: dict[str, list[float]] = {name: [] for name, _url, _params in pages}
    for _ in range(runs):
        gc.collect()
        for name, url, params in pages:
            t0 = time.perf_counter()
            response = client.get(url, params)
            times[name].append(time.perf_counter() - t0)
            assert response.status_code == 200, (url, params, response.status_code)
    results = {}
    for name, _url, _params in pages:
        ordered = sorted(times[name])
        queries, size = prepared[name]
        results[name] = {
            "p50_ms": _percentile(ordered, 0.5) * 1000,
            "p95_ms": _percentile(ordered, 0.95) * 1000,
            "mean_ms": statistics.mean(ordered) * 1000,
            "queries": queries,
            "bytes": size,
        }
        _log(f"  {fx['label']:5} {name:28} p50 {results[name]['p50_ms']:8.1f} ms  p95 {results[name]['p95_ms']:8.1f} ms"
             f"  {queries:3} queries")  # fmt: skip
    return results


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=100_000, help="owners of the large set (default 100,000)")
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries of the large set (default 1M)")
    parser.add_argument("--small-owners", type=int, default=1_000, help="owners of the small set (default 1,000)")
    parser.add_argument("--small-entries", type=int, default=10_000, help="entries of the small set (default 10,000)")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per page first (default 2)")
    parser.add_argument("--per-day", type=float, default=400.0, help="entries a day in both sets (default 400)")
    parser.add_argument("--block", type=int, default=100_000, help="entries per INSERT block (default 100,000)")
    parser.add_argument("--no-reconcile", action="store_true", help="skip ledger reconciliation of the fixtures")
    parser.add_argument(
        "--reuse", action="store_true", help="time the newest datasets already in the database instead of building"
    )
    parser.add_argument("--pages", default="", help="time only the pages whose names contain one of these (a,b,…)")
    args = parser.parse_args(argv)
    for owners, entries in ((args.small_owners, args.small_entries), (args.owners, args.entries)):
        if owners < 3 or entries < HEAVY_ENTRIES + LIGHT_ENTRIES + owners - 2:
            parser.error(f"each set needs >= 3 owners and >= {HEAVY_ENTRIES + LIGHT_ENTRIES} + (owners - 2) entries")
    if args.runs < 1 or args.warmup < 0 or args.per_day <= 0 or args.block < 1:
        parser.error("need --runs >= 1, --warmup >= 0, --per-day > 0, --block >= 1")

    _bootstrap_django(debug_cursor=False)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"refusing to run: the database of DATABASE_URL is {connection.vendor}, not PostgreSQL", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    from ledger import selectors as ledger_selectors

    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('shared_buffers'), current_setting('work_mem')")
        version, shared_buffers, work_mem = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM ledger_entry")
        entries_before = cursor.fetchone()[0]
    if entries_before:
        _log(f"note: the database already holds {entries_before:,} ledger entries (a scratch database is cleaner)")
    tag = str(int(time.time() * 1000))
    sets, measured = [], {}
    for label, owners, entries, prefix in (
        ("small", args.small_owners, args.small_entries, "138"),
        ("large", args.owners, args.entries, "139"),
    ):
        if args.reuse:
            fx = _existing(label)
        else:
            fx = _build(label, owners, entries, args.per_day, args.block, tag, prefix)
            _maintenance()
        if not args.no_reconcile and not args.reuse:
            t0 = time.perf_counter()
            report = ledger_selectors.reconcile(fx["merchant"])
            fx["reconcile"] = report
            _log(f"{label}: reconcile {'clean' if report.clean else 'NOT CLEAN'} in {time.perf_counter() - t0:.1f}s")
            for problem in report.problems[:5]:
                _log(f"  {problem}")
        _log(f"{label}: timing {len(_pages(fx))} pages x {args.runs} requests ...")
        measured[label] = _measure(fx, args.runs, args.warmup, [p for p in args.pages.split(",") if p])
        sets.append(fx)

    # ---------------------------------------------------------------- report
    small, large = measured["small"], measured["large"]
    print(f"portal pages: {version.split(' on ')[0]} (shared_buffers={shared_buffers}, work_mem={work_mem}); "
          f"{args.runs} requests per page after {args.warmup} warm-ups, as the merchant admin")  # fmt: skip
    for fx in sets:
        c = fx["counts"]
        print(
            f"{fx['label']}: {fx['owners']:,} owners, {c['entries']:,} entries over {fx['span_days']:.0f} days "
            f"({c.get('recharge', 0):,} recharges, {c.get('consumption', 0):,} consumptions, "
            f"{c['service_record']:,} service records, {c.get('refund', 0):,} entitlement refunds and requests, "
            f"{c.get('cash_refund', 0):,} cash refunds), built in {fx['history_s']:.0f}s; reconcile: "
            + ("skipped" if "reconcile" not in fx else "clean" if fx["reconcile"].clean else "NOT CLEAN")
        )
    print()
    print(f"{'page':28} {'small p50':>9} {'p95':>8} {'large p50':>9} {'p95':>8} {'growth':>7} {'queries':>9}")
    summary: dict = {"owners": sets[1]["owners"], "entries": sets[1]["entries"], "small_owners": sets[0]["owners"],
                     "small_entries": sets[0]["entries"], "runs": args.runs, "per_day": args.per_day,
                     "reused": args.reuse}  # fmt: skip
    failed = []
    for name in large:
        s, lg = small[name], large[name]
        growth = lg["p95_ms"] / s["p95_ms"] if s["p95_ms"] else 0.0
        same = s["queries"] == lg["queries"]
        queries = f"{lg['queries']}" if same else f"{s['queries']}->{lg['queries']}"
        mark = "" if growth <= GROWTH_GOAL and same else "  <-- goal"
        print(f"{name:28} {s['p50_ms']:9.1f} {s['p95_ms']:8.1f} {lg['p50_ms']:9.1f} {lg['p95_ms']:8.1f} "
              f"{growth:7.2f} {queries:>9}{mark}")  # fmt: skip
        summary[f"{name}_p95_ms"] = round(lg["p95_ms"], 1)
        summary[f"{name}_growth"] = round(growth, 2)
        summary[f"{name}_queries"] = lg["queries"]
        if growth > GROWTH_GOAL:
            failed.append(f"{name}_growth")
        if not same:
            failed.append(f"{name}_queries")
    print()
    print(f"member pages, 5,000-entry member p95 / 10-entry member p95 (goal <= {MEMBER_GOAL}):")
    print(f"{'tab':16} {'small':>7} {'large':>7}")
    for tab in TABS:
        if f"member10_{tab}" not in large or f"member5000_{tab}" not in large:
            continue
        ratios = []
        for label, results in (("small", small), ("large", large)):
            light, heavy = results[f"member10_{tab}"]["p95_ms"], results[f"member5000_{tab}"]["p95_ms"]
            ratio = heavy / light if light else 0.0
            ratios.append(ratio)
            if ratio > MEMBER_GOAL:
                failed.append(f"member5000_{tab}_ratio_{label}")
        summary[f"member5000_{tab}_ratio"] = round(ratios[1], 2)
        summary[f"member5000_{tab}_ratio_small"] = round(ratios[0], 2)
        print(f"{tab:16} {ratios[0]:7.2f} {ratios[1]:7.2f}")
    print()
    print(
        "note: growth = large p95 / small p95 (goal <= 2); queries: every statement of one request, small->large "
        "where they differ (goal: the same)."
    )
    summary["queries_same"] = all(small[n]["queries"] == large[n]["queries"] for n in large)
    summary["reconcile_clean"] = all(fx["reconcile"].clean for fx in sets if "reconcile" in fx)
    summary["goals_met"] = not failed
    summary["failed"] = failed
    print(json.dumps(summary, sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
