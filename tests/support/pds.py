"""A PDS on loopback for the tests: accounts, sessions, real signed repos as CAR files, record writes.

It speaks the wire formats a real PDS does:
- com.atproto.server.createSession / refreshSession (the refresh token rotates: the old one is
  spent) / getSession / deleteSession, with ExpiredToken, InvalidToken and missing-account errors;
- com.atproto.sync.getRepo: a CARv1 whose root is a commit (version 3) signed with the account's
  key, over a Merkle Search Tree of DAG-CBOR records, built as the atproto repo spec says;
- com.atproto.repo.applyWrites (create/update/delete), createRecord, putRecord, deleteRecord,
  getRecord, listRecords, uploadBlob.

Faults to test against: `expire_sessions(did)`, `delete_account(did)`, `fail_writes_after(n)` (the
n+1th write call answers 500), `rate_limit(n)` (429 after n write calls). Every request is kept
in `self.requests`, and the time of every applyWrites call in `self.write_times`.
"""

import base64
import hashlib
import secrets
import time

import libipld

from tests.support.identities import SigningKey, did_plc
from tests.support.servers import LoopbackServer, json_response
from skyline.atproto import syntax

_last_tid = 0


def tid(micros=None, clock_id=0):
    """A TID record key for `micros` (now by default); successive calls for now never repeat."""
    global _last_tid
    if micros is None:
        micros = max(time.time_ns() // 1000, _last_tid + 1)
        _last_tid = micros
    return syntax.tid(micros, clock_id)


def cid_for(data):
    """The CIDv1 (dag-cbor, sha2-256) of encoded bytes, in binary form (what DAG-CBOR links hold)."""
    return b"\x01\x71\x12\x20" + hashlib.sha256(data).digest()


def _varint(number):
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def car_file(root, blocks):
    """CARv1 bytes: a header naming `root`, then each (cid, data) block."""
    header = libipld.encode_dag_cbor({"version": 1, "roots": [root]})
    parts = [_varint(len(header)), header]
    for cid, data in blocks:
        parts += [_varint(len(cid) + len(data)), cid, data]
    return b"".join(parts)


def _mst_layer(key):
    """The tree layer of a key: leading zero bits of its SHA-256, counted in pairs (fanout 4)."""
    zeros = 0
    for byte in hashlib.sha256(key).digest():
        if byte == 0:
            zeros += 8
            continue
        zeros += 8 - byte.bit_length()
        break
    return zeros // 2


class RepoBuilder:
    """Builds the blocks of a repo: records, MST nodes and the signed commit."""

    def __init__(self, did, key):
        self.did = did
        self.key = key
        self.blocks = {}

    def _put(self, value):
        data = libipld.encode_dag_cbor(value)
        cid = cid_for(data)
        self.blocks[cid] = data
        return cid

    def _tree(self, entries, layer):
        """The CID of the node holding `entries` (sorted (key, cid, layer)) at `layer`, or None."""
        if not entries:
            return None
        if layer < 0:
            raise ValueError("an MST entry below layer 0")
        here = [index for index, entry in enumerate(entries) if entry[2] == layer]
        left_end = here[0] if here else len(entries)
        node = {"l": self._tree(entries[:left_end], layer - 1), "e": []}
        previous = b""
        for position, index in enumerate(here):
            key, value, _ = entries[index]
            right_end = here[position + 1] if position + 1 < len(here) else len(entries)
            shared = 0
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
            node["e"].append(
                {
                    "p": shared,
                    "k": key[shared:],
                    "v": value,
                    "t": self._tree(entries[index + 1 : right_end], layer - 1),
                }
            )
            previous = key
        return self._put(node)

    def build(self, records, rev):
        """CAR bytes of a repo holding `records` ({"collection/rkey": record dict})."""
        entries = []
        for path in sorted(records):
            key = path.encode()
            entries.append((key, self._put(records[path]), _mst_layer(key)))
        top = max((entry[2] for entry in entries), default=0)
        data = self._tree(entries, top) or self._put({"l": None, "e": []})
        unsigned = {"did": self.did, "version": 3, "data": data, "rev": rev, "prev": None}
        commit = self._put({**unsigned, "sig": self.key.sign(libipld.encode_dag_cbor(unsigned))})
        return car_file(
            commit,
            [(commit, self.blocks[commit])]
            + [(cid, block) for cid, block in self.blocks.items() if cid != commit],
        )


class Account:
    def __init__(self, did, handle, password, email):
        self.did = did
        self.handle = handle
        self.email = email
        self.passwords = {password}
        self.key = SigningKey()
        self.records = {}
        self.blobs = {}
        self.rev = tid()

    def put(self, collection, rkey, record):
        self.records[f"{collection}/{rkey}"] = record
        self.rev = tid()

    def remove(self, collection, rkey):
        self.rev = tid()
        return self.records.pop(f"{collection}/{rkey}", None) is not None

    def car(self):
        return RepoBuilder(self.did, self.key).build(self.records, self.rev)


def ipld(value):
    """A JSON record as DAG-CBOR data: {"$link"} becomes a CID link, {"$bytes"} bytes."""
    if isinstance(value, dict):
        if set(value) == {"$link"}:
            return libipld.decode_multibase(value["$link"])[1]
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"] + "=" * (-len(value["$bytes"]) % 4))
        return {key: ipld(item) for key, item in value.items()}
    if isinstance(value, list):
        return [ipld(item) for item in value]
    return value


def _error(status, error, message):
    return json_response({"error": error, "message": message}, status)


def _one(kind, body):
    """The applyWrites form of a createRecord/putRecord/deleteRecord body."""
    return {
        "$type": kind,
        "collection": body.get("collection"),
        "rkey": body.get("rkey"),
        "value": body.get("record"),
    }


class Pds(LoopbackServer):
    """A PDS for the accounts added with `add_account`; register them in a PlcDirectory with `publish`."""

    ACCESS_SECONDS = 7200

    def __init__(self):
        super().__init__()
        self.accounts = {}
        self.access_tokens = {}  # token -> (did, expires at)
        self.refresh_tokens = {}  # token -> did; a rotated token is removed
        self.write_times = []
        self._writes_left = None
        self._writes_allowed = None

    # -- set-up ----------------------------------------------------------------------------------

    def add_account(self, name, password="app-pass-1234", handle=None, email=None):
        did = did_plc(name)
        handle = handle or f"{name}.test"
        account = Account(did, handle, password, email or f"{name}@example.com")
        self.accounts[did] = account
        return account

    def publish(self, plc, account):
        """Register the account's DID document (handle, signing key, this PDS) in `plc`."""
        plc.add(account.did, handle=account.handle, signing_key=account.key.multikey, pds=self.url)

    # -- faults ----------------------------------------------------------------------------------

    def expire_sessions(self, did):
        """Every token of the account expires (as when its refresh token outlived its 90 days)."""
        for tokens in (self.refresh_tokens, self.access_tokens):
            for token, (owner, _) in list(tokens.items()):
                if owner == did:
                    tokens[token] = (owner, 0)

    def delete_account(self, did):
        del self.accounts[did]

    def fail_writes_after(self, calls):
        """Write calls beyond the next `calls` answer 500 (None: never)."""
        self._writes_left = calls

    def rate_limit(self, calls):
        """Write calls beyond the next `calls` answer 429 with RateLimit headers (None: no limit)."""
        self._writes_allowed = calls

    # -- sessions --------------------------------------------------------------------------------

    def _session(self, account):
        access, refresh = f"acc-{secrets.token_urlsafe(24)}", f"ref-{secrets.token_urlsafe(24)}"
        self.access_tokens[access] = (account.did, time.time() + self.ACCESS_SECONDS)
        self.refresh_tokens[refresh] = (account.did, time.time() + 90 * 86400)
        return {
            "did": account.did,
            "handle": account.handle,
            "email": account.email,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
        }

    def _bearer(self, request):
        header = request.headers.get("Authorization", "")
        return header[len("Bearer ") :] if header.startswith("Bearer ") else ""

    def _authenticated(self, request):
        """(account, None) for a valid access token, else (None, error response)."""
        token = self._bearer(request)
        if not token:
            return None, _error(401, "AuthMissing", "Authentication Required")
        if token not in self.access_tokens:
            return None, _error(401, "InvalidToken", "Token could not be verified")
        did, expires = self.access_tokens[token]
        if expires < time.time():
            return None, _error(400, "ExpiredToken", "Token has expired")
        account = self.accounts.get(did)
        if account is None:
            return None, _error(400, "AccountNotFound", "Could not find user info for account")
        return account, None

    def _find(self, identifier):
        for account in self.accounts.values():
            if identifier in (account.did, account.handle, account.email):
                return account
        return None

    def create_session(self, request):
        body = request.json() or {}
        account = self._find(str(body.get("identifier", "")).lower())
        if account is None or body.get("password") not in account.passwords:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return json_response(self._session(account))

    def refresh_session(self, request):
        token = self._bearer(request)
        if token not in self.refresh_tokens:
            return _error(400, "InvalidToken", "Token has been revoked")
        did, expires = self.refresh_tokens.pop(token)
        if expires < time.time():
            return _error(400, "ExpiredToken", "Token has expired")
        account = self.accounts.get(did)
        if account is None:
            return _error(400, "InvalidRequest", f"Could not find user info for account: {did}")
        return json_response(self._session(account))

    def get_session(self, request):
        account, failure = self._authenticated(request)
        if failure:
            return failure
        return json_response(
            {"did": account.did, "handle": account.handle, "email": account.email, "active": True}
        )

    # -- repos -----------------------------------------------------------------------------------

    def get_repo(self, request):
        account = self.accounts.get(request.query.get("did", ""))
        if account is None:
            return _error(400, "RepoNotFound", f"Could not find repo for DID: {request.query.get('did')}")
        return 200, {"Content-Type": "application/vnd.ipld.car"}, account.car()

    def _write_allowed(self):
        """None if the write may go, else the fault's response."""
        if self._writes_allowed is not None:
            if self._writes_allowed <= 0:
                reset = int(time.time()) + 60
                return (
                    429,
                    {
                        "Content-Type": "application/json",
                        "RateLimit-Limit": "1500",
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(reset),
                    },
                    (b'{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}'),
                )
            self._writes_allowed -= 1
        if self._writes_left is not None:
            if self._writes_left <= 0:
                return _error(500, "InternalServerError", "Internal Server Error")
            self._writes_left -= 1
        return None

    def _apply(self, account, write):
        kind = write.get("$type", "")
        collection, rkey = write.get("collection", ""), write.get("rkey") or tid()
        if kind.endswith("#delete"):
            if not account.remove(collection, rkey):
                raise LookupError(f"Could not find record: {collection}/{rkey}")
            return {"$type": "com.atproto.repo.applyWrites#deleteResult"}
        account.put(collection, rkey, ipld(write.get("value") or {}))
        uri = f"at://{account.did}/{collection}/{rkey}"
        result = "#createResult" if kind.endswith("#create") else "#updateResult"
        return {"$type": f"com.atproto.repo.applyWrites{result}", "uri": uri, "cid": "bafyrei"}

    def write(self, request, writes_of, single=False):
        account, failure = self._authenticated(request)
        if failure:
            return failure
        self.write_times.append(time.monotonic())
        fault = self._write_allowed()
        if fault:
            return fault
        body = request.json() or {}
        if body.get("repo") not in (account.did, account.handle):
            return _error(401, "InvalidToken", "the token is not for this repo")
        writes = writes_of(body)
        if len(writes) > 200:
            return _error(400, "InvalidRequest", "Too many writes. Max: 200")
        try:
            # All or nothing, as on a real PDS: check every delete before changing anything.
            for write in writes:
                if (
                    write.get("$type", "").endswith("#delete")
                    and f"{write.get('collection')}/{write.get('rkey')}" not in account.records
                ):
                    raise LookupError(f"Could not find record: {write.get('collection')}/{write.get('rkey')}")
            results = [self._apply(account, write) for write in writes]
        except LookupError as exc:
            return _error(400, "InvalidRequest", str(exc))
        commit = {"cid": "bafyrei", "rev": account.rev}
        if single:
            found = {key: value for key, value in results[0].items() if key in ("uri", "cid")}
            return json_response({**found, "commit": commit})
        return json_response({"commit": commit, "results": results})

    def get_record(self, request):
        account = self._find(request.query.get("repo", ""))
        path = f"{request.query.get('collection')}/{request.query.get('rkey')}"
        if account is None or path not in account.records:
            return _error(400, "RecordNotFound", f"Could not locate record: {path}")
        return json_response({"uri": f"at://{account.did}/{path}", "value": account.records[path]})

    def list_records(self, request):
        account = self._find(request.query.get("repo", ""))
        if account is None:
            return _error(400, "RepoNotFound", "Could not find repo")
        prefix = f"{request.query.get('collection')}/"
        records = [
            {"uri": f"at://{account.did}/{path}", "value": value}
            for path, value in sorted(account.records.items())
            if path.startswith(prefix)
        ]
        return json_response({"records": records})

    def upload_blob(self, request):
        account, failure = self._authenticated(request)
        if failure:
            return failure
        link = libipld.encode_cid(b"\x01\x55\x12\x20" + hashlib.sha256(request.body).digest())
        account.blobs[link] = request.body
        mime = request.headers.get("Content-Type", "application/octet-stream")
        return json_response(
            {"blob": {"$type": "blob", "ref": {"$link": link}, "mimeType": mime, "size": len(request.body)}}
        )

    def handle(self, request):
        routes = {
            "com.atproto.server.createSession": self.create_session,
            "com.atproto.server.refreshSession": self.refresh_session,
            "com.atproto.server.getSession": self.get_session,
            "com.atproto.sync.getRepo": self.get_repo,
            "com.atproto.repo.applyWrites": lambda r: self.write(r, lambda body: body.get("writes") or []),
            "com.atproto.repo.createRecord": lambda r: self.write(
                r, lambda body: [_one("#create", body)], True
            ),
            "com.atproto.repo.putRecord": lambda r: self.write(r, lambda body: [_one("#update", body)], True),
            "com.atproto.repo.deleteRecord": lambda r: self.write(
                r, lambda body: [_one("#delete", body)], True
            ),
            "com.atproto.repo.getRecord": self.get_record,
            "com.atproto.repo.listRecords": self.list_records,
            "com.atproto.repo.uploadBlob": self.upload_blob,
        }
        method = request.path.removeprefix("/xrpc/")
        if method in routes:
            return routes[method](request)
        return super().handle(request)
