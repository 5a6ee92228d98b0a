"""Login throttling (issue 9, item 14): django-axes locks a username after too many failures from any
address and an address after too many failures across usernames, on the portal login and the admin login
alike; the lock-out is a page, not a 500; lock-outs and logins are recorded and shown to the platform admin."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from members import roles
from tests.factories import MerchantFactory, StoreFactory, make_staff

PORTAL_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
LOGIN_URLS = [PORTAL_LOGIN, ADMIN_LOGIN]
PASSWORD = "pw-12345678"

pytestmark = pytest.mark.django_db


def _attempt(url: str, username: str, password: str, ip: str, forwarded_for: str | None = None):
    """One login from a fresh browser at `ip` (or through a proxy at `ip`); returns (response, logged in?)."""
    client = Client(REMOTE_ADDR=ip, **({"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}))
    response = client.post(url, {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


def _fail(times: int, *, url, username, ip) -> None:
    for i in range(times):
        response, logged_in = _attempt(url(i) if callable(url) else url, username, "wrong-password", ip(i))
        assert not logged_in
        assert response.status_code in (200, 429)  # the form again, or the lock-out page; never a 500


def _locked_out(response, logged_in: bool) -> bool:
    return (
        not logged_in
        and response.status_code == 429
        and 'id="login-locked-out"' in response.content.decode()
        and "text/html" in response["Content-Type"]
    )


@pytest.fixture
def staff_user():
    merchant = MerchantFactory()
    return make_staff(merchant, roles.MERCHANT_ADMIN, stores=[StoreFactory(merchant=merchant)]).user


@pytest.fixture
def limit() -> int:
    failure_limit = getattr(settings, "AXES_FAILURE_LIMIT", 10)  # read leniently so that old code fails, not errs
    assert 3 <= failure_limit <= 20  # a typo or two never locks anyone out; guessing stops soon
    return failure_limit


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_the_right_password_logs_in(url, staff_user):
    response, logged_in = _attempt(url, staff_user.username, PASSWORD, "10.0.0.1")
    assert logged_in and response.status_code == 302


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_a_few_typos_do_not_lock_out(url, staff_user, limit):
    _fail(limit - 1, url=url, username=staff_user.username, ip=lambda i: "10.0.0.1")
    assert _attempt(url, staff_user.username, PASSWORD, "10.0.0.1")[1]


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_wrong_passwords_then_the_right_one_is_refused(url, staff_user, limit):
    # The reproduction: 30 wrong passwords, then the right one logged in at once.
    _fail(30, url=url, username=staff_user.username, ip=lambda i: "10.0.0.1")
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, "10.0.0.1"))


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_a_username_is_locked_whatever_the_address_and_login_page(url, staff_user, limit):
    # Each failure from a new address, alternating between the portal and the admin login.
    _fail(limit, url=lambda i: LOGIN_URLS[i % 2], username=staff_user.username, ip=lambda i: f"10.1.0.{i + 1}")
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, "10.2.0.1"))


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_an_address_is_locked_across_usernames(url, staff_user, limit):
    # One wrong password for each of many usernames from one address (each user's own count stays at 1),
    # on both login pages.
    for i in range(limit):
        _fail(1, url=LOGIN_URLS[i % 2], username=f"guess{i}", ip=lambda _: "10.0.0.9")
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, "10.0.0.9"))
    # The user has no failures of their own: from another address they still get in.
    assert _attempt(url, staff_user.username, PASSWORD, "10.0.0.10")[1]


def test_a_forged_forwarded_for_header_does_not_dodge_the_address_lock(staff_user, limit):
    # No proxy configured: X-Forwarded-For is whatever the client wrote, so it is ignored.
    for i in range(limit):
        _attempt(PORTAL_LOGIN, f"guess{i}", "wrong-password", "10.0.0.9", forwarded_for=f"192.0.2.{i}")
    assert _locked_out(*_attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.9", forwarded_for="192.0.2.99"))


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_behind_a_proxy_each_client_has_its_own_address_count(url, staff_user, limit, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # one proxy (at 127.0.0.1) appends the address it saw
    proxy = "127.0.0.1"
    for i in range(limit):
        # The guesser varies what it sends itself; the proxy's entry (right-most) stays its real address.
        response, _ = _attempt(url, f"guess{i}", "wrong-password", proxy, forwarded_for=f"192.0.2.{i}, 203.0.113.5")
        assert response.status_code in (200, 429)
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, proxy, forwarded_for="1.2.3.4, 203.0.113.5"))
    # Another client behind the same proxy is not locked out with the guesser.
    assert _attempt(url, staff_user.username, PASSWORD, proxy, forwarded_for="203.0.113.6")[1]
    # A header no proxy wrote (missing or not an address) counts as the connection's address; never a 500.
    for forwarded_for in ("not-an-address", "", "203.0.113.7,"):
        response, logged_in = _attempt(url, f"x{forwarded_for}", "wrong-password", "10.0.0.2", forwarded_for)
        assert response.status_code == 200 and not logged_in


def test_a_successful_login_of_another_account_does_not_reset_the_count(staff_user, limit):
    merchant = staff_user.staff.merchant
    attacker = make_staff(merchant, roles.OPERATOR, stores=[StoreFactory(merchant=merchant)]).user
    _fail(limit - 1, url=PORTAL_LOGIN, username=staff_user.username, ip=lambda i: "10.0.0.5")
    assert _attempt(PORTAL_LOGIN, attacker.username, PASSWORD, "10.0.0.5")[1]
    _fail(1, url=PORTAL_LOGIN, username=staff_user.username, ip=lambda i: "10.0.0.5")
    assert _locked_out(*_attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.6"))


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_the_lock_lifts_after_the_cool_off(url, staff_user, limit):
    from axes.models import AccessAttempt

    _fail(limit, url=url, username=staff_user.username, ip=lambda i: "10.0.0.1")
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, "10.0.0.1"))
    # Trying while locked restarts the wait; once the cool-off has passed since the last try, it lifts.
    cool_off = getattr(settings, "AXES_COOLOFF_TIME", None)
    assert cool_off is not None and timedelta(minutes=5) <= cool_off <= timedelta(hours=24)
    AccessAttempt.objects.update(attempt_time=timezone.now() - cool_off + timedelta(minutes=1))
    assert _locked_out(*_attempt(url, staff_user.username, PASSWORD, "10.0.0.1"))
    AccessAttempt.objects.update(attempt_time=timezone.now() - cool_off - timedelta(seconds=1))
    assert _attempt(url, staff_user.username, PASSWORD, "10.0.0.1")[1]


def test_an_administrator_can_lift_a_lock(staff_user, limit):
    _fail(limit, url=ADMIN_LOGIN, username=staff_user.username, ip=lambda i: "10.0.0.1")
    assert _locked_out(*_attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.1"))
    call_command("axes_reset_username", staff_user.username)
    call_command("axes_reset_ip", "10.0.0.1")
    assert _attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.1")[1]


def test_lock_outs_and_logins_are_recorded_and_shown_to_the_platform_admin_only(staff_user, limit):
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    _fail(limit, url=ADMIN_LOGIN, username=staff_user.username, ip=lambda i: "10.0.0.3")
    assert _locked_out(*_attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.3"))
    assert AccessFailureLog.objects.filter(
        username=staff_user.username, ip_address="10.0.0.3", locked_out=True
    ).exists()
    assert AccessAttempt.objects.get(username=staff_user.username).failures_since_start >= limit
    # A successful login is logged too, and the password never is.
    assert _attempt(PORTAL_LOGIN, staff_user.username, PASSWORD, "10.0.0.4")[0].status_code == 429
    platform = make_staff(MerchantFactory(), roles.PLATFORM_ADMIN).user
    assert _attempt(ADMIN_LOGIN, platform.username, PASSWORD, "10.0.0.8")[1]
    assert AccessLog.objects.filter(username=platform.username, ip_address="10.0.0.8").exists()
    assert not AccessAttempt.objects.filter(post_data__contains="wrong-password").exists()

    admin = Client()
    admin.force_login(platform)
    for model in ("accessfailurelog", "accessattempt", "accesslog"):
        page = admin.get(f"/admin/axes/{model}/")
        assert page.status_code == 200, model
        assert staff_user.username in page.content.decode() or model == "accesslog"
    merchant_admin = Client()
    merchant_admin.force_login(staff_user)
    for model in ("accessfailurelog", "accessattempt", "accesslog"):
        assert merchant_admin.get(f"/admin/axes/{model}/").status_code == 403, model
