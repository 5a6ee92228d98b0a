"""Chinese first, English available (issue 11, item 1).

- The committed catalog (locale/zh_Hans/LC_MESSAGES/django.po) translates every msgid, none fuzzy, with
  the same placeholders, and holds exactly the msgids of the sources (makemessages run again in a
  scratch copy): a new user-facing string fails here until it is translated.
- Every portal page, walked from the viewflow Site's URL patterns (a page added tomorrow is walked too),
  rendered as each demo role on the demo data under zh-hans, shows no English: no msgid of our catalog
  untranslated and no other English words, in the text people read (icon ligatures, scripts and styles
  left out). The login page, the error pages and the admin are checked the same way.
- The language switch offers English and switches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from urllib.parse import urljoin

import polib
import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, reverse
from django.utils import translation

from core.catalog import CATALOG_LOCALES, MAKEMESSAGES_OPTIONS, po_path
from flows import demo as flows_demo
from members import demo as members_demo
from members import roles
from members.models import Owner
from portal.site import site
from wallet import demo as wallet_demo
from wallet.models import CashRefund, EntitlementRefund, Voucher

ROOT = Path(settings.BASE_DIR)
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%|%[sd]")
# A word of three letters or more standing alone: not the letters of a business number (tqy2026…) or code.
ENGLISH_WORD = re.compile(r"(?<![A-Za-z0-9_:])[A-Za-z]{3,}(?![A-Za-z0-9_])")
# English that is right on a Chinese page: product and unit names used as such in Chinese, the language
# switch offering English in its own name, and the ledger's unit codes.
ALLOWED_WORDS = {"VIP", "CNY", "POINT", "CPN", "ENT", "English", "YYYY", "MM", "DD", "CSV", "Excel"}
# Keys named in Django's own Chinese help ("按住 Control 键或 Mac 上的 Command 键来选择多项。").
ALLOWED_WORDS |= {"Control", "Command", "Mac"}
DEMO_LOGINS = {
    roles.PLATFORM_ADMIN: "platform",
    roles.MERCHANT_ADMIN: "admin",
    roles.OPERATOR: "operator",
    roles.APPROVER: "manager",
    roles.FINANCE: "finance",
    roles.CLERK: "clerk",
}


def catalog(locale: str = "zh_Hans") -> polib.POFile:
    return polib.pofile(str(po_path(locale, ROOT)))


# ---------------------------------------------------------------- the catalog


@pytest.mark.parametrize("locale", CATALOG_LOCALES)
def test_every_msgid_is_translated_with_the_same_placeholders(locale):
    po = catalog(locale)
    entries = [e for e in po if not e.obsolete]
    assert len(entries) > 300, "the catalog looks empty"
    problems = []
    for entry in entries:
        if entry.fuzzy:
            problems.append(f"fuzzy: {entry.msgid!r}")
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        if not all(t.strip() for t in translations):
            problems.append(f"untranslated: {entry.msgid!r}")
            continue
        source = entry.msgid_plural or entry.msgid
        for text in translations:
            if sorted(set(PLACEHOLDER.findall(source))) != sorted(set(PLACEHOLDER.findall(text))):
                problems.append(f"placeholders differ: {entry.msgid!r} → {text!r}")
            if re.search(r"[A-Za-z]{4,}", PLACEHOLDER.sub("", text)) and not set(
                re.findall(r"[A-Za-z]{3,}", PLACEHOLDER.sub("", text))
            ) <= ALLOWED_WORDS | {"NUL"}:
                problems.append(f"English left in the translation: {entry.msgid!r} → {text!r}")
    assert not problems, "\n".join(problems)


def test_msgids_are_english():
    """Chinese in a msgid hides from translators and English readers alike (e.g. "Principal (现金余额)")."""
    chinese = [e.msgid for e in catalog() if re.search(r"[\u4e00-\u9fff]", e.msgid)]
    assert not chinese, chinese


def _msgids(po: polib.POFile) -> set[tuple[str, str, str]]:
    return {(e.msgctxt or "", e.msgid, e.msgid_plural or "") for e in po if not e.obsolete}


def test_catalog_holds_exactly_the_msgids_of_the_sources(tmp_path):
    """makemessages, run again on a scratch copy of the sources, finds no msgid the committed catalog
    lacks and none it holds for nothing: `make messages` has been run and its result committed."""
    if shutil.which("xgettext") is None:
        if os.environ.get("CI"):
            pytest.fail("GNU gettext (xgettext) is missing: .ci/run installs the Debian package gettext")
        pytest.skip("GNU gettext (xgettext) is not installed here")
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "node_modules", "__pycache__", "*.mo", "*.sqlite3*",
                                    "media", "staticfiles", "var", ".pytest_cache", ".ruff_cache")  # fmt: skip
    shutil.copytree(ROOT, copy, ignore=ignore)
    options = ", ".join(f"{key}={value!r}" for key, value in MAKEMESSAGES_OPTIONS.items())
    code = f"from django.core.management import call_command; call_command('makemessages', {options})"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.test", "PYTHONPATH": str(copy)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for locale in CATALOG_LOCALES:
        fresh = _msgids(polib.pofile(str(po_path(locale, copy))))
        committed = _msgids(catalog(locale))
        assert fresh - committed == set(), f"msgids missing from the catalog (run `make messages`): {fresh - committed}"
        assert committed - fresh == set(), f"msgids no source uses any more (run `make messages`): {committed - fresh}"


# ---------------------------------------------------------------- rendered pages


class _VisibleText(HTMLParser):
    """Text people read: text nodes and title/placeholder attributes, without scripts, styles and icon
    ligatures (<i class="material-icons">search</i> draws an icon, not the word)."""

    SKIP = {"script", "style", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag in self.SKIP or "material-icons" in classes or "mdc-button__icon" in classes:
            self._skip.append(tag)
            return
        for name in ("title", "placeholder"):
            if attrs.get(name):
                self.parts.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_endtag(self, tag):
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    return parser.parts


def _english_msgid_patterns() -> list[tuple[str, re.Pattern]]:
    """Every msgid of our catalog with at least two English words, as a pattern (placeholders match anything)."""
    patterns = []
    for entry in catalog():
        for msgid in filter(None, (entry.msgid, entry.msgid_plural)):
            bare = PLACEHOLDER.sub(" ", msgid)
            if len(re.findall(r"[A-Za-z]{2,}", bare)) < 2:
                continue  # single words are caught by the word check below
            parts = [re.escape(p) for p in PLACEHOLDER.split(msgid)]
            patterns.append((msgid, re.compile("[^\n]+?".join(parts).replace("%%", "%"))))
    return patterns


def english_on_page(html: str, data_words: set[str]) -> list[str]:
    """What on the page is English: untranslated msgids of our catalog, and any other English word
    (three letters or more) that is not data (usernames, codes) or allowed."""
    found = []
    texts = visible_text(html)
    joined = "\n".join(texts)  # one search per msgid; patterns never cross a line
    for msgid, pattern in _MSGID_PATTERNS:
        match = pattern.search(joined)
        if match:
            found.append(f"msgid {msgid!r} in {match.group(0)!r}")
    for text in texts:
        if text.startswith(("{", "[")):
            continue  # JSON data (an audit event's before/after)
        words = {w for w in ENGLISH_WORD.findall(text) if w not in ALLOWED_WORDS and w not in data_words}
        if words:
            found.append(f"English {sorted(words)} in {text!r}")
    return found


_MSGID_PATTERNS: list = []


@pytest.fixture(scope="module", autouse=True)
def _patterns():
    _MSGID_PATTERNS[:] = _english_msgid_patterns()


def _site_routes(resolvers, prefix: str = "") -> list[tuple[str, URLPattern]]:
    routes = []
    for entry in resolvers:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes.extend(_site_routes(entry.url_patterns, route))
        elif isinstance(entry, URLPattern):
            routes.append((route, entry))
    return routes


def portal_urls(owner_pks: list[int]) -> list[str]:
    """Every URL of the portal's Site: patterns without parameters as they are, patterns with a member
    (`pk`, `member_pk`, `owner_pk`) once per given member. A pattern with another parameter fails the
    test until this function learns to fill it (so no new page goes unchecked)."""
    urls, unknown = [], []
    for route, _pattern in _site_routes(site.urls[0]):  # (patterns, app_name, namespace)
        params = re.findall(r"<(?:(\w+):)?(\w+)>", route)
        if not params:
            urls.append("/" + route.replace("^", "").replace("$", ""))
            continue
        names = {name for _conv, name in params}
        if "kind" in names and names <= {"kind", "pk"}:
            # The approval requests' pages: each kind of request, and the first requests of that kind.
            from portal.approvals import KINDS

            for slug, model in KINDS.items():
                pks = list(model.objects.order_by("pk").values_list("pk", flat=True)[:2]) if "pk" in names else [0]
                for pk in pks:
                    urls.append("/" + route.replace("<slug:kind>", slug).replace("<int:pk>", str(pk)))
            continue
        if all(name in ("pk", "member_pk", "owner_pk") for _conv, name in params):
            for pk in owner_pks:
                url = route
                for conv, name in params:
                    url = url.replace(f"<{conv}:{name}>" if conv else f"<{name}>", str(pk))
                urls.append("/" + url)
        else:
            unknown.append(route)
    assert not unknown, f"teach portal_urls() to fill these portal routes: {unknown}"
    return urls


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """The demo merchant of `make run`, loaded once for the module in a transaction rolled back at its end."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield _load_demo()
        transaction.set_rollback(True)


@pytest.fixture
def demo(demo_data, db):
    return demo_data


def _load_demo():
    merchant, stores, logins = members_demo.load(StringIO())
    wallet_demo.load(merchant, stores, StringIO())
    flows_demo.load(merchant, stores, StringIO())  # pending requests, so the approval pages show rows
    owners = list(Owner.objects.filter(merchant=merchant).order_by("pk"))
    # Members whose pages show the most: plan, package, VIP and entitlement use; a refunded line; a
    # voucher; a stored-value card closed by a cash refund.
    chosen = {owners[0].pk}
    chosen.add(EntitlementRefund.objects.filter(merchant=merchant).values_list("member_id", flat=True).first())
    chosen.add(Voucher.objects.filter(merchant=merchant).values_list("member_id", flat=True).first())
    chosen.add(CashRefund.objects.filter(merchant=merchant).values_list("member_id", flat=True).first())
    User = get_user_model()
    users = {role: User.objects.get(username=username) for role, username in DEMO_LOGINS.items()}
    # Data, not text: logins and the merchant's and stores' codes.
    data_words = {u.username for u in User.objects.all()} | {merchant.code} | {s.code for s in stores}
    return merchant, sorted(chosen - {None}), users, data_words


def _get(client, url: str):
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    if response.status_code in (301, 302):
        response = client.get(urljoin(url, response["Location"]), HTTP_ACCEPT_LANGUAGE="zh-hans")
    return response


@pytest.mark.parametrize("role", list(DEMO_LOGINS))
def test_every_portal_page_is_chinese_for_every_role(client, demo, role):
    merchant, owner_pks, users, data_words = demo
    client.raise_request_exception = False
    client.force_login(users[role])
    urls = portal_urls(owner_pks)
    assert any(url.rstrip("/").endswith(str(owner_pks[0])) for url in urls), urls
    problems, seen, checked = [], 0, set()
    for url in urls:
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        if response.status_code in (301, 302):
            target = urljoin(url, response["Location"])
            if target in checked:
                continue  # e.g. an operation's URL sending GET back to the member page: checked already
            response = client.get(target, HTTP_ACCEPT_LANGUAGE="zh-hans")
            url = target
        checked.add(url)
        if response.status_code == 405:
            continue  # a POST-only action (claim, give back), not a page
        assert response.status_code in (200, 403, 404), (role, url, response.status_code)
        if response.get("Content-Type", "").startswith("application/json"):
            continue  # data for a page's chart, not a page
        html = response.content.decode()
        assert "<html" in html, (role, url)
        seen += response.status_code == 200
        problems += [f"{url} ({response.status_code}): {p}" for p in english_on_page(html, data_words)]
    assert seen, f"{role} saw no portal page"
    assert not problems, "\n".join(problems)


def test_operator_forms_with_errors_are_chinese(client, demo):
    """The member page after rejected forms: form errors, service errors and messages in Chinese."""
    merchant, owner_pks, users, data_words = demo
    client.force_login(users[roles.OPERATOR])
    pk = owner_pks[0]
    posts = {
        "recharge": {"recharge-token": "00000000-0000-4000-8000-000000000001", "recharge-kind": "stored_value",
                     "recharge-amount": "12.345", "recharge-quantity": "1"},
        "consume": {"consume-token": "00000000-0000-4000-8000-000000000003", "consume-funding": "grant"},
        "refund": {"refund-token": "00000000-0000-4000-8000-000000000002", "refund-lines": ["999999"]},
    }  # fmt: skip
    problems = []
    for name, data in posts.items():
        response = client.post(reverse(f"members:{name}", kwargs={"pk": pk}), data, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, (name, response.status_code)
        html = response.content.decode()
        assert "errorlist" in html, name
        problems += [f"{name}: {p}" for p in english_on_page(html, data_words)]
    assert not problems, "\n".join(problems)


def test_login_page_is_ours_and_chinese(client, demo):
    *_, data_words = demo
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "会员管理系统" in html and "Viewflow" not in html
    assert 'name="language" value="en"' in html  # the switch offers English
    assert english_on_page(html, data_words) == []
    failed = client.post(
        "/accounts/login/", {"username": "operator", "password": "wrong"}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert failed.status_code == 200
    assert english_on_page(failed.content.decode(), data_words) == []


def test_account_and_admin_login_pages_are_chinese(client, demo):
    """The password pages under /accounts/ (rendered with the admin's templates, outside the admin site)
    and the admin's login speak as the product, in Chinese."""
    merchant, owner_pks, users, data_words = demo
    anonymous = client.get(reverse("admin:login"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "会员管理系统" in anonymous and english_on_page(anonymous, data_words) == []
    client.force_login(users[roles.OPERATOR])
    problems = []
    for name in ("password_change", "password_change_done", "password_reset", "password_reset_done",
                 "password_reset_complete"):  # fmt: skip
        response = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, name
        html = response.content.decode()
        assert "会员管理系统" in html and "Django" not in html, name
        problems += [f"{name}: {p}" for p in english_on_page(html, data_words)]
    assert not problems, "\n".join(problems)


def test_error_pages_are_ours_and_chinese(client, demo):
    merchant, owner_pks, users, data_words = demo
    client.raise_request_exception = False
    client.force_login(users[roles.CLERK])
    missing = client.get("/members/999999999/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert missing.status_code == 404
    assert "页面不存在" in missing.content.decode()
    assert english_on_page(missing.content.decode(), data_words) == []
    refused = client.post(reverse("members:recharge", kwargs={"pk": owner_pks[0]}), {}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code == 403
    assert "403" in refused.content.decode()
    assert english_on_page(refused.content.decode(), data_words) == []
    from django.views.defaults import server_error

    with translation.override("zh-hans"):
        crashed = server_error(RequestFactory().get("/"))
    assert crashed.status_code == 500
    assert "服务器错误" in crashed.content.decode()
    assert english_on_page(crashed.content.decode(), data_words) == []


def test_admin_pages_are_chinese(client, demo):
    """Every admin changelist of our apps as the platform admin and the merchant admin, and one change page
    per model: our verbose names, choices and columns in Chinese."""
    merchant, owner_pks, users, data_words = demo
    problems = []
    for role in (roles.PLATFORM_ADMIN, roles.MERCHANT_ADMIN):
        client.force_login(users[role])
        for model, model_admin in admin.site._registry.items():
            if model._meta.app_label not in ("members", "wallet", "ledger"):
                continue
            base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            listed = _get(client, reverse(f"{base}_changelist"))
            if listed.status_code != 200:
                continue
            problems += [
                f"{role} {model.__name__} list: {p}" for p in english_on_page(listed.content.decode(), data_words)
            ]
            row = model_admin.get_queryset(listed.wsgi_request).order_by("pk").first()
            if row is not None and role == roles.PLATFORM_ADMIN:  # change pages once: the same form for both
                page = _get(client, reverse(f"{base}_change", args=[row.pk]))
                assert page.status_code == 200, (role, model, page.status_code)
                problems += [
                    f"{role} {model.__name__} {row.pk}: {p}" for p in english_on_page(page.content.decode(), data_words)
                ]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- English available


def test_language_switch_turns_the_portal_english_and_back(client, demo):
    merchant, owner_pks, users, data_words = demo
    client.force_login(users[roles.OPERATOR])
    member_page = reverse("members:member", kwargs={"pk": owner_pks[0]})
    client.defaults.pop("HTTP_ACCEPT_LANGUAGE", None)  # a browser that says nothing gets the default: Chinese
    chinese = client.get(member_page).content.decode()
    assert '<span class="mdc-button__label">充值</span>' in chinese and 'name="language" value="en"' in chinese
    switched = client.post("/i18n/setlang/", {"language": "en", "next": member_page})
    assert switched.status_code == 302 and switched["Location"] == member_page
    english = client.get(member_page).content.decode()
    assert (
        '<span class="mdc-button__label">Recharge</span>' in english
        and '<span class="mdc-button__label">充值</span>' not in english
    )
    assert 'name="language" value="zh-hans"' in english and "简体中文" in english
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": member_page})
    assert '<span class="mdc-button__label">充值</span>' in client.get(member_page).content.decode()


def test_compile_catalog_needs_no_gettext(tmp_path):
    """`make run` and `make test` build the .mo in pure Python (polib), which Django then reads."""
    from core.catalog import compile_catalogs

    target = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    target.mkdir(parents=True)
    shutil.copy(po_path("zh_Hans", ROOT), target / "django.po")
    written = compile_catalogs(tmp_path)
    assert written == [target / "django.mo"]
    import gettext

    with open(target / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    assert compiled.gettext("Member back office") == "会员管理系统"
    assert compiled.ngettext("%(uses)s use", "%(uses)s uses", 3) == "%(uses)s 次"


def test_free_value_approval_pages_are_chinese(client, demo):
    """Free value beyond the limit (issue 12): the operator's submit-for-approval page, and the merchant admin's
    task page, request page and list of the demo's pending request, in Chinese."""
    from flows import selectors as flow_selectors
    from flows.models import FreeValueRequest
    from members import selectors as member_selectors
    from portal import approvals

    merchant, owner_pks, users, data_words = demo
    request = FreeValueRequest.objects.get(merchant=merchant)
    task = flow_selectors.open_task_of(request)
    problems = []
    client.force_login(users[roles.MERCHANT_ADMIN])
    for url in (reverse("tasks:task", kwargs={"pk": task.pk}), approvals.request_url(request),
                reverse("tasks:free_value_requests"), reverse("tasks:queue")):  # fmt: skip
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, url
        html = response.content.decode()
        assert request.number in html, url
        problems += [f"{url}: {p}" for p in english_on_page(html, data_words)]
    operator = users[roles.OPERATOR]
    client.force_login(operator)
    store = member_selectors.stores_where(operator, "members.operate_store").filter(merchant=merchant).first()
    data = {"recharge-token": "00000000-0000-4000-8000-000000000009", "recharge-store": store.pk,
            "recharge-payment_method": "cash", "recharge-kind": "stored_value", "recharge-amount": "100.00",
            "recharge-bonus": "90.00", "recharge-quantity": "1", "recharge-note": ""}  # fmt: skip
    url = reverse("members:recharge", kwargs={"pk": owner_pks[0]})
    response = client.post(url, data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = response.content.decode()
    assert response.status_code == 200 and "提交审批" in html
    problems += [f"{url} (approval): {p}" for p in english_on_page(html, data_words)]
    assert not problems, "\n".join(problems)
