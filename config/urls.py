from django.contrib import admin
from django.urls import include, path

from config.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/v1/", api.urls),
    path("manager/", include("loyalty.urls")),
    path("console/", include("console.urls")),
]
