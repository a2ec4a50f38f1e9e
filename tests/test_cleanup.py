"""Repo clean-up jobs end to end against a PDS on loopback: sessions, real CAR repos, applyWrites, limits."""

import datetime
import types
import json
import logging

import libipld
import pytest
from atproto_crypto.verify import verify_signature
from django.utils import timezone

from apps.search import cleanup, tasks
from apps.search.cleanup import run_job
from apps.search.models import CleanupJob
from skyline.atproto.repos import Repo
from tests.support.pds import Pds, tid
from tests.support.servers import json_response
from tests.support.stores import BOTH_STORES
from skyline.atproto.syntax import utc_text

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

NOW = datetime.datetime.now(datetime.timezone.utc)
POST, REPOST, LIKE = "app.bsky.feed.post", "app.bsky.feed.repost", "app.bsky.feed.like"
IMAGES = {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": {"$type": "blob"}}]}
VIDEO = {"$type": "app.bsky.embed.video", "video": {"$type": "blob"}}
QUOTE_WITH_IMAGES = {"$type": "app.bsky.embed.recordWithMedia", "record": {}, "media": IMAGES}
LINK_CARD = {"$type": "app.bsky.embed.external", "external": {"uri": "https://example.com"}}


def days_ago(days):
    return utc_text(NOW - datetime.timedelta(days=days))


def add(account, collection, days, **fields):
    rkey = tid()
    account.put(collection, rkey, {"$type": collection, "createdAt": days_ago(days), **fields})
    return rkey


@pytest.fixture
def pds(plc, settings):
    with Pds() as server:
        settings.ENTRYWAY_URL = server.url
        settings.CLEANUP_CALLS_PER_SECOND = 1000.0
        yield server


@pytest.fixture
def alice(pds, plc):
    account = pds.add_account("alice")
    pds.publish(plc, account)
    return account


def a_mixed_repo(account):
    """Old and new records of every kind; returns {kind: old rkeys} of what a clean-up may select."""
    old = {"post": [], "post_with_media": [], "repost": [], "like": []}
    for days in (40, 41, 42):
        old["post"].append(add(account, POST, days, text="old"))
        old["post"].append(add(account, POST, days, text="link", embed=LINK_CARD))
        old["post_with_media"] += [
            add(account, POST, days, text="pic", embed=IMAGES),
            add(account, POST, days, text="clip", embed=VIDEO),
            add(account, POST, days, text="quote", embed=QUOTE_WITH_IMAGES),
        ]
        old["repost"].append(add(account, REPOST, days, subject={}))
        old["like"].append(add(account, LIKE, days, subject={}))
    for collection in (POST, REPOST, LIKE):
        add(account, collection, 2, text="recent")
    account.records[f"{POST}/{tid()}"] = {"$type": POST, "text": "no date", "createdAt": "yesterday-ish"}
    add(account, "app.bsky.feed.generator", 90, did="did:web:example.com")
    add(account, "app.bsky.feed.threadgate", 90, post="at://x")
    add(account, "app.bsky.graph.follow", 90, subject="did:plc:bob")
    return old


def post_cleanup(client, **body):
    payload = {
        "identifier": "alice.test",
        "app_password": "app-pass-1234",
        "cleanup_types": ["post"],
        "delete_until_days_ago": 30,
        "actually_delete_stuff": False,
        **body,
    }
    return client.post("/repo/cleanup", json.dumps(payload), content_type="application/json")


def start_job(client, account, count, collection=POST):
    """A clean-up job over `count` 100-day-old records of `collection`; its id."""
    for _ in range(count):
        add(account, collection, 100, text="old", subject={})
    kind = {POST: "post", REPOST: "repost", LIKE: "like"}[collection]
    return post_cleanup(client, cleanup_types=[kind], actually_delete_stuff=True).json()["job_id"]


def make_due(job):
    CleanupJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now(), lease_until=None)


def test_the_test_pds_serves_a_signed_repo_whose_tree_holds_every_record(pds, alice):
    for index in range(300):
        alice.put(POST, tid(), {"$type": POST, "text": f"post {index}", "createdAt": days_ago(1)})
    car = alice.car()
    header, blocks = libipld.decode_car(car)
    commit = blocks[header["roots"][0]]
    unsigned = {key: value for key, value in commit.items() if key != "sig"}
    assert commit["version"] == 3 and commit["did"] == alice.did
    assert verify_signature(f"did:key:{alice.key.multikey}", libipld.encode_dag_cbor(unsigned), commit["sig"])

    repo = Repo(car)
    paths = [path for path, _ in repo.record_cids()]
    assert paths == sorted(alice.records)
    assert [record["text"] for _, _, record in repo.records(POST)] == [
        alice.records[p]["text"] for p in paths
    ]
    # 300 keys make a tree of several layers, not one flat node.
    root = blocks[commit["data"]]
    assert root["l"] is not None or any(entry["t"] for entry in root["e"])


def test_a_dry_run_counts_by_kind_and_age_and_deletes_nothing(client, pds, alice):
    old = a_mixed_repo(alice)
    before = dict(alice.records)
    expectations = [
        (["post"], len(old["post"])),
        (["post_with_media"], len(old["post_with_media"])),
        (["repost", "like"], len(old["repost"]) + len(old["like"])),
        (["post", "post_with_media", "repost", "like"], sum(map(len, old.values()))),
    ]
    for types, expected in expectations:
        response = post_cleanup(client, cleanup_types=types)
        assert response.status_code == 200
        assert response.json() == {
            "num_enqueued": expected,
            "dry_run": True,
            "message": "Records will not be deleted",
        }
    assert post_cleanup(client, cleanup_types=["like"], delete_until_days_ago=45).json()["num_enqueued"] == 0
    assert alice.records == before
    assert CleanupJob.objects.count() == 0


def test_a_job_deletes_exactly_the_selected_records_in_calls_of_ten(client, pds, alice):
    old = a_mixed_repo(alice)
    selected = {f"{POST}/{rkey}" for rkey in old["post"] + old["post_with_media"]}
    kept = set(alice.records) - selected

    response = post_cleanup(client, cleanup_types=["post", "post_with_media"], actually_delete_stuff=True)
    body = response.json()
    assert response.status_code == 200
    job_id = body["job_id"]
    assert body == {
        "num_enqueued": len(selected),
        "dry_run": False,
        "job_id": job_id,
        "message": f"{len(selected)} records enqueued for deletion in job at: "
        f"http://localhost:8000/repo/cleanup?job_id={job_id}",
    }
    status = client.get("/repo/cleanup", {"job_id": job_id}).json()
    assert status["job_state"] == "running" and status["refresh_token"] == ""
    assert status["est_num_remaining"] == len(selected) and status["last_deleted_at"] is None

    assert tasks.run_cleanup_jobs() == [job_id]

    assert set(alice.records) == kept
    write_calls = [r for r in pds.requests if r.path.endswith("applyWrites")]
    assert [len(r.json()["writes"]) for r in write_calls] == [10, 5]
    assert {w["$type"] for r in write_calls for w in r.json()["writes"]} == {
        "com.atproto.repo.applyWrites#delete"
    }
    status = client.get("/repo/cleanup", {"job_id": job_id}).json()
    assert status["job_state"] == "completed"
    assert (status["num_deleted"], status["num_deleted_today"], status["est_num_remaining"]) == (15, 15, 0)
    assert CleanupJob.objects.get().refresh_token_encrypted == ""
    listed = {key: value for key, value in status.items() if key != "job_id"}  # ids only to their owner
    assert client.get("/repo/cleanup", {"did": alice.did}).json() == [listed]
    assert client.get("/repo/cleanup/stats").json() == {
        "total_num_deleted": 15,
        "num_jobs": 1,
        "num_repos": 1,
    }


def test_the_refresh_token_is_encrypted_at_rest_and_rotated_every_run(client, pds, alice, settings):
    settings.CLEANUP_DELETES_PER_RUN = 10
    job_id = start_job(client, alice, 25, LIKE)
    job = CleanupJob.objects.get(pk=job_id)
    first_token = job.refresh_token
    assert first_token in pds.refresh_tokens
    assert first_token not in job.refresh_token_encrypted

    assert run_job(job_id) == "deleted 10"
    job.refresh_from_db()
    assert job.refresh_token != first_token and job.refresh_token in pds.refresh_tokens
    assert first_token not in pds.refresh_tokens  # spent: only the saved, rotated token works now
    assert job.next_run_at > timezone.now() + datetime.timedelta(minutes=59)
    assert run_job(job_id) == "not due"

    make_due(job)
    assert run_job(job_id) == "deleted 10"
    make_due(job)
    assert run_job(job_id) == "completed"
    assert len(alice.records) == 0 and CleanupJob.objects.get().num_deleted == 25


def test_runs_and_utc_days_are_capped_and_a_new_utc_date_resets_the_day(client, pds, alice, settings):
    settings.CLEANUP_DELETES_PER_RUN = 25
    settings.CLEANUP_DELETES_PER_DAY = 40
    job_id = start_job(client, alice, 70, REPOST)
    job = CleanupJob.objects.get(pk=job_id)

    assert run_job(job_id) == "deleted 25"
    make_due(job)
    assert run_job(job_id) == "deleted 15"
    job.refresh_from_db()
    assert (job.num_deleted, job.num_deleted_today, job.est_num_remaining) == (40, 40, 30)
    calls_so_far = len(pds.write_times)

    make_due(job)
    assert run_job(job_id) == "daily limit reached"
    assert len(pds.write_times) == calls_so_far
    job.refresh_from_db()
    assert (
        job.next_run_at.date() > timezone.now().date()
        or job.next_run_at >= timezone.now() + datetime.timedelta(hours=1)
    )

    # The same day-of-month a month ago is another date: the day's count starts again.
    month_ago = job.last_deleted_at - datetime.timedelta(days=30)
    CleanupJob.objects.filter(pk=job.pk).update(last_deleted_at=month_ago)
    make_due(job)
    assert run_job(job_id) == "deleted 25"
    job.refresh_from_db()
    assert (job.num_deleted, job.num_deleted_today, job.est_num_remaining) == (65, 25, 5)


def test_apply_writes_calls_are_paced_at_the_configured_rate(client, pds, alice, settings, monkeypatch):
    """The pacing is judged on the limiter's own clock (a fake one that moves only when it sleeps), so
    the test asserts the schedule itself, whatever the machine's load does to arrival times."""
    from skyline.atproto import ratelimit

    clock = types.SimpleNamespace(now=1000.0)
    clock.monotonic = lambda: clock.now
    clock.sleep = lambda seconds: setattr(clock, "now", clock.now + seconds)
    monkeypatch.setattr(ratelimit, "time", clock)
    released = []
    wait = ratelimit.RateLimiter.wait
    monkeypatch.setattr(ratelimit.RateLimiter, "wait", lambda self, timeout=None: (
        wait(self, timeout), released.append(clock.now))[0])

    settings.CLEANUP_CALLS_PER_SECOND = 4.0
    job_id = start_job(client, alice, 30, LIKE)
    assert run_job(job_id) == "completed"
    assert len(pds.write_times) == 3
    assert [later - earlier for earlier, later in zip(released, released[1:])] == [0.25, 0.25]


def test_an_error_mid_run_keeps_every_delete_done_and_the_rotated_token(client, pds, alice):
    job_id = start_job(client, alice, 45, POST)
    pds.fail_writes_after(2)

    assert run_job(job_id) == "interrupted"
    job = CleanupJob.objects.get(pk=job_id)
    assert (job.state, job.num_deleted, job.est_num_remaining) == ("running", 20, 25)
    assert len(alice.records) == 25
    assert job.refresh_token in pds.refresh_tokens
    assert (
        timezone.now() + datetime.timedelta(minutes=4)
        < job.next_run_at
        < timezone.now() + datetime.timedelta(minutes=6)
    )

    pds.fail_writes_after(None)
    make_due(job)
    assert run_job(job_id) == "completed"
    job.refresh_from_db()
    assert (job.state, job.num_deleted, len(alice.records)) == ("completed", 45, 0)


def test_a_pds_rate_limit_stops_the_run_and_keeps_its_progress(client, pds, alice):
    job_id = start_job(client, alice, 30, POST)
    pds.rate_limit(1)
    assert run_job(job_id) == "interrupted"
    job = CleanupJob.objects.get(pk=job_id)
    assert (job.state, job.num_deleted, len(alice.records)) == ("running", 10, 20)


def test_an_expired_session_ends_the_job_as_errored(client, pds, alice):
    job_id = start_job(client, alice, 1)
    pds.expire_sessions(alice.did)
    assert run_job(job_id) == "errored: expired token"
    status = client.get("/repo/cleanup", {"job_id": job_id}).json()
    assert status["job_state"] == "errored: ExpiredToken"
    assert CleanupJob.objects.get().refresh_token_encrypted == ""
    assert len(alice.records) == 1


def test_a_deleted_account_ends_the_job_as_errored(client, pds, alice):
    job_id = start_job(client, alice, 1)
    pds.delete_account(alice.did)
    run_job(job_id)
    assert client.get("/repo/cleanup", {"job_id": job_id}).json()["job_state"] == (
        "errored: Could not find user info for account (account may have been deleted)"
    )


def test_an_account_has_one_running_job_at_a_time(client, pds, alice):
    first = start_job(client, alice, 1)
    again = post_cleanup(client, actually_delete_stuff=True).json()
    assert again == {
        "num_enqueued": 0,
        "dry_run": False,
        "job_id": first,
        "message": "Found existing active job for your account, you can only have one job running at a time.",
    }
    assert CleanupJob.objects.count() == 1


def test_a_job_leased_by_one_worker_is_not_run_by_another(client, pds, alice):
    job = CleanupJob.objects.get(pk=start_job(client, alice, 1))
    assert job.claim(600)
    assert run_job(job.id) == "not due"
    assert len(alice.records) == 1


def test_only_the_owner_can_cancel_a_job(client, pds, alice, plc):
    mallory = pds.add_account("mallory", password="mallory-pass")
    pds.publish(plc, mallory)
    job_id = start_job(client, alice, 1)
    url = f"/repo/cleanup?job_id={job_id}"

    def cancel(body=None, **headers):
        return client.delete(
            url, json.dumps(body) if body else "", content_type="application/json", headers=headers
        )

    assert cancel().status_code == 401
    assert cancel({"identifier": "alice.test", "app_password": "wrong"}).status_code == 401
    assert cancel({"identifier": "mallory.test", "app_password": "mallory-pass"}).status_code == 403
    assert cancel(Authorization="Bearer not-a-token").status_code == 401
    assert CleanupJob.objects.get().state == "running"

    response = cancel({"identifier": "alice.test", "app_password": "app-pass-1234"})
    assert (response.status_code, response.json()) == (200, {"message": "job cancelled"})
    job = CleanupJob.objects.get()
    assert (job.job_state, job.refresh_token_encrypted) == ("cancelled", "")
    make_due(job)
    assert run_job(job_id) == "not due"


def test_the_owner_can_cancel_with_an_access_token(client, pds, alice):
    job_id = start_job(client, alice, 1)
    session = pds._session(alice)
    response = client.delete(
        f"/repo/cleanup?job_id={job_id}", headers={"Authorization": f"Bearer {session['accessJwt']}"}
    )
    assert response.status_code == 200
    assert CleanupJob.objects.get().state == "cancelled"


def test_a_job_cancelled_during_a_run_stops_after_the_current_call(client, pds, alice):
    for _ in range(30):
        job = CleanupJob.objects.get(pk=start_job(client, alice, 1))
    original = pds.write

    def write_then_cancel(request, writes_of, single=False):
        answer = original(request, writes_of, single)
        job.cancel()
        return answer

    pds.write = write_then_cancel
    assert run_job(job.id) == "stopped"
    job.refresh_from_db()
    assert (job.state, job.num_deleted, len(alice.records)) == ("cancelled", 0, 20)


@pytest.mark.parametrize(
    "body, status, error",
    [
        (
            {"identifier": "not an identifier!"},
            400,
            "error cleaning up records: failed to parse identifier as at-identifier or email address",
        ),
        (
            {"app_password": "nope"},
            401,
            "error cleaning up records: could not sign in: the identifier or app password was not accepted",
        ),
        (
            {"cleanup_types": ["everything"]},
            400,
            "error cleaning up records: cleanup_types must be some of post, post_with_media, repost, like",
        ),
        (
            {"delete_until_days_ago": -1},
            400,
            "error cleaning up records: delete_until_days_ago must be between 0 and 36500",
        ),
        (
            {"delete_until_days_ago": "soon"},
            400,
            "error parsing request: delete_until_days_ago: Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"identifier": "nobody.test"}, 400, None),
    ],
)
def test_bad_clean_up_requests_get_a_clear_4xx(client, pds, alice, body, status, error):
    response = post_cleanup(client, **body)
    assert response.status_code == status
    if error:
        assert response.json() == {"error": error}
    assert CleanupJob.objects.count() == 0


def test_an_email_signs_in_at_the_entryway(client, pds, alice):
    add(alice, LIKE, 100, subject={})
    response = post_cleanup(client, identifier="alice@example.com", cleanup_types=["like"])
    assert response.json()["num_enqueued"] == 1


def test_status_queries_answer_the_seed_errors(client, pds):
    assert client.get("/repo/cleanup").json() == {
        "error": "must specify either job_id or did in query params"
    }
    missing = client.get("/repo/cleanup", {"job_id": "6f1c6a7e-8f1e-4a43-9a55-4e7b5a1f0d11"})
    assert (missing.status_code, missing.json()) == (404, {"error": "job not found"})
    assert client.get("/repo/cleanup", {"job_id": "../../etc"}).status_code == 404
    nobody = client.get("/repo/cleanup", {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert (nobody.status_code, nobody.json()) == (404, {"error": "no jobs found for the provided DID"})
    assert client.get("/repo/cleanup", {"did": "robert'); DROP TABLE"}).status_code == 400
    assert client.get("/repo/cleanup/stats").json() == {"total_num_deleted": 0, "num_jobs": 0, "num_repos": 0}
    assert client.post("/repo/cleanup", "{not json", content_type="application/json").status_code == 400


def test_tokens_and_app_passwords_are_never_logged_or_returned(client, pds, alice, caplog):
    caplog.set_level(logging.DEBUG)
    secrets_seen = {"app-pass-1234"}
    job_id = start_job(client, alice, 12)
    pds.fail_writes_after(1)
    run_job(job_id)
    secrets_seen |= set(pds.refresh_tokens) | set(pds.access_tokens)
    bodies = [
        post_cleanup(client).content,
        client.get("/repo/cleanup", {"job_id": job_id}).content,
        client.get("/repo/cleanup", {"did": alice.did}).content,
        post_cleanup(client, app_password="wrong-pass-99").content,
    ]
    text = caplog.text + b"".join(bodies).decode()
    assert len(secrets_seen) > 3
    assert not [secret for secret in secrets_seen if secret in text]


class ImpostorPds(Pds):
    """A PDS whose accounts' sessions claim another account's DID (`self.claims`)."""

    def create_session(self, request):
        status, headers, body = super().create_session(request)
        if status == 200:
            return json_response({**json.loads(body), "did": self.claims})
        return status, headers, body


def test_a_pds_answering_with_another_accounts_did_cannot_start_or_cancel_its_jobs(client, pds, alice, plc):
    job_id = start_job(client, alice, 1)
    with ImpostorPds() as impostor:
        impostor.claims = alice.did
        mallory = impostor.add_account("mallory", password="mallory-pass")
        impostor.publish(plc, mallory)
        refused = {"error": "error cleaning up records: could not sign in: "
                            "the PDS answered for an account it does not host"}
        for identifier in (mallory.did, mallory.handle):
            cancel = client.delete(f"/repo/cleanup?job_id={job_id}", json.dumps(
                {"identifier": identifier, "app_password": "mallory-pass"}), content_type="application/json")
            assert (cancel.status_code, cancel.json()) == (502, refused)
            start = post_cleanup(client, identifier=identifier, app_password="mallory-pass")
            assert (start.status_code, start.json()) == (502, refused)
    assert CleanupJob.objects.get().state == "running"
    assert CleanupJob.objects.count() == 1


def test_the_job_list_of_an_account_shows_no_job_ids(client, pds, alice):
    start_job(client, alice, 1)
    listed = client.get("/repo/cleanup", {"did": alice.did}).json()
    assert [sorted(job) for job in listed] == [sorted(set(CleanupJob().status()) - {"job_id"})]
    assert str(CleanupJob.objects.get().id) not in json.dumps(listed)


def sign_in_calls(pds):
    return sum(request.path.endswith("createSession") for request in pds.requests)


def test_failed_sign_ins_are_limited_per_identifier(client, pds, alice, plc):
    for _ in range(5):
        assert post_cleanup(client, app_password="wrong-pass").status_code == 401
    for password in ("wrong-pass", "app-pass-1234"):
        response = post_cleanup(client, app_password=password)
        assert (response.status_code, response.json()) == (
            429, {"error": "error cleaning up records: too many failed sign-ins; try again later"})
    assert sign_in_calls(pds) == 5
    bob = pds.add_account("bob")
    pds.publish(plc, bob)
    assert post_cleanup(client, identifier="bob.test").status_code == 200


def test_failed_sign_ins_are_limited_per_client(client, pds, plc, monkeypatch):
    monkeypatch.setattr(cleanup.SIGN_IN_FAILURES_PER_CLIENT, "limit", 3)
    accounts = [pds.add_account(name) for name in ("bob", "carol", "dave", "erin")]
    for account in accounts:
        pds.publish(plc, account)
    for account in accounts[:3]:
        assert post_cleanup(client, identifier=account.handle, app_password="wrong-pass").status_code == 401
    response = post_cleanup(client, identifier=accounts[3].handle)
    assert response.status_code == 429
    other_client = client.post(
        "/repo/cleanup",
        json.dumps({"identifier": accounts[3].handle, "app_password": "app-pass-1234",
                    "cleanup_types": ["post"], "delete_until_days_ago": 30}),
        content_type="application/json",
        REMOTE_ADDR="192.0.2.7",
    )
    assert other_client.status_code == 200
    assert sign_in_calls(pds) == 4
