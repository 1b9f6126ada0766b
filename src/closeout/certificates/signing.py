"""Ed25519 signatures over a canonical JSON of the certificate facts. Pure: no ORM, no clock.

The signed bytes travel as a string (the "envelope" keeps them verbatim), so a verifier never has
to re-serialise JSON the same way the signer did.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "closeout-certificate/1"
ALGORITHM = "Ed25519"


def canonical(facts: dict) -> str:
    """Return the one serialisation that is signed: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_private_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_key_of(private_raw: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id_of(public_raw: bytes) -> str:
    """Name a key by its public half, so a key id cannot point at another key."""
    return "ed25519-" + hashlib.sha256(public_raw).hexdigest()[:16]


def sign(private_raw: bytes, message: str) -> str:
    return signer(private_raw)(message)


def signer(private_raw: bytes) -> Callable[[str], str]:
    """Return a function that signs many messages with one key, loading the key once."""
    key = Ed25519PrivateKey.from_private_bytes(private_raw)
    return lambda message: base64.b64encode(key.sign(message.encode())).decode()


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str
    key_id: str = ""
    facts: dict = field(default_factory=dict)


def envelope(*, facts_text: str, signature: str, key_id: str) -> dict:
    """Return what a certificate PDF carries so it can be checked offline."""
    return {"format": FORMAT, "alg": ALGORITHM, "key_id": key_id, "facts": facts_text, "signature": signature}


def verify_envelope(data: dict, public_keys: dict[str, str]) -> Verdict:
    """Check an envelope against public keys given as {key_id: base64 raw public key}."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("alg") != ALGORITHM:
        return Verdict(False, "not a closeout certificate")
    key_id, facts_text, signature = data.get("key_id", ""), data.get("facts", ""), data.get("signature", "")
    if not isinstance(facts_text, str) or not isinstance(signature, str):
        return Verdict(False, "malformed certificate data", key_id)
    try:
        facts = json.loads(facts_text)
    except ValueError:
        return Verdict(False, "malformed certificate data", key_id)
    public = public_keys.get(key_id)
    if public is None:
        return Verdict(False, f"unknown signing key {key_id}", key_id, facts)
    try:
        raw_public = base64.b64decode(public, validate=True)
        if key_id_of(raw_public) != key_id:
            return Verdict(False, "public key does not match its key id", key_id, facts)
        Ed25519PublicKey.from_public_bytes(raw_public).verify(base64.b64decode(signature, validate=True),
                                                              facts_text.encode())
    except (InvalidSignature, ValueError):
        return Verdict(False, "signature does not match the facts", key_id, facts)
    return Verdict(True, "signature valid", key_id, facts)
