from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles(sender, **kwargs):
    from django.apps import apps

    # post_migrate is sent once per app; permissions of every app exist only after the last one.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender.label != with_models[-1].label:
        return
    from .services import sync_group_permissions

    sync_group_permissions()


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = _("Members")

    def ready(self) -> None:
        # Role groups get their model permissions once every app's permissions exist.
        post_migrate.connect(_sync_roles, dispatch_uid="members.sync_roles")
        # Every admin is registered by now (django.contrib.admin comes first and autodiscovers):
        # the ones that know nothing of merchants become platform-only.
        from django.contrib import admin

        from .admin import restrict_unscoped_admins

        restrict_unscoped_admins(admin.site)
