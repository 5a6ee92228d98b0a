"""WSGI entry point: a production process, so production settings unless DJANGO_SETTINGS_MODULE says
otherwise (manage.py uses the development settings, pytest the test settings)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.prod")
application = get_wsgi_application()
