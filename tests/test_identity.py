"""Identity resolution against a PLC directory on loopback."""

import pytest

from skyline.atproto import identity

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
KEY = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"


def test_a_document_and_its_key_and_pds_come_from_the_directory(plc):
    plc.add(ALICE, handle="alice.test", signing_key=KEY, pds="https://pds.example")
    assert identity.signing_key(ALICE) == f"did:key:{KEY}"
    assert identity.pds_endpoint(ALICE) == "https://pds.example"


def test_documents_are_cached_until_refreshed(plc):
    plc.add(ALICE, signing_key=KEY)
    identity.signing_key(ALICE)
    identity.signing_key(ALICE)
    assert len(plc.requests) == 1
    identity.signing_key(ALICE, refresh=True)
    assert len(plc.requests) == 2
    identity.signing_key(ALICE, refresh=True)  # a second refresh within the minute is not honoured
    assert len(plc.requests) == 2


def test_a_handle_resolves_only_when_the_did_claims_it_back(plc):
    plc.add(ALICE, handle="alice.test", signing_key=KEY)
    assert identity.resolve_handle("@Alice.Test") == ALICE
    plc.handles["mallory.test"] = ALICE  # mallory.test points at alice, who does not claim it
    with pytest.raises(identity.IdentityError, match="does not claim the handle mallory.test"):
        identity.resolve_handle("mallory.test")


def test_unknown_and_malformed_identities_are_clear_errors(plc):
    with pytest.raises(identity.IdentityError, match="no DID document"):
        identity.did_document("did:plc:unknownaaaaaaaaaaaaaaaaa")
    with pytest.raises(identity.IdentityError, match="not a valid DID"):
        identity.did_document("did:plc:../../etc")
    with pytest.raises(identity.IdentityError, match="not a valid handle"):
        identity.resolve_handle("not a handle")
    with pytest.raises(identity.IdentityError, match="does not resolve"):
        identity.resolve_handle("nobody.test")


def test_a_trailing_newline_is_not_a_valid_did_or_handle():
    assert not identity.is_did(ALICE + "\n")
    assert not identity.is_handle("alice.test\n")


@pytest.mark.parametrize("host", ["LocalHost", "localhost", "127.0.0.3", "127.0.1.1", "0x7f000001"])
def test_did_web_on_an_internal_host_is_not_fetched_in_production(settings, host):
    from tests.support.servers import LoopbackServer

    settings.OUTBOUND_ALLOW_PRIVATE = False
    with LoopbackServer() as internal:
        did = f"did:web:{host}%3A{internal.url.rsplit(':', 1)[1]}"
        with pytest.raises(identity.IdentityError, match="not a public internet address"):
            identity.did_document(did)
        assert internal.requests == []


def test_did_web_on_localhost_is_fetched_over_http_in_development(settings):
    from tests.support.servers import LoopbackServer, json_response

    class DidWebHost(LoopbackServer):
        def handle(self, request):
            if request.path != "/.well-known/did.json":
                return super().handle(request)
            return json_response({"id": self.did, "alsoKnownAs": [], "verificationMethod": [], "service": []})

    settings.SERVICE_ENDPOINT = "http://localhost:8000"
    with DidWebHost() as host:
        host.did = f"did:web:localhost%3A{host.url.rsplit(':', 1)[1]}"
        assert identity.did_document(host.did).id == host.did


def test_a_did_web_host_that_is_not_a_valid_url_is_an_identity_error(plc):
    with pytest.raises(identity.IdentityError, match="could not fetch the DID document"):
        identity.did_document("did:web:exa%mple.com")
