"""`/` says what this server is and links to what matters; the admin's "View site" leads there; a favicon."""

import re

import pytest
from django.conf import settings

from apps.accounts.models import Label
from apps.feeds.models import Feed
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(databases=BOTH_STORES)  # /api/stats reads ClickHouse
def test_the_home_page_says_what_this_server_is_and_links_to_its_documents(client, fresh_cache):
    Feed.objects.all().delete()
    Feed.objects.create(alias="a-mpls", kind="label", label=Label.objects.create(name="mpls"), display_name="Minneapolis")
    Feed.objects.create(alias="off", kind="label", label=Label.objects.get(name="mpls"), display_name="Off", enabled=False)
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert f"feed generator, <code>{settings.SERVICE_DID}</code>" in html
    links = re.findall(r'<a href="([^"]+)">', html)
    assert links == ["/.well-known/did.json", "/xrpc/app.bsky.feed.describeFeedGenerator", "/api/stats", "/healthz",
                     "/metrics", "/admin/", "/api/admin/docs"]
    for link in links[:5]:
        assert client.get(link).status_code == 200, link
    assert f"<strong>Minneapolis</strong><br><code>at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/a-mpls</code>" in html
    assert "Off" not in html  # a disabled feed is not served


@pytest.mark.django_db(databases=BOTH_STORES)  # the admin index shows ClickHouse figures
def test_view_site_in_the_admin_leads_to_the_home_page(admin_client):
    admin = admin_client.get("/admin/").text
    assert '<a href="/">View site</a>' in admin
    assert '<link rel="icon" href="/static/skyline/favicon.svg" type="image/svg+xml">' in admin
    assert admin_client.get("/").status_code == 200


def test_the_favicon_is_served(client):
    redirect = client.get("/favicon.ico")
    assert (redirect.status_code, redirect["Location"]) == (301, "/static/skyline/favicon.svg")
    icon = client.get("/static/skyline/favicon.svg")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"".join(icon.streaming_content).startswith(b"<svg")
    icon.close()
