from axes.apps import AppConfig as AxesAppConfig
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = _("Core")


class AxesConfig(AxesAppConfig):
    """django-axes (login throttling) under a name the admin can translate: its own config has none."""

    verbose_name = _("Login lock-outs")
