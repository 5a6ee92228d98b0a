"""Recompute every balance from legs and check every entry; exit 1 on any difference."""

import sys

from django.core.management.base import BaseCommand

from ledger.selectors import reconcile
from members.models import Merchant


class Command(BaseCommand):
    help = "Recompute every ledger balance from legs and check every entry sums to zero per unit."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", help="merchant code to limit the check to")

    def handle(self, *args, merchant=None, **options):
        scope = Merchant.objects.get(code=merchant) if merchant else None
        report = reconcile(scope)
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(problem))
        summary = (
            f"ledger_reconcile: {report.accounts_checked} bounded accounts, {report.entries_checked} entries, "
            f"{len(report.problems)} problems"
        )
        if report.clean:
            self.stdout.write(self.style.SUCCESS(summary + ": clean"))
        else:
            self.stdout.write(self.style.ERROR(summary))
            sys.exit(1)
