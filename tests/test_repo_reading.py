"""Reading a repository export is safe against hostile CAR files and oversized repos."""

import pytest

from skyline.atproto.repos import Repo, RepoError
from skyline.atproto.xrpc import PdsError, XrpcClient
from tests.support.pds import RepoBuilder, car_file
from tests.support.servers import LoopbackServer

POST = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2025-01-01T00:00:00Z"}


def hostile_car(nodes):
    """A CAR whose "tree" is `nodes` levels deep, each level naming the next one twice."""
    builder = RepoBuilder("did:plc:hostileaaaaaaaaaaaaaaaaa", key=None)
    record = builder._put(POST)
    child = builder._put({"l": None, "e": [{"p": 0, "k": b"app.bsky.feed.post/3k", "v": record, "t": None}]})
    for level in range(nodes):
        key = f"app.bsky.feed.post/3l{level:04d}".encode()
        child = builder._put({"l": child, "e": [{"p": 0, "k": key, "v": record, "t": child}]})
    commit = builder._put({"did": builder.did, "version": 3, "data": child, "rev": "3l", "prev": None, "sig": b""})
    return car_file(commit, [(commit, builder.blocks[commit])] + list(builder.blocks.items()))


def test_a_tree_that_names_a_node_twice_is_refused_not_unfolded():
    car = hostile_car(30)  # a few KB that would unfold into 2^30 entries
    assert len(car) < 10_000
    with pytest.raises(RepoError, match="names a node twice"):
        list(Repo(car).record_cids())


def test_keys_out_of_order_are_refused():
    builder = RepoBuilder("did:plc:disorderaaaaaaaaaaaaaaaa", key=None)
    record = builder._put(POST)
    entries = [{"p": 0, "k": key, "v": record, "t": None} for key in (b"app.bsky.feed.post/3b", b"app.bsky.feed.post/3a")]
    data = builder._put({"l": None, "e": entries})
    commit = builder._put({"did": builder.did, "version": 3, "data": data, "rev": "3l", "prev": None, "sig": b""})
    car = car_file(commit, [(commit, builder.blocks[commit])] + list(builder.blocks.items()))
    with pytest.raises(RepoError, match="not in key order"):
        list(Repo(car).record_cids())


def test_a_repository_over_the_size_limit_is_not_read_to_the_end():
    class HugeRepo(LoopbackServer):
        def handle(self, request):
            return 200, {"Content-Type": "application/vnd.ipld.car"}, b"\0" * 2_000_000

    with HugeRepo() as pds, XrpcClient(pds.url) as client:
        with pytest.raises(PdsError, match="the repository is over 1,000,000 bytes"):
            client.get_repo("did:plc:hugeaaaaaaaaaaaaaaaaaaaa", max_bytes=1_000_000)
        assert len(client.get_repo("did:plc:hugeaaaaaaaaaaaaaaaaaaaa", max_bytes=3_000_000)) == 2_000_000


class CarServer(LoopbackServer):
    """A PDS that answers getRepo with the CAR it was given."""

    def __init__(self, car):
        super().__init__()
        self.car = car

    def handle(self, request):
        return 200, {"Content-Type": "application/vnd.ipld.car"}, self.car


def repo_car(did, node, records=()):
    """A CAR of a repo whose tree root is `node` (a function of the record CIDs) over `records`."""
    builder = RepoBuilder(did, key=None)
    cids = [builder._put(record) for record in records]
    data = builder._put(node(cids))
    commit = builder._put({"did": did, "version": 3, "data": data, "rev": "3l", "prev": None, "sig": b""})
    return car_file(commit, list(builder.blocks.items()))


def nested(depth):
    value = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.django_db
@pytest.mark.usefixtures("unpaced_repo_checkouts")
@pytest.mark.parametrize("node, records, error", [
    (lambda cids: {"l": None, "e": [{"k": b"app.bsky.feed.post/3k", "v": cids[0], "t": None}]}, [POST],
     "Error reading repo CAR: the repo's tree has an entry without its p, k, v and t fields"),
    (lambda cids: {"l": None, "e": [{"p": 0, "k": b"app.bsky.feed.post/3k", "v": cids[0], "t": None}]},
     [{**POST, "facets": nested(700)}], "Error reading repo CAR: a record is nested deeper than 64 levels"),
    (lambda cids: {"l": None, "e": ["not an entry"]}, [],
     "Error reading repo CAR: the repo's tree has an entry that is not a map"),
    (lambda cids: {"l": None, "e": [{"p": 99, "k": b"x", "v": cids[0], "t": None}]}, [POST],
     "Error reading repo CAR: the repo's tree has an entry without its p, k, v and t fields"),
])
def test_a_repo_that_is_not_well_formed_is_a_502_in_the_apis_error_shape(client, plc, node, records, error):
    did = "did:plc:malformedaaaaaaaaaaaaaaa"
    with CarServer(repo_car(did, node, records)) as pds:
        plc.add(did, pds=pds.url)
        response = client.get(f"/repo/{did}")
    assert (response.status_code, response.json()) == (502, {"error": error})


def test_a_cut_off_car_is_a_repo_error():
    did = "did:plc:cutoffaaaaaaaaaaaaaaaaaa"
    car = repo_car(did, lambda cids: {"l": None, "e": [{"p": 0, "k": b"app.bsky.feed.post/3k", "v": cids[0],
                                                        "t": None}]}, [POST])
    assert [path for path, _ in Repo(car).record_cids()] == ["app.bsky.feed.post/3k"]
    for cut in (1, 10, len(car) // 2, len(car) - 1):
        with pytest.raises(RepoError):
            list(Repo(car[:cut]).record_cids())
