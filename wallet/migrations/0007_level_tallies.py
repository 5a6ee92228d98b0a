"""Opening balances of the members' level tallies (wallet.accounts: spend, points_earned).

From this version on, the consumed total and the points earned that levels are decided by are balances
the ledger keeps: each consumption, recharge, award and refund credits or takes back its part. Members
who already have a history get an opening entry, posted through the ledger API, that brings each tally
to what wallet.selectors.member_totals used to sum from the member's legs (the formulas below are that
code as it was). Entries: operation type "level_tally_opening", one per merchant and 1,000 members,
memo "opening balance"; a member whose tallies already hold the right amount gets no leg, so running
the migration again posts nothing. Unapplying leaves the entries (ledger entries are never deleted);
the previous code ignores the tally accounts.

Run it with the application stopped (or at least with no wallet operations running): an operation
posted between the sums and the opening entry would be counted twice.
"""

import hashlib
from collections import defaultdict

from django.db import migrations
from django.db.models import Q, Sum

CHUNK = 1000


def old_level_totals(merchant_id: int) -> dict[int, tuple[int, int]]:
    """member id → (consumed total, points earned) as member_totals summed them before the tallies."""
    from ledger.models import Leg

    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    consumed = (
        Leg.objects.filter(
            entry__merchant_id=merchant_id, entry__member__isnull=False,
            entry__operation_type__in=["consumption", "consumption_refund"], account__purpose="revenue",
            account__merchant_id=merchant_id,
        )
        .values("entry__member_id").annotate(t=Sum("amount")).values_list("entry__member_id", "t")
    )  # fmt: skip
    for member_id, total in consumed:
        totals[member_id][0] = -total
    points = Leg.objects.filter(account__merchant_id=merchant_id, account__purpose="points")
    earned = (
        points.filter(amount__lt=0, entry__reverses__isnull=True)
        .values("account__member_id").annotate(t=Sum("amount")).values_list("account__member_id", "t")
    )  # fmt: skip
    for member_id, total in earned:
        totals[member_id][1] += -total
    refunded = (
        points.filter(amount__gt=0)
        .filter(Q(entry__reverses__isnull=False) | Q(entry__operation_type="cash_refund"))
        .values("account__member_id").annotate(t=Sum("amount")).values_list("account__member_id", "t")
    )  # fmt: skip
    for member_id, total in refunded:
        totals[member_id][1] -= total
    return {member_id: (spend, earned) for member_id, (spend, earned) in totals.items() if spend or earned}


def post_openings(merchant_ids) -> int:
    """Post the opening entries of these merchants (live code: the ledger API, which only reads the
    merchant's id). Returns the number of entries posted."""
    from ledger import selectors as ledger_selectors
    from ledger import services as ledger
    from members.models import Merchant

    posted = 0
    for merchant in (Merchant(pk=merchant_id) for merchant_id in sorted(merchant_ids)):
        wanted = old_level_totals(merchant.pk)
        if not wanted:
            continue
        member_ids = sorted(wanted)
        spends = ledger.get_or_create_member_accounts(merchant, "spend", "CNY", member_ids)
        earned = ledger.get_or_create_member_accounts(merchant, "points_earned", "POINT", member_ids)
        current = ledger_selectors.balances([*spends.values(), *earned.values()])
        contra = {
            unit: ledger.get_or_create_account(merchant, "tally", unit) for unit in ("CNY", "POINT")
        }  # fmt: skip
        for start in range(0, len(member_ids), CHUNK):
            legs = []
            for member_id in member_ids[start : start + CHUNK]:
                for account, target in ((spends[member_id], wanted[member_id][0]),
                                        (earned[member_id], wanted[member_id][1])):  # fmt: skip
                    change = target - current[account.pk]
                    if change:
                        legs += [ledger.increase(account, change), ledger.increase(contra[account.unit], change)]
            if legs:
                content = hashlib.sha256(repr([(leg.account.pk, leg.amount) for leg in legs]).encode()).hexdigest()
                ledger.post_entry(
                    merchant=merchant, legs=legs, operation_type="level_tally_opening",
                    operation_ref=f"members {member_ids[start]}..", actor=None, actor_label="system:migration",
                    idempotency_key=f"level_tally_opening:{member_ids[start]}:{content[:32]}", memo="opening balance",
                )  # fmt: skip
                posted += 1
    return posted


def forward(apps, schema_editor) -> None:
    # Historical models for the first look (a fresh database has nothing to open and stops here).
    entries = apps.get_model("ledger", "Entry").objects
    if not entries.exists():
        return
    post_openings(set(entries.values_list("merchant_id", flat=True).distinct()))


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0006_verbose_names"),
        ("ledger", "0007_post_without_raising"),
    ]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
