from pathlib import Path

import pytest
from django.db import connection


def pytest_configure(config):
    """Build the translation catalog's .mo when it is missing or older than the .po, so tests see the
    committed translations however they are started (make test compiles it too)."""
    from core.catalog import compile_catalogs

    compile_catalogs(Path(__file__).resolve().parent.parent, only_stale=True)


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
    """Business numbers use a connection of their own on PostgreSQL (members.numbering): close it before
    the test database is dropped."""
    yield
    from members import numbering

    numbering.close_connection()
