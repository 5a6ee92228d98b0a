"""Legs lose their database foreign keys; the deferred per-entry trigger checks what they checked, and more.

PostgreSQL runs a referential check per leg and per key at commit: two per leg, 20,000 for a
10,000-member issuance, which was a third of that entry's time. Instead, the deferred balance trigger
(already run once per entry) now also refuses an entry that does not exist, a leg whose account does not
exist, belongs to another merchant than its entry, or is in another unit. What the foreign keys also
guaranteed, that a referenced row is never deleted, holds because entries (0002) and now accounts are
refused UPDATE and DELETE by trigger. The ORM keeps both relations (and PROTECT).

The cached-balance table gets fillfactor 50 so that balance updates are HOT updates.
"""

import django.db.models.deletion
from django.db import migrations, models

from ledger.migrations._postgres import postgres_sql

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry_merchant bigint;
    bad record;
BEGIN
    -- Deferred checks run at commit, when every leg is in place: one check covers a whole entry, so
    -- consecutive legs of an entry already checked in this transaction are skipped.
    IF current_setting('ledger.last_checked_entry', true) = NEW.entry_id::text THEN
        RETURN NULL;
    END IF;
    SELECT merchant_id INTO entry_merchant FROM ledger_entry WHERE id = NEW.entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger leg % belongs to entry %, which does not exist', NEW.id, NEW.entry_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- One primary-key probe per leg whatever the statistics say: the LIMIT keeps the lateral subquery
    -- from being flattened into a join, whose cached generic plan could hash the whole account table
    -- on every commit (it did, after a few 100-leg entries had been analysed).
    SELECT l.id, l.account_id, l.unit, a.id AS found, a.merchant_id, a.unit AS account_unit INTO bad
        FROM ledger_leg l
        LEFT JOIN LATERAL (
            SELECT acc.id, acc.merchant_id, acc.unit FROM ledger_account acc WHERE acc.id = l.account_id LIMIT 1
        ) a ON true
        WHERE l.entry_id = NEW.entry_id
          AND (a.id IS NULL OR a.merchant_id <> entry_merchant OR a.unit <> l.unit)
        LIMIT 1;
    IF FOUND THEN
        IF bad.found IS NULL THEN
            RAISE EXCEPTION 'ledger leg % of entry % posts to account %, which does not exist',
                bad.id, NEW.entry_id, bad.account_id USING ERRCODE = 'foreign_key_violation';
        ELSIF bad.merchant_id <> entry_merchant THEN
            RAISE EXCEPTION 'ledger leg % of entry % posts to account % of another merchant',
                bad.id, NEW.entry_id, bad.account_id USING ERRCODE = 'check_violation';
        ELSE
            RAISE EXCEPTION 'ledger leg % of entry % is in % but account % is in %',
                bad.id, NEW.entry_id, bad.unit, bad.account_id, bad.account_unit USING ERRCODE = 'check_violation';
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

CREATE TRIGGER ledger_account_immutable BEFORE UPDATE OR DELETE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Half-empty pages keep a balance row's new version on its page (a HOT update): no index entry and one
-- WAL record per update instead of three. Rows are two bigints, so the table stays small.
ALTER TABLE ledger_accountbalance SET (fillfactor = 50);
"""

BACKWARD = r"""
ALTER TABLE ledger_accountbalance RESET (fillfactor);
DROP TRIGGER IF EXISTS ledger_account_immutable ON ledger_account;
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    IF current_setting('ledger.last_checked_entry', true) = NEW.entry_id::text THEN
        RETURN NULL;
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


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_entry_member")]

    operations = [
        migrations.AlterField(
            model_name="leg",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="legs",
                to="ledger.account",
            ),
        ),
        migrations.AlterField(
            model_name="leg",
            name="entry",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="legs",
                to="ledger.entry",
            ),
        ),
        postgres_sql(FORWARD, BACKWARD),
    ]
