"""Peak memory of reading a repository export, against the cap on its size.

    .venv/bin/python bench/repo_memory.py [MEGABYTES]   (default 200)

A child process builds a signed repo of about MEGABYTES (posts, likes and follows, with the test
PDS's repo builder) and serves it on loopback as a PDS and PLC directory. Fresh processes then read
it as GET /repo/{did} does (fetch, one walk to check every record, one walk writing the JSON out)
and as a clean-up dry run does (one walk, selecting records), one reading each, and print
the peak RSS over the RSS before the read, as a ratio to the CAR's size and to the cap
(outbound.REPO_BYTES).
"""

import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["SKYLINE_DATA_DIR"] = tempfile.mkdtemp(prefix="skyline-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
os.environ["OUTBOUND_ALLOW_PRIVATE"] = "1"  # the PDS is on loopback

DID = "did:plc:benchrepoaaaaaaaaaaaaaaa"
# Bytes a record adds to the CAR, on average (the record, its share of the tree, the framing).
RECORD_BYTES = 305


def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def records(count):
    from tests.support.pds import tid

    start = 1_700_000_000_000_000
    for i in range(count):
        key = tid(start + i * 1000)
        kind = i % 10
        if kind < 4:
            yield f"app.bsky.feed.post/{key}", {
                "$type": "app.bsky.feed.post", "text": f"post {i} " + "about birds and trees " * (1 + i % 8),
                "langs": ["en"], "createdAt": "2024-05-01T10:00:00.000Z"}
        elif kind < 9:
            yield f"app.bsky.feed.like/{key}", {
                "$type": "app.bsky.feed.like", "createdAt": "2024-05-01T10:00:00.000Z",
                "subject": {"uri": f"at://did:plc:{i % 997:024d}/app.bsky.feed.post/{key}",
                            "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}}
        else:
            yield f"app.bsky.graph.follow/{key}", {
                "$type": "app.bsky.graph.follow", "subject": f"did:plc:{i:024d}",
                "createdAt": "2024-05-01T10:00:00.000Z"}


def serve(megabytes, pipe, stop):
    import django

    django.setup()
    from tests.support.identities import SigningKey
    from tests.support.pds import RepoBuilder
    from tests.support.servers import LoopbackServer, did_document

    count = megabytes * 1_000_000 // RECORD_BYTES
    car = RepoBuilder(DID, SigningKey()).build(dict(records(count)), "3lbench")

    class BenchPds(LoopbackServer):
        def handle(self, request):
            if request.path == f"/{DID}":
                return 200, {"Content-Type": "application/json"}, _json(did_document(DID, pds=self.url))
            if request.path == "/xrpc/com.atproto.sync.getRepo":
                return 200, {"Content-Type": "application/vnd.ipld.car"}, car
            return super().handle(request)

    def _json(value):
        import json

        return json.dumps(value).encode()

    with BenchPds() as server:
        pipe.send((server.url, len(car)))
        stop.wait()


def measure(reading, url, pipe):
    """In a fresh process: (RSS before, peak RSS, what was read) of one `reading` of the repo."""
    os.environ["PLC_URL"] = url
    import django

    django.setup()
    from apps.search import cleanup, repo_export
    from skyline.atproto.repos import fetch_repo

    baseline = rss()
    if reading == "GET /repo/{did}":
        result = f"{sum(len(chunk) for chunk in repo_export.export_repo(DID)) / 2**20:,.0f} MiB of JSON"
    else:
        selected = cleanup.selected_records(fetch_repo(DID), ["post", "like"], cleanup.timezone.now())
        result = f"{len(selected):,} records selected"
    pipe.send((baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, result))


def main():
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    stop = context.Event()
    child = context.Process(target=serve, args=(megabytes, sender, stop), daemon=True)
    child.start()
    print(f"building a repo of about {megabytes} MB in a child process...", flush=True)
    url, car_bytes = receiver.recv()
    from skyline.atproto import outbound

    cap = outbound.REPO_BYTES
    print(f"CAR {car_bytes / 2**20:,.0f} MiB, cap {cap / 2**20:,.0f} MiB")
    print("| reading | RSS before | peak RSS | peak over before | / CAR | / cap | read | time |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for reading in ("GET /repo/{did}", "clean-up dry run"):
            started = time.perf_counter()
            process = context.Process(target=measure, args=(reading, url, sender))
            process.start()
            baseline, peak, result = receiver.recv()
            process.join()
            extra = peak - baseline
            mib = [f"{value / 2**20:,.0f} MiB" for value in (baseline, peak, extra)]
            seconds = time.perf_counter() - started
            print(f"| {reading} | {' | '.join(mib)} | {extra / car_bytes:.2f} | {extra / cap:.2f} | {result} "
                  f"| {seconds:.0f} s |", flush=True)
    finally:
        stop.set()
        child.join()


if __name__ == "__main__":
    main()
