"""GET /list/members?uri=: a list's members read from the owner's repo (a real CAR from a loopback PDS)."""

import pytest

from tests.support.pds import Pds, tid

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unpaced_repo_checkouts")]

LIST, ITEM = "app.bsky.graph.list", "app.bsky.graph.listitem"
MEMBERS = ["did:plc:" + name * 24 for name in "bcd"]


@pytest.fixture
def owner(plc):
    with Pds() as pds:
        account = pds.add_account("owner")
        pds.publish(plc, account)
        list_uri = f"at://{account.did}/{LIST}/3klist"
        avatar = b"\x01\x55\x12\x20" + bytes(range(32))
        account.put(
            LIST,
            "3klist",
            {
                "$type": LIST,
                "name": "Birders",
                "purpose": "app.bsky.graph.defs#curatelist",
                "createdAt": "2025-01-01T00:00:00Z",
                "avatar": {"$type": "blob", "ref": avatar},
            },
        )
        account.put(LIST, "3kother", {"$type": LIST, "name": "Other", "createdAt": "2025-01-01T00:00:00Z"})
        for member in MEMBERS + [MEMBERS[0]]:
            account.put(
                ITEM,
                tid(),
                {"$type": ITEM, "list": list_uri, "subject": member, "createdAt": "2025-01-02T00:00:00Z"},
            )
        account.put(
            ITEM,
            tid(),
            {
                "$type": ITEM,
                "list": f"at://{account.did}/{LIST}/3kother",
                "subject": "did:plc:" + "e" * 24,
                "createdAt": "2025-01-02T00:00:00Z",
            },
        )
        account.put(
            "app.bsky.graph.listblock", tid(), {"subject": list_uri, "createdAt": "2025-01-02T00:00:00Z"}
        )
        yield account


@pytest.mark.parametrize(
    "uri",
    [
        "at://{did}/app.bsky.graph.list/3klist",
        "at://owner.test/app.bsky.graph.list/3klist",
        "https://bsky.app/profile/owner.test/lists/3klist",
    ],
)
def test_members_come_from_the_owners_repo_in_order_once_each(client, owner, uri):
    response = client.get("/list/members", {"uri": uri.format(did=owner.did)})
    assert response.status_code == 200
    body = response.json()
    assert body["members"] == MEMBERS
    assert body["list"]["name"] == "Birders"
    assert body["list"]["avatar"]["ref"] == {
        "$link": "bafkreiaaaebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4"
    }


def test_a_list_record_that_is_gone_gives_an_empty_list_object(client, owner):
    del owner.records[f"{LIST}/3klist"]
    body = client.get("/list/members", {"uri": f"at://{owner.did}/{LIST}/3klist"}).json()
    assert body == {"members": MEMBERS, "list": {}}


@pytest.mark.parametrize(
    "uri, status, error",
    [
        ("", 400, "uri is required"),
        ("at://owner.test/app.bsky.feed.post/3k", 400, "Error parsing URI: not a app.bsky.graph.list record"),
        ("at://owner.test/app.bsky.graph.list", 400, "Error parsing URI: not a app.bsky.graph.list record"),
        ("https://bsky.app/profile/owner.test/post/3k", 400, "Error parsing URI: not a link to a list"),
        ("https://a/b/c/d/e/f", 400, "unsupported url"),
        ("ftp://owner.test/lists/3k", 400, "Error parsing URI: not an at-URI or a bsky.app list link"),
        (
            "at://owner.test/app.bsky.graph.list/..",
            400,
            "Error parsing URI: not an at-URI or a bsky.app list link",
        ),
    ],
)
def test_bad_uris_get_a_400(client, owner, uri, status, error):
    response = client.get("/list/members", {"uri": uri})
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_an_owner_that_cannot_be_resolved_is_a_404(client, owner):
    response = client.get("/list/members", {"uri": "at://ghost.test/app.bsky.graph.list/3k"})
    assert response.status_code == 404
