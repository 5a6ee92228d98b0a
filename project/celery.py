"""Celery application. Without REDIS_URL, tasks run eagerly in-process (see settings).

`celery -A project worker|beat` is a production process: like project.wsgi it takes the production
settings unless DJANGO_SETTINGS_MODULE names others (a developer's worker sets project.settings.dev)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.prod")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
