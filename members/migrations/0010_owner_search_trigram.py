"""Member search (members.selectors.search_owners: any part of a member number, a name or a mobile) as
trigram indexes on PostgreSQL, so a search reads the matching owners instead of every owner of the table.

The indexes are on the expressions the lookups compare: UPPER(member_number) and UPPER(name) for icontains,
mobile for contains. Trigrams need 3 characters of a term (a 3-character Chinese name, a few digits); a
shorter term still searches, through the whole index. pg_trgm is a trusted extension (PostgreSQL 13+): the
database owner may create it. Nothing happens on SQLite.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS owner_number_trgm_idx ON members_owner USING gin (UPPER(member_number) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS owner_name_trgm_idx ON members_owner USING gin (UPPER(name) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS owner_mobile_trgm_idx ON members_owner USING gin (mobile gin_trgm_ops)",
]

BACKWARD = [
    "DROP INDEX IF EXISTS owner_number_trgm_idx",
    "DROP INDEX IF EXISTS owner_name_trgm_idx",
    "DROP INDEX IF EXISTS owner_mobile_trgm_idx",
]


def _on_postgres(statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0009_owner_list_index"),
    ]

    operations = [
        migrations.RunPython(_on_postgres(FORWARD), _on_postgres(BACKWARD)),
    ]
