"""What went wrong, in a domain module's words: a kind and a message, never an HTTP status.

A domain error (`Refused` and its module's subclass, say `cleanup.CleanupError`) says why a request
cannot go on; its message is Skyline's own words, safe to show a client. The API layer picks the
status from the kind (skyline/api_errors.py, `STATUS_OF`), so no domain module knows about HTTP.
"""

import enum


class Kind(enum.Enum):
    INVALID = "invalid"  # the request cannot be used as it is
    UNAUTHENTICATED = "unauthenticated"  # the credentials were not accepted
    FORBIDDEN = "forbidden"  # the caller may not do this
    NOT_FOUND = "not found"  # what the request names does not exist or cannot be found
    TOO_MANY = "too many"  # the caller is over a limit for now
    UPSTREAM = "upstream"  # a server Skyline called (a PDS, the directory) failed
    BUSY = "busy"  # Skyline's own capacity for the work is taken for now


class Refused(Exception):
    """A request a domain module refuses: `kind` says why, the message says it in words."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
