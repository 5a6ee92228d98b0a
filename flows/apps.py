from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = _("Approval workflows")

    def ready(self) -> None:
        # Every transition of a request writes its history row (signals.record_transition).
        # The flow classes complete their process models (the "manage" permission) when defined: define them
        # at start-up, not when a view first imports them.
        from wallet.services import limits

        from . import (
            execution,
            flows,  # noqa: F401
            signals,  # noqa: F401
        )

        # The wallet lifts a free-value limit only for a request this check confirms approved (the wallet
        # cannot import the flows: wallet.services.limits).
        limits.register_approval_check(execution.check_free_value_approval)
