"""Production: DEBUG off, a real secret key, HTTPS only. The production entry points (project.wsgi,
project.celery) use these settings unless DJANGO_SETTINGS_MODULE says otherwise.

The settings below assume the site is served over TLS (directly or by a proxy in front that sets
X-Forwarded-Proto). Each can be turned off from the environment for a deployment that handles it
elsewhere; see the configuration table in README.md."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEBUG, DEVELOPMENT_SECRET_KEY, SECRET_KEY, env

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production settings.")
if not SECRET_KEY or SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("Production needs its own SECRET_KEY of at least 32 characters.")

# Cookies only over HTTPS; plain-HTTP requests are redirected to HTTPS (turn off when the proxy redirects).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# The proxy in front terminates TLS and must set (never pass through) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS for this host for a year. Subdomains and the browsers' preload list are a decision about the whole
# domain, which this application cannot make: off unless the deployment turns them on.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
