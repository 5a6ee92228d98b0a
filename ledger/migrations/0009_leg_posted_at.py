"""Legs carry their entry's posted_at, so an account's legs of a period are a range of one index.

A statement page or a period total of an account used to join every leg of the period to its entry to
test posted_at (5,000 index probes for a member with 5,000 entries in the period). With the time on the
leg, ledger_leg_account_posted_idx (account, posted_at, id) INCLUDE (amount) holds the period's legs in
statement order: counts and sums are index-only range reads, and a page's running balance is a window
over the index up to the page, with no sort. It replaces ledger_leg_account_idx (account, entry), whose
reads (an unbounded account's balance, a period from its first entry id) it serves as well.

The post writes the copy: ledger_post_entry() and the ledger's own statements insert the entry's
posted_at into each leg. The deferred per-entry trigger now also refuses a leg whose posted_at differs
from its entry's, and ledger_reconcile reports one. Existing legs are filled from their entries, with the
immutability trigger off for that one statement (legs are otherwise never updated).
"""

import importlib

from django.db import migrations, models

from ledger.migrations._postgres import postgres_sql, run_on_postgres

previous_post = importlib.import_module("ledger.migrations.0007_post_without_raising")
previous_checks = importlib.import_module("ledger.migrations.0004_leg_checks_per_entry")

POST_FUNCTION = previous_post.FORWARD.replace(
    """    INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after)
        SELECT new_entry, v.account_id, v.unit, v.amount, v.balance_after
""",
    """    INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after, posted_at)
        SELECT new_entry, v.account_id, v.unit, v.amount, v.balance_after, p_posted_at
""",
)
assert POST_FUNCTION != previous_post.FORWARD

CHECK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry_merchant bigint;
    entry_posted timestamptz;
    bad record;
BEGIN
    -- Deferred checks run at commit, when every leg is in place: one check covers a whole entry, so
    -- consecutive legs of an entry already checked in this transaction are skipped.
    IF current_setting('ledger.last_checked_entry', true) = NEW.entry_id::text THEN
        RETURN NULL;
    END IF;
    SELECT merchant_id, posted_at INTO entry_merchant, entry_posted FROM ledger_entry WHERE id = NEW.entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger leg % belongs to entry %, which does not exist', NEW.id, NEW.entry_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- One primary-key probe per leg whatever the statistics say: the LIMIT keeps the lateral subquery
    -- from being flattened into a join, whose cached generic plan could hash the whole account table
    -- on every commit (it did, after a few 100-leg entries had been analysed).
    SELECT l.id, l.account_id, l.unit, l.posted_at, a.id AS found, a.merchant_id, a.unit AS account_unit INTO bad
        FROM ledger_leg l
        LEFT JOIN LATERAL (
            SELECT acc.id, acc.merchant_id, acc.unit FROM ledger_account acc WHERE acc.id = l.account_id LIMIT 1
        ) a ON true
        WHERE l.entry_id = NEW.entry_id
          AND (a.id IS NULL OR a.merchant_id <> entry_merchant OR a.unit <> l.unit
               OR l.posted_at IS DISTINCT FROM entry_posted)
        LIMIT 1;
    IF FOUND THEN
        IF bad.found IS NULL THEN
            RAISE EXCEPTION 'ledger leg % of entry % posts to account %, which does not exist',
                bad.id, NEW.entry_id, bad.account_id USING ERRCODE = 'foreign_key_violation';
        ELSIF bad.merchant_id <> entry_merchant THEN
            RAISE EXCEPTION 'ledger leg % of entry % posts to account % of another merchant',
                bad.id, NEW.entry_id, bad.account_id USING ERRCODE = 'check_violation';
        ELSIF bad.unit <> bad.account_unit THEN
            RAISE EXCEPTION 'ledger leg % of entry % is in % but account % is in %',
                bad.id, NEW.entry_id, bad.unit, bad.account_id, bad.account_unit USING ERRCODE = 'check_violation';
        ELSE
            RAISE EXCEPTION 'ledger leg % of entry % is dated % but its entry %',
                bad.id, NEW.entry_id, bad.posted_at, entry_posted USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    SELECT unit, SUM(amount) AS total INTO bad
        FROM ledger_leg WHERE entry_id = NEW.entry_id
        GROUP BY unit HAVING SUM(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry % does not balance: legs in % sum to %', NEW.entry_id, bad.unit, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('ledger.last_checked_entry', NEW.entry_id::text, true);
    RETURN NULL;
END $$;
"""

# 0004's version of the check function: its FORWARD up to the end of that function.
PREVIOUS_CHECK_FUNCTION = previous_checks.FORWARD[: previous_checks.FORWARD.index("END $$;") + len("END $$;")]


def fill_posted_at(apps, schema_editor) -> None:
    sql = (
        "UPDATE ledger_leg SET posted_at = (SELECT e.posted_at FROM ledger_entry e WHERE e.id = ledger_leg.entry_id)"
    )
    if schema_editor.connection.vendor == "postgresql":
        sql = (
            "ALTER TABLE ledger_leg DISABLE TRIGGER ledger_leg_immutable;"
            " UPDATE ledger_leg l SET posted_at = e.posted_at FROM ledger_entry e WHERE e.id = l.entry_id;"
            " ALTER TABLE ledger_leg ENABLE TRIGGER ledger_leg_immutable;"
        )
        run_on_postgres(schema_editor, sql)
    else:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_period_read_indexes")]

    operations = [
        migrations.AddField(
            model_name="leg", name="posted_at", field=models.DateTimeField(null=True, verbose_name="posted at")
        ),
        migrations.RunPython(fill_posted_at, migrations.RunPython.noop),
        migrations.AlterField(model_name="leg", name="posted_at", field=models.DateTimeField(verbose_name="posted at")),
        migrations.RemoveIndex(model_name="leg", name="ledger_leg_account_idx"),
        migrations.AddIndex(
            model_name="leg",
            index=models.Index(
                fields=["account", "posted_at", "id"], include=("amount",), name="ledger_leg_account_posted_idx"
            ),
        ),
        postgres_sql(POST_FUNCTION + CHECK_FUNCTION, previous_post.FORWARD + PREVIOUS_CHECK_FUNCTION),
    ]
