"""What the firehose tables show a reader, and what they must show after a stream of events."""

from tests.support.stores import query

VISIBLE = {
    "repo_records": "SELECT collection, repo, rkey, operation, record_json, time_us FROM repo_records FINAL",
    "posts": "SELECT did, rkey, uri, created_at, text, langs, has_embedded_media, parent_uri, root_uri, time_us "
             "FROM posts FINAL",
    "likes": "SELECT actor_did, rkey, subject_uri, subject_did, subject_collection, subject_rkey, created_at, time_us "
             "FROM likes FINAL",
    "reposts": "SELECT actor_did, rkey, subject_uri, created_at, time_us FROM reposts FINAL",
    "follows": "SELECT actor_did, rkey, target_did, created_at, time_us FROM follows FINAL",
    "blocks": "SELECT actor_did, rkey, target_did, created_at, time_us FROM blocks FINAL",
    "identities": "SELECT did, handle, seq, time_us FROM identities FINAL",
    "account_statuses": "SELECT did, active, status, time_us FROM account_statuses FINAL",
}


def visible():
    """Everything a reader can see, each table's rows sorted."""
    return {table: sorted(query(sql)) for table, sql in VISIBLE.items()}


def expected_state(events):
    """What a store that keeps the newest version of each record (and hides deletes) must show."""
    newest = {}
    for event in events:
        if event["kind"] == "commit":
            key = ("commit", event["commit"]["collection"], event["did"], event["commit"]["rkey"])
        else:
            key = (event["kind"], event["did"])
        if key not in newest or event["time_us"] > newest[key]["time_us"]:
            newest[key] = event
    live = {key: event for key, event in newest.items() if key[0] != "commit" or event["commit"]["operation"] != "delete"}
    records = sorted((key[1], key[2], key[3], event["commit"]["operation"]) for key, event in live.items()
                     if key[0] == "commit")
    likes = sorted((key[2], key[3], event["commit"]["record"]["subject"]["uri"]) for key, event in live.items()
                   if key[:2] == ("commit", "app.bsky.feed.like"))
    texts = sorted((key[2], key[3], event["commit"]["record"]["text"]) for key, event in live.items()
                   if key[:2] == ("commit", "app.bsky.feed.post"))
    accounts = sorted((key[1], int(event["account"]["active"]), event["account"].get("status", ""))
                      for key, event in live.items() if key[0] == "account")
    return records, likes, texts, accounts


# The state expected_state() describes, as the store shows it.
STATE_QUERIES = (
    "SELECT collection, repo, rkey, toString(operation) FROM repo_records FINAL ORDER BY ALL",
    "SELECT actor_did, rkey, subject_uri FROM likes FINAL ORDER BY ALL",
    "SELECT did, rkey, text FROM posts FINAL ORDER BY ALL",
    "SELECT did, active, status FROM account_statuses FINAL ORDER BY ALL",
)


def actual_state():
    return tuple(query(sql) for sql in STATE_QUERIES)
