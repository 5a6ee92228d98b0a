from django.contrib import admin
from django.urls import path
from viewflow.contrib.auth import AuthViewset

from portal.site import site

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", AuthViewset(with_profile_view=False).urls),
    path("", site.urls),
]
