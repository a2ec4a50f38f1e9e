"""The feeds a fresh install serves, so the trending feeds work out of the box."""

DEFAULT_FEEDS = [
    {
        "alias": "whats-hot",
        "kind": "hot",
        "display_name": "What's Hot",
        "description": "Top-level posts of the last day, ranked by likes decayed by age.",
        "parameters": {},
    },
    {
        "alias": "top-1h",
        "kind": "top",
        "display_name": "Top of the hour",
        "description": "The most liked posts of the last hour.",
        "parameters": {"hours": 1},
    },
    {
        "alias": "top-24h",
        "kind": "top",
        "display_name": "Top of the day",
        "description": "The most liked posts of the last 24 hours.",
        "parameters": {"hours": 24, "refresh_seconds": 600},
    },
]


def create_default_feeds(feed_model):
    """Create the default feeds that do not exist yet (a feed an operator changed is left alone).

    Takes the model class so the data migration can pass its historical model.
    """
    for definition in DEFAULT_FEEDS:
        fields = dict(definition)
        feed_model.objects.get_or_create(alias=fields.pop("alias"), defaults=fields)
