"""Demo data for `make run`. Idempotent: running it again changes nothing."""

from django.core.management.base import BaseCommand

from flows import demo as flows_demo
from members import demo as members_demo
from wallet import demo as wallet_demo


class Command(BaseCommand):
    help = (
        "Load a demo merchant: stores, an estate, about 50 owners, one login per role, wallet activity, and "
        "approval requests waiting in the queues."
    )

    def handle(self, *args, **options):
        merchant, stores, logins = members_demo.load(self.stdout)
        wallet_demo.load(merchant, stores, self.stdout)
        flows_demo.load(merchant, stores, self.stdout)
        self.stdout.write(f"Demo logins (password for all: {members_demo.DEMO_PASSWORD}):")
        for username, role in logins:
            self.stdout.write(f"  {username:<16} {role}")
        self.stdout.write("Portal: http://127.0.0.1:8000/   Admin: http://127.0.0.1:8000/admin/")
