from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = _("Approval workflows")

    def ready(self) -> None:
        # Every transition of a request writes its history row (signals.record_transition).
        # The flow classes complete their process models (the "manage" permission) when defined: define them
        # at start-up, not when a view first imports them.
        from . import (
            flows,  # noqa: F401
            signals,  # noqa: F401
        )
