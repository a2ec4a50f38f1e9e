"""Inter-service auth: the `Bearer` service JWT a PDS mints for its user when it calls a feed.

The token's signature is checked by the atproto SDK against the issuer's `#atproto` key, from its
DID document through `skyline.atproto.identity` (cached; fetched again once when a signature does not
verify, as after a key rotation). The SDK checks `exp`, `iat` and `aud`; what it leaves out is
checked here: the algorithm (ES256K or ES256, matching the key), the token type (access, refresh
and DPoP tokens are not service tokens; `typ` is compared without case, as JOSE media types are),
the issuer (a bare DID), `lxm` (the method the token was minted for), `nbf`, and a lifetime no
longer than a PDS grants: a token cannot be revoked, so one that lives for years is refused.
"""

import time

from atproto_crypto.did import get_multikey_alg
from atproto_server.auth.jwt import decode_jwt_payload, parse_jwt, verify_jwt
from atproto_server.exceptions import (
    InvalidTokenError,
    TokenDecodeError,
    TokenExpiredSignatureError,
    TokenInvalidAudienceError,
    TokenInvalidSignatureError,
)
from django.conf import settings

from skyline.atproto import identity

LEEWAY_SECONDS = 10
# PDSes mint service tokens for 60 s, and com.atproto.server.getServiceAuth grants at most an hour.
MAX_LIFETIME_SECONDS = 3600
_ALGORITHMS = {"ES256K", "ES256"}
_NOT_SERVICE_TOKENS = {"at+jwt", "refresh+jwt", "dpop+jwt"}


class AuthError(Exception):
    """A request whose credentials are present but not acceptable (answered with 401)."""

    def __init__(self, error, message):
        super().__init__(message)
        self.error = error
        self.message = message


def viewer(request, method):
    """The DID the request acts for, or None for an anonymous request (no Authorization header)."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token.strip():
        raise AuthError("AuthenticationRequired", "Authorization must be a Bearer service token")
    return verify_service_token(token.strip(), method)


def verify_service_token(token, method):
    """The issuer DID of a valid service token for `method`; AuthError otherwise."""
    try:
        payload_bytes, _, header, _ = parse_jwt(token)
        payload = decode_jwt_payload(payload_bytes)
    except TokenDecodeError as exc:
        raise AuthError("BadJwt", f"malformed token: {exc}") from None
    token_type = header.get("typ", "")
    if not isinstance(token_type, str) or token_type.lower() in _NOT_SERVICE_TOKENS:
        raise AuthError("BadJwtType", "not a service token")
    algorithm = header.get("alg")
    if algorithm not in _ALGORITHMS:
        raise AuthError("BadJwt", f"unsupported algorithm {algorithm!r} (ES256K or ES256 only)")
    if not identity.is_did(payload.iss or ""):
        raise AuthError("BadJwtIss", "the issuer must be a DID")
    if (payload.model_extra or {}).get("lxm") != method:
        raise AuthError("BadJwtLexiconMethod", f"the token was not issued for {method}")
    if payload.exp is None:
        raise AuthError("BadJwt", "the token has no expiry")
    now = time.time()
    if payload.exp > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise AuthError("BadJwt", f"the token expires more than {MAX_LIFETIME_SECONDS} s ahead")
    if payload.nbf is not None and payload.nbf > now + LEEWAY_SECONDS:
        raise AuthError("BadJwt", "the token is not valid yet (nbf)")

    keys_used = []

    def signing_key(did, refresh):
        try:
            key = identity.signing_key(did, refresh=refresh)
        except identity.IdentityError as exc:
            raise AuthError("BadJwtIss", f"could not find the issuer's key: {exc}") from None
        keys_used.append(key)
        return key

    try:
        verify_jwt(token, signing_key, own_did=settings.SERVICE_DID, leeway=LEEWAY_SECONDS)
    except TokenExpiredSignatureError:
        raise AuthError("JwtExpired", "the token has expired") from None
    except TokenInvalidAudienceError:
        raise AuthError("BadJwtAudience", f"the token is not meant for {settings.SERVICE_DID}") from None
    except TokenInvalidSignatureError:
        raise AuthError("BadJwtSignature", "the token's signature does not verify") from None
    except InvalidTokenError as exc:
        raise AuthError("BadJwt", f"invalid token: {exc}") from None
    # The signature verified under the key's own curve; the header must say that curve too.
    if get_multikey_alg(keys_used[-1].removeprefix("did:key:")) != algorithm:
        raise AuthError("BadJwt", f"{algorithm} does not match the issuer's key")
    return payload.iss
