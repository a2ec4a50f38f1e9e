"""Reading an account's repository: a getRepo CAR file, walked through its MST to the records.

A repo export is a CARv1 whose first root is the signed commit; the commit's `data` is the root
of the Merkle Search Tree, whose entries map `collection/rkey` to record CIDs. The CAR arrives from
a stranger and may be as large as the cap (outbound.REPO_BYTES), so it is not decoded whole: the
bytes are kept as they came, indexed by CID, and each block is decoded when the walk reaches it,
so reading costs the CAR's bytes, its index and one block at a time. Any shape that is not a
repository (a cut-off block, a tree entry without its fields, a record nested too deep) is a
RepoError, never another exception.
"""

import base64
import sys

import libipld

from skyline.atproto import identity

from .xrpc import XrpcClient

_CID_PREFIXES = (b"\x01\x71\x12\x20", b"\x01\x55\x12\x20")  # CIDv1 dag-cbor / raw, sha2-256
# A real repo of the largest size we read has about a million and a half blocks; the index of a
# CAR made of tiny blocks would otherwise cost several times the CAR.
MAX_BLOCKS = 2_500_000
# Lexicons nest a few levels; a record deeper than this is not one any app wrote.
MAX_DEPTH = 64


class RepoError(Exception):
    """The CAR file is not a readable repository; the message says why."""


def _varint(data, position):
    """(value, next position) of the unsigned varint at `position`."""
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 56:
            raise RepoError("the CAR file is cut off or malformed")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _cid_end(data, position):
    """Where the binary CID starting at `position` ends."""
    if data[position : position + 2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        return position + 34
    version, position = _varint(data, position)
    if version != 1:
        raise RepoError("the CAR file holds a CID of an unknown version")
    _codec, position = _varint(data, position)
    _hash, position = _varint(data, position)
    length, position = _varint(data, position)
    return position + length


def _decode(data):
    try:
        return libipld.decode_dag_cbor(bytes(data))
    except RecursionError:
        raise RepoError("a block is nested too deep") from None
    except Exception as exc:
        raise RepoError(f"a block is not DAG-CBOR ({type(exc).__name__})") from None


class Repo:
    def __init__(self, car):
        """`car`: the CAR file's bytes (a bytes-like object, kept, not copied)."""
        self._car = memoryview(car)
        header_length, position = _varint(self._car, 0)
        header = _decode(self._car[position : position + header_length])
        roots = header.get("roots") if isinstance(header, dict) else None
        if header_length == 0 or not isinstance(roots, list) or not roots or not isinstance(roots[0], bytes):
            raise RepoError("not a CAR file: its header names no root")
        self._index = self._read_index(position + header_length)
        commit = self._block(roots[0])
        if not isinstance(commit, dict) or not isinstance(commit.get("data"), bytes):
            raise RepoError("the CAR file has no repo commit at its root")
        self.commit = commit
        self.did = commit.get("did", "")

    def _read_index(self, position):
        """{CID bytes: block start << 32 | block length}, packed in one int to keep the index small."""
        car, index = self._car, {}
        while position < len(car):
            length, position = _varint(car, position)
            end = position + length
            cid_end = _cid_end(car, position)
            if end > len(car) or cid_end > end:
                raise RepoError("the CAR file is cut off or malformed")
            index[bytes(car[position:cid_end])] = cid_end << 32 | (end - cid_end)
            if len(index) > MAX_BLOCKS:
                raise RepoError(f"the CAR file holds more than {MAX_BLOCKS:,} blocks")
            position = end
        return index

    def _block(self, link):
        """The decoded block a link (CID bytes, as the decoder gives links) points at, or None."""
        where = self._index.get(link) if isinstance(link, bytes) else None
        if where is None:
            return None
        start = where >> 32
        return _decode(self._car[start : start + (where & 0xFFFFFFFF)])

    def _node(self, link):
        node = self._block(link)
        if not isinstance(node, dict) or not isinstance(node.get("e"), list):
            raise RepoError("the repo's tree is missing a node")
        return node

    def record_cids(self):
        """(collection/rkey, record CID bytes) for every record, in key order.

        A hostile CAR can make the "tree" a graph that names a node twice (a few KB that unfold into
        billions of entries): a node seen twice, or keys out of order, end the walk with RepoError.
        """
        stack = [("node", self.commit["data"])]
        seen = set()
        last_key = None
        while stack:
            kind, value = stack.pop()
            if kind == "entry":
                if last_key is not None and value[0] <= last_key:
                    raise RepoError("the repo's tree is not in key order")
                last_key = value[0]
                yield value
                continue
            if value in seen:
                raise RepoError("the repo's tree names a node twice")
            seen.add(value)
            node = self._node(value)
            # Push in reverse so the left subtree comes out first, then each entry and its right subtree.
            pending = []
            if node.get("l"):
                pending.append(("node", node["l"]))
            key = b""
            for entry in node["e"]:
                key = _entry_key(entry, key)
                pending.append(("entry", (key.decode("utf-8", "replace"), entry["v"])))
                if entry.get("t"):
                    pending.append(("node", entry["t"]))
            stack.extend(reversed(pending))

    def records(self, prefix=""):
        """(collection, rkey, record) for each record whose path starts with `prefix`.

        Records whose block is missing from the CAR (a partial export) are skipped.
        """
        for path, cid in self.record_cids():
            if not path.startswith(prefix):
                continue
            record = self._block(cid)
            if not isinstance(record, dict):
                continue
            collection, _, rkey = path.partition("/")
            # One string per collection, not one per record: callers keep (collection, rkey) lists.
            yield sys.intern(collection), rkey, record


def fetch_repo(did):
    """The repository of `did` from the PDS its DID document names: IdentityError, PdsError or RepoError."""
    with XrpcClient(identity.pds_endpoint(did)) as client:
        repo = Repo(client.get_repo(did))
    if repo.did != did:
        raise RepoError(f"the PDS of {did} answered with the repo of another account")
    return repo


def _entry_key(entry, previous):
    """The full key of a tree entry: `p` bytes of the previous key, then its own `k`."""
    if not isinstance(entry, dict):
        raise RepoError("the repo's tree has an entry that is not a map")
    shared, suffix = entry.get("p"), entry.get("k")
    if (
        not isinstance(shared, int)
        or isinstance(shared, bool)
        or not 0 <= shared <= len(previous)
        or not isinstance(suffix, bytes)
        or not isinstance(entry.get("v"), bytes)
        or not isinstance(entry.get("t"), (bytes, type(None)))
    ):
        raise RepoError("the repo's tree has an entry without its p, k, v and t fields")
    return previous[:shared] + suffix


def record_json(value, depth=0):
    """A decoded DAG-CBOR value as atproto JSON: links as {"$link"}, other bytes as {"$bytes"}."""
    if depth > MAX_DEPTH:
        raise RepoError(f"a record is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {key: record_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [record_json(item, depth + 1) for item in value]
    if isinstance(value, bytes):
        if len(value) == 36 and value.startswith(_CID_PREFIXES):
            return {"$link": libipld.encode_cid(value)}
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    return value
