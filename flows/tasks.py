"""Celery tasks of the flows: thin wrappers that call the services."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.apps import apps

from . import services


@shared_task(name="flows.execute_request", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)  # fmt: skip
def execute_request_task(model_label: str, pk: int) -> str:
    """Carry out an approved request (scheduled when the last approval commits). Safe to run again: a retry
    after a crash, a duplicate delivery or the deadline job's re-schedule carries it out once."""
    model = apps.get_model(model_label)
    request = model.objects.filter(pk=pk).first()
    if request is None:
        return "missing"
    return str(services.execute_request(request).state)


@shared_task(name="flows.run_deadlines")
def run_deadlines_task() -> dict:
    """Beat: reminders and escalations of open tasks past their deadlines; stuck refunds re-scheduled."""
    return asdict(services.run_deadlines())
