"""Accounts the index cannot name (label members, clean-up job owners, API key holders, accounts a
page showed) get their handle and display name from the AppView's getProfiles, fetched by the
scheduled task; the label API's member search matches them; a hostile AppView never breaks the
admin or the label API."""

import datetime
import json
import re
import threading

import pytest
from django.db import connections
from django.utils import timezone

from apps.accounts.models import ActorLabel, APIKey, Label
from apps.accounts.profiles import BATCH, MAX_BYTES, refresh_member_profiles
from apps.accounts.tasks import refresh_member_profiles as refresh_task
from apps.search.models import CleanupJob
from tests.support.feed_fixtures import POST_COLUMNS
from tests.support.identities import did_plc
from tests.support.servers import LoopbackServer, json_response
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

LIST_URL = "/admin/accounts/actorlabel/"


class AppView(LoopbackServer):
    """getProfiles for the accounts in `self.profiles`; `self.answer` overrides the whole answer."""

    def __init__(self):
        super().__init__()
        self.profiles = {}
        self.answer = None

    def handle(self, request):
        if request.path != "/xrpc/app.bsky.actor.getProfiles":
            return super().handle(request)
        if self.answer is not None:
            return self.answer(request)
        actors = request.query_lists.get("actors", [])
        return json_response({"profiles": [self.profiles[did] for did in actors if did in self.profiles]})


@pytest.fixture
def appview(settings):
    with AppView() as server:
        settings.APPVIEW_URL = server.url
        settings.APPVIEW_TIMEOUT = 2.0
        yield server


@pytest.fixture
def mpls():
    label = Label.objects.create(name="mpls")
    return label, APIKey.objects.create_key("mpls moderators", label=label)[1]


def members_via_api(client, key):
    response = client.get("/api/admin/feed_members?feedName=mpls&limit=100", headers={"X-API-Key": key})
    assert response.status_code == 200
    return {member["did"]: (member.get("handle"), member.get("displayName")) for member in response.json()["members"]}


def test_members_the_index_cannot_name_are_named_by_the_appview_in_batches_of_25(client, admin_client, appview, mpls):
    label, key = mpls
    # did_plc keeps base32 letters only: spell the numbers in letters.
    dids = [did_plc("member" + "".join(chr(97 + int(digit)) for digit in f"{number:02d}")) for number in range(30)]
    for number, did in enumerate(dids):
        ActorLabel.objects.create(label=label, did=did)
        appview.profiles[did] = {"did": did, "handle": f"Member{number}.test", "displayName": f"Member {number}"}
    # The index knows one member's name: it wins over the AppView's.
    connections["clickhouse"].insert_rows(
        "profiles", ["did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at",
                     "deleted", "time_us"],
        [(dids[0], "self", "Indexed Name", "", "", "", datetime.datetime.now(datetime.timezone.utc), 0, 10)],
    )
    assert members_via_api(client, key)[dids[1]] == (None, None)  # nothing fetched on the request path
    assert appview.requests == []

    assert refresh_task.delay().get() == 30
    assert [len(request.query_lists["actors"]) for request in appview.requests] == [BATCH, 5]
    members = members_via_api(client, key)
    assert members[dids[0]] == ("member0.test", "Indexed Name")
    assert members[dids[29]] == ("member29.test", "Member 29")
    page = admin_client.get(LIST_URL).content.decode()
    assert "member29.test" in page and "Member 29" in page

    # Cached: the next run asks nothing.
    assert refresh_member_profiles() == 0
    assert len(appview.requests) == 2


def test_accounts_the_appview_does_not_know_are_asked_about_once(appview, mpls):
    ActorLabel.objects.create(label=mpls[0], did=did_plc("ghost"))
    assert refresh_member_profiles() == 1
    assert refresh_member_profiles() == 0
    assert len(appview.requests) == 1


def _profiles_of_wrong_types(request):
    ghost, alice = did_plc("ghost"), did_plc("alice")
    return json_response({"profiles": [
        "not a profile", {"did": 5}, {"did": alice, "handle": ["x"], "displayName": {"a": 1}},
        {"did": ghost, "handle": "not a handle!", "displayName": "x" * 1000},
        {"did": did_plc("notasked"), "handle": "intruder.test", "displayName": "Intruder"},
    ]})


class Slow:
    """An answer that comes only after the test ends (the client's deadline passes first)."""

    def __init__(self):
        self.released = threading.Event()

    def __call__(self, request):
        self.released.wait(30)
        return json_response({"profiles": []})


HOSTILE = {
    "bad JSON": lambda request: (200, {"Content-Type": "application/json"}, b"{not json"),
    "not an object": lambda request: json_response(["profiles"]),
    "profiles not a list": lambda request: json_response({"profiles": "many"}),
    "wrong types": _profiles_of_wrong_types,
    "an error status": lambda request: json_response({"error": "InternalServerError"}, 500),
    "huge": lambda request: (200, {"Content-Type": "application/json"},
                             json.dumps({"profiles": [], "pad": "x" * (MAX_BYTES + 1)}).encode()),
    "slow": Slow(),
}


@pytest.mark.parametrize("behaviour", HOSTILE)
def test_a_hostile_appview_never_breaks_the_admin_or_the_label_api(client, admin_client, appview, mpls, settings,
                                                                    behaviour):
    label, key = mpls
    settings.APPVIEW_TIMEOUT = 0.5
    answer = HOSTILE[behaviour]
    appview.answer = answer
    alice, ghost = did_plc("alice"), did_plc("ghost")
    ActorLabel.objects.create(label=label, did=alice)
    ActorLabel.objects.create(label=label, did=ghost)
    try:
        refresh_member_profiles()
    finally:
        if isinstance(answer, Slow):
            answer.released.set()
    assert members_via_api(client, key) == {alice: (None, None), ghost: (None, None)}
    page = admin_client.get(LIST_URL)
    assert page.status_code == 200
    assert "intruder.test" not in page.content.decode()


def cell(page, field):
    """The texts of the list's cells of `field`, in row order."""
    return re.findall(rf'<td class="field-{field}">(.*?)</td>', page)


def test_other_accounts_the_admin_shows_are_named_by_the_appview(admin_client, appview, mpls):
    owner, holder, closed, member = map(did_plc, ["jobowner", "keyholder", "closed", "member"])
    for did, handle, name in [(owner, "owner.test", "Job Owner"), (holder, "holder.test", "Key Holder"),
                              (closed, "closed.test", "Closed Account"), (member, "member.test", "Member")]:
        appview.profiles[did] = {"did": did, "handle": handle, "displayName": name}
    job = CleanupJob.objects.create(repo=owner, delete_older_than=timezone.now())
    key = APIKey.objects.import_key("sky_abcdefgh" + "x" * 24, f"imported: {holder}")[0]
    ActorLabel.objects.create(label=mpls[0], did=member)
    connections["clickhouse"].insert_rows(
        "account_statuses", ["did", "seq", "changed_at", "time_us", "active", "status"],
        [(closed, 1, datetime.datetime(2026, 5, 25, 12, tzinfo=datetime.timezone.utc), 10, 0, "deactivated")],
    )
    # An account status is in no list of accounts to name: the page that showed it unnamed notes it.
    statuses = admin_client.get("/admin/indexer/accountstatus/").text
    assert (cell(statuses, "account_handle"), cell(statuses, "account_name")) == (["-"], ["-"])

    assert refresh_member_profiles() == 4
    assert [sorted(request.query_lists["actors"]) for request in appview.requests] == [
        sorted([closed, member, owner, holder])]
    statuses = admin_client.get("/admin/indexer/accountstatus/").text
    assert cell(statuses, "account_handle") == ["closed.test"]
    assert cell(statuses, "account_name") == ["Closed Account"]
    jobs = admin_client.get("/admin/search/cleanupjob/").text
    assert (cell(jobs, "account_handle"), cell(jobs, "account_name")) == (["owner.test"], ["Job Owner"])
    keys = admin_client.get("/admin/accounts/apikey/").text
    # mpls's key is named after no account.
    assert sorted(cell(keys, "owner")) == ["-", "Key Holder @holder.test"]
    # And on each one's own page.
    for url, shown in [(f"/admin/search/cleanupjob/{job.pk}/change/", ["owner.test", "Job Owner"]),
                       (f"/admin/accounts/apikey/{key.pk}/change/", ["Key Holder @holder.test"]),
                       (f"/admin/indexer/accountstatus/{closed}/change/", ["closed.test", "Closed Account"]),
                       (f"/admin/accounts/actorlabel/{ActorLabel.objects.get(did=member).pk}/change/",
                        ["member.test", "Member"])]:
        page = admin_client.get(url).text
        assert [text for text in shown if f'<div class="readonly">{text}</div>' in page] == shown, url

    # Everything named and the noted account dealt with: the next run asks nothing.
    assert refresh_member_profiles() == 0
    assert len(appview.requests) == 1


def test_member_search_matches_handles_and_display_names_from_the_index_and_the_appview(client, appview,
                                                                                         mpls):
    label, key = mpls
    beans, leaf, stored = did_plc("beans"), did_plc("leaf"), did_plc("stored")
    for did, handle in [(beans, ""), (leaf, ""), (stored, "stored.test")]:
        ActorLabel.objects.create(label=label, did=did, handle=handle)
    appview.profiles[beans] = {"did": beans, "handle": "beans.test", "displayName": "Coffee Lover"}
    now = datetime.datetime.now(datetime.timezone.utc)
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(leaf, 1, now, 10, "leaf.test")])
    connections["clickhouse"].insert_rows(
        "profiles", ["did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at",
                     "deleted", "time_us"], [(leaf, "self", "Tea Drinker", "", "", "", now, 0, 10)])
    refresh_member_profiles()

    def search(text, **params):
        response = client.get("/api/admin/feed_members", {"feedName": "mpls", "search": text, **params},
                              headers={"X-API-Key": key})
        body = response.json()
        return [member["did"] for member in body["members"]], body["totalCount"], body["totalPages"]

    assert search("coffee") == ([beans], 1, 1)
    assert search("@BEANS.te") == ([beans], 1, 1)
    assert search("tea drinker") == ([leaf], 1, 1)
    assert search("leaf.test") == ([leaf], 1, 1)
    assert search("stored.") == ([stored], 1, 1)
    assert search("did:plc:leaf") == ([leaf], 1, 1)
    assert search(".test") == ([stored, leaf, beans], 3, 1)  # newest first, as without a search
    assert search(".test", limit=2, page=2) == ([beans], 3, 2)
    assert search("nobody") == ([], 0, 0)


def test_feed_preview_authors_the_index_cannot_name_are_named_by_the_appview(admin_client, appview):
    author = did_plc("author")
    appview.profiles[author] = {"did": author, "handle": "author.test", "displayName": "Cat Person"}
    posted = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    uri = f"at://{author}/app.bsky.feed.post/3lcat"
    connections["clickhouse"].insert_rows(
        "posts", POST_COLUMNS, [(author, "3lcat", uri, posted, "my cat", ["en"], 0, "", "", 0, 1)])
    form = {"words": "cat", "media": "any", "order": "newest", "hours": "24"}

    def author_cell():
        page = admin_client.post("/admin/feeds/feed/rules-preview/", form).text
        author_html = re.findall(r"<tr>\s*<td[^>]*>(.*?)</td>", page, re.S)[0]
        return " ".join(re.sub(r"<[^>]+>", " ", author_html).split())

    assert author_cell() == author  # unnamed: shown by DID, and noted
    assert refresh_member_profiles() == 1
    assert author_cell() == "Cat Person @author.test"
