"""Ledger claims that only a real database with real concurrent transactions can show."""

import datetime
import random
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connection, transaction

from ledger import selectors, services
from ledger.errors import InsufficientBalance
from ledger.models import Entry, Leg
from tests.factories import MerchantFactory, make_owner
from tests.ledger_helpers import cash_account, fund, principal_account, spend, transfer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_threads(count: int, target) -> list[BaseException]:
    """Start `count` threads at once on a barrier; each gets its own connection, closed at the end."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # collected and asserted by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    close_old_connections()
    return errors


def race_outcomes(count: int, action) -> dict[int, object]:
    """Run `action(i)` in `count` threads at once (run_threads): each thread's result, or the ValidationError
    (domain errors included) it raised, by thread number. Any other exception fails the caller's test."""
    outcome: dict[int, object] = {}
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            result = action(i)
        except ValidationError as exc:
            result = exc
        with lock:
            outcome[i] = result

    assert run_threads(count, worker) == []
    return outcome


def test_sixteen_threads_spending_three_hundred_units():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    fund(principal, 300)
    outcomes = {"ok": 0, "insufficient": 0}
    lock = threading.Lock()

    def spender(i: int) -> None:
        for n in range(50):
            try:
                spend(principal, 1, idempotency_key=f"spend-{i}-{n}")
                result = "ok"
            except InsufficientBalance:
                result = "insufficient"
            with lock:
                outcomes[result] += 1

    assert run_threads(16, spender) == []
    assert outcomes == {"ok": 300, "insufficient": 16 * 50 - 300}
    assert selectors.balance(principal) == 0
    assert Leg.objects.filter(account=principal, amount__gt=0).count() == 300
    assert selectors.reconcile(merchant).clean


def test_random_transfers_both_ways_finish_without_deadlock_and_reconcile():
    merchant = MerchantFactory()
    accounts = [principal_account(make_owner(merchant)) for _ in range(5)]
    for acc in accounts:
        fund(acc, 1_000)
    done = []

    def mover(i: int) -> None:
        rng = random.Random(i)
        for n in range(60):
            source, target = rng.sample(accounts, 2)
            try:
                # Two-account transfers and four-account entries in both directions.
                if n % 3:
                    transfer(source, target, rng.randint(1, 50), idempotency_key=f"t-{i}-{n}")
                else:
                    a, b, c, d = rng.sample(accounts, 4)
                    services.post_entry(
                        merchant=merchant,
                        legs=[services.decrease(a, 5), services.decrease(b, 5),
                              services.increase(c, 5), services.increase(d, 5)],
                        operation_type="test.multi", operation_ref="m", idempotency_key=f"m-{i}-{n}", actor=None,
                    )  # fmt: skip
                done.append(1)
            except InsufficientBalance:
                pass

    assert run_threads(8, mover) == []  # a deadlock would surface as a DatabaseError here
    assert len(done) > 0
    assert sum(selectors.balance(a) for a in accounts) == 5_000
    report = selectors.reconcile(merchant)
    assert report.clean, report.problems


def test_same_idempotency_key_from_eight_threads_yields_one_entry():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    fund(principal, 1_000)
    ids = []

    def poster(i: int) -> None:
        ids.append(spend(principal, 100, idempotency_key="checkout-42").pk)

    assert run_threads(8, poster) == []
    assert len(set(ids)) == 1 and len(ids) == 8
    assert Entry.objects.filter(idempotency_key="checkout-42").count() == 1
    assert selectors.balance(principal) == 900


def test_concurrent_account_creation_yields_one_account():
    merchant = MerchantFactory()
    member = make_owner(merchant)
    ids = []

    def creator(i: int) -> None:
        ids.append(services.get_or_create_account(merchant, "bonus", "CNY", member=member).pk)

    assert run_threads(8, creator) == []
    assert len(set(ids)) == 1


def test_concurrent_partial_reversals_never_exceed_the_entry():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    revenue = services.get_or_create_account(merchant, "revenue", "CNY")
    fund(principal, 1_000)
    entry = spend(principal, 100, revenue=revenue)
    succeeded = []

    def reverser(i: int) -> None:
        try:
            services.reverse_entry(entry, idempotency_key=f"r-{i}", actor=None, amounts={principal: 30, revenue: -30})
            succeeded.append(i)
        except services.ReversalError:
            pass

    assert run_threads(8, reverser) == []
    assert len(succeeded) == 3  # 3 × 30 ≤ 100 < 4 × 30
    assert selectors.balance(principal) == 990


def test_trigger_refuses_raw_update_and_delete_of_legs_and_entries():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    entry = fund(principal, 100)
    for sql in (
        "UPDATE ledger_leg SET amount = amount + 1 WHERE entry_id = %s",
        "DELETE FROM ledger_leg WHERE entry_id = %s",
        "UPDATE ledger_entry SET memo = 'x' WHERE id = %s",
        "DELETE FROM ledger_entry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="immutable"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    assert selectors.balance(principal) == 100


def test_trigger_refuses_unbalanced_raw_insert_at_commit():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    cash = cash_account(merchant)
    entry = fund(principal, 100)
    # An extra leg smuggled into a posted entry.
    with pytest.raises(DatabaseError, match="does not balance"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)"
            " VALUES (%s, %s, 'CNY', 5, NULL, %s)",
            [entry.pk, cash.pk, entry.posted_at],
        )
    # A whole unbalanced entry written by hand.
    with pytest.raises(DatabaseError, match="does not balance"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_entry (merchant_id, idempotency_key, operation_type, operation_ref, actor_label,"
            " memo, posted_at, fingerprint) VALUES (%s, 'raw', 'raw', 'raw', 'x', '', now(), 'x') RETURNING id",
            [merchant.pk],
        )
        raw_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO ledger_leg (entry_id, account_id, unit, amount, posted_at)"
            " SELECT %s, %s, 'CNY', 7, posted_at FROM ledger_entry WHERE id = %s"
            " UNION ALL SELECT %s, %s, 'CNY', -6, posted_at FROM ledger_entry WHERE id = %s",
            [raw_id, cash.pk, raw_id, raw_id, principal.pk, raw_id],
        )
    assert not Entry.objects.filter(idempotency_key="raw").exists()
    assert Leg.objects.filter(entry=entry).count() == 2


def test_trigger_refuses_legs_on_a_missing_foreign_or_wrong_unit_account_and_a_missing_entry():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    cash = cash_account(merchant)
    foreign = cash_account(MerchantFactory())
    points = services.get_or_create_account(merchant, "issuance", "POINT")
    entry = fund(principal, 100)
    leg_sql = (
        "INSERT INTO ledger_leg (entry_id, account_id, unit, amount, posted_at)"
        " VALUES (%s, %s, %s, 5, %s), (%s, %s, 'CNY', -5, %s)"
    )
    other_time = entry.posted_at - datetime.timedelta(days=40)
    for account_id, unit, posted_at, message in (
        (987654321, "CNY", entry.posted_at, "which does not exist"),
        (foreign.pk, "CNY", entry.posted_at, "of another merchant"),
        (points.pk, "CNY", entry.posted_at, "is in CNY but account"),
        # A leg dated otherwise than its entry would put it in another period of the account's statement.
        (cash.pk, "CNY", other_time, "is dated"),
    ):
        # Balanced pairs: only the per-entry leg check can refuse them.
        with pytest.raises(DatabaseError, match=message), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(leg_sql, [entry.pk, account_id, unit, posted_at, entry.pk, cash.pk, entry.posted_at])
    missing_entry = pytest.raises(DatabaseError, match="entry 987654321, which does not exist")
    with missing_entry, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(leg_sql, [987654321, cash.pk, "CNY", entry.posted_at, 987654321, cash.pk, entry.posted_at])
    assert Leg.objects.filter(entry=entry).count() == 2
    assert selectors.reconcile().clean


def test_trigger_refuses_raw_update_and_delete_of_accounts():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    fund(principal, 100)
    for sql in ("UPDATE ledger_account SET unit = 'POINT' WHERE id = %s", "DELETE FROM ledger_account WHERE id = %s"):
        with pytest.raises(DatabaseError, match="immutable"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [principal.pk])
    assert selectors.balance(principal) == 100


def test_database_check_keeps_cached_balance_non_negative():
    merchant = MerchantFactory()
    principal = principal_account(make_owner(merchant))
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_accountbalance SET balance = -1 WHERE account_id = %s", [principal.pk])


def test_bulk_issuance_entry_commits_through_the_trigger():
    merchant = MerchantFactory()
    members = [make_owner(merchant) for _ in range(30)]
    accounts = services.get_or_create_member_accounts(merchant, "points", "POINT", [m.pk for m in members])
    issuance = services.get_or_create_account(merchant, "issuance", "POINT")
    legs = [services.increase(acc, 10) for acc in accounts.values()] + [services.increase(issuance, 300)]
    services.post_entry(merchant=merchant, legs=legs, operation_type="points.issue", operation_ref="batch-1",
                        idempotency_key="batch-1", actor=None)  # fmt: skip
    assert all(selectors.balance(acc) == 10 for acc in accounts.values())
    assert selectors.balance(issuance) == 300
    assert selectors.reconcile(merchant).clean


def test_small_entries_are_one_prepared_function_call():
    """post_entry's speed rests on one prepared call of ledger_post_entry() per small entry (Django
    disables preparation by default, so a silent regression would only show in the benchmark)."""
    merchant = MerchantFactory()
    a, b = principal_account(make_owner(merchant)), principal_account(make_owner(merchant))
    fund(a, 100)
    for _ in range(3):
        transfer(a, b, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert [s for s in statements if "ledger" in s] == [
        s for s in statements if s.startswith("SELECT ledger_post_entry(")
    ], statements
    assert any(s.startswith("SELECT ledger_post_entry(") for s in statements), statements


def test_function_and_python_paths_write_the_same_legs(monkeypatch):
    """ledger_post_entry() (small entries) and the Python write path (bulk entries, SQLite) must agree
    row for row, including each bounded account's running balance when an account appears twice."""
    merchant = MerchantFactory()
    member = make_owner(merchant)
    principal, bonus = (
        principal_account(member),
        services.get_or_create_account(merchant, "bonus", "CNY", member=member),
    )
    cash, revenue = cash_account(merchant), services.get_or_create_account(merchant, "revenue", "CNY")
    fund(principal, 500)
    fund(bonus, 300)

    def post(tag: str):
        return services.post_entry(
            merchant=merchant,
            legs=[services.decrease(principal, 70), services.decrease(bonus, 20), services.decrease(principal, 10),
                  services.increase(revenue, 100), services.increase(cash, 5), services.decrease(cash, 5)],
            operation_type="test.mixed", operation_ref=tag, idempotency_key=tag, actor=None,
        )  # fmt: skip

    def rows(entry):
        return [(leg.account_id, leg.unit, leg.amount, leg.balance_after) for leg in entry.legs.order_by("id")]

    through_function = post("fn")
    monkeypatch.setattr(services, "_FUNCTION_MAX_LEGS", 0)
    through_python = post("py")
    assert rows(through_function) == [
        (principal.pk, "CNY", 70, 430), (bonus.pk, "CNY", 20, 280), (principal.pk, "CNY", 10, 420),
        (revenue.pk, "CNY", -100, None), (cash.pk, "CNY", 5, None), (cash.pk, "CNY", -5, None),
    ]  # fmt: skip
    assert rows(through_python) == [
        (principal.pk, "CNY", 70, 350), (bonus.pk, "CNY", 20, 260), (principal.pk, "CNY", 10, 340),
        (revenue.pk, "CNY", -100, None), (cash.pk, "CNY", 5, None), (cash.pk, "CNY", -5, None),
    ]  # fmt: skip
    assert (selectors.balance(principal), selectors.balance(bonus)) == (340, 260)
    # Both answer a retry with the first entry and refuse an overdraft the same way.
    assert post("py").pk == through_python.pk
    monkeypatch.setattr(services, "_FUNCTION_MAX_LEGS", 64)
    assert post("fn").pk == through_function.pk
    with pytest.raises(InsufficientBalance) as refused:
        spend(principal, 341)
    assert (refused.value.balance, refused.value.change) == (340, -341)
    # The function's refusal comes out as the coded error, in yuan: ¥3.40 left, ¥3.41 needed.
    assert refused.value.code == "insufficient_balance" and "¥3.40" in refused.value.message_text
    assert selectors.reconcile(merchant).clean


def test_top_level_post_rolls_back_whole_and_raises_django_errors():
    """Outside any transaction post_entry runs its own BEGIN ... COMMIT on Django's connection: a failure
    at commit (here the actor's foreign key, checked deferred) must undo the balance change, come out as
    Django's IntegrityError and leave the connection usable."""
    from django.contrib.auth import get_user_model
    from django.db import IntegrityError

    merchant = MerchantFactory()
    a, b = principal_account(make_owner(merchant)), principal_account(make_owner(merchant))
    fund(a, 100)
    ghost = get_user_model()(pk=987654321, username="ghost")
    assert not connection.in_atomic_block
    with pytest.raises(IntegrityError):
        services.post_entry(merchant=merchant, legs=[services.decrease(a, 40), services.increase(b, 40)],
                            operation_type="test.transfer", operation_ref="ghost", idempotency_key="ghost",
                            actor=ghost)  # fmt: skip
    assert (selectors.balance(a), selectors.balance(b)) == (100, 0)
    assert connection.get_autocommit()
    transfer(a, b, 40)
    assert (selectors.balance(a), selectors.balance(b)) == (60, 40)
    assert selectors.reconcile(merchant).clean
