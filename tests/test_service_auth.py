"""Service JWTs: real ES256K and ES256 tokens from keys published in DID documents on a loopback
PLC directory are accepted; forged, misaddressed and expired ones are refused with 401."""

import hashlib
import hmac
import json
import time

import pytest
from django.conf import settings

from apps.accounts.models import ActorLabel, Label
from apps.feeds.models import Feed
from tests.support.feed_fixtures import skeleton
from tests.support.identities import SigningKey, b64, did_plc
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

MEMBER = did_plc("member")
OUTSIDER = did_plc("outsider")
SECRET_POST = "at://did:plc:club/app.bsky.feed.post/3ksecret"
PLACEHOLDER = "at://did:plc:club/app.bsky.feed.post/3kjoinus"


@pytest.fixture
def club(db):
    """A private feed: members of the label see its post, everyone else the placeholder."""
    label = Label.objects.create(name="club")
    ActorLabel.objects.create(label=label, did=MEMBER)
    Feed.objects.create(alias="club", kind="static", display_name="Club", private=True, label=label,
                        pinned_posts=SECRET_POST, placeholder=PLACEHOLDER)


@pytest.fixture
def member_key(plc):
    key = SigningKey("ES256K")
    plc.add(MEMBER, signing_key=key.multikey)
    return key


def seen(response):
    assert response.status_code == 200, response.content
    return [item["post"] for item in response.json()["feed"]]


def refusal(response):
    return response.status_code, response.json()["error"]


@pytest.mark.parametrize("algorithm", ["ES256K", "ES256"])
def test_a_valid_token_makes_the_request_the_issuers(client, club, plc, algorithm):
    key = SigningKey(algorithm)
    plc.add(MEMBER, signing_key=key.multikey)
    assert seen(skeleton(client, "club", token=key.token(MEMBER, settings.SERVICE_DID))) == [SECRET_POST]


def test_without_a_token_the_request_is_anonymous(client, club):
    assert seen(skeleton(client, "club")) == [PLACEHOLDER]


def test_a_viewer_without_the_label_sees_the_placeholder(client, club, plc):
    key = SigningKey()
    plc.add(OUTSIDER, signing_key=key.multikey)
    assert seen(skeleton(client, "club", token=key.token(OUTSIDER, settings.SERVICE_DID))) == [PLACEHOLDER]


def test_a_rotated_key_is_fetched_again_once(client, club, plc, member_key):
    assert seen(skeleton(client, "club", token=member_key.token(MEMBER, settings.SERVICE_DID))) == [SECRET_POST]
    rotated = SigningKey("ES256")
    plc.add(MEMBER, signing_key=rotated.multikey)
    before = len(plc.requests)
    assert seen(skeleton(client, "club", token=rotated.token(MEMBER, settings.SERVICE_DID))) == [SECRET_POST]
    assert len(plc.requests) == before + 1
    # The old key is gone from the document: its tokens no longer verify.
    old = member_key.token(MEMBER, settings.SERVICE_DID)
    assert refusal(skeleton(client, "club", token=old)) == (401, "BadJwtSignature")


@pytest.mark.parametrize("typ, claims", [
    ("jwt", {}),
    ("JWT", {"nbf": 0}),
    ("JWT", {"exp_in": 3600}),
])
def test_a_service_token_within_its_limits_is_accepted(client, club, member_key, typ, claims):
    token = member_key.token(MEMBER, settings.SERVICE_DID, header={"typ": typ}, **claims)
    assert seen(skeleton(client, "club", token=token)) == [SECRET_POST]


def unsigned(header, payload):
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def forged(case, key):
    """A token that must be refused, and the error it must get."""
    aud = settings.SERVICE_DID
    if case == "wrong key":
        return SigningKey().token(MEMBER, aud), "BadJwtSignature"
    if case == "wrong curve in header":
        return key.token(MEMBER, aud, header={"alg": "ES256"}), "BadJwt"
    if case == "wrong aud":
        return key.token(MEMBER, "did:web:other.example"), "BadJwtAudience"
    if case == "wrong lxm":
        return key.token(MEMBER, aud, lxm="app.bsky.feed.getFeed"), "BadJwtLexiconMethod"
    if case == "missing lxm":
        return key.token(MEMBER, aud, lxm=None), "BadJwtLexiconMethod"
    if case == "expired":
        return key.token(MEMBER, aud, exp_in=-120), "JwtExpired"
    if case == "issued in the future":
        return key.token(MEMBER, aud, iat=9_999_999_999), "BadJwt"
    if case == "not valid yet":
        return key.token(MEMBER, aud, nbf=int(time.time()) + 120), "BadJwt"
    if case == "expires in ten years":
        return key.token(MEMBER, aud, exp_in=10 * 365 * 86400), "BadJwt"
    if case == "expires in two hours":
        return key.token(MEMBER, aud, exp_in=7200), "BadJwt"
    if case == "access token":
        return key.token(MEMBER, aud, header={"typ": "at+jwt"}), "BadJwtType"
    if case == "access token in capitals":
        return key.token(MEMBER, aud, header={"typ": "AT+JWT"}), "BadJwtType"
    if case == "refresh token in mixed case":
        return key.token(MEMBER, aud, header={"typ": "Refresh+JWT"}), "BadJwtType"
    if case == "type not a string":
        return key.token(MEMBER, aud, header={"typ": ["JWT"]}), "BadJwtType"
    if case == "unknown DID":
        return key.token(did_plc("nobody"), aud), "BadJwtIss"
    if case == "issuer not a DID":
        return key.token("member.example.com", aud), "BadJwtIss"
    payload = {"iss": MEMBER, "aud": aud, "lxm": "app.bsky.feed.getFeedSkeleton", "exp": 9_999_999_999}
    if case == "alg none":
        return unsigned({"alg": "none", "typ": "JWT"}, payload) + ".", "BadJwt"
    if case == "HS256":
        signing_input = unsigned({"alg": "HS256", "typ": "JWT"}, payload)
        mac = hmac.new(key.multikey.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}", "BadJwt"
    if case == "not a JWT":
        return "not-a-jwt", "BadJwt"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "wrong key", "wrong curve in header", "wrong aud", "wrong lxm", "missing lxm", "expired",
    "issued in the future", "not valid yet", "expires in ten years", "expires in two hours", "access token",
    "access token in capitals", "refresh token in mixed case", "type not a string", "unknown DID",
    "issuer not a DID", "alg none", "HS256", "not a JWT",
])
def test_forged_or_misaddressed_tokens_are_refused(client, club, member_key, case):
    token, error = forged(case, member_key)
    response = skeleton(client, "club", token=token)
    assert refusal(response) == (401, error)
    assert response.json()["message"]


@pytest.mark.parametrize("header", ["Basic bWU6cGFzcw==", "Bearer", "Bearer ", "bearer abc.def.ghi"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(client, club, header):
    response = client.get("/xrpc/app.bsky.feed.getFeedSkeleton",
                          {"feed": f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/club"},
                          headers={"Authorization": header})
    assert refusal(response) == (401, "AuthenticationRequired")
