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


# The seed's (bsky-experiments) feeds beyond the trending ones: its two community feeds, and its
# static feeds, which pin one post. Ten of the static aliases are retired feeds that still answer
# but are not listed in describeFeedGenerator.
SEED_LABELS = {"mpls": "The mpls community (a private feed in the seed)", "tqsp": "The tqsp community"}
SEED_PLACEHOLDER = "\n".join(
    f"at://did:plc:wksnvmuo52yo3a32hkxdq4kb/app.bsky.feed.post/{rkey}"
    for rkey in ("3l3frqadlo32h", "3l3frryudoz2i", "3l3frupeayv2e")
)
SEED_PINNED_POST = "at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lzrksmt6jk2b"
SEED_COMMUNITY_FEEDS = [
    {"alias": "a-mpls", "label": "mpls", "display_name": "mpls", "private": True, "placeholder": SEED_PLACEHOLDER},
    {"alias": "cl-tqsp", "label": "tqsp", "display_name": "tqsp", "private": False, "placeholder": ""},
]
SEED_LISTED_STATIC = ["bangers", "at-bangers"]
SEED_RETIRED_STATIC = [
    "my-followers-ex", "my-followers", "cv:cat", "cv:dog", "cv:bird", "cl-japanese", "cl-brasil", "wh-ja",
    "wh-ja-txt", "firehose",
]


def create_seed_feeds(feed_model, label_model):
    """Create the seed's feeds (the trending ones too, and the labels of its community feeds) that do
    not exist yet.

    Returns the aliases created; a feed or label that exists is left as the operator has it.
    """
    labels = {
        name: label_model.objects.get_or_create(name=name, defaults={"description": description})[0]
        for name, description in SEED_LABELS.items()
    }
    definitions = DEFAULT_FEEDS + [
        {
            "alias": feed["alias"], "kind": "label", "display_name": feed["display_name"],
            "label": labels[feed["label"]], "private": feed["private"], "placeholder": feed["placeholder"],
            "description": f"Top-level posts of the last 72 hours by the {feed['label']} community.",
        }
        for feed in SEED_COMMUNITY_FEEDS
    ] + [
        {
            "alias": alias, "kind": "static", "display_name": alias, "pinned_posts": SEED_PINNED_POST,
            "listed": alias in SEED_LISTED_STATIC,
            "description": "" if alias in SEED_LISTED_STATIC else "A retired feed of the seed: answers, not listed.",
        }
        for alias in SEED_LISTED_STATIC + SEED_RETIRED_STATIC
    ]
    created = []
    for definition in definitions:
        fields = dict(definition)
        alias = fields.pop("alias")
        if feed_model.objects.get_or_create(alias=alias, defaults=fields)[1]:
            created.append(alias)
    return created
