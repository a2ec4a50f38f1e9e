"""A PLC directory's /export on loopback, paging as the real one does.

`GET /export?count=N&after=X`: JSON lines (`application/jsonlines`, no trailing newline), oldest
first, at most min(N, 1000). A numeric `after` is a sequence number (entries carry `seq`); anything
else is a createdAt timestamp (entries without `seq`, as older directories serve them). With
`sequenced=False` it behaves like an older directory that knows only timestamps.

Faults: `rate_limit(n, retry_after)` answers the next n requests 429; `fail(n)` answers them 500.
"""

import datetime
import json

from tests.support.servers import LoopbackServer, json_response
from skyline.atproto.syntax import utc_text

UTC = datetime.timezone.utc
T0 = datetime.datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def created_at(seconds):
    """createdAt as the directory writes it (JavaScript's toISOString)."""
    moment = T0 + datetime.timedelta(seconds=seconds)
    return utc_text(moment, "milliseconds")


def plc_operation(handle, pds, prev=None, key="zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"):
    return {
        "sig": "c2lnbmF0dXJl",
        "prev": prev,
        "type": "plc_operation",
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": pds}},
        "alsoKnownAs": [f"at://{handle}"],
        "rotationKeys": [f"did:key:{key}"],
        "verificationMethods": {"atproto": f"did:key:{key}"},
    }


def legacy_create(handle, service):
    return {
        "sig": "c2lnbmF0dXJl",
        "prev": None,
        "type": "create",
        "handle": handle,
        "service": service,
        "signingKey": "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ",
        "recoveryKey": "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
    }


def tombstone(prev):
    return {"sig": "c2lnbmF0dXJl", "prev": prev, "type": "plc_tombstone"}


class PlcExport(LoopbackServer):
    def __init__(self, sequenced=True):
        super().__init__()
        self.sequenced = sequenced
        self.entries = []
        self._lines = []  # (seq, createdAt, line with seq, line without)
        self._faults = []

    def add(self, did, operation, seconds, nullified=False):
        """Append an operation created `seconds` after T0; returns its export entry."""
        entry = {
            "did": did,
            "operation": operation,
            "cid": f"bafyreicid{len(self._lines):04d}{did[-6:]}",
            "nullified": nullified,
            "createdAt": created_at(seconds),
        }
        seq = len(self._lines) + 1
        self.entries.append({**entry, "seq": seq})
        self._lines.append((seq, entry["createdAt"], json.dumps({**entry, "seq": seq}), json.dumps(entry)))
        return self.entries[-1]

    def add_line(self, text, seconds):
        """Append a line that is not an operation (it still takes a place in the log's order)."""
        self._lines.append((len(self._lines) + 1, created_at(seconds), text, text))

    def rate_limit(self, requests, retry_after="0"):
        self._faults += [(429, retry_after)] * requests

    def fail(self, requests):
        self._faults += [(500, None)] * requests

    def exports(self):
        """The (count, after) of every /export request, in order."""
        return [(r.query.get("count"), r.query.get("after")) for r in self.requests if r.path == "/export"]

    def handle(self, request):
        if request.path != "/export":
            return super().handle(request)
        if self._faults:
            status, retry_after = self._faults.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return json_response({"message": "Too Many Requests" if status == 429 else "Internal"}, status, headers)
        count = min(int(request.query.get("count", "1000")), 1000)
        after = request.query.get("after", "")
        if self.sequenced and after.isdigit():
            chosen = [with_seq for seq, _, with_seq, _ in self._lines if seq > int(after)]
        else:
            if not after:
                since = None
            elif after.isdigit():
                since = datetime.datetime(2000, 1, 1, tzinfo=UTC)  # how JavaScript reads new Date("0")
            else:
                since = datetime.datetime.fromisoformat(after)
            chosen = [
                without for _, created, _, without in self._lines
                if since is None or datetime.datetime.fromisoformat(created) > since
            ]
        return 200, {"Content-Type": "application/jsonlines"}, "\n".join(chosen[:count]).encode()
