"""ledger_post_entry() refuses by its result instead of raising, and returns the bounded balances after.

Raising meant that inside a caller's transaction every post ran in a savepoint (SAVEPOINT and RELEASE:
two more round trips per entry, a third of a small wallet operation's statements), only so that a
refusal left the transaction usable. Now a refusal undoes what the function changed (the rows are
still locked by this transaction, so the undo is exact) and is reported in the result; nothing is
raised, so no savepoint is needed. The result is a bigint array:
  {entry id, new balance of each p_bounded account in order}   posted
  {0, account id}   refused: that bounded account would go below zero (or has no balance row)
  {-1}              refused: the idempotency key is taken
The writes and their order are those of migration 0005 (which this replaces; its text is restored on
unapplying). The new purposes of the level tallies (spend, points_earned, tally) are choices only.
"""

import importlib

from django.db import migrations, models

from ledger.migrations._postgres import postgres_sql

previous = importlib.import_module("ledger.migrations.0005_post_function")

FORWARD = r"""
DROP FUNCTION IF EXISTS ledger_post_entry(
    bigint, text, text, text, bigint, text, bigint, bigint, text, timestamptz, bigint, text,
    bigint[], text[], bigint[], integer[], integer[], bigint[], bigint[]);

CREATE FUNCTION ledger_post_entry(
    p_merchant bigint, p_key text, p_type text, p_ref text, p_actor bigint, p_actor_label text,
    p_store bigint, p_member bigint, p_memo text, p_posted_at timestamptz, p_reverses bigint, p_fingerprint text,
    p_accounts bigint[], p_units text[], p_amounts bigint[], p_slots integer[], p_signs integer[],
    p_bounded bigint[], p_changes bigint[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
-- p_accounts/p_units/p_amounts: the legs in order. p_bounded: the bounded accounts, ascending, with
-- p_changes their normal-side change. Per leg, p_slots is its account's position in p_bounded (0 when
-- unbounded) and p_signs the account's normal sign.
DECLARE
    running bigint[] := '{}';
    afters bigint[] := '{}';
    new_balance bigint;
    new_entry bigint;
    k integer;
    n integer := coalesce(array_length(p_bounded, 1), 0);
BEGIN
    FOR i IN 1..n LOOP
        UPDATE ledger_accountbalance SET balance = balance + p_changes[i]
            WHERE account_id = p_bounded[i] AND balance + p_changes[i] >= 0
            RETURNING balance INTO new_balance;
        IF NOT FOUND THEN
            FOR j IN 1..i - 1 LOOP  -- undo: nothing of a refused entry stays
                UPDATE ledger_accountbalance SET balance = balance - p_changes[j] WHERE account_id = p_bounded[j];
            END LOOP;
            RETURN ARRAY[0, p_bounded[i]];
        END IF;
        running[i] := new_balance - p_changes[i];
    END LOOP;
    INSERT INTO ledger_entry (merchant_id, idempotency_key, operation_type, operation_ref, actor_id, actor_label,
                              store_id, member_id, memo, posted_at, reverses_id, fingerprint)
        VALUES (p_merchant, p_key, p_type, p_ref, p_actor, p_actor_label, p_store, p_member, p_memo,
                p_posted_at, p_reverses, p_fingerprint)
        ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
        RETURNING id INTO new_entry;
    IF new_entry IS NULL THEN
        FOR j IN 1..n LOOP
            UPDATE ledger_accountbalance SET balance = balance - p_changes[j] WHERE account_id = p_bounded[j];
        END LOOP;
        RETURN ARRAY[-1::bigint];
    END IF;
    FOR j IN 1..array_length(p_accounts, 1) LOOP
        k := p_slots[j];
        IF k > 0 THEN
            running[k] := running[k] + p_amounts[j] * p_signs[j];
            afters[j] := running[k];
        ELSE
            afters[j] := NULL;
        END IF;
    END LOOP;
    INSERT INTO ledger_leg (entry_id, account_id, unit, amount, balance_after)
        SELECT new_entry, v.account_id, v.unit, v.amount, v.balance_after
        FROM unnest(p_accounts, p_units, p_amounts, afters) WITH ORDINALITY
            AS v(account_id, unit, amount, balance_after, n)
        ORDER BY v.n;
    RETURN ARRAY[new_entry] || running;
END $$;
"""

BACKWARD = (
    r"""
DROP FUNCTION IF EXISTS ledger_post_entry(
    bigint, text, text, text, bigint, text, bigint, bigint, text, timestamptz, bigint, text,
    bigint[], text[], bigint[], integer[], integer[], bigint[], bigint[]);
"""
    + previous.FORWARD
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_verbose_names")]

    operations = [
        postgres_sql(FORWARD, BACKWARD),
        migrations.AlterField(
            model_name="account",
            name="purpose",
            field=models.CharField(
                choices=[
                    ("principal", "Stored value principal"),
                    ("bonus", "Stored value bonus"),
                    ("voucher", "Voucher"),
                    ("coupon", "Coupon uses"),
                    ("entitlement", "Entitlement uses"),
                    ("points", "Points"),
                    ("spend", "Spend counted for levels"),
                    ("points_earned", "Points earned, counted for levels"),
                    ("commission", "Commission payable"),
                    ("cash", "Cash / clearing by payment method"),
                    ("revenue", "Revenue"),
                    ("deferred_revenue", "Deferred revenue"),
                    ("bonus_expense", "Bonus expense"),
                    ("commission_expense", "Commission expense"),
                    ("breakage", "Breakage (expired / forfeited)"),
                    ("issuance", "Issuance (counted units outstanding)"),
                    ("tally", "Members' running totals (counterpart of spend and points earned)"),
                ],
                max_length=24,
                verbose_name="purpose",
            ),
        ),
    ]
