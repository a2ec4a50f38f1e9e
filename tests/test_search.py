"""Post search over indexed posts: words, phrases, filters, newest first, cursor paging, any input safe."""

import datetime
import io
import itertools

import pytest
from django.core.management import call_command
from django.db import connections

from apps.indexer.rows import COLUMNS
from tests.support import firehose_events as events
from tests.support.stores import BOTH_STORES, query

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

UTC = datetime.timezone.utc
START = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE, BOB = "did:plc:" + "a" * 24, "did:plc:" + "b" * 24
_versions = itertools.count(1)


def index(*posts):
    """Posts as (did, rkey, minutes after START, text, langs[, deleted]); each a new version."""
    rows = []
    for did, rkey, minutes, text, langs, *deleted in posts:
        rows.append(
            (
                did,
                rkey,
                f"at://{did}/app.bsky.feed.post/{rkey}",
                START + datetime.timedelta(minutes=minutes),
                text,
                langs,
                0,
                "",
                "",
                deleted[0] if deleted else 0,
                next(_versions),
            )
        )
    connections["clickhouse"].insert_rows("posts", COLUMNS["posts"], rows)


def search(client, status=200, **params):
    response = client.get("/api/search/posts", params)
    assert response.status_code == status, response.content
    return response.json()


def uris(body):
    return [post["uri"].rsplit("/", 1)[1] for post in body["posts"]]


@pytest.fixture
def posts():
    index(
        (ALICE, "p1", 1, "I love my cat!", ["en"]),
        (ALICE, "p2", 2, "Category theory is fun", ["en"]),
        (BOB, "p3", 3, "The BIG cat sat on the mat", ["en"]),
        (BOB, "p4", 4, "cat, big and small", ["en"]),
        (ALICE, "p5", 5, "big cats everywhere", ["en"]),
        (BOB, "p6", 6, "Un gato grande, no un cat", ["es"]),
        (ALICE, "p7", 7, "猫が好きです 🐈 cat", ["ja"]),
    )


def test_words_match_whole_words_in_any_case_newest_first(client, posts):
    body = search(client, q="CAT")
    assert uris(body) == ["p7", "p6", "p4", "p3", "p1"]
    assert "cursor" not in body
    first = body["posts"][-1]
    assert first == {
        "uri": f"at://{ALICE}/app.bsky.feed.post/p1",
        "did": ALICE,
        "rkey": "p1",
        "text": "I love my cat!",
        "langs": ["en"],
        "created_at": "2025-03-01T12:01:00Z",
        "has_embedded_media": False,
        "parent_uri": "",
        "root_uri": "",
    }


def test_every_word_must_match_and_a_phrase_matches_in_order(client, posts):
    assert uris(search(client, q="big cat")) == ["p4", "p3"]
    assert uris(search(client, q='"big cat"')) == ["p3"]
    assert uris(search(client, q='"cat big"')) == ["p4"]
    assert uris(search(client, q='"big cat" mat')) == ["p3"]
    assert uris(search(client, q="cats")) == ["p5"]


def test_filters_by_author_language_and_time(client, posts):
    assert uris(search(client, q="cat", author=BOB)) == ["p6", "p4", "p3"]
    assert uris(search(client, q="cat", lang="es")) == ["p6"]
    assert uris(search(client, q="cat", since="2025-03-01T12:03:00Z", until="2025-03-01T12:06:00Z")) == [
        "p4",
        "p3",
    ]
    assert uris(search(client, author=ALICE)) == ["p7", "p5", "p2", "p1"]


def test_words_of_scripts_without_spaces_match_inside_text(client, posts):
    assert uris(search(client, q="好き")) == ["p7"]
    assert uris(search(client, q="🐈")) == ["p7"]


def test_pages_follow_the_cursor_without_gaps_or_repeats(client, posts):
    seen, cursor, pages = [], "", 0
    while True:
        body = search(client, q="cat", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += uris(body)
        pages += 1
        cursor = body.get("cursor")
        if not cursor:
            break
    assert (seen, pages) == (["p7", "p6", "p4", "p3", "p1"], 3)


def test_deleted_and_edited_posts_show_their_latest_version_only(client, posts):
    index((BOB, "p3", 3, "", [], 1), (ALICE, "p1", 1, "I love my dog!", ["en"]))
    assert uris(search(client, q="cat")) == ["p7", "p6", "p4"]
    assert uris(search(client, q="dog")) == ["p1"]


def test_a_page_is_filled_past_many_deleted_matches(client):
    index(*[(ALICE, f"old{n:03}", n, "needle", []) for n in range(120)])
    index(*[(ALICE, f"old{n:03}", n, "", [], 1) for n in range(5, 120)])
    body = search(client, q="needle", limit=3)
    assert uris(body) == ["old004", "old003", "old002"]
    assert uris(search(client, q="needle", limit=3, cursor=body["cursor"])) == ["old001", "old000"]


def replay(tmp_path, *lines):
    """Index Jetstream events through the consumer, as the firehose would."""
    path = tmp_path / f"events-{next(_versions)}.jsonl"
    path.write_bytes(b"".join(events.line(event) for event in lines))
    call_command("consume_firehose", "--replay", str(path), stdout=io.StringIO())


@pytest.mark.parametrize("status", ["takendown", "suspended", "deleted", "deactivated"])
def test_posts_of_hidden_accounts_are_left_out_until_the_account_is_back(client, tmp_path, status):
    t0 = events.T0
    replay(
        tmp_path,
        events.post(ALICE, "3lalice", t0 + 1_000_000, "a needle from alice"),
        events.post(BOB, "3lbob", t0 + 2_000_000, "a needle from bob"),
        events.account(ALICE, t0 + 3_000_000, active=False, status=status),
    )
    assert uris(search(client, q="needle")) == ["3lbob"]
    assert search(client, q="needle", author=ALICE) == {"posts": []}
    replay(tmp_path, events.account(ALICE, t0 + 4_000_000, active=True))
    assert uris(search(client, q="needle")) == ["3lbob", "3lalice"]
    assert uris(search(client, q="needle", author=ALICE)) == ["3lalice"]


def test_an_account_that_is_only_throttled_stays_searchable(client, tmp_path):
    replay(
        tmp_path,
        events.post(ALICE, "3lalice", events.T0 + 1_000_000, "a needle from alice"),
        events.account(ALICE, events.T0 + 2_000_000, active=False, status="throttled"),
    )
    assert uris(search(client, q="needle")) == ["3lalice"]


def token_index_granules(word):
    """(granules the token index leaves to read, granules before it) for a search of `word`, from
    EXPLAIN indexes = 1: its Skip section names the index, then "Granules: left/before"."""
    plan = [
        row[0].strip()
        for row in query(
            "EXPLAIN indexes = 1 SELECT did FROM posts WHERE hasToken(lowerUTF8(text), %s)", [word]
        )
    ]
    named = plan.index("Name: posts_text_tokens")
    granules = next(line for line in plan[named:] if line.startswith("Granules: "))
    left, before = granules.removeprefix("Granules: ").split("/")
    return int(left), int(before)


def test_the_token_index_narrows_the_scan():
    # Several granules (up to 8192 rows each) of posts with the same few words, and one rare word.
    filler = [
        (BOB, f"3lfill{number:07d}", 1, "just another ordinary post", ["en"]) for number in range(3 * 8192)
    ]
    index(*filler, (ALICE, "3lrare", 2, "a zebrafinch sang", ["en"]))
    left, before = token_index_granules("zebrafinch")
    assert before >= 3
    assert left == 1
    assert token_index_granules("ordinary") == (before, before)


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE posts; --",
        "\\",
        "%s %(x)s {hours:UInt32}",
        "\x00",
        'a"b"c"',
        "''''",
        "☃" * 100,
        "cat' OR '1'='1",
        "hasToken(text, 'cat')",
    ],
)
def test_any_query_text_is_safe(client, posts, q):
    # Each is words no post has, or no words at all: never SQL, never a 500.
    response = client.get("/api/search/posts", {"q": q})
    assert (response.status_code, response.json()) in [
        (200, {"posts": []}),
        (400, {"error": "q must have a word to search for (or give author)"}),
    ]
    assert query("SELECT count() FROM posts") == [(7,)]


@pytest.mark.parametrize(
    "params, error",
    [
        ({}, "q must have a word to search for (or give author)"),
        ({"q": "!!!"}, "q must have a word to search for (or give author)"),
        ({"q": "x" * 513}, "q must be at most 512 characters"),
        ({"q": "cat", "limit": 0}, "limit must be between 1 and 100"),
        ({"q": "cat", "limit": 101}, "limit must be between 1 and 100"),
        ({"q": "cat", "cursor": "yesterday"}, "cursor is not one this API gave out"),
        ({"q": "cat", "cursor": "9999999999999999999::at://x"}, "cursor is not one this API gave out"),
        ({"q": "cat", "lang": "en\n"}, "lang must be a language tag such as en or pt-BR"),
        ({"q": "cat", "lang": "en'); --"}, "lang must be a language tag such as en or pt-BR"),
        ({"q": "cat", "author": "not a did"}, "author must be a DID or a handle"),
        (
            {"q": "cat", "since": "last week"},
            "since must be an ISO 8601 date or time, e.g. 2024-05-01 or 2024-05-01T12:00:00Z",
        ),
        ({"q": " ".join(f"w{n}" for n in range(17))}, "q may have at most 16 words"),
    ],
)
def test_bad_parameters_get_a_400_that_says_why(client, posts, params, error):
    assert search(client, status=400, **params) == {"error": error}


def test_a_limit_that_is_not_a_number_is_a_400(client, posts):
    response = client.get("/api/search/posts", {"q": "cat", "limit": "many"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("error parsing request: limit:")
