"""Ledger posting throughput on PostgreSQL, against a hand-written psycopg baseline in the same tables.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/ledger_throughput.py \
        --seconds 10 --workers 4

Runs, each for --seconds with --workers processes (one database connection each):

  raw_many     psycopg 3, no ORM, autocommit off. Per entry: SELECT ... FOR UPDATE of two random member
               principal balance rows (ascending account id), INSERT the entry (RETURNING id), INSERT its two
               legs, one UPDATE of both balance rows, COMMIT. The first member drawn loses 1 fen of
               principal, the second gains it.
  ledger_many  the same transfers (same random sequence per worker) through ledger.services.post_entry, which
               validates in Python and posts with one call of the ledger_post_entry() SQL function.
  raw_hot      as raw_many, but the second row is always one dedicated "hot" member principal account,
               which is bounded and therefore has a balance row that every raw entry locks and updates:
               this is what a conventional design does with a merchant cash account.
  ledger_hot   post_entry: a random member principal loses 1 fen and the merchant cash account (unbounded)
               takes the balancing leg. By design the cash account has no balance row and is never locked or
               updated; its balance is the sum of its legs. Only the member's row is locked.

Then one post_entry of a points issuance to --bulk-legs member accounts plus one balancing leg on the
merchant issuance account, three times (legs/s over the post_entry call including its commit), and
ledger.selectors.reconcile over the benchmark merchant.

Everything lives in a fresh merchant (code bench-<milliseconds>) so runs never collide. Fixture owners are
bulk-created directly (benchmark data, not product code); members are funded through post_entry in entries
of 100, then up to 5 s of raw transfers prime the tables (not reported). Before each run the ledger
tables are vacuumed and analysed and a checkpoint is forced. The last line of stdout is one JSON object.

Dev settings turn DEBUG on, which makes Django wrap every cursor in a query-logging debug cursor;
production runs with DEBUG off, so the ledger workers switch it off (pass --debug-cursor to keep it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
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
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FUND_CHUNK = 100  # member accounts per funding entry
FUND_PER_MEMBER = 1_000_000  # fen (10,000 CNY): no member can be drawn down by 1-fen entries in a run
PRINCIPAL_SIGN = -1  # principal accounts are credit-normal (checked at setup)
STATEMENT_TIMEOUT_MS = 30_000  # no single statement may hang a run
PRIME_SECONDS = 5.0  # unreported run before the measured ones (see main)
WARMUP_ENTRIES = 20  # per worker, before the clock starts (connections, imports, prepared statements)
ERROR_SAMPLES = 3

RUNS = {
    "raw_many": "psycopg, no ORM: lock 2 random member rows FOR UPDATE, insert entry + 2 legs, update both rows",
    "ledger_many": "post_entry: 1 fen between 2 random member principal accounts (both rows locked + updated)",
    "raw_hot": "psycopg, no ORM: lock 1 random member row + 1 hot bounded member row, insert, update both",
    "ledger_hot": "post_entry: random member principal -1 fen, merchant cash -1 fen (cash never locked/updated)",
}

NOTES = [
    "raw_* use psycopg defaults: server-side binding, statements auto-prepared after 5 executions; post_entry "
    "validates in Python, then makes one prepared call of ledger_post_entry() on Django's connection.",
    "round trips per entry: raw 6 (BEGIN, SELECT..FOR UPDATE, INSERT entry, INSERT 2 legs, 1 UPDATE of both "
    "rows, COMMIT); ledger 1 (the function call, its own transaction in autocommit: a guarded UPDATE per "
    "bounded row in account order, INSERT entry ON CONFLICT, INSERT legs). Both fire the deferred per-entry "
    "trigger at commit. Inside a caller's transaction (wallet operations) the call sits in a savepoint.",
    "raw_hot/ledger_hot are not the same SQL by design: raw serialises on a hot bounded row (the conventional "
    "design), the ledger never locks its unbounded merchant cash account.",
    "each worker posts untimed warm-up entries first; entries/s = timed entries / (last completion - start).",
    "cpu columns: share of all cores during the timed window used by the benchmark workers (client side), by "
    "all postgres processes, by everything else (other = someone else's work: the figures are then noisy) and "
    "stolen by the hypervisor; pgsess = most busy sessions of other databases seen on the server.",
]


def _bootstrap_django(debug_cursor: bool = True) -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.dev")
    import django

    django.setup()
    if not debug_cursor:
        from django.conf import settings

        settings.DEBUG = False  # connection.queries_logged reads it per cursor: plain cursors from here on


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _wait_for_start(start_event, start_at, deadline_at) -> tuple[float, float]:
    start_event.wait()
    start, deadline = start_at.value, deadline_at.value
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return start, deadline


def _pick_pair(rng: random.Random, n: int) -> tuple[int, int]:
    a = rng.randrange(n)
    b = rng.randrange(n - 1)
    return a, b + (b >= a)


# ---------------------------------------------------------------- workers
# time.monotonic() is CLOCK_MONOTONIC on Linux, shared by all processes, so one start/deadline serves all.


def _ledger_worker(cfg: dict, idx: int, ready_q, start_event, start_at, deadline_at, result_q, done_event) -> None:
    result = {"idx": idx, "latencies": [], "errors": 0, "error_samples": [], "end": 0.0}
    close = None
    try:
        _bootstrap_django(debug_cursor=cfg["debug_cursor"])
        from django.db import connection

        from ledger import services
        from ledger.models import Account
        from members.models import Merchant

        close = connection.close
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        merchant = Merchant.objects.get(pk=cfg["merchant_id"])
        by_id = Account.objects.in_bulk(cfg["member_account_ids"])
        members = [by_id[i] for i in cfg["member_account_ids"]]
        cash = Account.objects.get(pk=cfg["cash_id"])
        n = len(members)
        hot = cfg["workload"] == "hot"
        rng = random.Random(f"{cfg['workload']}-{idx}")
        key_prefix = f"bench-{cfg['phase']}-{idx}-"
        ref = f"{cfg['phase']}-{idx}"

        def post(i: int) -> None:
            if hot:
                legs = [services.decrease(members[rng.randrange(n)], 1), services.decrease(cash, 1)]
            else:
                a, b = _pick_pair(rng, n)
                legs = [services.decrease(members[a], 1), services.increase(members[b], 1)]
            services.post_entry(
                merchant=merchant,
                legs=legs,
                operation_type="bench",
                operation_ref=ref,
                idempotency_key=f"{key_prefix}{i}",
                actor=None,
            )

        _timed_loop(post, result, idx, ready_q, start_event, start_at, deadline_at)
    except Exception:
        result["fatal"] = traceback.format_exc()
        ready_q.put(idx)
    _finish(result, result_q, done_event, close)


def _raw_worker(cfg: dict, idx: int, ready_q, start_event, start_at, deadline_at, result_q, done_event) -> None:
    """Pure psycopg; never imports Django. Mirrors what post_entry writes, row for row."""
    result = {"idx": idx, "latencies": [], "errors": 0, "error_samples": [], "end": 0.0}
    close = None
    try:
        import psycopg

        conn = psycopg.connect(
            **cfg["conninfo"], autocommit=False, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        )
        close = conn.close
        cur = conn.cursor()
        ids = cfg["member_account_ids"]
        n = len(ids)
        hot = cfg["workload"] == "hot"
        hot_id = cfg["hot_id"]
        merchant_id = cfg["merchant_id"]
        rng = random.Random(f"{cfg['workload']}-{idx}")
        key_prefix = f"bench-{cfg['phase']}-{idx}-"
        ref = f"{cfg['phase']}-{idx}"

        def post(i: int) -> None:
            # `src` loses 1 fen of principal (debit +1), `dst` gains it (credit -1); both credit-normal.
            if hot:
                src, dst = ids[rng.randrange(n)], hot_id
            else:
                a, b = _pick_pair(rng, n)
                src, dst = ids[a], ids[b]
            try:
                cur.execute(
                    "SELECT account_id, balance FROM ledger_accountbalance WHERE account_id IN (%s, %s)"
                    " ORDER BY account_id FOR UPDATE",
                    (min(src, dst), max(src, dst)),
                )
                balances = dict(cur.fetchall())
                new_src = balances[src] - 1
                new_dst = balances[dst] + 1
                if new_src < 0:
                    raise ValueError(f"account {src} would go negative")
                fingerprint = hashlib.sha256(f"bench|{ref}|{src}:1|{dst}:-1".encode()).hexdigest()
                cur.execute(
                    "INSERT INTO ledger_entry (merchant_id, idempotency_key, operation_type, operation_ref, actor_id,"
                    " actor_label, store_id, memo, posted_at, reverses_id, fingerprint)"
                    " VALUES (%s, %s, 'bench', %s, NULL, 'system', NULL, '', %s, NULL, %s) RETURNING id",
                    (merchant_id, f"{key_prefix}{i}", ref, posted_at := datetime.now(UTC), fingerprint),
                )
                entry_id = cur.fetchone()[0]
                cur.execute(
                    "INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)"
                    " VALUES (%s, %s, 'CNY', %s, %s, %s), (%s, %s, 'CNY', %s, %s, %s)",
                    (
                        entry_id,
                        src,
                        -PRINCIPAL_SIGN,
                        new_src,
                        posted_at,
                        entry_id,
                        dst,
                        PRINCIPAL_SIGN,
                        new_dst,
                        posted_at,
                    ),
                )
                cur.execute(
                    "UPDATE ledger_accountbalance AS b SET balance = v.balance"
                    " FROM (VALUES (%s::bigint, %s::bigint), (%s::bigint, %s::bigint)) AS v(account_id, balance)"
                    " WHERE b.account_id = v.account_id",
                    (src, new_src, dst, new_dst),
                )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

        _timed_loop(post, result, idx, ready_q, start_event, start_at, deadline_at)
    except Exception:
        result["fatal"] = traceback.format_exc()
        ready_q.put(idx)
    _finish(result, result_q, done_event, close)


def _timed_loop(post, result: dict, idx: int, ready_q, start_event, start_at, deadline_at) -> None:
    """Warm up, signal ready, wait for the common start, then post until the deadline, recording each
    entry's latency (or its error) and the worker's CPU time."""
    for i in range(WARMUP_ENTRIES):
        post(-1 - i)
    ready_q.put(idx)
    _, deadline = _wait_for_start(start_event, start_at, deadline_at)
    cpu0 = time.process_time()
    latencies = result["latencies"]
    i = 0
    now = time.monotonic()
    while now < deadline:
        t0 = time.perf_counter()
        try:
            post(i)
        except Exception as exc:
            result["errors"] += 1
            if len(result["error_samples"]) < ERROR_SAMPLES:
                result["error_samples"].append(f"{type(exc).__name__}: {exc}")
        else:
            latencies.append(time.perf_counter() - t0)
        i += 1
        now = time.monotonic()
    result["end"] = now
    result["cpu_s"] = time.process_time() - cpu0


def _finish(result: dict, result_q, done_event, close) -> None:
    """Report, then keep the connection (and so its server process and that process's CPU account) until the
    parent has taken its end-of-run CPU snapshot."""
    result_q.put(result)
    done_event.wait(timeout=60)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _run_phase(name: str, cfg: dict, workers: int, seconds: float) -> dict:
    """Start the workers, release them together, collect their latencies. Always returns."""
    from django.db import connections

    connections.close_all()  # nothing inherited, nothing idle-in-transaction during the run
    ctx = mp.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    start_event, done_event = ctx.Event(), ctx.Event()
    start_at, deadline_at = ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    target = _raw_worker if name.startswith("raw") else _ledger_worker
    cfg = dict(cfg, phase=f"{name}-{cfg['run_tag']}")
    procs = [
        ctx.Process(
            target=target, args=(cfg, i, ready_q, start_event, start_at, deadline_at, result_q, done_event), daemon=True
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    setup_limit = time.monotonic() + 120
    ready = 0
    while ready < workers and time.monotonic() < setup_limit:
        try:
            ready_q.get(timeout=1)
            ready += 1
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
    start = time.monotonic() + 0.1
    deadline = start + seconds
    start_at.value, deadline_at.value = start, deadline
    start_event.set()
    time.sleep(max(0.0, start - time.monotonic()))
    snap0, snap1 = _cpu_snapshot(), None

    results = []
    others = 0
    collect_limit = deadline + 60
    while len(results) < workers and time.monotonic() < collect_limit:
        now = time.monotonic()
        if snap1 is None and now >= deadline:
            snap1 = _cpu_snapshot()
            done_event.set()
        try:
            results.append(result_q.get(timeout=min(1.0, deadline - now) if now < deadline else 1.0))
        except queue.Empty:
            if time.monotonic() < deadline - 0.5:
                others = max(others, _foreign_activity())
            if not any(p.is_alive() for p in procs) and result_q.empty():
                break
    if snap1 is None:
        snap1 = _cpu_snapshot()
    done_event.set()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)

    latencies = sorted(lat for r in results for lat in r["latencies"])
    errors = sum(r["errors"] for r in results)
    samples = [s for r in results for s in r["error_samples"]][:ERROR_SAMPLES]
    fatal = [r["fatal"] for r in results if "fatal" in r]
    missing = workers - len(results)
    elapsed = max((r["end"] for r in results if r["end"]), default=start + seconds) - start
    return {
        "name": name,
        "entries": len(latencies),
        "errors": errors,
        "error_samples": samples,
        "fatal": fatal,
        "missing_workers": missing,
        "elapsed_s": elapsed,
        "entries_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "foreign_active": others,
        **_cpu_shares(snap0, snap1, sum(r.get("cpu_s", 0.0) for r in results)),
    }


def _cpu_snapshot() -> dict | None:
    """Machine-wide CPU ticks (/proc/stat) and the ticks of each postgres process, with a timestamp. Linux only."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]  # user nice system irq softirq
        steal = fields[7] if len(fields) > 7 else 0
        pg: dict[str, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if comm == "postgres":
                pg[entry.name] = int(rest[11]) + int(rest[12])  # utime stime
        return {"t": time.monotonic(), "busy": busy, "steal": steal, "pg": pg}
    except Exception:
        return None


def _cpu_shares(snap0: dict | None, snap1: dict | None, workers_cpu_s: float) -> dict:
    """How the machine's CPU was spent during the timed window, as shares of all cores: benchmark workers,
    PostgreSQL (every postgres process), everything else ("foreign": other people's work), and steal."""
    if not snap0 or not snap1 or snap1["t"] <= snap0["t"]:
        return {"cpu_workers": None, "cpu_postgres": None, "cpu_foreign": None, "cpu_steal": None}
    hz = os.sysconf("SC_CLK_TCK")
    capacity = (snap1["t"] - snap0["t"]) * (os.cpu_count() or 1)
    busy = (snap1["busy"] - snap0["busy"]) / hz
    # Per process: one that started during the window counts whole; one that exited during it is lost (to "other").
    pg = sum(ticks - snap0["pg"].get(pid, 0) for pid, ticks in snap1["pg"].items()) / hz
    return {
        "cpu_workers": workers_cpu_s / capacity,
        "cpu_postgres": pg / capacity,
        "cpu_foreign": max(0.0, busy - pg - workers_cpu_s) / capacity,
        "cpu_steal": (snap1["steal"] - snap0["steal"]) / hz / capacity,
    }


def _foreign_activity() -> int:
    """Busy sessions of other databases on the server (other people's work skews the figures)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " AND state <> 'idle' AND datname IS DISTINCT FROM current_database()"
            )
            return cursor.fetchone()[0]
    except Exception:
        return 0


# ---------------------------------------------------------------- setup and bulk


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _setup(args) -> dict:
    from django.db import transaction

    from ledger import services
    from members.models import Merchant, Owner

    run_tag = str(int(time.time() * 1000))
    merchant = Merchant.objects.create(code=f"bench-{run_tag}", name=f"Ledger benchmark {run_tag}")
    n_owners = max(args.accounts, args.bulk_legs) + 1  # the last one holds the raw baseline's hot account
    t0 = time.perf_counter()
    with transaction.atomic():
        Owner.objects.bulk_create(
            [
                Owner(merchant=merchant, member_number=f"B{i:08d}", name=f"bench {i}", mobile=f"139{i:08d}")
                for i in range(n_owners)
            ],
            batch_size=2000,
        )
    owner_ids = list(Owner.objects.filter(merchant=merchant).order_by("member_number").values_list("pk", flat=True))
    member_ids, hot_owner_id = owner_ids[: args.accounts], owner_ids[-1]
    principals = services.get_or_create_member_accounts(merchant, "principal", "CNY", member_ids + [hot_owner_id])
    hot = principals.pop(hot_owner_id)
    member_accounts = [principals[m] for m in member_ids]
    assert hot.normal_sign == PRINCIPAL_SIGN and not hot.allow_negative
    cash = services.get_or_create_account(merchant, "cash", "CNY", detail="bench")
    assert cash.allow_negative  # the ledger never locks it: the design point of ledger_hot
    _log(f"setup: merchant {merchant.code}, {n_owners} owners, accounts in {time.perf_counter() - t0:.1f}s")

    funded = [*member_accounts, hot]
    t0 = time.perf_counter()
    # Entries of FUND_CHUNK members: one 10,000-leg entry would leave every leg with the same entry_id,
    # statistics saying an entry has 10,000 legs, and the per-entry trigger's cached generic plan
    # scanning the whole leg table on each commit of the first run (which is the raw baseline's).
    for start in range(0, len(funded), FUND_CHUNK):
        chunk = funded[start : start + FUND_CHUNK]
        services.post_entry(
            merchant=merchant,
            legs=[services.increase(a, FUND_PER_MEMBER) for a in chunk]
            + [services.increase(cash, FUND_PER_MEMBER * len(chunk))],
            operation_type="bench_fund",
            operation_ref=run_tag,
            idempotency_key=f"bench-fund-{run_tag}-{start}",
            actor=None,
        )
    fund_s = time.perf_counter() - t0
    fund_entries = math.ceil(len(funded) / FUND_CHUNK)
    _log(f"setup: funded {len(funded)} principal accounts in {fund_entries} entries in {fund_s:.2f}s")
    return {
        "merchant": merchant,
        "run_tag": run_tag,
        "owner_ids": owner_ids,
        "member_account_ids": [a.pk for a in member_accounts],
        "hot_id": hot.pk,
        "cash_id": cash.pk,
        "fund_entries": fund_entries,
        "fund_accounts": len(funded),
        "fund_s": fund_s,
    }


def _bulk(merchant, owner_ids: list[int], n_legs: int, run_tag: str) -> dict:
    from ledger import services

    points = services.get_or_create_member_accounts(merchant, "points", "POINT", owner_ids[:n_legs])
    issuance = services.get_or_create_account(merchant, "issuance", "POINT")
    accounts = [points[m] for m in owner_ids[:n_legs]]
    rates, times, errors = [], [], []
    for rep in range(3):
        legs = [services.increase(a, 10) for a in accounts] + [services.increase(issuance, 10 * len(accounts))]
        t0 = time.perf_counter()
        try:
            services.post_entry(  # autocommit mode: post_entry's own atomic block commits before it returns
                merchant=merchant,
                legs=legs,
                operation_type="bench_issue",
                operation_ref=run_tag,
                idempotency_key=f"bench-issue-{run_tag}-{rep}",
                actor=None,
            )
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        rates.append(len(legs) / elapsed)
    return {
        "legs": len(accounts) + 1,
        "times_s": times,
        "best": max(rates, default=0.0),
        "median": statistics.median(rates) if rates else 0.0,
        "errors": errors,
    }


def _maintenance() -> None:
    """Same starting conditions for every run: fresh statistics, no dead tuples, no checkpoint mid-run."""
    from django.db import connection

    with connection.cursor() as cursor:
        # Every table the writes or the per-entry trigger read: fresh fixture rows must not meet stale plans.
        cursor.execute("VACUUM ANALYZE ledger_account, ledger_accountbalance, ledger_entry, ledger_leg")
        with contextlib.suppress(Exception):  # CHECKPOINT needs superuser / pg_checkpoint; only a noise reducer
            cursor.execute("CHECKPOINT")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run (default 10)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes per run (default 4)")
    parser.add_argument("--accounts", type=int, default=10_000, help="member principal accounts (default 10000)")
    parser.add_argument("--bulk-legs", type=int, default=10_000, help="member legs in the bulk entry (default 10000)")
    parser.add_argument("--debug-cursor", action="store_true", help="keep DEBUG's query-logging cursor in workers")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.workers < 1 or args.accounts < 2 or args.bulk_legs < 1:
        parser.error("need --seconds > 0, --workers >= 1, --accounts >= 2, --bulk-legs >= 1")

    _bootstrap_django(debug_cursor=args.debug_cursor)
    from django.db import connection

    if connection.vendor != "postgresql":
        print(
            f"refusing to run: the database of DATABASE_URL is {connection.vendor}, not PostgreSQL (the goals are "
            "PostgreSQL figures); e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/ledger_bench",
            file=sys.stderr,
        )
        return 2
    from ledger import selectors

    s = connection.settings_dict
    conninfo = {
        key: value
        for key, value in {
            "dbname": s["NAME"],
            "user": s["USER"],
            "password": s["PASSWORD"],
            "host": s["HOST"],
            "port": s["PORT"],
        }.items()
        if value
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('synchronous_commit'), current_setting('fsync')")
        version, sync_commit, fsync = cursor.fetchone()
    server = f"{version.split(' on ')[0]} (synchronous_commit={sync_commit}, fsync={fsync})"

    fixture = _setup(args)
    merchant = fixture["merchant"]
    cfg = {
        "run_tag": fixture["run_tag"],
        "merchant_id": merchant.pk,
        "member_account_ids": fixture["member_account_ids"],
        "hot_id": fixture["hot_id"],
        "cash_id": fixture["cash_id"],
        "conninfo": conninfo,
        "debug_cursor": args.debug_cursor,
    }
    runs: dict[str, dict] = {}
    # Unreported priming: the fixture's legs went in account order, so the leg index's pages are full and
    # the first random entries split nearly every one. Whichever run came first paid for that (a third
    # of its rate on a fresh database, measured both ways round).
    _maintenance()
    prime_s = min(args.seconds, PRIME_SECONDS)
    _log(f"prime: {args.workers} workers x {prime_s:g}s of raw transfers (not reported) ...")
    prime = _run_phase("raw_prime", dict(cfg, workload="many"), args.workers, prime_s)
    _log(f"prime: {prime['entries_per_s']:.0f} entries/s")
    # Raw first for each workload: the ledger run then faces the slightly larger tables.
    for name in ("raw_many", "ledger_many", "raw_hot", "ledger_hot"):
        _maintenance()
        _log(f"run {name}: {args.workers} workers x {args.seconds:g}s ...")
        runs[name] = _run_phase(name, dict(cfg, workload=name.split("_")[1]), args.workers, args.seconds)

    _maintenance()
    _log(f"bulk: 3 x post_entry of {args.bulk_legs + 1} legs ...")
    bulk = _bulk(merchant, fixture["owner_ids"], args.bulk_legs, fixture["run_tag"])
    report = selectors.reconcile(merchant)

    many_ratio = (
        runs["ledger_many"]["entries_per_s"] / runs["raw_many"]["entries_per_s"]
        if runs["raw_many"]["entries_per_s"]
        else 0.0
    )
    hot_ratio = (
        runs["ledger_hot"]["entries_per_s"] / runs["raw_hot"]["entries_per_s"]
        if runs["raw_hot"]["entries_per_s"]
        else 0.0
    )

    print(f"ledger throughput: {server}, {os.cpu_count()} CPUs, merchant {merchant.code}")
    print(
        f"workers={args.workers} seconds={args.seconds:g} member_accounts={args.accounts} "
        f"warm-up={WARMUP_ENTRIES} entries/worker (untimed) debug_cursor={args.debug_cursor}"
    )
    print(
        f"setup: funded {fixture['fund_accounts']} accounts in {fixture['fund_entries']} entries via post_entry"
        f" in {fixture['fund_s']:.2f}s"
    )
    print()
    print(
        f"{'run':<12} {'entries/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'entries':>8} {'errors':>6}"
        f" {'cpu:wrk':>7} {'pg':>4} {'other':>5} {'steal':>5} {'pgsess':>6}"
    )
    for name, r in runs.items():
        cpu = " ".join(
            f"{r[k]:>{w}.0%}" if r[k] is not None else f"{'?':>{w}}"
            for k, w in (("cpu_workers", 7), ("cpu_postgres", 4), ("cpu_foreign", 5), ("cpu_steal", 5))
        )
        print(
            f"{name:<12} {r['entries_per_s']:>10.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['entries']:>8} {r['errors']:>6} {cpu} {r['foreign_active']:>6}"
        )
        for sample in r["error_samples"]:
            print(f"{'':<12} error: {sample}")
        for fatal in r["fatal"]:
            print(f"{'':<12} worker failed:\n{fatal}")
        if r["missing_workers"]:
            print(f"{'':<12} {r['missing_workers']} worker(s) never reported (terminated)")
    print()
    for name, what in RUNS.items():
        print(f"{name:<12} {what}")
    print()
    for note in NOTES:
        print(f"note: {note}")
    print()
    print(f"many_accounts_ratio = ledger_many / raw_many = {many_ratio:.3f}")
    print(
        f"hot_account_ratio   = ledger_hot / raw_hot   = {hot_ratio:.3f}"
        "  (raw locks+updates a hot bounded row; the ledger leaves its unbounded cash account unlocked)"
    )
    print(
        f"bulk: one post_entry of {bulk['legs']} legs ({args.bulk_legs} member points accounts + 1 issuance), "
        f"3 runs: {', '.join(f'{t:.3f}s' for t in bulk['times_s'])}; "
        f"best {bulk['best']:.0f} legs/s, median {bulk['median']:.0f} legs/s"
    )
    for error in bulk["errors"]:
        print(f"  bulk error: {error}")
    print(
        f"reconcile: {'clean' if report.clean else 'NOT CLEAN'}, {len(report.problems)} problem(s), "
        f"{report.accounts_checked} accounts, {report.entries_checked} entries checked"
    )
    for problem in report.problems[:10]:
        print(f"  {problem}")
    failed = {name: r["errors"] for name, r in runs.items()} | {"bulk": len(bulk["errors"])}
    print(f"failed entries per run: {failed}")

    summary = {
        "many_accounts_ratio": round(many_ratio, 4),
        "hot_account_ratio": round(hot_ratio, 4),
        "bulk_legs_per_s": round(bulk["best"], 1),
        "bulk_legs_per_s_median": round(bulk["median"], 1),
        "bulk_legs": bulk["legs"],
        "bulk_errors": len(bulk["errors"]),
        "workers": args.workers,
        "seconds": args.seconds,
        "accounts": args.accounts,
        "debug_cursor": args.debug_cursor,
        "reconcile_clean": report.clean,
        "reconcile_problems": len(report.problems),
    }
    for name, r in runs.items():
        summary[f"{name}_entries_per_s"] = round(r["entries_per_s"], 1)
        summary[f"{name}_p50_ms"] = round(r["p50_ms"], 3)
        summary[f"{name}_p99_ms"] = round(r["p99_ms"], 3)
        summary[f"{name}_entries"] = r["entries"]
        summary[f"{name}_errors"] = r["errors"]
        summary[f"{name}_other_db_sessions"] = r["foreign_active"]
        for key in ("cpu_workers", "cpu_postgres", "cpu_foreign", "cpu_steal"):
            summary[f"{name}_{key}"] = None if r[key] is None else round(r[key], 3)
    print(json.dumps(summary, sort_keys=True))
    broken = any(r["fatal"] or r["missing_workers"] for r in runs.values()) or bool(bulk["errors"])
    return 1 if broken or not report.clean else 0


if __name__ == "__main__":
    sys.exit(main())
