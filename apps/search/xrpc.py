"""A small XRPC client for a user's PDS: sessions, repo export and writes, over httpx.

Tokens go only into the Authorization header; errors carry the server's error name and
message, never a token.
"""

import httpx

USER_AGENT = "skyline/1.0"
# The largest repository export read (the seed's crawler stopped at 100 MB).
REPO_MAX_BYTES = 200 * 1024 * 1024


class XrpcError(Exception):
    """A failed XRPC call: `status` is 0 when the server could not be reached."""

    def __init__(self, status, error, message=""):
        self.status = status
        self.error = error
        self.message = message
        super().__init__(f"{error}: {message}" if message else error)

    def says(self, *words):
        """True when the error name or message mentions any of `words`."""
        text = f"{self.error} {self.message}"
        return any(word in text for word in words)


def _error_of(response):
    """The XrpcError a failed response carries (its error name and message, when it gives them)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = str(body.get("error") or f"HTTP {response.status_code}")
    return XrpcError(response.status_code, error, str(body.get("message") or ""))


class XrpcClient:
    def __init__(self, host, timeout=60.0):
        self.host = host.rstrip("/")
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _call(self, http_method, nsid, token=None, accept="application/json", content_type=None, **kwargs):
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._http.request(http_method, f"{self.host}/xrpc/{nsid}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise XrpcError(
                0, "NetworkError", f"{self.host} could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def _json(self, http_method, nsid, token=None, **kwargs):
        response = self._call(http_method, nsid, token, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise XrpcError(response.status_code, "InvalidResponse", f"{nsid} did not answer JSON") from None
        if not isinstance(body, dict):
            raise XrpcError(response.status_code, "InvalidResponse", f"{nsid} did not answer a JSON object")
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
        """The repository of `did` as CAR bytes; XrpcError RepoTooLarge past `max_bytes` (REPO_MAX_BYTES)."""
        limit = max_bytes or REPO_MAX_BYTES
        headers = {"Accept": "application/vnd.ipld.car"}
        url = f"{self.host}/xrpc/com.atproto.sync.getRepo"
        try:
            with self._http.stream("GET", url, params={"did": did}, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_of(response)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise XrpcError(413, "RepoTooLarge", f"the repository is over {limit:,} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise XrpcError(0, "NetworkError", f"{self.host} could not be reached ({type(exc).__name__})") from None
        return b"".join(chunks)

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
            raise XrpcError(200, "InvalidResponse", "uploadBlob did not answer a blob")
        return body["blob"]


def _session(body):
    if not all(
        isinstance(body.get(key), str) and body.get(key) for key in ("did", "accessJwt", "refreshJwt")
    ):
        raise XrpcError(200, "InvalidResponse", "the session has no did or tokens")
    return body
