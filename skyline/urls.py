from django.contrib import admin
from django.urls import path

from apps.feeds.api import api as feed_api
from apps.feeds.api import get_feed_skeleton
from apps.feeds.label_api import api as label_api
from apps.search.api import api as search_api
from apps.search.repo_api import api as repo_export_api
from skyline.health import healthz, readyz
from skyline.metrics import metrics_view
from skyline.views import favicon, home

# The admin modules load with the URLconf, not in django.setup() (INSTALLED_APPS has
# SimpleAdminConfig): commands that serve no page start without them.
admin.autodiscover()

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    # The feed generator: getFeedSkeleton (the hot path, see skyline/hot_paths.py), then
    # /.well-known/did.json and the other /xrpc/app.bsky.feed.* methods.
    path("xrpc/app.bsky.feed.getFeedSkeleton", get_feed_skeleton),
    path("", feed_api.urls),
    # The label API serves the seed's paths: /api/admin/... and the legacy /assign_user_to_feed etc.
    path("", label_api.urls),
    # Stats, post search, clean-up jobs, /redir, /list/members. Keep it before any /repo/{did}
    # route: /repo/cleanup must win.
    path("", search_api.urls),
    # GET /repo/{did}: after the search API, so /repo/cleanup wins.
    path("", repo_export_api.urls),
]
