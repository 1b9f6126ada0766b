"""Keys and signatures shared by the integrations: sealed secrets, kept Ed25519 keys, and the
timestamped HMAC scheme (`t=<unix>,v1=<hex>` over `<t>.<body>`) used by payment webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

TOLERANCE_SECONDS = 300


class SignatureInvalid(Exception):
    """A signature, its timestamp or its format did not check out."""


def _key(purpose: str) -> bytes:
    return hmac.new(settings.PII_MASTER_KEY.encode(), f"integrations:{purpose}".encode(), hashlib.sha256).digest()


def seal(plaintext: str, *, context: str) -> str:
    """Encrypt an integration secret under a key derived from the master key."""
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(_key("seal")).encrypt(nonce, plaintext.encode(), context.encode())).decode()


def unseal(token: str, *, context: str) -> str:
    raw = base64.b64decode(token)
    return AESGCM(_key("seal")).decrypt(raw[:12], raw[12:], context.encode()).decode()


def kept_secret(name: str) -> str:
    """Return a shared secret from CLOSEOUT_<NAME>, or derive a stable one from the master key."""
    return os.environ.get(f"CLOSEOUT_{name.upper()}") or "whsec_" + base64.b64encode(_key(name)[:24]).decode()


def kept_signing_key(name: str) -> Ed25519PrivateKey:
    """Return an Ed25519 key: CLOSEOUT_<NAME> (base64 32-byte seed) or one derived from the master key."""
    seed = os.environ.get(f"CLOSEOUT_{name.upper()}")
    raw = base64.b64decode(seed) if seed else _key(f"ed25519:{name}")
    return Ed25519PrivateKey.from_private_bytes(raw[:32])


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def load_public_key(b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))
    except (ValueError, TypeError) as exc:
        raise SignatureInvalid("malformed public key") from exc


def timestamped_sign(secret: str, body: bytes, *, at: int | None = None) -> str:
    """Return a `t=<unix>,v1=<hex>` signature header for the body."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), b"%d.%s" % (at, body), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def timestamped_verify(secret: str, body: bytes, header: str, *, now: int | None = None,
                       tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check a `t=…,v1=…` header; return its timestamp.

    :raises SignatureInvalid: for a missing or wrong signature or a timestamp outside the tolerance.
    """
    now = int(time.time()) if now is None else now
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        at = int(parts["t"][0])
    except (KeyError, ValueError, IndexError):
        raise SignatureInvalid("no timestamp in the signature header")
    if abs(now - at) > tolerance:
        raise SignatureInvalid("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), b"%d.%s" % (at, body), hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise SignatureInvalid("no matching signature")
    return at
