"""Community members in the admin: added by DID or handle (verified), in bulk, searched, logged."""

import datetime
import re
import socket

import pytest
from django.core.cache import cache
from django.db import connections
from django.contrib.admin.models import ADDITION, DELETION, LogEntry

from apps.accounts.models import ActorLabel, Label
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"
ADD_URL = "/admin/accounts/actorlabel/add/"
LIST_URL = "/admin/accounts/actorlabel/"
BULK_URL = "/admin/accounts/actorlabel/bulk/"


@pytest.fixture
def mpls():
    return Label.objects.create(name="mpls")


def test_a_member_is_added_by_did_with_its_verified_handle(admin_client, plc, mpls):
    plc.add(ALICE, handle="alice.test")
    response = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": ALICE})
    assert response.status_code == 302
    member = ActorLabel.objects.get()
    assert (member.did, member.handle, member.label, member.added_by) == (ALICE, "alice.test", mpls, "admin")
    assert LogEntry.objects.get(object_id=str(member.pk)).action_flag == ADDITION


def test_a_member_is_added_by_handle_resolved_both_ways(admin_client, plc, mpls):
    plc.add(BOB, handle="bob.test")
    assert admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "@Bob.Test"}).status_code == 302
    assert ActorLabel.objects.get().did == BOB


def test_a_handle_that_fails_to_verify_is_shown_and_nothing_is_added(admin_client, plc, mpls):
    plc.add(ALICE, handle="alice.test")
    plc.handles["mallory.test"] = ALICE
    response = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "mallory.test"})
    assert response.status_code == 200
    assert f"mallory.test: {ALICE} does not claim the handle mallory.test" in response.text
    response = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "nobody.test"})
    assert "nobody.test: the handle nobody.test does not resolve (HTTP 400)" in response.text
    assert not ActorLabel.objects.exists()


def test_adding_an_existing_member_again_is_a_form_error(admin_client, plc, mpls):
    plc.add(ALICE, handle="alice.test")
    ActorLabel.objects.create(label=mpls, did=ALICE)
    response = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "alice.test"})
    assert f"{ALICE} already holds mpls" in response.text
    assert ActorLabel.objects.count() == 1


def test_a_pasted_list_is_added_and_each_failure_is_named(admin_client, plc, mpls):
    plc.add(ALICE, handle="alice.test")
    plc.add(BOB, handle="bob.test")
    pasted = f"alice.test\n{BOB}, nobody.test\n\n"
    response = admin_client.post(BULK_URL, {"label": mpls.pk, "action": "add", "identifiers": pasted}, follow=True)
    assert "2 account(s) added to mpls." in response.text
    assert "Could not add nobody.test: the handle nobody.test does not resolve (HTTP 400)" in response.text
    assert re.search(r'<textarea name="identifiers"[^>]*>\s*nobody.test</textarea>', response.text)
    assert sorted(mpls.members.values_list("did", "handle")) == [(ALICE, "alice.test"), (BOB, "bob.test")]
    assert LogEntry.objects.filter(action_flag=ADDITION).count() == 2


def test_a_pasted_list_is_removed_by_did_or_stored_handle(admin_client, mpls):
    ActorLabel.objects.create(label=mpls, did=ALICE, handle="alice.test")
    ActorLabel.objects.create(label=mpls, did=BOB, handle="bob.test")
    other = Label.objects.create(name="tqsp")
    ActorLabel.objects.create(label=other, did=ALICE)
    response = admin_client.post(
        BULK_URL, {"label": mpls.pk, "action": "remove", "identifiers": f"alice.test {BOB}"}, follow=True
    )
    assert "2 account(s) removed from mpls." in response.text
    assert not mpls.members.exists()
    assert other.members.count() == 1
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 2


def test_the_bulk_page_is_linked_from_the_member_list_and_renders(admin_client, mpls):
    assert BULK_URL in admin_client.get(LIST_URL).text
    response = admin_client.get(f"{BULK_URL}?label={mpls.pk}")
    assert response.status_code == 200 and 'name="identifiers"' in response.text


def test_members_are_found_by_did_handle_or_label(admin_client, mpls):
    ActorLabel.objects.create(label=mpls, did=ALICE, handle="alice.test")
    ActorLabel.objects.create(label=Label.objects.create(name="tqsp"), did=BOB, handle="bob.test")
    for query, expected in [("aliceaaa", [ALICE]), ("bob.test", [BOB]), ("tqsp", [BOB])]:
        shown = admin_client.get(LIST_URL, {"q": query}).context["cl"].result_list
        assert [member.did for member in shown] == expected, query


def test_the_member_list_shows_indexed_handles_and_display_names(admin_client, mpls):
    ActorLabel.objects.create(label=mpls, did=ALICE, handle="alice.old")
    ActorLabel.objects.create(label=mpls, did=BOB, handle="bob.test")
    now = datetime.datetime.now(datetime.timezone.utc)
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(ALICE, 1, now, 10, "alice.new")])
    connections["clickhouse"].insert_rows(
        "profiles", ["did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at",
                     "deleted", "time_us"],
        [(ALICE, "self", "Alice in Minneapolis", "", "", "", now, 0, 10)],
    )
    page = admin_client.get(LIST_URL).content.decode()
    assert '<td class="field-current_handle">alice.new</td>' in page
    assert '<td class="field-display_name">Alice in Minneapolis</td>' in page
    assert '<td class="field-current_handle">bob.test</td>' in page


def test_a_pasted_list_that_all_fails_says_so_and_keeps_the_list(admin_client, plc, mpls):
    pasted = "nobody.test\nnoone.test"
    response = admin_client.post(BULK_URL, {"label": mpls.pk, "action": "add", "identifiers": pasted}, follow=True)
    assert response.status_code == 200
    assert "account(s) added" not in response.text
    assert 'class="success"' not in response.text
    assert "Could not add nobody.test: the handle nobody.test does not resolve (HTTP 400)" in response.text
    assert "Could not add noone.test: the handle noone.test does not resolve (HTTP 400)" in response.text
    assert re.search(r'<textarea name="identifiers"[^>]*>\s*nobody.test\nnoone.test</textarea>', response.text)
    assert not mpls.members.exists()


@pytest.fixture
def unreachable_directory(settings):
    """The PLC directory and the handle resolver at a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.PLC_URL = settings.HANDLE_RESOLVER_URL = url
    cache.clear()
    yield
    cache.clear()


def test_a_member_is_added_by_did_while_the_directory_is_unreachable(admin_client, unreachable_directory, mpls):
    response = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": ALICE})
    assert response.status_code == 302
    assert list(mpls.members.values_list("did", "handle")) == [(ALICE, "")]


def test_an_unreachable_directory_and_a_wrong_handle_read_differently(admin_client, plc, mpls, settings):
    wrong = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "nobody.test"}).text
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.HANDLE_RESOLVER_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = admin_client.post(ADD_URL, {"label": mpls.pk, "identifier": "alice.test"}).text
    assert "nobody.test: the handle nobody.test does not resolve (HTTP 400)" in wrong
    assert ("alice.test: the handle could not be checked: its server or the PLC directory did not answer. "
            "Try again later, or add the account by its DID.") in unreachable
    for page in (wrong, unreachable):
        assert not re.search(r"[A-Z][a-z]+(Error|Exception)\b", page)
    assert not ActorLabel.objects.exists()
