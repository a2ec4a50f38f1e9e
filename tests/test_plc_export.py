"""The PLC exporter: the directory's /export pages into plc_operations and plc_did_state, exactly,
with a cursor that only moves once a page is written, backoff on 429s and errors, both cursor kinds."""

import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.db import connections
from prometheus_client import REGISTRY

from apps.indexer.cursor import cursor_store
from apps.indexer.plc import ExportCursor, PlcExporter
from tests.support.identities import did_plc
from tests.support.plc_export import T0, PlcExport, created_at, legacy_create, plc_operation, tombstone
from tests.support.stores import BOTH_STORES, query
from skyline.backoff import Backoff

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

ALICE, BOB, CAROL = did_plc("alice"), did_plc("bob"), did_plc("carol")
ROWS = ("SELECT did, cid, operation_type, created_at, handle, pds, nullified, operation_json, time_us "
        "FROM plc_operations FINAL ORDER BY time_us, cid")
STATE = "SELECT did, operation_type, handle, pds, time_us FROM plc_did_state FINAL ORDER BY did"


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def us(seconds):
    return int((at(seconds) - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()) * 1_000_000


def history(directory):
    """Three accounts' logs: a legacy create, handle and PDS moves, a nullified op, a deleted DID."""
    directory.add(ALICE, legacy_create("alice.bsky.social", "https://bsky.social"), 0)
    directory.add(BOB, plc_operation("bob.test", "https://pds.example"), 1)
    directory.add(ALICE, plc_operation("Alice.Example", "https://pds.alice.example", prev="bafyalice0"), 2)
    directory.add(CAROL, plc_operation("carol.test", "https://pds.example"), 3)
    directory.add(BOB, plc_operation("bob.evil", "https://evil.example", prev="bafybob0"), 4, nullified=True)
    directory.add(CAROL, tombstone(prev="bafycarol0"), 5)


def expected_rows(directory):
    """The rows of history(), plus Bob's later move to bob.new when a test adds it."""
    handles = {0: "alice.bsky.social", 1: "bob.test", 2: "alice.example", 3: "carol.test", 4: "bob.evil", 5: "",
               6: "bob.new"}
    pdss = {0: "https://bsky.social", 1: "https://pds.example", 2: "https://pds.alice.example",
            3: "https://pds.example", 4: "https://evil.example", 5: "", 6: "https://pds.example"}
    return [
        (entry["did"], entry["cid"], entry["operation"]["type"], at(n), handles[n], pdss[n], int(entry["nullified"]),
         entry["operation"], us(n))
        for n, entry in enumerate(directory.entries)
    ]


def exported_rows():
    return [(*row[:7], json.loads(row[7]), row[8]) for row in query(ROWS)]


def exporter(directory, **options):
    return PlcExporter(url=directory.url, rate=1000, until_caught_up=True, backoff=Backoff(base=0.001, cap=0.002),
                       **options)


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def test_every_page_is_exported_into_exact_rows_and_the_latest_state_per_did():
    with PlcExport() as directory:
        history(directory)
        run = exporter(directory, page_size=2)
        run.run()
    assert directory.exports() == [("2", "0"), ("2", "2"), ("2", "4"), ("2", "6")]
    assert exported_rows() == expected_rows(directory)
    assert run.operations_written == 6
    # Bob's nullified move does not count; Carol's DID is deleted.
    assert query(STATE) == [
        (ALICE, "plc_operation", "alice.example", "https://pds.alice.example", us(2)),
        (BOB, "plc_operation", "bob.test", "https://pds.example", us(1)),
        (CAROL, "plc_tombstone", "", "", us(5)),
    ]
    assert ExportCursor().load() == "6"


def test_requests_ask_for_pages_of_1000_as_json_lines():
    with PlcExport() as directory:
        directory.add(ALICE, plc_operation("alice.test", "https://pds.example"), 0)
        exporter(directory).run()
    (request,) = directory.requests
    assert request.query == {"count": "1000", "after": "0"}
    assert request.headers["Accept"] == "application/jsonlines"
    assert request.headers["User-Agent"] == "skyline-plc-export/1.0"


def test_a_later_run_resumes_after_the_saved_cursor_and_fetching_a_page_again_changes_nothing():
    with PlcExport() as directory:
        history(directory)
        exporter(directory, page_size=4).run()
        directory.add(BOB, plc_operation("bob.new", "https://pds.example", prev="bafybob1"), 6)
        exporter(directory, page_size=4).run()
        exporter(directory, page_size=4, after="2").run()  # an operator rewinds: the rows replace themselves
    assert directory.exports() == [("4", "0"), ("4", "4"), ("4", "6"), ("4", "2"), ("4", "6")]
    assert exported_rows() == expected_rows(directory)
    assert query("SELECT handle FROM plc_did_state FINAL WHERE did = %s", [BOB]) == [("bob.new",)]


def test_a_crash_after_a_page_is_fetched_but_before_it_is_written_loses_and_doubles_nothing(monkeypatch):
    insert_rows = connections["clickhouse"].insert_rows
    calls = []

    def crash_on_second_page(table, columns, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("the process dies here")
        return insert_rows(table, columns, rows)

    with PlcExport() as directory:
        history(directory)
        monkeypatch.setattr(connections["clickhouse"], "insert_rows", crash_on_second_page)
        with pytest.raises(RuntimeError):
            exporter(directory, page_size=2).run()
        assert ExportCursor().load() == "2"
        monkeypatch.setattr(connections["clickhouse"], "insert_rows", insert_rows)
        exporter(directory, page_size=2).run()
    assert directory.exports() == [("2", "0"), ("2", "2"), ("2", "2"), ("2", "4"), ("2", "6")]
    assert exported_rows() == expected_rows(directory)
    assert query("SELECT count() FROM plc_operations") == [(6,)]


def test_a_crash_between_writing_a_page_and_saving_its_cursor_writes_the_page_again_without_doubles(monkeypatch):
    save = ExportCursor.save
    saves = []

    def crash_on_second_save(self, page):
        saves.append(page.seq)
        if len(saves) == 2:
            raise RuntimeError("the process dies here")
        save(self, page)

    with PlcExport() as directory:
        history(directory)
        monkeypatch.setattr(ExportCursor, "save", crash_on_second_save)
        with pytest.raises(RuntimeError):
            exporter(directory, page_size=2).run()
        monkeypatch.setattr(ExportCursor, "save", save)
        exporter(directory, page_size=2).run()
    assert directory.exports() == [("2", "0"), ("2", "2"), ("2", "2"), ("2", "4"), ("2", "6")]
    assert exported_rows() == expected_rows(directory)
    query("OPTIMIZE TABLE plc_operations FINAL")
    assert query("SELECT count() FROM plc_operations") == [(6,)]


def test_429_and_server_errors_back_off_and_retry_the_same_page():
    limited = metric("skyline_plc_fetch_errors_total", cause="rate_limited")
    failed = metric("skyline_plc_fetch_errors_total", cause="http_status")
    with PlcExport() as directory:
        history(directory)
        directory.rate_limit(2, retry_after="0")
        directory.fail(1)
        exporter(directory, page_size=3).run()
    assert directory.exports() == [("3", "0")] * 4 + [("3", "3"), ("3", "6")]
    assert exported_rows() == expected_rows(directory)
    assert metric("skyline_plc_fetch_errors_total", cause="rate_limited") - limited == 2
    assert metric("skyline_plc_fetch_errors_total", cause="http_status") - failed == 1


def test_an_older_directory_is_paged_by_created_at():
    with PlcExport(sequenced=False) as directory:
        history(directory)
        exporter(directory, page_size=4).run()
        directory.add(BOB, plc_operation("bob.new", "https://pds.example"), 6)
        exporter(directory, page_size=4).run()
    assert directory.exports() == [("4", "0"), ("4", created_at(3)), ("4", created_at(5))]
    assert exported_rows() == expected_rows(directory)
    assert cursor_store("plc_export_time").load() == us(6)
    assert cursor_store("plc_export_seq").load() is None


def test_lines_that_are_not_operations_are_skipped_and_counted():
    skipped = metric("skyline_plc_skipped_lines_total")
    with PlcExport() as directory:
        directory.add(ALICE, plc_operation("alice.test", "https://pds.example"), 0)
        directory.add_line("{not json", 1)
        directory.add_line(json.dumps({"did": "did:plc:short", "operation": {}, "cid": "x", "createdAt": "now"}), 2)
        directory.add(BOB, plc_operation("bob.test", "https://pds.example"), 3)
        exporter(directory).run()
    assert [row[0] for row in exported_rows()] == [ALICE, BOB]
    assert metric("skyline_plc_skipped_lines_total") - skipped == 2


def test_export_plc_command_exports_until_caught_up_with_once(settings):
    with PlcExport() as directory:
        history(directory)
        settings.PLC_URL = directory.url
        out = io.StringIO()
        call_command("export_plc", "--once", "--rate", "100", stdout=out)
    assert out.getvalue().strip() == "exported 6 PLC operations in 1 page(s); cursor 6"
    assert exported_rows() == expected_rows(directory)
