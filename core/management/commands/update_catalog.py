"""`manage.py update_catalog`: extract our msgids into locale/*/LC_MESSAGES/django.po (Django's
makemessages over our sources only; needs GNU gettext), then compile. Translate what is new (empty
msgstr or marked fuzzy) and run it again; tests/test_i18n.py fails until nothing is left."""

import polib
from django.core.management import call_command
from django.core.management.base import BaseCommand

from core.catalog import CATALOG_LOCALES, MAKEMESSAGES_OPTIONS, compile_catalogs, po_path


class Command(BaseCommand):
    help = "Update the project's translation catalogs from the sources, then compile them."

    def handle(self, *args, **options):
        call_command("makemessages", **MAKEMESSAGES_OPTIONS)
        compile_catalogs()
        for locale in CATALOG_LOCALES:
            po = polib.pofile(str(po_path(locale)))
            todo = [e for e in po if not e.obsolete and (e.fuzzy or not e.translated())]
            self.stdout.write(f"{locale}: {len(po.translated_entries())} translated, {len(todo)} to translate")
            for entry in todo:
                self.stdout.write(f"  {'fuzzy ' if entry.fuzzy else ''}{entry.msgid!r}")
