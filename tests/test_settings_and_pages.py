import os
import subprocess
import sys

import pytest

from members import roles
from tests.factories import MerchantFactory, StoreFactory, make_owner, make_staff


def _import_settings(module: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    clean.update(env)
    code = f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='{module}'; django.setup(); print('OK')"
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)


def test_production_settings_refuse_the_development_secret_key():
    from project.settings.base import DEVELOPMENT_SECRET_KEY

    refused = _import_settings("project.settings.prod", SECRET_KEY=DEVELOPMENT_SECRET_KEY)
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr
    missing = _import_settings("project.settings.prod")
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    accepted = _import_settings("project.settings.prod", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com")
    assert accepted.returncode == 0, accepted.stderr


def test_settings_are_chinese_first_in_shanghai():
    from django.conf import settings

    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert [code for code, _ in settings.LANGUAGES] == ["zh-hans", "en"]


@pytest.mark.django_db
def test_portal_requires_login_and_shows_dashboard(client):
    assert client.get("/").status_code in (301, 302)
    merchant = MerchantFactory(name="示例物业")
    make_owner(merchant)
    staff = make_staff(merchant, roles.OPERATOR, stores=[StoreFactory(merchant=merchant)])
    client.force_login(staff.user)
    page = client.get("/", follow=True)
    assert page.status_code == 200
    body = page.content.decode()
    assert "示例物业" in body and 'id="owner-count">1<' in body


@pytest.mark.django_db
def test_login_page_and_admin_login_render(client):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/admin/login/").status_code == 200
