"""Reading an account's repository: a getRepo CAR file, walked through its MST to the records.

A repo export is a CARv1 whose first root is the signed commit; the commit's `data` is the root
of the Merkle Search Tree, whose entries map `collection/rkey` to record CIDs. The atproto SDK
parses the CAR; the tree walk is here, in key order.
"""

import base64

import libipld
from atproto_core.car import CAR
from atproto_core.cid import CID

_CID_PREFIXES = (b"\x01\x71\x12\x20", b"\x01\x55\x12\x20")  # CIDv1 dag-cbor / raw, sha2-256


class RepoError(Exception):
    """The CAR file is not a readable repository; the message says why."""


class Repo:
    def __init__(self, car_bytes):
        try:
            car = CAR.from_bytes(car_bytes)
        except Exception as exc:
            raise RepoError(f"not a CAR file: {exc}") from None
        self._blocks = car.blocks
        commit = self._blocks.get(car.root)
        if not isinstance(commit, dict) or not isinstance(commit.get("data"), bytes):
            raise RepoError("the CAR file has no repo commit at its root")
        self.commit = commit
        self.did = commit.get("did", "")

    def _block(self, link):
        """The decoded block a link (CID bytes, as the decoder gives links) points at, or None."""
        return self._blocks.get(CID.from_decoded_bytes(link))

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
                key = key[: entry["p"]] + entry["k"]
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
            yield collection, rkey, record


def record_json(value):
    """A decoded DAG-CBOR value as atproto JSON: links as {"$link"}, other bytes as {"$bytes"}."""
    if isinstance(value, dict):
        return {key: record_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [record_json(item) for item in value]
    if isinstance(value, bytes):
        if len(value) == 36 and value.startswith(_CID_PREFIXES):
            return {"$link": libipld.encode_cid(value)}
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    return value
