"""Test accounts' identities: did:plc names and the keys that sign their repos and service tokens."""

import base64
import json
import time

from atproto_crypto.did import format_multikey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def did_plc(name):
    """A syntactically valid did:plc (24 base32 characters) derived from `name`."""
    body = "".join(ch for ch in name.lower() if ch in "abcdefghijklmnopqrstuvwxyz234567")
    return "did:plc:" + (body + "a" * 24)[:24]


class SigningKey:
    """A secp256k1 (ES256K) or P-256 (ES256) key, published as a multikey, that mints service JWTs."""

    def __init__(self, algorithm="ES256K"):
        self.algorithm = algorithm
        curve = ec.SECP256K1() if algorithm == "ES256K" else ec.SECP256R1()
        self.private_key = ec.generate_private_key(curve)
        self.order = (
            0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 if algorithm == "ES256K"
            else 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        )
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.multikey = format_multikey(algorithm, public)

    def sign(self, data):
        r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(ec.hashes.SHA256())))
        s = min(s, self.order - s)  # low-S, as atproto requires of signers
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def token(self, iss, aud, lxm="app.bsky.feed.getFeedSkeleton", exp_in=60, header=None, **claims):
        now = int(time.time())
        payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + exp_in, "jti": "0123abcd", **claims}
        if lxm is not None:
            payload["lxm"] = lxm
        head = {"typ": "JWT", "alg": self.algorithm, **(header or {})}
        signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}"
        return f"{signing_input}.{b64(self.sign(signing_input.encode()))}"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
