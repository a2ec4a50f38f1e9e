"""Identity resolution against a PLC directory on loopback."""

import pytest

from skyline import identity

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
