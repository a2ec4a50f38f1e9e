"""How Django's request logs treat what a client did wrong: a WARNING line at most, no traceback.

Django logs a SuspiciousOperation (a Host not in ALLOWED_HOSTS, a form or query with too many fields,
too big a body...) at ERROR with its traceback under `django.security.<its class>`, a 4xx it answers
for an exception (a body it cannot parse, say) at WARNING with the traceback under `django.request`,
and every 5xx at ERROR, the 501 of an XRPC method Skyline does not implement among them. Anyone on
the network can cause these at will, and an ERROR pages an operator: they are the client's doing and
worth a line, not an alert. A 500 (a fault of Skyline's own) keeps its ERROR and its traceback.

Django's records about a request carry the answer's status as `status_code` (extra context it
documents): the filter on each of CLIENT_FAULT_LOGGERS (LOGGING in skyline/settings.py) goes by it.
"""

import logging

# The loggers Django logs refused requests to: its request logger, and one security logger per kind
# of SuspiciousOperation (a filter on the `django.security` parent would not see its children's records).
_SUSPICIOUS = (
    "SuspiciousOperation", "DisallowedHost", "DisallowedRedirect", "RequestDataTooBig", "TooManyFieldsSent",
    "TooManyFilesSent", "SuspiciousFileOperation", "SuspiciousMultipartForm", "SuspiciousSession",
    "InvalidSessionKey", "DisallowedModelAdminLookup", "DisallowedModelAdminToField",
)
CLIENT_FAULT_LOGGERS = ("django.request", *(f"django.security.{name}" for name in _SUSPICIOUS))


def client_fault_as_warning(record):
    """Lower a record about a 4xx or 501 answer to WARNING at most and drop its traceback; a CallbackFilter's
    callback (it keeps every record)."""
    status = getattr(record, "status_code", None)
    if isinstance(status, int) and (400 <= status < 500 or status == 501):
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = record.stack_info = None
    return True
