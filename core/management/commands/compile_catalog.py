"""`manage.py compile_catalog`: build the .mo of our translation catalog (pure Python, no gettext needed)."""

from django.core.management.base import BaseCommand

from core.catalog import compile_catalogs


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/django.po into .mo files (without GNU gettext)."

    def add_arguments(self, parser):
        parser.add_argument("--stale", action="store_true", help="Only catalogs whose .mo is older than the .po.")

    def handle(self, *args, **options):
        for mo in compile_catalogs(only_stale=options["stale"]):
            self.stdout.write(f"compiled {mo}")
