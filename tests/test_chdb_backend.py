"""The embedded ClickHouse backend: what Django and clickhouse-driver users expect of it."""

import datetime
import decimal
import ipaddress
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.db.utils import DataError, OperationalError, ProgrammingError

from apps.indexer.models import Post
from tests.support.stores import BOTH_STORES, query
from apps.indexer.rows import COLUMNS

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

UTC = datetime.timezone.utc
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def typed_table():
    query(
        """CREATE TABLE typed (
            id UInt32, s String, fs FixedString(3), lc LowCardinality(String), n Nullable(String),
            arr Array(String), iarr Array(Int32), t DateTime64(6, 'UTC'), tp DateTime64(3, 'Asia/Tokyo'),
            d Date, m Map(String, UInt32), mi Map(UInt32, String), u UUID, dec Decimal(18, 4),
            tup Tuple(Int8, String), ip4 IPv4, ip6 IPv6, b Bool, big UInt64, huge Int128,
            f Float64, e Enum8('create' = 1, 'delete' = 3)
        ) ENGINE = MergeTree ORDER BY id"""
    )
    yield
    query("DROP TABLE typed")


def test_values_round_trip_through_parameters_with_their_python_types(typed_table):
    moment = datetime.datetime(2026, 5, 25, 14, 23, 28, 778123, tzinfo=UTC)
    ident = uuid.uuid4()
    text = "it's a \\ back\nslash\t'quoted' 🦋 ünïcode"
    query(
        "INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            1, text, "abc", "en", None, ["a", "b'c"], [1, -2], moment, moment, datetime.date(2026, 5, 25),
            {"likes": 3}, {7: "seven"}, ident, decimal.Decimal("12345.6789"), (1, "x"),
            ipaddress.IPv4Address("10.1.2.3"), ipaddress.IPv6Address("::1"), True, 2**64 - 1,
            -(2**100), float("inf"), "delete",
        ],
    )
    (row,) = query("SELECT * FROM typed")
    assert row == (
        1, text, "abc", "en", None, ["a", "b'c"], [1, -2], moment,
        moment.replace(microsecond=778000), datetime.date(2026, 5, 25), {"likes": 3}, {7: "seven"}, ident,
        decimal.Decimal("12345.6789"), (1, "x"), ipaddress.IPv4Address("10.1.2.3"),
        ipaddress.IPv6Address("::1"), True, 2**64 - 1, -(2**100), float("inf"), "delete",
    )
    assert row[8].tzinfo == UTC


def test_naive_datetimes_are_taken_as_utc(typed_table):
    query("INSERT INTO typed (id, t) VALUES (%s, %s)", [1, datetime.datetime(2026, 1, 2, 3, 4, 5)])
    assert query("SELECT t FROM typed") == [(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),)]


def test_percent_signs_in_values_and_in_sql_survive_substitution():
    assert query("SELECT %s, 'a%%b'", ["100%"]) == [("100%", "a%b")]
    assert query("SELECT 'no params, 50%'") == [("no params, 50%",)]


def post(rkey, text="hello", time_us=1, deleted=0, **extra):
    return Post(
        did="did:plc:alice", rkey=rkey, uri=f"at://did:plc:alice/app.bsky.feed.post/{rkey}", text=text,
        langs=["en", "pt"], created_at=datetime.datetime(2026, 5, 25, 12, tzinfo=UTC), time_us=time_us,
        deleted=deleted, parent_uri="", root_uri="", **extra,
    )


def test_orm_bulk_create_save_and_read_back():
    Post.objects.bulk_create([post("3k1"), post("3k2", text="second")])
    post("3k3", text="saved alone").save(force_insert=True)
    stored = list(Post.objects.order_by("rkey").values_list("rkey", "text", "langs", "created_at"))
    assert stored == [
        ("3k1", "hello", ["en", "pt"], datetime.datetime(2026, 5, 25, 12, tzinfo=UTC)),
        ("3k2", "second", ["en", "pt"], datetime.datetime(2026, 5, 25, 12, tzinfo=UTC)),
        ("3k3", "saved alone", ["en", "pt"], datetime.datetime(2026, 5, 25, 12, tzinfo=UTC)),
    ]
    assert Post.objects.get(rkey="3k2").text == "second"
    assert Post.objects.filter(text__contains="alone").count() == 1


def test_final_reads_only_the_latest_version():
    Post.objects.bulk_create([post("3k1", text="first draft", time_us=1)])
    Post.objects.bulk_create([post("3k1", text="edited", time_us=2)])
    assert Post.objects.count() == 2
    assert list(Post.objects.settings(final=1).values_list("text", flat=True)) == ["edited"]


def test_bulk_insert_path_writes_every_row():
    rows = [
        ("did:plc:bob", f"3k{i:05d}", f"at://did:plc:bob/app.bsky.feed.post/3k{i:05d}",
         datetime.datetime(2026, 5, 25, tzinfo=UTC), f"post {i}", ["en"], i % 2, "", "", 0, i)
        for i in range(5000)
    ]
    columns = COLUMNS["posts"]
    assert connections["clickhouse"].insert_rows("posts", columns, rows) == 5000
    assert query("SELECT count(), sum(has_embedded_media), max(time_us) FROM posts") == [(5000, 2500, 4999)]
    assert Post.objects.get(rkey="3k00042").text == "post 42"


def test_fetchmany_returns_an_empty_list_at_the_end():
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute("SELECT number FROM numbers(3)")
        assert cursor.fetchmany(2) == [(0,), (1,)]
        assert cursor.fetchmany(2) == [(2,)]
        assert cursor.fetchmany(2) == []
        assert cursor.fetchone() is None


def test_iterator_streams_a_large_result_in_blocks():
    Post.objects.bulk_create([post(f"3k{i:05d}") for i in range(3000)])
    seen = [p.rkey for p in Post.objects.order_by("rkey").iterator(chunk_size=500)]
    assert len(seen) == 3000 and seen[0] == "3k00000" and seen[-1] == "3k02999"


def test_iterator_reads_every_block_of_a_result_made_of_many_parts():
    for part in range(4):  # four inserts: four parts, streamed as four blocks
        Post.objects.bulk_create([post(f"3k{part}{i:03d}", time_us=part) for i in range(5)])
    rows = list(Post.objects.order_by("rkey").values_list("rkey", "time_us").iterator(chunk_size=3))
    assert rows == [(f"3k{part}{i:03d}", part) for part in range(4) for i in range(5)]
    with connections["clickhouse"].chunked_cursor() as cursor:
        cursor.execute("SELECT number FROM numbers(10) SETTINGS max_block_size = 3")
        assert cursor.fetchall() == [(n,) for n in range(10)]


def test_update_and_delete_of_rows_whose_values_look_like_sql():
    Post.objects.bulk_create([post("3k1", text="please check your settings now"), post("3k2", text="x WHERE 1 --")])
    assert Post.objects.filter(text="please check your settings now").delete()[0] == 1
    assert Post.objects.filter(text="x WHERE 0 = throwIf(1) --").update(has_embedded_media=1) == 0
    assert Post.objects.filter(text="x WHERE 1 --").delete()[0] == 1
    assert Post.objects.count() == 0


def test_update_and_delete_report_how_many_rows_they_touched():
    Post.objects.bulk_create([post("3k1"), post("3k2"), post("3k3", text="other")])
    assert Post.objects.filter(text="hello").update(has_embedded_media=1) == 2
    assert Post.objects.filter(has_embedded_media=1).count() == 2
    assert Post.objects.filter(text="other").delete()[0] == 1
    assert Post.objects.count() == 2


def test_errors_are_django_database_errors_with_the_clickhouse_message():
    with pytest.raises(ProgrammingError, match=r"Code: 62\..*Syntax error"):
        query("SELEC 1")
    with pytest.raises(ProgrammingError, match=r"Code: 60\..*missing_table"):
        query("SELECT * FROM missing_table")
    with pytest.raises(DataError, match=r"Code: \d+\."):
        query("SELECT toUInt8(%s)", ["not a number"])
    # The connection is still usable after an error.
    assert query("SELECT 1") == [(1,)]


def test_connections_in_several_threads_read_while_one_writes():
    errors, counts = [], []

    def write():
        try:
            for batch in range(5):
                Post.objects.bulk_create([post(f"w{batch}-{i}") for i in range(200)])
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    def read():
        try:
            for _ in range(10):
                counts.append(Post.objects.count())
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(0 <= count <= 1000 for count in counts)
    assert Post.objects.count() == 1000


@pytest.mark.skipif(bool(settings.CLICKHOUSE_URL), reason="about the embedded store; CLICKHOUSE_URL uses a server")
def test_a_second_process_on_the_same_data_directory_gets_one_clear_line():
    query("SELECT 1")  # this process holds the data directory open
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "clickhouse"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(settings.DATA_DIR)},
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"skyline: The ClickHouse data directory {settings.CLICKHOUSE_PATH} is in use by another process: "
        "chDB lets only one process open it. Stop that process, or run everything in it with "
        "`manage.py serve`, or set CLICKHOUSE_URL to use a ClickHouse server.\n"
    )


LOAD_AND_ASK_THE_VERSION = """
import sys
from skyline.db.chdb import driver
chdb = driver._import_chdb()
print(chdb.engine_version)
session = driver._open(sys.argv[1])
print(session.query("SELECT version()", "CSV").bytes().decode().strip() == f'"{chdb.engine_version}"')
print(chdb._chdb.connect.__module__)
"""


def test_chdb_loads_without_a_throwaway_engine_and_still_knows_its_version(tmp_path):
    # chdb's package starts and stops an in-memory engine to read its version (a tenth of a second of
    # every start-up); the driver loads it without that engine and reads the version from the real one.
    # The extension's connect() is its own again once the package has loaded.
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_ASK_THE_VERSION, str(tmp_path / "clickhouse")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unknown", "True", "chdb._chdb"]
