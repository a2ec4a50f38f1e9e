from django.contrib import admin
from django.urls import path

from skyline.health import healthz, readyz
from skyline.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
]
