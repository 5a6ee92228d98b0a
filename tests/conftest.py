from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.utils import translation


def pytest_configure(config):
    """Build the translation catalog's .mo when it is missing or older than the .po, so tests see the
    committed translations however they are started (make test compiles it too)."""
    from core.catalog import compile_catalogs

    if compile_catalogs(Path(__file__).resolve().parent.parent, only_stale=True):
        # pytest-django may have set Django up already, and a translation looked up then cached the catalog
        # as missing: forget it, so the first run on a fresh checkout sees the translations too.
        from django.utils.translation import trans_real

        trans_real._translations = {}
        trans_real._default = None
        trans_real._active = trans_real.Local()


@pytest.fixture(autouse=True)
def _english_unless_asked():
    """Tests run in English, the language of the msgids, unless they ask for Chinese (an Accept-Language
    header, translation.override): a test of behaviour reads messages as the code writes them, and
    tests/test_i18n.py checks that the product, which is Chinese first, shows Chinese everywhere."""
    with translation.override("en"):
        yield


@pytest.fixture
def client() -> Client:
    """Django's test client asking for English pages (LocaleMiddleware would otherwise serve zh-hans)."""
    return Client(HTTP_ACCEPT_LANGUAGE="en")


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need real row locks and triggers: skip them on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def _close_numbering_connection(django_db_setup, django_db_blocker):
    """Business numbers use a connection of their own per thread on PostgreSQL (members.numbering): close
    them all, the live server threads' included, before the test database is dropped."""
    yield
    from members import numbering

    numbering.close_connections()
    if connection.vendor == "postgresql":
        # A live server's request thread still running when its browser test ended (a chart's fetch) keeps
        # its own connection open: end such sessions, so the test database can be dropped.
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
