"""The served feeds as each process keeps them: read once, reused while the cache's token holds."""

import pytest
from django.core.cache import cache

from apps.feeds import registry
from apps.feeds.models import Feed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_feeds")]


def test_the_list_is_reused_while_the_token_holds():
    first = registry.served_feeds()
    assert registry.served_feeds() is first
    assert sorted(first) == sorted(Feed.objects.filter(enabled=True).values_list("alias", flat=True))


def test_a_saved_feed_is_served_at_once():
    registry.served_feeds()
    feed = Feed.objects.get(alias="whats-hot")
    feed.enabled = False
    feed.save()
    assert "whats-hot" not in registry.served_feeds()


def test_a_change_seen_only_by_the_store_counts_once_the_cache_forgets():
    before = registry.served_feeds()
    Feed.objects.filter(alias="whats-hot").update(enabled=False)  # no signal: the cache still holds the list
    assert registry.served_feeds() is before
    cache.clear()
    assert "whats-hot" not in registry.served_feeds()


def test_another_process_rebuilding_the_list_is_noticed():
    registry.served_feeds()
    Feed.objects.filter(alias="whats-hot").update(enabled=False)
    # Another process rebuilt the list (a new token) after a change this process did not see.
    cache.set_many({registry.REGISTRY_KEY: ("other", {}), registry.TOKEN_KEY: "other"})
    assert registry.served_feeds() == {}
