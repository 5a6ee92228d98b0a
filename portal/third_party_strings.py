"""Text of viewflow's and Django's templates that the portal shows but their own zh_Hans catalogs leave
untranslated. Listed here (gettext_noop: nothing happens at run time) so that makemessages puts them in
our catalog, which Django reads first (LOCALE_PATHS)."""

from django.utils.translation import gettext_noop

STRINGS = (
    gettext_noop("Applications"),  # viewflow/includes/site_menu.html: the menu's heading
    # django/contrib/admin/templates/admin/app_list.html: the model table's column headings
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # viewflow.workflow's models in the platform admin
    gettext_noop("Workflow"),
    gettext_noop("Process"),
    gettext_noop("Process list"),
    gettext_noop("Task"),
    gettext_noop("Tasks"),
    # django-axes' models in the platform admin
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
)
