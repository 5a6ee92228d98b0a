"""Wallet operations on PostgreSQL against a bare 2-leg ledger post in the same run (issue 10, Performance).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/wallet_ops.py \
        --seconds 10 --workers 1,4 --members 2000 --history 1000 --short-history 10

For each member history length (--history, then --short-history unless 0) it builds a fresh merchant, and
for each worker count (--workers) it runs each operation for --seconds with that many processes (one
database connection each), one operation at a time:

  ledger_post         ledger.services.post_entry: 1 fen between 2 random member principal accounts (2 legs,
                      both balance rows locked); top level, so its own transaction: the yardstick
  recharge            wallet recharge of the plan 充1000送200 paid by WeChat (principal, bonus, cash, expense)
  consume_stored_value  consume 1 line (洁牙 ¥100, served by a clerk: fixed commission) from stored value
  consume_coupon      consume 1 line (洗车, clerk: percent commission) with 1 use of a paid coupon grant
  consume_10_lines    consume 10 lines (洁牙/洗车/按摩 in turn, each served by the clerk) from stored value
  entitlement_refund  refund_consumption_lines of 1 stored-value line (principal/bonus, commission, points)
  cash_refund         cash_refund_stored_value of a member (pays out principal, forfeits bonus, closes the card)
  cash_refund_grant   cash_refund_grant of an unused paid coupon grant (10 uses, bought for ¥200)

With --floor, two yardsticks run after the operations (their rows and JSON keys only then):

  django_floor        the least a wallet operation does, through Django on Django's connection: in
                      transaction.atomic(), lock the member's row (lock_members: one SELECT ... FOR NO KEY
                      UPDATE), post_entry of 2 legs as a recharge would (cash Dr, the member's principal Cr,
                      fresh idempotency key) and one raw INSERT of a recharge row (no lines)
  django_floor_numbered  the same with the recharge's business number (next_business_number(merchant, "cz"),
                      on the numbering's own connection) taken after the lock, as recharge takes it

Every iteration gets fresh inputs: a random member of the worker's own slice of the members (workers never
share a member, grant or line, so the only contention between them is the merchant's own: numbering, the
merchant-side accounts); lines to refund and grants to refund are made by each worker before the clock
starts, through the public wallet operations (50-line consumptions, recharges of 20 coupons); cash refunds
take members from a separate pool (--refund-members, same history) because a refund closes the card for
good. A worker whose pool runs dry stops early and the row says so (its rate is over its active time).

Fixture (benchmark data, not product code), per history length: a merchant with the catalog of
tests/wallet_helpers.make_shop (services, coupon, plan), two levels whose thresholds are out of reach (so
the level check runs but never upgrades), a clerk, --members + --refund-members owners and their
stored-value cards bulk-created, and each member's history of --history ledger entries inserted by one
SQL statement per block of entries, in time order across members (members' legs interleave as in real
life): entry 0 a recharge of ¥1,000,000 (cash Dr, principal Cr), every 10th a recharge of ¥100, the others
a stored-value consumption of ¥10 (principal Dr, revenue Cr, 10 points Cr to this year's lot, issuance Dr, and
the member's level tallies: ¥10 Cr to spend and 10 Cr to points_earned against the merchant's tally accounts),
with member, operation type and balance_after set as the wallet posts them. The deferred per-entry check
trigger is skipped for those inserts (session_replication_role = replica, when the role may) and the
cached balances are set from the legs; ledger.selectors.reconcile over the merchant at the end checks
every entry, leg and balance, history included. Wallet records (recharge, consumption rows) are not made
for the history: what grows with history in the wallet's reads is the ledger. 200 members (--coupon-members)
buy a 1,000-use coupon (¥20,000) through wallet.services.recharge for the coupon consumptions.

Per run: ops/s (sum over workers of timed operations / active time), p50/p95 latency, statements per
operation and lock waits. Statements are counted on worker 0 over its last 2 (untimed) warm-up operations:
every statement psycopg executes (Django's cursors, the ledger's own prepared cursor, the business number's
connection), split into those on Django's connection (CaptureQueriesContext, which the ledger's cursor logs
to as well) and those on connections of their own; BEGIN and COMMIT are not counted. Lock waits: the parent samples pg_stat_activity and pg_locks every
--sample-ms during the timed window; a session waits on numbering when it waits for a lock and its
statement is on members_dailysequence or its ungranted lock is on that table. "numbering waits" is the
number of distinct waiting statements seen (pid, statement start), "waiting/open" the mean number of
sessions waiting on numbering / the mean number of open transactions over the samples. Short waits between
samples are missed: the counts are lower bounds.

The last line of stdout is one JSON object: `ledger_post_per_s` and per operation `<op>_per_s`,
`<op>_ratio` (to ledger_post in the same history and worker count) and `<op>_queries`, at the largest
worker count and the long history, plus `<op>_numbering_waits`, `<op>_ratio_short` (short history) and
`w<N>_...` / `short_w<N>_...` keys for every run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import queue
import random
import statistics
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from ledger_throughput import (  # noqa: E402  (the ledger benchmark's helpers: one copy of them)
    _bootstrap_django,
    _cpu_shares,
    _cpu_snapshot,
    _log,
    _percentile,
    _wait_for_start,
)

# Generous: behind slow operations the numbering row's lock queue legitimately waits for many seconds
# (the first full run hit a 30 s limit there); the limit only keeps a stuck statement from hanging the run.
STATEMENT_TIMEOUT_MS = 600_000
WARMUP_OPS = 3  # per worker, untimed (connection, imports, prepared statements, caches)
WARMUP_LEDGER = 20
COUNTED_OPS = 2  # the last warm-up operations of worker 0: their statements are counted
REFUND_LINES_PER_CONSUMPTION = 50  # lines to refund are made 50 to a consumption: one level check for 50
POOL_FACTOR = (
    4.0  # prepared inputs = this × what the warm-up rate says a run needs (warm-up runs beside other workers preparing)
)
ERROR_SAMPLES = 3
INITIAL_FEN = 100_000_000  # first recharge of every member: ¥1,000,000, never spent down in a run
HISTORY_BLOCK_ROWS = 200_000  # history entries per INSERT statement
REASON = "benchmark"
PRIME_SECONDS = 3.0  # unreported ledger posts after each fixture is built

OPS: dict[str, str] = {
    "ledger_post": "post_entry: 1 fen between 2 random member principal accounts (2 legs), own transaction",
    "recharge": "recharge: plan 充1000送200 paid by WeChat",
    "consume_stored_value": "consume: 1 line 洁牙 ¥100 from stored value, clerk (fixed commission), points",
    "consume_coupon": "consume: 1 line 洗车 with 1 use of a paid coupon grant, clerk (percent commission)",
    "consume_10_lines": "consume: 10 lines (洁牙/洗车/按摩) from stored value, clerk on each",
    "entitlement_refund": "refund_consumption_lines: 1 stored-value line (of a 50-line consumption)",
    "cash_refund": "cash_refund_stored_value: pay out principal, forfeit bonus, close the card",
    "cash_refund_grant": "cash_refund_grant: an unused 10-use coupon bought for ¥200",
}
WALLET_OPS = [op for op in OPS if op != "ledger_post"]
# Yardsticks run only with --floor: the least any wallet operation does, through Django on Django's connection.
FLOOR_OPS: dict[str, str] = {
    "django_floor": "atomic(): lock the member row, post_entry cash Dr/principal Cr (2 legs), INSERT 1 recharge row",
    "django_floor_numbered": "django_floor + members.services.next_business_number(merchant, 'cz') after the lock",
}


_RUN_SEQ = itertools.count(1)


class PoolExhausted(Exception):
    """The worker's prepared inputs ran out."""


# ---------------------------------------------------------------- workers


class _Ops:
    """One worker's view of the fixture and its operations. `next_input()` gives a fresh input per
    iteration (raising PoolExhausted when a finite pool is empty), `run(x)` is the timed call and
    `prepare(n)` makes n more inputs for the finite pools (untimed)."""

    def __init__(self, cfg: dict, idx: int) -> None:
        from members.models import Owner, Staff, Store
        from wallet.models import CouponTemplate, RechargePlan, Service

        self.cfg, self.idx = cfg, idx
        self.rng = random.Random(f"{cfg['phase']}-{idx}")
        self.store = Store.objects.get(pk=cfg["store_id"])
        self.staff = Staff.objects.select_related("user").get(pk=cfg["staff_id"])
        self.actor = self.staff.user
        by_id = Service.objects.in_bulk([cfg["cleaning_id"], cfg["car_wash_id"], cfg["massage_id"]])
        self.cleaning, self.car_wash, self.massage = (
            by_id[cfg["cleaning_id"]],
            by_id[cfg["car_wash_id"]],
            by_id[cfg["massage_id"]],
        )
        self.plan = RechargePlan.objects.get(pk=cfg["plan_id"])
        self.refund_coupon = CouponTemplate.objects.get(pk=cfg["refund_coupon_id"])
        mine = cfg["member_ids"][idx :: cfg["workers"]]
        found = Owner.objects.select_related("merchant").in_bulk(mine)
        self.members = [found[m] for m in mine]
        self.pool: list = []
        self.used: list[int] = []

    # Inputs: a random member of this worker's slice, or the next item of a prepared pool.
    def member(self):
        return self.members[self.rng.randrange(len(self.members))]

    def pop(self):
        if not self.pool:
            raise PoolExhausted()
        return self.pool.pop()

    def _line_items(self, n: int) -> list:
        from wallet import services

        cycle = [self.cleaning, self.car_wash, self.massage]
        return [
            services.ConsumptionItem(
                service=cycle[i % 3], staff=self.staff, stored_value_fen=cycle[i % 3].member_price_fen
            )
            for i in range(n)
        ]


def _make_ops(cfg: dict, idx: int):
    """(ops, next_input, run, prepare or None) for cfg['op']."""
    from ledger import services as ledger
    from ledger.models import Account
    from wallet import services
    from wallet.models import ConsumptionLine, Grant

    ops = _Ops(cfg, idx)
    op = cfg["op"]
    merchant = ops.members[0].merchant if ops.members else None
    prepare = None

    if op == "ledger_post":
        mine = list(cfg["principal_ids"][idx :: cfg["workers"]])
        by_id = Account.objects.in_bulk(mine)
        accounts = [by_id[a] for a in mine]
        counter = iter(range(10**12))
        prefix = f"wb-{cfg['phase']}-{idx}-"

        def next_input():
            a = ops.rng.randrange(len(accounts))
            b = ops.rng.randrange(len(accounts) - 1)
            return accounts[a], accounts[b + (b >= a)], next(counter)

        def run(x):
            src, dst, i = x
            ledger.post_entry(
                merchant=merchant, legs=[ledger.decrease(src, 1), ledger.increase(dst, 1)],
                operation_type="bench", operation_ref=cfg["phase"], idempotency_key=f"{prefix}{i}", actor=None,
            )  # fmt: skip

    elif op == "recharge":
        next_input = ops.member

        def run(member):
            services.recharge(
                member=member, store=ops.store, payment_method="wechat", actor=ops.actor,
                items=[services.RechargeItem(kind="plan", plan=ops.plan)],
            )  # fmt: skip

    elif op == "consume_stored_value":
        next_input = ops.member

        def run(member):
            services.consume(
                member=member, store=ops.store, actor=ops.actor,
                items=[services.ConsumptionItem(service=ops.cleaning, staff=ops.staff,
                                                stored_value_fen=ops.cleaning.member_price_fen)],
            )  # fmt: skip

    elif op == "consume_10_lines":
        next_input = ops.member

        def run(member):
            services.consume(member=member, store=ops.store, actor=ops.actor, items=ops._line_items(10))

    elif op == "consume_coupon":
        mine = cfg["coupon_grant_ids"][idx :: cfg["workers"]]
        grants = list(Grant.objects.select_related("merchant", "member__merchant").filter(pk__in=mine))

        def next_input():
            return grants[ops.rng.randrange(len(grants))]

        def run(grant):
            services.consume(
                member=grant.member, store=ops.store, actor=ops.actor,
                items=[services.ConsumptionItem(service=ops.car_wash, staff=ops.staff, grant=grant)],
            )  # fmt: skip

    elif op == "entitlement_refund":
        next_input = ops.pop

        def prepare(n: int) -> None:
            for _ in range(math.ceil(n / REFUND_LINES_PER_CONSUMPTION)):
                member = ops.member()
                consumption = services.consume(
                    member=member, store=ops.store, actor=ops.actor, items=ops._line_items(REFUND_LINES_PER_CONSUMPTION)
                )
                lines = ConsumptionLine.objects.filter(consumption_id=consumption.pk).order_by("-line_no")
                ops.pool.extend((member, line) for line in lines)

        def run(x):
            member, line = x
            services.refund_consumption_lines(member=member, lines=[line], reason=REASON, actor=ops.actor,
                                              store=ops.store)  # fmt: skip

    elif op == "cash_refund_grant":
        next_input = ops.pop

        def prepare(n: int) -> None:
            for _ in range(math.ceil(n / 20)):
                member = ops.member()
                recharge = services.recharge(
                    member=member, store=ops.store, payment_method="wechat", actor=ops.actor,
                    items=[services.RechargeItem(kind="coupon", coupon_template=ops.refund_coupon, quantity=20)],
                )  # fmt: skip
                ops.pool.extend(
                    Grant.objects.select_related("merchant", "member__merchant", "coupon_template")
                    .filter(member=member, source_ref=recharge.number)
                    .order_by("-pk")
                )

        def run(grant):
            services.cash_refund_grant(grant=grant, payment_method="wechat", reason=REASON, actor=ops.actor,
                                       store=ops.store)  # fmt: skip

    elif op == "cash_refund":
        from members.models import Owner

        mine = cfg["refund_member_ids"][idx :: cfg["workers"]]
        found = Owner.objects.select_related("merchant").in_bulk(mine)
        ops.pool = [found[m] for m in reversed(mine)]

        def next_input():
            member = ops.pop()
            ops.used.append(member.pk)
            return member

        def run(member):
            services.cash_refund_stored_value(member=member, payment_method="wechat", reason=REASON,
                                              actor=ops.actor, store=ops.store)  # fmt: skip

    elif op in FLOOR_OPS:
        run = _floor_op(cfg, ops, numbered=op == "django_floor_numbered")
        next_input = ops.member

    else:
        raise ValueError(f"unknown operation {op}")
    return ops, next_input, run, prepare


# The record row of the floor: a recharge row as wallet.services.recharge writes it (one INSERT, no lines), in
# the table the benchmark's recharges fill, so the floor adds nothing to the schema.
_FLOOR_RECORD_SQL = (
    "INSERT INTO wallet_recharge (merchant_id, number, member_id, store_id, operator_id, created_at, idempotency_key,"
    " request_hash, note, payment_method, list_total_fen, paid_total_fen, bonus_total_fen, entry_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, NULL, '', '', 'wechat', %s, %s, 0, %s)"
)
FLOOR_FEN = 100_000  # the plan's ¥1000: cash Dr, principal Cr


def _floor_op(cfg: dict, ops: _Ops, *, numbered: bool):
    """The smallest operation any wallet operation must at least do (--floor): in one transaction on Django's
    connection, lock the member's row (wallet.services.postings.lock_members: one SELECT ... FOR NO KEY
    UPDATE), post a recharge-like 2-leg entry (cash Dr, the member's principal Cr; fresh idempotency key) and
    insert one record row; `numbered` takes a business number as recharge does (after the lock, on the
    numbering's own connection) and records under it."""
    from django.db import connection, transaction
    from django.utils import timezone

    from ledger import services as ledger
    from ledger.models import Account
    from members import services as member_services
    from wallet.services.postings import lock_members

    mine = cfg["member_ids"][ops.idx :: cfg["workers"]]
    principal_ids = cfg["principal_ids"][ops.idx :: cfg["workers"]]
    by_id = Account.objects.in_bulk([*principal_ids, cfg["cash_id"]])
    principal = {m: by_id[a] for m, a in zip(mine, principal_ids, strict=True)}
    cash = by_id[cfg["cash_id"]]
    counter = iter(range(10**12))
    # Recharge numbers are unique per merchant: a run's own prefix keeps the unnumbered floor's apart
    # from other runs' (and from the cz… numbers, which the numbered floor shares with real recharges).
    tag = f"fl{cfg['phase'].rsplit('-', 1)[-1]}-{ops.idx}-"
    prefix = f"wf-{cfg['phase']}-{ops.idx}-"
    operator_id = ops.actor.pk

    def run(member):
        i = next(counter)
        with transaction.atomic():
            lock_members([member.pk])
            number = member_services.next_business_number(member.merchant, "cz") if numbered else f"{tag}{i}"
            legs = [ledger.increase(cash, FLOOR_FEN), ledger.increase(principal[member.pk], FLOOR_FEN)]
            entry = ledger.post_entry(
                merchant=member.merchant, legs=legs, operation_type="bench_floor", operation_ref=number,
                idempotency_key=f"{prefix}{i}", actor=ops.actor, store=ops.store, member=member,
            )  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(_FLOOR_RECORD_SQL, [member.merchant_id, number, member.pk, ops.store.pk, operator_id,
                                                   timezone.now(), FLOOR_FEN, FLOOR_FEN, entry.pk])  # fmt: skip

    return run


def _count_statements(run, inputs: list) -> list[dict]:
    """Statements per operation: every psycopg cursor execute on the connection (Django's cursors and the
    ledger's own prepared cursor alike), and the share CaptureQueriesContext sees: Django's connection, whose
    log the ledger's cursor writes to as well; the rest runs on other connections (the business number's)."""
    import psycopg
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counter = [0]
    original, original_many = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def execute(self, *args, **kwargs):
        counter[0] += 1
        return original(self, *args, **kwargs)

    def executemany(self, query, params_seq, *args, **kwargs):
        params_seq = list(params_seq)
        counter[0] += len(params_seq)
        return original_many(self, query, params_seq, *args, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany
    counts = []
    try:
        for x in inputs:
            counter[0] = 0
            with CaptureQueriesContext(connection) as captured:
                run(x)
            # Django logs BEGIN/COMMIT/ROLLBACK too, which psycopg sends without a cursor: counted apart.
            sqls = [q["sql"].lstrip().upper() for q in captured.captured_queries]
            control = sum(sql in ("BEGIN", "COMMIT", "ROLLBACK") for sql in sqls)
            django = len(sqls) - control
            counts.append(
                {
                    "total": counter[0],
                    "django": django,
                    "other": counter[0] - django,
                    "savepoint": sum("SAVEPOINT" in sql[:40] for sql in sqls),
                    "control": control,
                }
            )
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany = original, original_many
    return counts


def _worker(cfg: dict, idx: int, ready_q, start_event, start_at, deadline_at, result_q, done_event) -> None:
    result = {"idx": idx, "latencies": [], "errors": 0, "error_samples": [], "end": 0.0, "exhausted": False}
    close = None
    try:
        _bootstrap_django(debug_cursor=cfg["debug_cursor"])
        from django.db import connection

        close = connection.close
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        ops, next_input, run, prepare = _make_ops(cfg, idx)
        warmup = WARMUP_LEDGER if cfg["op"] == "ledger_post" or cfg["op"] in FLOOR_OPS else WARMUP_OPS
        counted = min(COUNTED_OPS, warmup) if idx == 0 else 0
        if prepare is not None:
            prepare(warmup)
        try:
            t0 = time.perf_counter()
            for _ in range(warmup - counted):
                x = next_input()
                try:
                    run(x)
                except Exception as exc:  # reported with the run's errors, not fatal
                    result["warmup_errors"] = result.get("warmup_errors", 0) + 1
                    result["error_samples"].append(f"warm-up {type(exc).__name__}: {exc}"[:300])
            if counted:
                result["statements"] = _count_statements(run, [next_input() for _ in range(counted)])
            per_op = (time.perf_counter() - t0) / warmup
        except PoolExhausted:
            result["exhausted"] = True  # nothing left to time: the run reports 0 operations
            ops.pool.clear()
            per_op = 1.0
        if prepare is not None:
            wanted = math.ceil(cfg["seconds"] / max(per_op, 1e-4) * POOL_FACTOR) + 5
            t0 = time.perf_counter()
            prepare(wanted)
            result["prepared"] = len(ops.pool)
            result["prepare_s"] = time.perf_counter() - t0
        ready_q.put(idx)
        _, deadline = _wait_for_start(start_event, start_at, deadline_at)
        cpu0 = time.process_time()
        latencies = result["latencies"]
        now = time.monotonic()
        while now < deadline:
            try:
                x = next_input()
            except PoolExhausted:
                result["exhausted"] = True
                break
            t0 = time.perf_counter()
            try:
                run(x)
            except Exception as exc:
                result["errors"] += 1
                if len(result["error_samples"]) < ERROR_SAMPLES:
                    result["error_samples"].append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                latencies.append(time.perf_counter() - t0)
            now = time.monotonic()
        result["end"] = now
        result["cpu_s"] = time.process_time() - cpu0
        result["used"] = ops.used
    except Exception:
        result["fatal"] = traceback.format_exc()
        ready_q.put(idx)
    result_q.put(result)
    done_event.wait(timeout=60)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


# ---------------------------------------------------------------- lock-wait sampling

_SAMPLE_SQL = """
SELECT a.pid, a.query_start, a.state, a.wait_event_type, a.query,
       EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted
               AND l.relation = 'members_dailysequence'::regclass) AS on_sequence_table
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
"""


class _LockSampler:
    def __init__(self) -> None:
        self.samples = 0
        self.open_sum = 0
        self.numbering_sum = 0
        self.other_lock_sum = 0
        self.numbering_max = 0
        self.numbering_waits: set = set()
        self.other_waits: set = set()

    def sample(self, cursor) -> None:
        cursor.execute(_SAMPLE_SQL)
        rows = cursor.fetchall()
        self.samples += 1
        numbering = other = 0
        for pid, query_start, state, wait_type, query, on_sequence_table in rows:
            if state in ("active", "idle in transaction", "idle in transaction (aborted)"):
                self.open_sum += 1
            if wait_type != "Lock" and not on_sequence_table:
                continue
            if on_sequence_table or "members_dailysequence" in (query or ""):
                numbering += 1
                self.numbering_waits.add((pid, query_start))
            else:
                other += 1
                self.other_waits.add((pid, query_start))
        self.numbering_sum += numbering
        self.other_lock_sum += other
        self.numbering_max = max(self.numbering_max, numbering)

    def report(self) -> dict:
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "numbering_waits": len(self.numbering_waits),
            "numbering_waiting_mean": self.numbering_sum / n,
            "numbering_waiting_max": self.numbering_max,
            "open_xact_mean": self.open_sum / n,
            "other_lock_waits": len(self.other_waits),
        }


# ---------------------------------------------------------------- phases


def _run_phase(cfg: dict, op: str, workers: int, seconds: float, sample_s: float) -> dict:
    from django.db import connection, connections

    connections.close_all()
    ctx = mp.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    start_event, done_event = ctx.Event(), ctx.Event()
    start_at, deadline_at = ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    # A new tag per run: the ledger post's idempotency keys must never repeat an earlier run's.
    phase = f"{op}-w{workers}-{cfg['run_tag']}-{next(_RUN_SEQ)}"
    cfg = dict(cfg, op=op, workers=workers, seconds=seconds, phase=phase)
    procs = [
        ctx.Process(
            target=_worker,
            args=(cfg, i, ready_q, start_event, start_at, deadline_at, result_q, done_event),
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    setup_limit = time.monotonic() + 600
    ready = 0
    while ready < workers and time.monotonic() < setup_limit:
        try:
            ready_q.get(timeout=1)
            ready += 1
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
    sampler = _LockSampler()
    cursor = connection.cursor()
    start = time.monotonic() + 0.1
    deadline = start + seconds
    start_at.value, deadline_at.value = start, deadline
    start_event.set()
    time.sleep(max(0.0, start - time.monotonic()))
    snap0 = _cpu_snapshot()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            sampler.sample(cursor)
        time.sleep(sample_s)
    snap1 = _cpu_snapshot()
    cursor.close()
    results = []
    collect_limit = deadline + STATEMENT_TIMEOUT_MS / 1000  # a worker finishes the operation it started
    while len(results) < workers and time.monotonic() < collect_limit:
        try:
            results.append(result_q.get(timeout=1.0))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and result_q.empty():
                break
    done_event.set()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)

    latencies = sorted(lat for r in results for lat in r["latencies"])
    rate = sum(len(r["latencies"]) / (r["end"] - start) for r in results if r["end"] > start)
    statements = next((r["statements"] for r in results if r.get("statements")), [])

    def median_of(key: str) -> float | None:
        return statistics.median(s[key] for s in statements) if statements else None

    return {
        "op": op,
        "workers": workers,
        "ops": len(latencies),
        "per_s": rate,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "errors": sum(r["errors"] + r.get("warmup_errors", 0) for r in results),
        "error_samples": [s for r in results for s in r["error_samples"]][:ERROR_SAMPLES],
        "fatal": [r["fatal"] for r in results if "fatal" in r],
        "missing_workers": workers - len(results),
        "exhausted": sum(r.get("exhausted", False) for r in results),
        "prepared": sum(r.get("prepared", 0) for r in results),
        "prepare_s": max((r.get("prepare_s", 0.0) for r in results), default=0.0),
        "queries": median_of("total"),
        "queries_django": median_of("django"),
        "queries_other": median_of("other"),
        "savepoints": median_of("savepoint"),
        "queries_all": [s["total"] for s in statements],
        "used": [m for r in results for m in r.get("used", [])],
        **sampler.report(),
        **_cpu_shares(snap0, snap1, sum(r.get("cpu_s", 0.0) for r in results)),
    }


def _maintenance() -> None:
    """Same starting conditions for every run: fresh statistics, no dead tuples, no checkpoint mid-run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        with contextlib.suppress(Exception):
            cursor.execute("CHECKPOINT")


# ---------------------------------------------------------------- fixture


def _build_fixture(args, history: int, label: str, run_tag: str) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from ledger import services as ledger
    from members import services as member_services
    from members.models import Level, Merchant, Owner, Store
    from wallet import services
    from wallet.accounts import points_lot_detail
    from wallet.models import (
        CommissionKind,
        CouponTemplate,
        RechargePlan,
        Service,
        ServiceCategory,
        StoredValueCard,
        WalletSettings,
    )

    t_start = time.perf_counter()
    code = f"wb{label}-{run_tag}"
    merchant = Merchant.objects.create(code=code, name=f"Wallet benchmark {label} {run_tag}")
    WalletSettings.objects.create(merchant=merchant)  # the defaults: proportional spending, 1 point per yuan
    store = Store.objects.create(merchant=merchant, code=f"s{run_tag}"[:20], name="门店")
    # The catalog of tests/wallet_helpers.make_shop.
    category = ServiceCategory.objects.create(merchant=merchant, name="服务")
    cleaning = Service.objects.create(merchant=merchant, category=category, name="洁牙", list_price_fen=12_000,
                                      member_price_fen=10_000, commission_kind=CommissionKind.FIXED,
                                      commission_value=1_000)  # fmt: skip
    car_wash = Service.objects.create(merchant=merchant, category=category, name="洗车", list_price_fen=3_000,
                                      member_price_fen=3_000, commission_kind=CommissionKind.PERCENT,
                                      commission_value=1_000)  # fmt: skip
    massage = Service.objects.create(merchant=merchant, category=category, name="按摩", list_price_fen=20_000,
                                     member_price_fen=20_000)  # fmt: skip
    refund_coupon = CouponTemplate.objects.create(
        merchant=merchant, name="洗车10次卡", uses=10, price_fen=20_000, valid_days=30
    )
    refund_coupon.services.add(car_wash)
    use_coupon = CouponTemplate.objects.create(
        merchant=merchant, name="洗车1000次卡", uses=1000, price_fen=2_000_000, valid_days=365
    )
    use_coupon.services.add(car_wash)
    plan = RechargePlan.objects.create(merchant=merchant, name="充1000送200", pay_fen=100_000, bonus_fen=20_000)
    # Thresholds out of reach: the level check runs on every consumption but never upgrades anyone.
    # The operator records the operations and serves the lines: refunds need operate_store on the store.
    Level.objects.create(merchant=merchant, name="银卡", rank=1, upgrade_spend_fen=10**14)
    Level.objects.create(merchant=merchant, name="金卡", rank=2, upgrade_points=10**14)
    staff = member_services.create_staff(
        merchant=merchant, username=f"{code}-operator", name="员工", role="operator", actor=None, stores=[store]
    )

    n = args.members + args.refund_members
    with transaction.atomic():
        Owner.objects.bulk_create(
            [
                Owner(merchant=merchant, member_number=f"W{i:08d}", name=f"会员{i}", mobile=f"139{i:08d}")
                for i in range(n)
            ],
            batch_size=2000,
        )
    owner_ids = list(Owner.objects.filter(merchant=merchant).order_by("member_number").values_list("pk", flat=True))
    StoredValueCard.objects.bulk_create(
        [StoredValueCard(merchant=merchant, member_id=m) for m in owner_ids], batch_size=2000
    )
    principals = ledger.get_or_create_member_accounts(merchant, "principal", "CNY", owner_ids)
    ledger.get_or_create_member_accounts(merchant, "bonus", "CNY", owner_ids)
    # This year's points lot (wallet.accounts knows how lots are named).
    lot = points_lot_detail(timezone.localdate(), WalletSettings.objects.get(merchant=merchant).points_valid_years)
    points = ledger.get_or_create_member_accounts(merchant, "points", "POINT", owner_ids, detail=lot)
    # The level tallies a consumption credits (wallet.accounts).
    spends = ledger.get_or_create_member_accounts(merchant, "spend", "CNY", owner_ids)
    earned = ledger.get_or_create_member_accounts(merchant, "points_earned", "POINT", owner_ids)
    cash = ledger.get_or_create_account(merchant, "cash", "CNY", detail="wechat")
    revenue = ledger.get_or_create_account(merchant, "revenue", "CNY")
    issuance = ledger.get_or_create_account(merchant, "issuance", "POINT")
    tally_cny = ledger.get_or_create_account(merchant, "tally", "CNY")
    tally_point = ledger.get_or_create_account(merchant, "tally", "POINT")
    _log(f"fixture {label}: merchant {code}, {n} members, accounts in {time.perf_counter() - t_start:.1f}s")

    t0 = time.perf_counter()
    accounts = {
        "principals": [principals[m].pk for m in owner_ids], "points": [points[m].pk for m in owner_ids],
        "spends": [spends[m].pk for m in owner_ids], "earned": [earned[m].pk for m in owner_ids], "cash": cash.pk,
        "revenue": revenue.pk, "issuance": issuance.pk, "tally_cny": tally_cny.pk, "tally_point": tally_point.pk,
    }  # fmt: skip
    replica = _insert_history(merchant.pk, store.pk, owner_ids, accounts, history)
    history_s = time.perf_counter() - t0
    _log(f"fixture {label}: {n * history} history entries in {history_s:.1f}s (triggers skipped: {replica})")

    # Paid coupons for the coupon consumptions, bought through the wallet itself.
    t0 = time.perf_counter()
    general = owner_ids[: args.members]
    coupon_members = general[: max(1, min(args.coupon_members, len(general)))]
    by_id = Owner.objects.select_related("merchant").in_bulk(coupon_members)
    for member_id in coupon_members:
        services.recharge(
            member=by_id[member_id], store=store, payment_method="wechat", actor=None,
            items=[services.RechargeItem(kind="coupon", coupon_template=use_coupon)],
        )  # fmt: skip
    from wallet.models import Grant

    coupon_grant_ids = list(
        Grant.objects.filter(coupon_template=use_coupon).order_by("member_id").values_list("pk", flat=True)
    )
    _log(f"fixture {label}: {len(coupon_grant_ids)} coupon grants bought in {time.perf_counter() - t0:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_leg l JOIN ledger_entry e ON e.id = l.entry_id WHERE e.merchant_id = %s",
                       [merchant.pk])  # fmt: skip
        legs = cursor.fetchone()[0]
    return {
        "label": label,
        "history": history,
        "merchant": merchant,
        "history_s": history_s,
        "triggers_skipped": replica,
        "legs": legs,
        "cfg": {
            "run_tag": f"{label}-{run_tag}",
            "store_id": store.pk,
            "staff_id": staff.pk,
            "cleaning_id": cleaning.pk,
            "car_wash_id": car_wash.pk,
            "massage_id": massage.pk,
            "plan_id": plan.pk,
            "refund_coupon_id": refund_coupon.pk,
            "member_ids": general,
            "principal_ids": [principals[m].pk for m in general],
            "cash_id": cash.pk,
            "coupon_grant_ids": coupon_grant_ids,
            "refund_member_ids": owner_ids[args.members :],
            "debug_cursor": args.debug_cursor,
        },
    }


_HISTORY_SQL = """
WITH m AS (
    SELECT * FROM unnest(%(owners)s::bigint[], %(principals)s::bigint[], %(points)s::bigint[],
                         %(spends)s::bigint[], %(earned)s::bigint[])
        AS m(owner_id, principal_id, points_id, spend_id, earned_id)
), e AS (
    INSERT INTO ledger_entry (merchant_id, idempotency_key, operation_type, operation_ref, actor_id, actor_label,
                              store_id, member_id, memo, posted_at, reverses_id, fingerprint)
    SELECT %(merchant)s, 'hist:' || m.owner_id || ':' || k,
           CASE WHEN k %% 10 = 0 THEN 'recharge' ELSE 'consumption' END,
           'hist/' || m.owner_id || '/' || k, NULL, 'system:bench', %(store)s, m.owner_id, '',
           now() - (%(history)s - k) * interval '1 hour', NULL,
           md5(m.owner_id || ':' || k) || md5(k || ':' || m.owner_id)
    FROM generate_series(%(k0)s::int, %(k1)s::int) AS k, m
    ORDER BY k, m.owner_id
    RETURNING id, member_id, idempotency_key, posted_at
), x AS (
    SELECT e.id, e.posted_at, m.principal_id, m.points_id, m.spend_id, m.earned_id,
           split_part(e.idempotency_key, ':', 3)::bigint AS k
    FROM e JOIN m ON m.owner_id = e.member_id
)
INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)
SELECT x.id, v.account_id, v.unit, v.amount, v.balance_after, x.posted_at
FROM x CROSS JOIN LATERAL (VALUES
    -- a recharge (every 10th entry, the first one large): cash Dr, principal Cr
    (1, %(cash)s::bigint, 'CNY', CASE WHEN x.k = 0 THEN %(initial)s ELSE 10000 END, NULL::bigint),
    (2, x.principal_id, 'CNY', CASE WHEN x.k = 0 THEN -%(initial)s ELSE -10000 END,
        %(initial)s + 11000 * (x.k / 10) - 1000 * x.k),
    -- a stored-value consumption of ¥10: principal Dr, revenue Cr, 10 points to the lot, issuance Dr
    (3, x.principal_id, 'CNY', 1000, %(initial)s + 11000 * (x.k / 10) - 1000 * x.k),
    (4, %(revenue)s::bigint, 'CNY', -1000, NULL),
    (5, x.points_id, 'POINT', -10, 10 * (x.k - x.k / 10)),
    (6, %(issuance)s::bigint, 'POINT', 10, NULL),
    (7, x.spend_id, 'CNY', -1000, 1000 * (x.k - x.k / 10)),
    (8, %(tally_cny)s::bigint, 'CNY', 1000, NULL),
    (9, x.earned_id, 'POINT', -10, 10 * (x.k - x.k / 10)),
    (10, %(tally_point)s::bigint, 'POINT', 10, NULL)
) AS v(n, account_id, unit, amount, balance_after)
WHERE (x.k %% 10 = 0) = (v.n <= 2)
ORDER BY x.id, v.n
"""


def _insert_history(merchant_id, store_id, owners, accounts: dict, history) -> bool:
    """Each member's `history` entries (see the module docstring), block by block in time order, then the
    cached balances from the legs. Returns whether the deferred check trigger was skipped."""
    from django.db import connection, transaction

    if history <= 0:
        return False
    block = max(1, HISTORY_BLOCK_ROWS // max(1, len(owners)))
    replica = False
    params = {"owners": owners, "merchant": merchant_id, "store": store_id, "initial": INITIAL_FEN,
              "history": history, **accounts}  # fmt: skip
    for k0 in range(0, history, block):
        k1 = min(history, k0 + block) - 1
        with transaction.atomic(), connection.cursor() as cursor:
            try:
                with transaction.atomic():
                    cursor.execute("SET LOCAL session_replication_role = replica")
                replica = True
            except Exception:
                replica = False  # not a superuser: the deferred checks run at commit, only slower
            cursor.execute(_HISTORY_SQL, dict(params, k0=k0, k1=k1))
        _log(f"  history entries {k0}..{k1} of {history} for {len(owners)} members")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_accountbalance b SET balance = s.total FROM ("
            " SELECT l.account_id, -SUM(l.amount) AS total FROM ledger_leg l"
            " WHERE l.account_id = ANY(%s::bigint[]) GROUP BY l.account_id) s WHERE b.account_id = s.account_id",
            [accounts["principals"] + accounts["points"] + accounts["spends"] + accounts["earned"]],
        )
    return replica


# ---------------------------------------------------------------- main


def _parse_workers(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("--workers takes a comma-separated list of counts >= 1, e.g. 1,4")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run (default 10)")
    parser.add_argument("--workers", type=_parse_workers, default=[1, 4], help="worker counts (default 1,4)")
    parser.add_argument("--members", type=int, default=2000, help="members the operations draw on (default 2000)")
    parser.add_argument("--history", type=int, default=1000, help="ledger entries per member (default 1000)")
    parser.add_argument(
        "--short-history", type=int, default=10, help="entries per member in the short-history run; 0 skips it"
    )
    parser.add_argument(
        "--refund-members", type=int, default=2000, help="members for cash refunds, one each (default 2000)"
    )
    parser.add_argument("--coupon-members", type=int, default=200, help="members holding a paid coupon (default 200)")
    parser.add_argument("--ops", default=",".join(OPS), help="operations to run (default all)")
    parser.add_argument("--sample-ms", type=float, default=20.0, help="lock-wait sampling interval (default 20)")
    parser.add_argument("--debug-cursor", action="store_true", help="keep DEBUG's query-logging cursor in workers")
    parser.add_argument(
        "--floor", action="store_true", help=f"also run the yardsticks {', '.join(FLOOR_OPS)} (after the operations)"
    )
    args = parser.parse_args(argv)
    ops = [op for op in args.ops.split(",") if op]
    unknown = [op for op in ops if op not in OPS and not (args.floor and op in FLOOR_OPS)]
    if args.floor:
        ops += [op for op in FLOOR_OPS if op not in ops]
    if unknown or "ledger_post" not in ops:
        parser.error(f"--ops: unknown {unknown}; ledger_post is required (the ratios' yardstick)")
    if args.seconds <= 0 or args.members < 2 * max(args.workers) or args.history < 1 or args.refund_members < 0:
        parser.error("need --seconds > 0, --members >= 2 x workers, --history >= 1, --refund-members >= 0")

    _bootstrap_django(debug_cursor=args.debug_cursor)
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"refusing to run: the database of DATABASE_URL is {connection.vendor}, not PostgreSQL",
              file=sys.stderr)  # fmt: skip
        return 2
    from django.core.management import call_command

    from ledger import selectors

    call_command("migrate", verbosity=0)  # a fresh database works as it is
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('synchronous_commit'), current_setting('fsync')")
        version, sync_commit, fsync = cursor.fetchone()
    server = f"{version.split(' on ')[0]} (synchronous_commit={sync_commit}, fsync={fsync})"
    run_tag = str(int(time.time() * 1000))
    variants = [("long", args.history)] + ([("short", args.short_history)] if args.short_history > 0 else [])

    results: dict[tuple[str, int, str], dict] = {}
    fixtures = []
    for label, history in variants:
        fixture = _build_fixture(args, history, label, run_tag)
        fixtures.append(fixture)
        # Unreported priming, as in ledger_throughput.py: the first run after the bulk fixture pays for
        # index page splits and cold caches.
        _maintenance()
        prime_s = min(args.seconds, PRIME_SECONDS)
        _log(f"prime {label}: {max(args.workers)} workers x {prime_s:g}s of ledger posts (not reported) ...")
        _run_phase(fixture["cfg"], "ledger_post", max(args.workers), prime_s, args.sample_ms / 1000)
        refund_left = list(fixture["cfg"]["refund_member_ids"])
        refund_phases_left = len(args.workers)
        for workers in args.workers:
            # The yardstick runs first and last: the mean of the two is the ledger post rate of this block.
            for op in [*ops, "ledger_post_end"]:
                cfg = dict(fixture["cfg"])
                if op == "cash_refund":  # each worker count gets its share of the members still open
                    cfg["refund_member_ids"] = refund_left[: len(refund_left) // refund_phases_left]
                    refund_phases_left -= 1
                _maintenance()
                _log(f"run {label} history={history} {op}: {workers} workers x {args.seconds:g}s ...")
                r = _run_phase(cfg, op.removesuffix("_end"), workers, args.seconds, args.sample_ms / 1000)
                used = set(r["used"])
                refund_left = [m for m in refund_left if m not in used]
                results[(label, workers, op)] = r
                _log(f"  {r['per_s']:.1f} ops/s, {r['errors']} errors, queries {r['queries']}")
            first, last = results[(label, workers, "ledger_post")], results.pop((label, workers, "ledger_post_end"))
            first["per_s_runs"] = [first["per_s"], last["per_s"]]
            first["per_s"] = (first["per_s"] + last["per_s"]) / 2
            first["ops"] += last["ops"]
            first["errors"] += last["errors"]
        t0 = time.perf_counter()
        fixture["reconcile"] = selectors.reconcile(fixture["merchant"])
        fixture["reconcile_s"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- report
    print(f"wallet operations: {server}, {os.cpu_count()} CPUs")
    print(
        f"seconds={args.seconds:g} workers={','.join(map(str, args.workers))} members={args.members} "
        f"refund_members={args.refund_members} coupon_members={args.coupon_members} warm-up={WARMUP_OPS} ops/worker "
        f"(ledger {WARMUP_LEDGER}) debug_cursor={args.debug_cursor}"
    )
    for f in fixtures:
        print(
            f"fixture {f['label']}: merchant {f['merchant'].code}, history {f['history']} entries/member, "
            f"{f['legs']} legs, built in {f['history_s']:.1f}s (deferred check skipped: {f['triggers_skipped']})"
        )
    print()
    header = (
        f"{'history':<7} {'w':>2} {'operation':<21} {'ops/s':>8} {'ratio':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'queries':>7} {'dj/own':>7} {'ops':>6} {'err':>4} {'numbering':>9} {'wait/open':>9} {'oth.lk':>6} "
        f"{'cpu:wrk':>7} {'pg':>4} {'other':>5}"
    )
    print(header)
    for label, history in variants:
        for workers in args.workers:
            base = results[(label, workers, "ledger_post")]["per_s"]
            for op in ops:
                r = results[(label, workers, op)]
                r["ratio"] = r["per_s"] / base if base else 0.0
                q = "?" if r["queries"] is None else f"{r['queries']:g}"
                split = "" if r["queries"] is None else f"{r['queries_django']:g}/{r['queries_other']:g}"
                cpu = " ".join(
                    f"{r[k]:>{w}.0%}" if r[k] is not None else f"{'?':>{w}}"
                    for k, w in (("cpu_workers", 7), ("cpu_postgres", 4), ("cpu_foreign", 5))
                )
                wait_open = f"{r['numbering_waiting_mean']:.1f}/{r['open_xact_mean']:.1f}"
                print(
                    f"{label + str(history):<7} {workers:>2} {op:<21} {r['per_s']:>8.1f} {r['ratio']:>6.3f} "
                    f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {q:>7} {split:>7} {r['ops']:>6} {r['errors']:>4} "
                    f"{r['numbering_waits']:>9} {wait_open:>9} {r['other_lock_waits']:>6} {cpu}"
                )
                if "per_s_runs" in r:
                    runs = " and ".join(f"{v:.1f}" for v in r["per_s_runs"])
                    print(f"{'':<10} ledger_post ran first and last: {runs} ops/s; the mean is the ratios' yardstick")
                for sample in r["error_samples"]:
                    print(f"{'':<10} error: {sample}")
                for fatal in r["fatal"]:
                    print(f"{'':<10} worker failed:\n{fatal}")
                if r["missing_workers"]:
                    print(f"{'':<10} {r['missing_workers']} worker(s) never reported (terminated)")
                if r["exhausted"]:
                    print(
                        f"{'':<10} {r['exhausted']} worker(s) ran out of inputs (rate over active time)"
                        + ("; raise --refund-members" if op == "cash_refund" else "")
                    )
    print()
    for op, what in {**OPS, **FLOOR_OPS}.items():
        if op in ops:
            print(f"{op:<21} {what}")
    print()
    print("note: ratio = ops/s / ledger_post ops/s of the same history and worker count; queries = statements per")
    print(
        f"      operation (median of {COUNTED_OPS} on worker 0), dj/own = on Django's connection (CaptureQueriesContext,"
    )
    print("      savepoints and the ledger's prepared statements included) / on connections of their own (the business")
    print("      number's); BEGIN/COMMIT not counted.")
    print("note: numbering = distinct statements seen waiting on members_dailysequence (sampled every "
          f"{args.sample_ms:g} ms: a lower bound); wait/open = mean sessions waiting on it / mean open "
          "transactions; oth.lk = other lock waits seen.")  # fmt: skip
    print("note: cpu = share of all cores in the timed window: benchmark workers, postgres, everything else.")
    print()
    for f in fixtures:
        rep = f["reconcile"]
        print(
            f"reconcile {f['label']}: {'clean' if rep.clean else 'NOT CLEAN'}, {len(rep.problems)} problem(s), "
            f"{rep.accounts_checked} accounts, {rep.entries_checked} entries checked in {f['reconcile_s']:.1f}s"
        )
        for problem in rep.problems[:10]:
            print(f"  {problem}")

    top = max(args.workers)
    summary: dict = {
        "workers": args.workers,
        "seconds": args.seconds,
        "members": args.members,
        "history": args.history,
        "short_history": args.short_history,
        "reconcile_clean": all(f["reconcile"].clean for f in fixtures),
        "reconcile_problems": sum(len(f["reconcile"].problems) for f in fixtures),
    }
    for (label, workers, op), r in results.items():
        prefix = ("" if label == "long" else "short_") + f"w{workers}_"
        for key, value in (
            ("per_s", round(r["per_s"], 1)),
            ("ratio", round(r["ratio"], 4)),
            ("queries", r["queries"]),
            ("p50_ms", round(r["p50_ms"], 2)),
            ("p95_ms", round(r["p95_ms"], 2)),
            ("errors", r["errors"]),
            ("numbering_waits", r["numbering_waits"]),
            ("numbering_waiting_mean", round(r["numbering_waiting_mean"], 2)),
        ):
            summary[f"{prefix}{op}_{key}"] = value
            if workers == top and label == "long":
                summary[f"{op}_{key}"] = value
            if workers == top and label == "short" and key == "ratio":
                summary[f"{op}_ratio_short"] = value
        if "per_s_runs" in r:
            summary[f"{prefix}ledger_post_runs_per_s"] = [round(v, 1) for v in r["per_s_runs"]]
    print(json.dumps(summary, sort_keys=True, ensure_ascii=False))
    broken = any(r["fatal"] or r["missing_workers"] or r["errors"] for r in results.values())
    return 1 if broken or not summary["reconcile_clean"] else 0


if __name__ == "__main__":
    sys.exit(main())
