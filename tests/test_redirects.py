"""GET /redir?q=: bsky.app links to at-URIs (text) and at-URIs to bsky.app (302), strictly validated."""

import pytest

pytestmark = pytest.mark.django_db

ALICE = "did:plc:" + "a" * 24


@pytest.fixture
def alice(plc):
    plc.add(ALICE, handle="alice.test", pds="http://127.0.0.1:9")
    return ALICE


@pytest.mark.parametrize(
    "q, target",
    [
        (f"at://{ALICE}", f"https://bsky.app/profile/{ALICE}"),
        (f"at://{ALICE}/app.bsky.feed.post/3kabc", f"https://bsky.app/profile/{ALICE}/post/3kabc"),
        (
            "at://alice.test/app.bsky.feed.generator/whats-hot",
            "https://bsky.app/profile/alice.test/feed/whats-hot",
        ),
        (f"at://{ALICE}/app.bsky.graph.list/3klist", f"https://bsky.app/profile/{ALICE}/lists/3klist"),
        (f"at://{ALICE}/app.bsky.graph.starterpack/3kpack", f"https://bsky.app/starter-pack/{ALICE}/3kpack"),
    ],
)
def test_an_at_uri_redirects_to_the_app(client, q, target):
    response = client.get("/redir", {"q": q})
    assert (response.status_code, response["Location"]) == (302, target)


@pytest.mark.parametrize(
    "q, at_uri",
    [
        ("https://bsky.app/profile/alice.test", ALICE),
        (f"https://bsky.app/profile/{ALICE}", ALICE),
        ("https://bsky.app/profile/alice.test/post/3kabc", f"at://{ALICE}/app.bsky.feed.post/3kabc"),
        ("https://staging.bsky.app/profile/alice.test/feed/hot", f"at://{ALICE}/app.bsky.feed.generator/hot"),
        ("https://bsky.app/profile/alice.test/lists/3kl", f"at://{ALICE}/app.bsky.graph.list/3kl"),
        ("https://bsky.app/starter-pack/alice.test/3kp", f"at://{ALICE}/app.bsky.graph.starterpack/3kp"),
    ],
)
def test_an_app_link_becomes_an_at_uri_with_a_did(client, alice, q, at_uri):
    response = client.get("/redir", {"q": q})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == at_uri


@pytest.mark.parametrize(
    "q, status, error",
    [
        ("", 400, "q is required"),
        ("http://bsky.app/profile/alice.test", 400, "invalid atUri"),
        (ALICE, 400, "invalid atUri"),
        (f"at://{ALICE}/app.bsky.feed.like/3k", 400, "invalid atUri"),
        (f"at://{ALICE}/app.bsky.feed.post", 400, "invalid atUri"),
        ("at://evil.example/../../x", 400, "invalid atUri"),
        (f"at://{ALICE}/app.bsky.feed.post/3k?x=https://evil.example", 400, "invalid atUri"),
        ("at://not a handle/app.bsky.feed.post/3k", 400, "invalid atUri"),
        ("https://bsky.app/", 400, "unsupported url"),
        ("https://bsky.app/profile/alice.test/likes/3k", 400, "unsupported url"),
        ("https://bsky.app/settings/privacy", 400, "unsupported url"),
        ("https://bsky.app/profile/alice.test/post/../..", 400, "unsupported url"),
        ("https://bsky.app/profile/bad_handle!/post/3k", 400, "'bad_handle!' is not a handle or DID"),
    ],
)
def test_bad_input_gets_a_400_that_says_why(client, alice, q, status, error):
    response = client.get("/redir", {"q": q})
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_an_identity_that_does_not_exist_is_a_404(client, plc):
    response = client.get("/redir", {"q": "https://bsky.app/profile/nobody.test/post/3k"})
    assert response.status_code == 404
    assert response.json()["error"].startswith("could not resolve nobody.test")
