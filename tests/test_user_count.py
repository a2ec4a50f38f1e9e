"""count_users(): accounts seen in the firehose or the PLC directory, less the deleted, taken down,
deactivated and suspended ones and the tombstoned DIDs; a reactivated account counts again."""

import io

import pytest
from django.core.management import call_command

from apps.search.users import count_users
from apps.indexer.plc import PlcExporter
from tests.support.firehose_events import T0, account, commit, follow, identity, line, post
from tests.support.identities import did_plc
from tests.support.plc_export import PlcExport, plc_operation, tombstone
from tests.support.stores import BOTH_STORES
from skyline.backoff import Backoff

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

POSTER, LIKER, FOLLOWER, WEB = did_plc("poster"), did_plc("liker"), did_plc("follower"), "did:web:web.example.com"
RENAMED, SIGNED_UP = did_plc("renamed"), did_plc("signedup")
DIRECTORY_ONLY, TOMBSTONED = did_plc("directoryonly"), did_plc("tombstoned")


def replay(tmp_path, name, events):
    path = tmp_path / name
    path.write_bytes(b"".join(line(event) for event in events))
    call_command("consume_firehose", "--replay", str(path), stdout=io.StringIO())


def export(directory):
    PlcExporter(url=directory.url, rate=1000, until_caught_up=True, backoff=Backoff(0.001, 0.002)).run()


def test_accounts_from_the_firehose_and_the_directory_are_counted_once_and_the_gone_are_not(tmp_path):
    replay(tmp_path, "first.jsonl", [
        post(POSTER, "3lpost000001a", T0, "hello"),
        post(POSTER, "3lpost000002a", T0 + 1, "again"),
        commit(LIKER, T0 + 2, "create", "app.bsky.feed.like", "3llike000001a",
               {"subject": {"uri": f"at://{POSTER}/app.bsky.feed.post/3lpost000001a", "cid": "bafy"}}),
        follow(FOLLOWER, "3lfollow00001", T0 + 3, POSTER),
        post(WEB, "3lpost000003a", T0 + 4, "from a did:web"),
        identity(RENAMED, T0 + 5, handle="renamed.test"),
        account(SIGNED_UP, T0 + 6, True),
    ])
    assert count_users() == 6
    with PlcExport() as directory:
        directory.add(POSTER, plc_operation("poster.test", "https://pds.example"), 0)
        directory.add(DIRECTORY_ONLY, plc_operation("quiet.test", "https://pds.example"), 1)
        directory.add(TOMBSTONED, plc_operation("gone.test", "https://pds.example"), 2)
        export(directory)
        assert count_users() == 8
        directory.add(TOMBSTONED, tombstone(prev="bafygone"), 3)
        export(directory)
    assert count_users() == 7

    replay(tmp_path, "deletions.jsonl", [
        account(POSTER, T0 + 10, False, "deleted"),
        account(LIKER, T0 + 11, False, "takendown"),
        account(FOLLOWER, T0 + 12, False, "deactivated"),
        account(WEB, T0 + 13, False, "suspended"),
        account(RENAMED, T0 + 14, False, "desynchronized"),  # a relay's passing state: still an account
    ])
    assert count_users() == 3

    replay(tmp_path, "back.jsonl", [account(FOLLOWER, T0 + 20, True)])
    assert count_users() == 4


def test_the_stats_endpoint_reports_the_user_count(tmp_path, client, fresh_cache):
    replay(tmp_path, "events.jsonl", [
        post(POSTER, "3lpost000001a", T0, "hello"),
        identity(RENAMED, T0 + 1, handle="renamed.test"),
        account(POSTER, T0 + 2, False, "deleted"),
    ])
    assert client.get("/api/stats").json()["total_users"] == 1
