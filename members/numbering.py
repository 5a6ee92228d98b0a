"""Business numbers (member numbers, cz…/xf…/tqy…/txj…/fw…): per merchant, per key, per day.

On PostgreSQL the counter row is bumped by a short autocommit statement on a connection of its own,
so an operation holds no lock on it while the rest of its transaction runs: concurrent operations of
one merchant no longer queue behind each other's commit for their numbers. The cost is that a
rolled-back operation leaves a gap in the day's numbers; numbers are never repeated. On SQLite every
writer already holds the database lock for its whole transaction (IMMEDIATE), and a second
connection would wait on it, so the counter stays in the caller's transaction there.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os
import threading
import weakref
from collections.abc import Iterator

from django.db import connection

from .models import DailySequence

_local = threading.local()
# Every thread's numbering connection still alive, so that close_connections() reaches those of threads
# that are gone (a test's live server): a thread-local alone is unreachable from other threads. Weak, so that
# a finished thread's connection is still closed when it is collected, as without this set.
_opened: weakref.WeakSet = weakref.WeakSet()
_opened_lock = threading.Lock()

# Set while a wallet operation runs as a dry run (wallet.quotes): its numbers are placeholders.
_previewing = contextvars.ContextVar("numbering_preview", default=False)


@contextlib.contextmanager
def preview() -> Iterator[None]:
    """Numbers taken inside are placeholders that never touch the counter: a dry run that is rolled back
    (a quote) would otherwise leave a gap in the day's numbers on PostgreSQL for every confirmation
    page shown."""
    token = _previewing.set(True)
    try:
        yield
    finally:
        _previewing.reset(token)


def previewing() -> bool:
    return _previewing.get()


def _upsert_sql() -> str:
    table = DailySequence._meta.db_table
    return (
        f"INSERT INTO {table} (merchant_id, key, day, last_value) VALUES (%s, %s, %s, 1) "
        f"ON CONFLICT (merchant_id, key, day) DO UPDATE SET last_value = {table}.last_value + 1 "
        "RETURNING last_value"
    )


def _own_connection():
    """This thread's autocommit connection to the same database as Django's default connection, made
    anew after a fork (gunicorn, Celery prefork) or when the database changed (tests)."""
    import psycopg

    params = connection.get_connection_params()
    key = (os.getpid(), params.get("dbname"), params.get("host"), params.get("port"))
    own = getattr(_local, "connection", None)
    if own is None or own.closed or getattr(_local, "key", None) != key:
        params.pop("cursor_factory", None)  # Django's cursor classes need Django's connection
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        own = psycopg.connect(**params, autocommit=True, prepare_threshold=None)
        _local.connection, _local.key = own, key
        with _opened_lock:
            _opened.add(own)
    return own


def _execute(sql: str, args: list) -> int:
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()[0]
    import psycopg

    try:
        return _own_connection().execute(sql, args).fetchone()[0]
    except psycopg.OperationalError:
        _local.connection = None  # a dropped connection (restart, idle timeout): connect again, once
        return _own_connection().execute(sql, args).fetchone()[0]


def next_value(merchant_id: int, key: str, day: datetime.date) -> int:
    """The next value of the merchant's daily counter `key`, race-free on both databases."""
    return _execute(_upsert_sql(), [merchant_id, key, day])


def set_counter(merchant_id: int, key: str, day: datetime.date, last_value: int) -> int:
    """Start a day's numbering after `last_value` (numbers carried over from an earlier system). Goes
    through the same connection as allocation: a row written in the caller's transaction would make
    the allocating connection wait for that transaction."""
    table = DailySequence._meta.db_table
    return _execute(
        f"INSERT INTO {table} (merchant_id, key, day, last_value) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (merchant_id, key, day) DO UPDATE SET last_value = EXCLUDED.last_value RETURNING last_value",
        [merchant_id, key, day, last_value],
    )


def close_connection() -> None:
    """Close this thread's numbering connection (test teardown drops the database it points at)."""
    own = getattr(_local, "connection", None)
    if own is not None and not own.closed:
        own.close()
    _local.connection = None


def close_connections() -> None:
    """Close every thread's numbering connection, this thread's included (before the test database is
    dropped: a live server thread's connection would otherwise keep it in use)."""
    close_connection()
    with _opened_lock:
        for own in list(_opened):
            if not own.closed:
                own.close()
        _opened.clear()
