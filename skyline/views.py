"""The site's own pages: `/`, which says what this server is, and the favicon."""

from django.conf import settings
from django.http import HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from apps.feeds.models import Feed


@require_GET
def home(request):
    """What this server is, with links to the admin, the stats and the feed generator's documents."""
    feeds = Feed.objects.filter(enabled=True).order_by("alias")
    return render(request, "home.html", {
        "service_did": settings.SERVICE_DID,
        "service_endpoint": settings.SERVICE_ENDPOINT,
        "feed_actor_did": settings.FEED_ACTOR_DID,
        "feeds": feeds,
    })


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says."""
    return HttpResponsePermanentRedirect(static("skyline/favicon.svg"))
