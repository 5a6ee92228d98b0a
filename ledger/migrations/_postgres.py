"""Helper for the ledger's PostgreSQL-only migrations (the loader skips modules starting with '_')."""

from django.db import migrations


def run_on_postgres(schema_editor, sql: str) -> None:
    """Run `sql` on PostgreSQL only, through a plain cursor: not schema_editor.execute, because the
    RAISE formats contain '%', which must not be read as query placeholders."""
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def postgres_sql(forward: str, backward: str) -> migrations.RunPython:
    """A migration operation running `forward` (and `backward` when unapplied) on PostgreSQL only."""
    return migrations.RunPython(
        lambda apps, schema_editor: run_on_postgres(schema_editor, forward),
        lambda apps, schema_editor: run_on_postgres(schema_editor, backward),
    )
