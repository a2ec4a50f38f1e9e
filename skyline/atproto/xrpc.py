"""A small XRPC client for a user's PDS (or the entryway): sessions, repo export and writes.

Calls go through the outbound client (skyline/atproto/outbound.py): a PDS named by a DID document is cut to
its origin and must be a public https address; the entryway (ENTRYWAY_URL) is trusted as configured.
Tokens go only into the Authorization header. A PdsError's text is Skyline's own words and the
upstream status, safe to show a client; the PDS's error name and message stay in `error` and
`message` for the code that decides what to do about them.
"""

from skyline.atproto import outbound

REPO_MAX_BYTES = outbound.REPO_BYTES


class PdsError(Exception):
    """A failed call to a PDS (Skyline as XRPC client; Skyline's own XRPC answers are
    skyline.api_errors.XrpcError): `status` is 0 when the server could not be reached or was refused."""

    def __init__(self, status, error, message="", summary=""):
        self.status = status
        self.error = error
        self.message = message
        super().__init__(summary or f"the server answered HTTP {status}")

    @property
    def detail(self):
        """The upstream's own error name and message: for the operator and the logs, never a client."""
        return f"{self.error}: {self.message}" if self.message else self.error

    def says(self, *words):
        """True when the error name or message mentions any of `words`."""
        text = f"{self.error} {self.message}"
        return any(word in text for word in words)


def _error_of(answer):
    """The PdsError a failed answer carries (its error name and message, when it gives them)."""
    body = answer.json()
    if not isinstance(body, dict):
        body = {}
    error = str(body.get("error") or f"HTTP {answer.status}")
    return PdsError(answer.status, error, str(body.get("message") or ""))


def _failed(exc):
    return PdsError(exc.status, type(exc).__name__, summary=str(exc))


class XrpcClient:
    def __init__(self, host, trusted=False):
        """PdsError when `host` may not be called (see skyline/atproto/outbound.py)."""
        try:
            self._http = outbound.Client(host, trusted=trusted)
        except outbound.OutboundError as exc:
            raise _failed(exc) from None
        self.host = self._http.base

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _json(self, http_method, nsid, token=None, content_type=None, **kwargs):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            answer = self._http.request(http_method, f"/xrpc/{nsid}", headers=headers, **kwargs)
        except outbound.OutboundError as exc:
            raise _failed(exc) from None
        if answer.status >= 400:
            raise _error_of(answer)
        body = answer.json()
        if not isinstance(body, dict):
            raise PdsError(answer.status, "InvalidResponse", summary=f"{nsid} did not answer a JSON object")
        return body

    def create_session(self, identifier, password):
        """{"did", "accessJwt", "refreshJwt", ...} for an identifier and an (app) password."""
        body = self._json(
            "POST", "com.atproto.server.createSession", json={"identifier": identifier, "password": password}
        )
        return _session(body)

    def refresh_session(self, refresh_token):
        """A new session; the PDS rotates the refresh token, so the old one is spent."""
        return _session(self._json("POST", "com.atproto.server.refreshSession", token=refresh_token))

    def get_session(self, access_token):
        return self._json("GET", "com.atproto.server.getSession", token=access_token)

    def get_repo(self, did, max_bytes=None):
        """The repository of `did` as CAR bytes (a bytearray, grown in place rather than joined from
        copies); PdsError RepoTooLarge past `max_bytes` (REPO_MAX_BYTES)."""
        limit = max_bytes or REPO_MAX_BYTES
        headers = {"Accept": "application/vnd.ipld.car"}
        try:
            with self._http.stream(
                "GET",
                "/xrpc/com.atproto.sync.getRepo",
                limit=limit,
                seconds=outbound.REPO_SECONDS,
                params={"did": did},
                headers=headers,
            ) as (status, _headers, chunks):
                if status >= 400:
                    raise _error_of(outbound.Answer(status, _headers, _head(chunks, outbound.JSON_BYTES)))
                car = bytearray()
                for chunk in chunks:
                    car += chunk
        except outbound.TooLarge:
            raise PdsError(413, "RepoTooLarge", summary=f"the repository is over {limit:,} bytes") from None
        except outbound.OutboundError as exc:
            raise _failed(exc) from None
        return car

    def apply_writes(self, access_token, repo, writes):
        return self._json(
            "POST", "com.atproto.repo.applyWrites", token=access_token, json={"repo": repo, "writes": writes}
        )

    def put_record(self, access_token, repo, collection, rkey, record):
        """Create or replace the record at collection/rkey; {"uri", "cid"}."""
        body = {"repo": repo, "collection": collection, "rkey": rkey, "record": record}
        return self._json("POST", "com.atproto.repo.putRecord", token=access_token, json=body)

    def delete_record(self, access_token, repo, collection, rkey):
        body = {"repo": repo, "collection": collection, "rkey": rkey}
        return self._json("POST", "com.atproto.repo.deleteRecord", token=access_token, json=body)

    def upload_blob(self, access_token, data, mime_type):
        """The blob object (`$type`, `ref`, `mimeType`, `size`) to put in a record."""
        body = self._json(
            "POST", "com.atproto.repo.uploadBlob", token=access_token, content=data, content_type=mime_type
        )
        if not isinstance(body.get("blob"), dict):
            raise PdsError(200, "InvalidResponse", summary="uploadBlob did not answer a blob")
        return body["blob"]


def _head(chunks, limit):
    """The first `limit` bytes of an error answer (enough for its JSON), the rest left unread."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def _session(body):
    if not all(
        isinstance(body.get(key), str) and body.get(key) for key in ("did", "accessJwt", "refreshJwt")
    ):
        raise PdsError(200, "InvalidResponse", summary="the session has no did or tokens")
    return body
