"""PostgreSQL guards: the database itself refuses unbalanced entries and changes to posted rows.

SQLite has none of these; there the ORM refuses updates and deletes, and ledger.services is the only
writer. The balance-check trigger skips consecutive legs of an entry it has already checked in this
transaction (all deferred checks run at commit, when every leg is in place), so a 10,000-leg bulk
entry is summed once, not 10,000 times.
"""

from django.db import migrations

from ledger.migrations._postgres import postgres_sql

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: % on % refused; post a reversing entry', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entry_immutable BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_leg_immutable BEFORE UPDATE OR DELETE ON ledger_leg
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

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

CREATE CONSTRAINT TRIGGER ledger_leg_balanced AFTER INSERT ON ledger_leg
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS ledger_leg_balanced ON ledger_leg;
DROP FUNCTION IF EXISTS ledger_check_entry_balanced();
DROP TRIGGER IF EXISTS ledger_leg_immutable ON ledger_leg;
DROP TRIGGER IF EXISTS ledger_entry_immutable ON ledger_entry;
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [postgres_sql(FORWARD, BACKWARD)]
