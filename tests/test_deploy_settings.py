"""Production settings for production processes (issue 9, item 15): the WSGI application and the Celery
worker/beat take project.settings.prod unless told otherwise, and `check --deploy` passes with them apart
from the documented choices that depend on the deployment's TLS and domain (README, configuration)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRODUCTION_ENTRY_POINTS = ["project.celery", "project.wsgi"]
# Every variable these settings read that a developer's or CI's shell might have set.
_CONTROLLED = {
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
}
PRODUCTION_KEY = "k3Jx9-pQz7_Lw2Rv8Tn4Yb6Hc1Md5Fg0Se3Ua7Wi9Ol2Kp4Nj6"  # 50 characters, not the development key


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
    # Nothing here touches a database; a throwaway SQLite path keeps it away from the test database.
    clean["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    clean.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


_REPORT = (
    "from django.conf import settings; import json; "
    "print(json.dumps({'module': settings.SETTINGS_MODULE, 'debug': settings.DEBUG, "
    "'secure_cookies': settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE}))"
)


def _settings_seen_by(entry_point: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return _run(["-c", f"import {entry_point}; {_REPORT}"], tmp_path, **env)


@pytest.mark.parametrize("entry_point", PRODUCTION_ENTRY_POINTS)
def test_production_entry_points_default_to_production_settings(entry_point, tmp_path):
    run = _settings_seen_by(entry_point, tmp_path, SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="example.com")
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen == {"module": "project.settings.prod", "debug": False, "secure_cookies": True}


@pytest.mark.parametrize("entry_point", PRODUCTION_ENTRY_POINTS)
def test_production_entry_points_refuse_debug_and_a_missing_key(entry_point, tmp_path):
    missing_key = _settings_seen_by(entry_point, tmp_path)
    assert missing_key.returncode != 0 and "SECRET_KEY" in missing_key.stderr
    debug = _settings_seen_by(entry_point, tmp_path, SECRET_KEY=PRODUCTION_KEY, DEBUG="true")
    assert debug.returncode != 0 and "DEBUG must be off" in debug.stderr


@pytest.mark.parametrize("entry_point", PRODUCTION_ENTRY_POINTS)
def test_an_explicit_settings_module_still_wins(entry_point, tmp_path):
    run = _settings_seen_by(entry_point, tmp_path, DJANGO_SETTINGS_MODULE="project.settings.dev")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["module"] == "project.settings.dev"


def test_manage_py_uses_the_development_settings(tmp_path):
    run = _run(["manage.py", "shell", "-c", _REPORT], tmp_path)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["module"] == "project.settings.dev" and seen["debug"] is True


def _deploy_warnings(tmp_path: Path, **env: str) -> tuple[set[str], int]:
    run = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="project.settings.prod",
        SECRET_KEY=PRODUCTION_KEY,
        ALLOWED_HOSTS="example.com",
        **env,
    )
    ids = set(re.findall(r"\(([a-z_]+\.[EW]\d+)\)", run.stdout + run.stderr))
    return ids, run.returncode


def test_check_deploy_leaves_only_the_documented_domain_wide_hsts_choices(tmp_path):
    # Secure defaults: HTTPS redirect, secure cookies, HSTS for this host. Left to the deployment (README):
    # HSTS for every subdomain (W005) and the browsers' preload list (W021).
    ids, returncode = _deploy_warnings(tmp_path)
    assert ids == {"security.W005", "security.W021"} and returncode != 0


def test_check_deploy_passes_when_the_deployment_opts_into_domain_wide_hsts(tmp_path):
    ids, returncode = _deploy_warnings(tmp_path, SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true")
    assert ids == set() and returncode == 0


def test_the_tls_switches_are_the_only_deploy_warnings_they_can_cause(tmp_path):
    # A deployment whose proxy redirects and sends HSTS itself may turn these off: exactly the TLS warnings.
    ids, _ = _deploy_warnings(
        tmp_path,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="0",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
    )
    assert ids == {"security.W004", "security.W008", "security.W012", "security.W016"}
