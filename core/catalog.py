"""The project's own translation catalog: `locale/<language>/LC_MESSAGES/django.po`, committed; the
`.mo` next to it is built from it (`manage.py compile_catalog`, run by `make run`, `make test` and CI)
and not committed.

Extraction (`manage.py update_catalog`) runs Django's makemessages over our sources only, so a
re-run after new strings appear is one command; the test suite runs the same extraction in a scratch
copy and fails while the committed catalog misses a msgid or leaves one untranslated.

Compiling is pure Python (polib), so a fresh machine needs no GNU gettext to run the product; only
extraction (makemessages → xgettext) needs it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

# Languages we keep a catalog for (English is the msgid language and needs none).
CATALOG_LOCALES = ("zh_Hans",)
# What makemessages must not read: third-party code, tests, tools and generated files.
IGNORE_PATTERNS = (
    ".venv/*",
    "venv/*",
    "node_modules/*",
    "tests/*",
    "benchmarks/*",
    "docs/*",
    "staticfiles/*",
    "media/*",
    "var/*",
    "locale/*",
)
# File locations without line numbers: moving code does not churn the catalog.
MAKEMESSAGES_OPTIONS = {
    "locale": list(CATALOG_LOCALES),
    "ignore_patterns": list(IGNORE_PATTERNS),
    "extensions": ["html", "txt", "py"],
    "add_location": "file",
    "no_obsolete": True,
    "verbosity": 0,
}


def locale_dir(base: Path | None = None) -> Path:
    return Path(base) / "locale" if base is not None else Path(settings.BASE_DIR) / "locale"


def po_path(locale: str, base: Path | None = None) -> Path:
    return locale_dir(base) / locale / "LC_MESSAGES" / "django.po"


def compile_catalogs(base: Path | None = None, *, only_stale: bool = False) -> list[Path]:
    """Write each catalog's .mo from its .po (fuzzy and untranslated entries left out, as msgfmt does).
    Returns the .mo files written."""
    import polib

    written = []
    for locale in CATALOG_LOCALES:
        po = po_path(locale, base)
        if not po.exists():
            continue
        mo = po.with_suffix(".mo")
        if only_stale and mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        polib.pofile(str(po)).save_as_mofile(str(mo))
        written.append(mo)
    return written
