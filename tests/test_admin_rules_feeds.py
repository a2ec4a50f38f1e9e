"""Rules feeds in the admin: rules typed as form fields, stored as JSON, and a live preview of what they choose."""

import datetime
import re

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from apps.accounts.models import Label
from apps.feeds.models import Feed
from tests.support.feed_fixtures import POST_COLUMNS, ago, like
from tests.support.identities import did_plc
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

ADD_URL = "/admin/feeds/feed/add/"
PREVIEW_URL = "/admin/feeds/feed/rules-preview/"
ALICE, BOB, CAROL, DAVE = map(did_plc, ["alice", "bob", "carol", "dave"])
FORM = {
    "alias": "cats", "kind": "rules", "display_name": "Cats", "description": "", "enabled": "on",
    "parameters": "{}", "pinned_posts": "", "placeholder": "", "label": "",
    "words": 'cat "black cat"', "hashtags": "#Caturday", "languages": "en ja", "media": "any", "accounts": "",
    "exclude_words": "", "min_likes": "", "min_reposts": "0", "hours": "12", "order": "newest",
}


def indexed_post(did, rkey, text, created_at, langs=("en",)):
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    connections["clickhouse"].insert_rows(
        "posts", POST_COLUMNS, [(did, rkey, uri, created_at, text, list(langs), 0, "", "", 0, 1)])
    return uri


def visible_text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_rules_typed_in_the_form_are_saved_as_json(admin_client):
    Label.objects.create(name="mpls")
    response = admin_client.post(ADD_URL, {**FORM, "labels": ["mpls"], "exclude_replies": "on"})
    assert response.status_code == 302, response.content.decode()
    assert Feed.objects.get(alias="cats").rules == {
        "words": ["cat", "black cat"], "hashtags": ["caturday"], "languages": ["en", "ja"], "labels": ["mpls"],
        "exclude_replies": True, "hours": 12,
    }
    page = admin_client.get(f"/admin/feeds/feed/{Feed.objects.get(alias='cats').pk}/change/").text
    assert 'name="words" value="cat &quot;black cat&quot;"' in page
    assert 'name="hashtags" value="#caturday"' in page


def test_bad_rules_are_shown_on_their_fields(admin_client, plc):
    response = admin_client.post(ADD_URL, {**FORM, "languages": "english!", "accounts": "alice.test"})
    assert response.status_code == 200
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', response.text, re.S)
    assert [visible_text(error) for error in errors] == [
        "A language is a tag such as en or pt-BR: &#x27;english!&#x27;",
        "No account found for alice.test: the handle alice.test does not resolve (HTTP 400)",
    ]
    assert not Feed.objects.filter(alias="cats").exists()


def test_another_kind_keeps_no_rules(admin_client):
    response = admin_client.post(ADD_URL, {**FORM, "kind": "top", "languages": "english!"})
    assert response.status_code == 302
    assert Feed.objects.get(alias="cats").rules == {}


def test_the_preview_shows_the_first_page_and_the_count_of_unsaved_rules(admin_client):
    now = datetime.datetime.now(datetime.timezone.utc)
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(ALICE, 1, now, 10, "alice.test")])
    posted = (now - datetime.timedelta(minutes=30)).replace(second=0, microsecond=0)
    like(indexed_post(ALICE, "3lcat", "My <black> cat", posted), 2)
    indexed_post(BOB, "3ltag", "Happy #caturday", posted - datetime.timedelta(minutes=1), langs=["ja"])
    indexed_post(BOB, "3ldog", "My dog", posted)
    indexed_post(BOB, "3lold", "old cat", ago(hours=13))
    response = admin_client.post(PREVIEW_URL, FORM)
    assert response.status_code == 200
    assert visible_text(re.search(r'<p class="rules-count">(.*?)</p>', response.text).group(1)) == "2 posts match now."
    rows = [visible_text(row) for row in re.findall(r"<tr>(.*?)</tr>", response.text, re.S)[1:]]
    when, before = f"{posted:%Y-%m-%d %H:%M} UTC", f"{posted - datetime.timedelta(minutes=1):%Y-%m-%d %H:%M} UTC"
    assert len(rows) == 2
    assert re.fullmatch(rf"@alice\.test My &lt;black&gt; cat view {when} 3[01] minutes ago 2", rows[0]), rows[0]
    assert re.fullmatch(rf"{BOB} Happy #caturday view {before} 3[12] minutes ago 0", rows[1]), rows[1]
    assert not Feed.objects.exists()  # nothing was saved


def test_the_preview_says_what_to_fix(admin_client):
    response = admin_client.post(PREVIEW_URL, {**FORM, "hours": "100", "hashtags": "#not-a-tag"})
    assert [visible_text(item) for item in re.findall(r"<li>(.*?)</li>", response.text)] == [
        "Within the last hours: Ensure this value is less than or equal to 72.",
    ]
    response = admin_client.post(PREVIEW_URL, {**FORM, "hashtags": "#not-a-tag"})
    assert [visible_text(item) for item in re.findall(r"<li>(.*?)</li>", response.text)] == [
        "hashtags: A hashtag is lower-case letters, digits and _ (without the #): &#x27;not-a-tag&#x27;",
    ]


def test_the_preview_is_for_staff_with_a_csrf_token_and_by_post(admin_client):
    assert admin_client.get(PREVIEW_URL).status_code == 405
    assert Client().post(PREVIEW_URL, FORM).status_code == 302  # to the admin login
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    assert checked.post(PREVIEW_URL, FORM).status_code == 403


def test_the_change_form_asks_for_the_preview_as_rules_are_typed(admin_client):
    page = admin_client.get(ADD_URL).text
    assert f'<div id="rules-preview" data-url="{PREVIEW_URL}" aria-live="polite">' in page
    assert 'fetch(box.dataset.url, {method: "POST", body: new FormData(form)' in page
    for name in ("words", "hashtags", "languages", "media", "accounts", "exclude_replies", "exclude_words",
                 "min_likes", "min_reposts", "hours", "order", "followed_only"):
        assert f'name="{name}"' in page


def accounts_field(page):
    found = re.search(r'<textarea name="accounts"[^>]*>(.*?)</textarea>', page, re.S)
    return found.group(1).strip().splitlines()


def test_accounts_are_typed_as_handles_or_dids_and_saved_as_dids(admin_client, plc):
    now = datetime.datetime.now(datetime.timezone.utc)
    # alice.test is in the index only (the directory does not know it); carol.test in the directory only.
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(ALICE, 1, now, 10, "alice.test")])
    plc.add(CAROL, handle="carol.test")
    typed = f"@Alice.test\ncarol.test, {BOB}\nalice.test"
    response = admin_client.post(ADD_URL, {**FORM, "accounts": typed})
    assert response.status_code == 302, response.content.decode()
    feed = Feed.objects.get(alias="cats")
    assert feed.rules["accounts"] == [ALICE, CAROL, BOB]
    # Shown back by handle where the index names the account by it, else by DID.
    page = admin_client.get(f"/admin/feeds/feed/{feed.pk}/change/").text
    assert accounts_field(page) == ["alice.test", CAROL, BOB]


def test_a_handle_the_index_saw_its_account_leave_is_asked_of_the_resolver(admin_client, plc):
    now = datetime.datetime.now(datetime.timezone.utc)
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(DAVE, 1, now, 10, "dave.test")])
    connections["clickhouse"].insert_rows("plc_did_state",
                                          ["did", "operation_type", "handle", "pds", "created_at", "time_us"],
                                          [(DAVE, "plc_operation", "dave.example", "", now, 20)])
    response = admin_client.post(ADD_URL, {**FORM, "accounts": "dave.test\nnot_a_handle!"})
    assert response.status_code == 200
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', response.text, re.S)
    assert [visible_text(error) for error in errors] == [
        "No account found for dave.test: the handle dave.test does not resolve (HTTP 400) "
        "No account found for not_a_handle!: neither a DID nor a valid handle",
    ]
    plc.add(DAVE, handle="dave.test")  # the directory says dave.test again
    assert admin_client.post(ADD_URL, {**FORM, "accounts": "dave.test"}).status_code == 302
    assert Feed.objects.get(alias="cats").rules["accounts"] == [DAVE]


def test_too_many_accounts_are_refused_before_any_is_looked_up(admin_client, plc):
    typed = "\n".join(f"member{number}.test" for number in range(1001))
    response = admin_client.post(ADD_URL, {**FORM, "accounts": typed})
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', response.text, re.S)
    assert [visible_text(error) for error in errors] == ["accounts: at most 1000."]
    assert plc.requests == []
