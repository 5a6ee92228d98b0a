"""The approval task pages and the approve path on PostgreSQL with many open tasks (issue 12, Performance).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/task_queue.py \
        --tasks 100000 --stores 20 --repeat 50 --approvals 30

Fixture (benchmark data, not product code), in a fresh merchant (code tq-<milliseconds>) so runs never
collide: --stores stores plus one store without tasks, an operator of every store (the requester), the store
manager (approver) of store 0 and the manager of the empty store, --members owners bulk-created, and --tasks
open refund requests spread evenly over the stores, each with its viewflow process and its open "store
manager review" task, bulk-inserted as flows.services.start_refund_request leaves them (request row, process
whose artifact is the request, HUMAN task offered by `members.approve_store` on the request's store); 1 in 50
of store 0's tasks is claimed by its manager (the inbox). Then --approvals real refund requests of store 0
through flows.services (one consumption line each, paid in cash), and as many bare consumption lines for the
floor of the approve path.

Timed through the real views (Django's test client: URL resolution, middleware, session, the page's
selectors and template), each --repeat times after 3 untimed warm-ups:

  inbox          GET /tasks/ as store 0's manager (tasks they claimed)
  queue          GET /tasks/queue/ as store 0's manager (store 0's open tasks: --tasks / --stores of them)
  floor_page     GET /tasks/queue/ as the manager of the store without tasks: the same view, selectors and
                 template over an empty queue, measured in the same run (the floor of the task pages)
  claim          POST /tasks/<pk>/claim/ of a real request of store 0
  approve        POST /tasks/<pk>/decide/ (approve) of that claimed task: flows.services.approve under the
                 request's locks, then the refund carried out (Celery eager, after the commit), redirect
  refund_floor   wallet.services.refund_consumption_lines of one line like those the approvals refund: the
                 bare wallet operation the approve path ends in (its floor), measured in the same run

Queries per page: every statement of one request of each page (a connection.execute_wrapper), session and user
lookups included; the pages' tests assert they do not grow with the tasks. The last line
of stdout is one JSON object: tasks, stores, <page>_p50_ms / <page>_p95_ms for inbox, queue, floor_page,
claim, approve and refund_floor, queries_per_page (the larger of inbox and queue), inbox_queries,
queue_queries, floor_page_queries, queue_ratio (queue p95 / floor p95) and approve_ratio (approve p50 /
refund_floor p50). The issue's goal: p95 under 150 ms at 100,000 tasks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from ledger_throughput import _bootstrap_django, _log, _percentile  # noqa: E402

BATCH = 5_000
WARMUP = 3
INBOX_SHARE = 50  # 1 in 50 of store 0's tasks is claimed by its manager


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return round(_percentile(ordered, 0.5) * 1000, 2), round(_percentile(ordered, 0.95) * 1000, 2)


def _fixture(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction
    from django.utils import timezone
    from viewflow.workflow.models import Process, Task
    from viewflow.workflow.status import STATUS

    from flows.flows import RefundFlow
    from flows.models import RefundProcess, RefundRequest, State
    from members import roles
    from members import services as member_services
    from members.models import Merchant, Owner, Store
    from wallet.models import PaymentMethod, ServiceCategory, WalletSettings

    tag = str(int(time.time() * 1000))
    merchant = Merchant.objects.create(code=f"tq-{tag}", name=f"Task queue benchmark {tag}")
    WalletSettings.objects.create(merchant=merchant)
    stores = [Store.objects.create(merchant=merchant, code=f"s{i:02d}", name=f"门店{i:02d}")
              for i in range(args.stores + 1)]  # fmt: skip
    empty_store = stores.pop()

    def staff(username: str, role: str, on: list) -> object:
        return member_services.create_staff(merchant=merchant, username=f"{username}-{tag}", name=username,
                                            role=role, stores=on, actor=None, password="bench-pass-2026").user  # fmt: skip

    operator = staff("operator", roles.OPERATOR, stores)
    manager = staff("manager", roles.APPROVER, [stores[0]])
    empty_manager = staff("manager-empty", roles.APPROVER, [empty_store])
    Owner.objects.bulk_create(
        [Owner(merchant=merchant, member_number=f"TQ{i:08d}", name=f"会员{i}", mobile=f"137{i:08d}")
         for i in range(args.members)],
        batch_size=BATCH,
    )  # fmt: skip
    member_ids = list(Owner.objects.filter(merchant=merchant).order_by("pk").values_list("pk", flat=True))
    ServiceCategory.objects.create(merchant=merchant, name="服务")

    request_type = ContentType.objects.get_for_model(RefundRequest)
    store_type = ContentType.objects.get_for_model(Store)
    flow_task = RefundFlow.review
    now = timezone.now()
    t0 = time.perf_counter()
    made = 0
    while made < args.tasks:
        n = min(BATCH, args.tasks - made)
        with transaction.atomic():
            requests = RefundRequest.objects.bulk_create([
                RefundRequest(
                    merchant=merchant, store=stores[(made + i) % len(stores)], number=f"tksqB{made + i:09d}",
                    state=State.SUBMITTED, requested_by=operator, requested_at=now, reason="benchmark",
                    kind=RefundRequest.Kind.STORED_VALUE, member_id=member_ids[(made + i) % len(member_ids)],
                    payment_method=PaymentMethod.CASH, amount_fen=10_000,
                )
                for i in range(n)
            ])  # fmt: skip
            processes = RefundProcess.objects.bulk_create([
                RefundProcess(flow_class=RefundFlow, status="NEW", created=now, artifact_content_type=request_type,
                              artifact_object_id=request.pk)
                for request in requests
            ])  # fmt: skip
            tasks = []
            for i, (request, process) in enumerate(zip(requests, processes, strict=True)):
                claimed = request.store_id == stores[0].pk and (made + i) % (len(stores) * INBOX_SHARE) == 0
                tasks.append(Task(
                    process=process, flow_task=flow_task, flow_task_type="HUMAN", created=now,
                    status=STATUS.ASSIGNED if claimed else STATUS.NEW, owner=manager if claimed else None,
                    assigned=now if claimed else None, owner_permission="members.approve_store",
                    owner_permission_content_type=store_type, owner_permission_obj_pk=str(request.store_id),
                ))  # fmt: skip
            Task.objects.bulk_create(tasks)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {RefundRequest._meta.db_table} r SET process_id = p.id FROM {Process._meta.db_table} p "
                    "WHERE p.artifact_content_type_id = %s AND p.artifact_object_id = r.id AND r.merchant_id = %s "
                    "AND r.process_id IS NULL",
                    [request_type.pk, merchant.pk],
                )
        made += n
    _log(f"fixture: {made} open tasks over {len(stores)} stores in {time.perf_counter() - t0:.1f}s")
    with connection.cursor() as cursor:
        for model in (Task, Process, RefundRequest):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return {
        "merchant": merchant, "stores": stores, "operator": operator, "manager": manager,
        "empty_manager": empty_manager, "member_ids": member_ids, "User": get_user_model(),
    }  # fmt: skip


def _lines(fx: dict, count: int) -> list:
    """`count` consumption lines of store 0 (one per consumption, paid in cash, different members)."""
    from members.models import Owner
    from wallet import services as wallet
    from wallet.models import Service, ServiceCategory

    merchant, store = fx["merchant"], fx["stores"][0]
    service = Service.objects.create(merchant=merchant, category=ServiceCategory.objects.get(merchant=merchant),
                                     name=f"洁牙{len(fx.setdefault('used', []))}", list_price_fen=10_000,
                                     member_price_fen=10_000)  # fmt: skip
    lines = []
    for member in Owner.objects.filter(pk__in=fx["member_ids"][len(fx["used"]) : len(fx["used"]) + count]):
        fx["used"].append(member.pk)
        consumption = wallet.consume(member=member, store=store, actor=None, items=[
            wallet.ConsumptionItem(service=service, direct_fen=10_000, payment_method="cash")])  # fmt: skip
        lines.append(consumption.lines.get())
    return lines


def _time_gets(client, url: str, repeat: int) -> tuple[list[float], int]:
    from django.db import connection

    for _ in range(WARMUP):
        assert client.get(url).status_code == 200
    counted = [0]

    def count(execute, sql, params, many, context):
        counted[0] += 1
        return execute(sql, params, many, context)

    # Every statement the request runs (the session and user lookups included); Django's query log is reset
    # at the start of each request, so it is counted by a wrapper instead.
    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.status_code
    return times, counted[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--approvals", type=int, default=30)
    args = parser.parse_args()
    _bootstrap_django(debug_cursor=False)

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from viewflow.workflow.models import Task

    from flows import services as flow_services
    from wallet import services as wallet

    if connection.vendor != "postgresql":
        sys.exit("task_queue.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the approved refund is carried out in the same request
    from project.celery import app as celery_app

    celery_app.conf.task_always_eager = True

    fx = _fixture(args)
    manager, empty_manager = fx["manager"], fx["empty_manager"]
    client, empty_client = Client(), Client()
    client.force_login(manager)
    empty_client.force_login(empty_manager)
    results: dict[str, object] = {"tasks": args.tasks, "stores": args.stores}

    figures = {}
    inbox, results["inbox_queries"] = _time_gets(client, reverse("tasks:index"), args.repeat)
    queue, results["queue_queries"] = _time_gets(client, reverse("tasks:queue"), args.repeat)
    floor, results["floor_page_queries"] = _time_gets(empty_client, reverse("tasks:queue"), args.repeat)
    figures.update(inbox=inbox, queue=queue, floor_page=floor)

    # The approve path: real requests of store 0 (they join the fixture's thousands in the queue).
    requests = [
        flow_services.start_refund_request(member=line.consumption.member, store=fx["stores"][0], kind="lines",
                                           actor=fx["operator"], reason="benchmark", lines=[line])
        for line in _lines(fx, args.approvals + WARMUP)
    ]  # fmt: skip
    claims, approvals = [], []
    for i, request in enumerate(requests):
        task = Task.objects.get(process_id=request.process_id, flow_task_type="HUMAN", status="NEW")
        t0 = time.perf_counter()
        response = client.post(reverse("tasks:claim", kwargs={"pk": task.pk}))
        t1 = time.perf_counter()
        assert response.status_code == 302, response.status_code
        response = client.post(reverse("tasks:decide", kwargs={"pk": task.pk}), {"decision": "approve"})
        t2 = time.perf_counter()
        assert response.status_code == 302, response.status_code
        assert type(request).objects.get(pk=request.pk).state == "executed"
        if i >= WARMUP:
            claims.append(t1 - t0)
            approvals.append(t2 - t1)
    refunds = []
    for i, line in enumerate(_lines(fx, args.approvals + WARMUP)):
        t0 = time.perf_counter()
        wallet.refund_consumption_lines(member=line.consumption.member, lines=[line], reason="benchmark",
                                        actor=None, store=fx["stores"][0])  # fmt: skip
        if i >= WARMUP:
            refunds.append(time.perf_counter() - t0)
    figures.update(claim=claims, approve=approvals, refund_floor=refunds)

    print(f"{args.tasks:,} open tasks over {args.stores} stores ({args.tasks // args.stores:,} per store); "
          f"{args.repeat} requests per page, {args.approvals} approvals")  # fmt: skip
    print(f"{'':14} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9} {'queries':>8}")
    for name, values in figures.items():
        p50, p95 = _ms(values)
        results[f"{name}_p50_ms"], results[f"{name}_p95_ms"] = p50, p95
        queries = results.get(f"{name}_queries", "")
        print(f"{name:14} {p50:9.2f} {p95:9.2f} {statistics.mean(values) * 1000:9.2f} {queries!s:>8}")
    results["queries_per_page"] = max(results["inbox_queries"], results["queue_queries"])
    results["queue_ratio"] = round(results["queue_p95_ms"] / results["floor_page_p95_ms"], 2)
    results["approve_ratio"] = round(results["approve_p50_ms"] / results["refund_floor_p50_ms"], 2)
    print(f"queue p95 / floor page p95: {results['queue_ratio']}; approve p50 / bare refund p50: "
          f"{results['approve_ratio']}")  # fmt: skip
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
