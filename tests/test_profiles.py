"""Profiles from the firehose: app.bsky.actor.profile records into `profiles` as they stream by, and
display_names() joining them with the newest handle from identity events or the PLC directory."""

import datetime
import io

import pytest
from django.core.management import call_command

from apps.indexer.plc import PlcExporter
from apps.indexer.profiles import display_names
from tests.support.firehose_events import DAVE, T0, at, commit, delete, identity, iso, line
from tests.support.identities import did_plc
from tests.support.plc_export import T0 as PLC_T0
from tests.support.plc_export import PlcExport, plc_operation
from tests.support.stores import BOTH_STORES, query
from skyline.backoff import Backoff

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

# did:plc identifiers are base32: the exporter refuses anything else.
ALICE, BOB, CAROL = did_plc("alice"), did_plc("bob"), did_plc("carol")
PROFILE = "app.bsky.actor.profile"
PROFILES = ("SELECT did, rkey, display_name, description, avatar_cid, banner_cid, created_at, time_us "
            "FROM profiles FINAL ORDER BY did")


def blob(link):
    return {"$type": "blob", "ref": {"$link": link}, "mimeType": "image/jpeg", "size": 2048}


def replay(tmp_path, events):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line(event) for event in events))
    out = io.StringIO()
    call_command("consume_firehose", "--replay", str(path), stdout=out)
    return out.getvalue().strip()


def test_profile_records_are_indexed_as_they_stream_by_and_deletes_and_updates_replace_them(tmp_path):
    events = [
        commit(ALICE, T0, "create", PROFILE, "self", {
            "displayName": "Alice 🌷", "description": "hello\nworld", "avatar": blob("bafkreialiceavatar"),
            "banner": blob("bafkreialicebanner"), "createdAt": iso(T0 - 5_000_000)}),
        commit(BOB, T0 + 1_000_000, "create", PROFILE, "self", {
            "displayName": "Bob", "avatar": {"cid": "bafkreiboblegacy", "mimeType": "image/png"}}),
        commit(BOB, T0 + 2_000_000, "update", PROFILE, "self", {"displayName": "Robert", "description": "new"}),
        commit(CAROL, T0 + 3_000_000, "create", PROFILE, "self", {"displayName": "Carol"}),
        delete(CAROL, PROFILE, "self", T0 + 4_000_000),
        commit(DAVE, T0 + 5_000_000, "create", PROFILE, "self", {}),
        commit(DAVE, T0 + 6_000_000, "update", PROFILE, "self", {"displayName": 42}),
        commit(CAROL, T0 + 7_000_000, "create", PROFILE, "self", {"avatar": "not a blob"}),
    ]
    assert replay(tmp_path, events) == "indexed 6 events, rejected 2 (invalid_record: 2)"
    assert query(PROFILES) == [
        (ALICE, "self", "Alice 🌷", "hello\nworld", "bafkreialiceavatar", "bafkreialicebanner", at(T0 - 5_000_000),
         T0),
        (BOB, "self", "Robert", "new", "", "", at(T0 + 2_000_000), T0 + 2_000_000),
        (DAVE, "self", "", "", "", "", at(T0 + 5_000_000), T0 + 5_000_000),
    ]
    # The rejected events left nothing behind, not even in repo_records.
    assert query("SELECT repo, time_us FROM repo_records FINAL WHERE collection = %s ORDER BY repo", [PROFILE]) == [
        (ALICE, T0), (BOB, T0 + 2_000_000), (DAVE, T0 + 5_000_000)]


def test_a_legacy_blob_gives_its_cid(tmp_path):
    replay(tmp_path, [commit(BOB, T0, "create", PROFILE, "self", {
        "displayName": "Bob", "avatar": {"cid": "bafkreiboblegacy", "mimeType": "image/png"}})])
    assert query("SELECT avatar_cid FROM profiles FINAL") == [("bafkreiboblegacy",)]


def plc_seconds(time_us):
    """Seconds after the loopback directory's T0 of a firehose time_us."""
    return (at(time_us) - PLC_T0) / datetime.timedelta(seconds=1)


def test_display_names_take_the_newest_handle_from_identity_events_or_the_directory(tmp_path):
    replay(tmp_path, [
        commit(ALICE, T0, "create", PROFILE, "self", {"displayName": "Alice"}),
        identity(ALICE, T0 + 1_000_000, handle="alice.test"),
        identity(BOB, T0 + 1_000_000, handle="bob.old"),
        commit(CAROL, T0, "create", PROFILE, "self", {"displayName": "Carol"}),
        delete(CAROL, PROFILE, "self", T0 + 2_000_000),
        identity(CAROL, T0 + 3_000_000),  # an identity event without a handle
        commit(DAVE, T0, "create", PROFILE, "self", {"displayName": "Dave"}),
    ])
    with PlcExport() as directory:
        directory.add(ALICE, plc_operation("alice.before", "https://pds.example"), 0)
        directory.add(CAROL, plc_operation("carol.test", "https://pds.example"), 1)
        directory.add(BOB, plc_operation("bob.new", "https://pds.example"), plc_seconds(T0 + 2_000_000))
        PlcExporter(url=directory.url, rate=1000, until_caught_up=True, backoff=Backoff(0.001, 0.002)).run()
    unknown = "did:plc:unknown0000000000000000"
    assert display_names([ALICE, BOB, CAROL, DAVE, unknown, ALICE]) == {
        ALICE: ("alice.test", "Alice"),
        BOB: ("bob.new", ""),
        CAROL: ("carol.test", ""),
        DAVE: ("", "Dave"),
        unknown: ("", ""),
    }
    assert display_names([]) == {}
