"""A feed record refuses parameters and settings its kind cannot use, with the reason."""

import pytest
from django.core.exceptions import ValidationError

from apps.feeds.models import Feed


@pytest.mark.parametrize("fields, field, message", [
    ({"kind": "hot", "parameters": {"min_likes": 0}}, "parameters", "min_likes must be a whole number from 1 to 1000000."),
    ({"kind": "hot", "parameters": {"hourz": 3}}, "parameters", "Unknown parameter 'hourz'"),
    ({"kind": "top", "parameters": {"hours": 100}}, "parameters", "hours must be a whole number from 1 to 72."),
    ({"kind": "label"}, "label", "A community feed needs the label"),
    ({"kind": "hot", "parameters": {"gravity": "steep"}}, "parameters", "gravity must be a number from 0.0 to 10.0."),
    ({"kind": "top", "private": True}, "label", "A private feed needs the label"),
    ({"kind": "static"}, "pinned_posts", "A static feed needs at least one post."),
    ({"kind": "static", "pinned_posts": "https://bsky.app/x"}, "pinned_posts", "Not a post at-uri"),
    ({"kind": "hot", "alias": "no spaces"}, "alias", "An alias is a record key"),
])
def test_invalid_feeds_are_refused_with_the_reason(fields, field, message):
    feed = Feed(**{"alias": "f", "display_name": "F", **fields})
    with pytest.raises(ValidationError) as refused:
        feed.full_clean(validate_unique=False, validate_constraints=False)
    assert any(message in text for text in refused.value.message_dict[field])


def test_parameters_override_the_kinds_defaults():
    feed = Feed(alias="f", kind="top", display_name="F", parameters={"hours": 24})
    assert feed.effective_parameters() == {"hours": 24, "min_likes": 11, "max_posts": 3000, "refresh_seconds": 60}
