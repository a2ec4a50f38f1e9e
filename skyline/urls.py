from django.contrib import admin
from django.urls import path

from apps.feeds.api import api as feed_api
from skyline.health import healthz, readyz
from skyline.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    # The feed generator: /.well-known/did.json and /xrpc/app.bsky.feed.*
    path("", feed_api.urls),
]
