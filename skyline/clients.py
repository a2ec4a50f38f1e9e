"""Who sent a request: the client's address, seen through as many reverse proxies as we trust."""

from django.conf import settings


def client_address(request):
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies in front, the address the outermost of them
    saw (that many entries from the right of X-Forwarded-For; entries further left are the client's
    own claims and cannot be trusted)."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")
