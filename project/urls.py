from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from viewflow.contrib.auth import AuthViewset

from portal.site import site

# The admin speaks as the product, not as "Django administration".
admin.site.site_header = _("Member back office administration")
admin.site.site_title = _("Member back office")
admin.site.index_title = _("Administration")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", AuthViewset(with_profile_view=False).urls),
    # set_language: the language switch in the portal, on the login page and in the admin.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", site.urls),
]
