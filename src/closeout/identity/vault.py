"""The PII vault: keyed HMACs for lookup and AES-GCM encryption under a per-holder data key.

ID numbers live in a small space, so a plain hash could be brute-forced; lookups use an HMAC keyed
from the master key. Each holder's data key is stored wrapped by the master key; destroying the
wrapped key crypto-shreds everything encrypted under it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings


class KeyDestroyed(Exception):
    """Raised when decrypting data whose holder key was shredded."""


def _derived(purpose: str) -> bytes:
    return hmac.new(settings.PII_MASTER_KEY.encode(), purpose.encode(), hashlib.sha256).digest()


def lookup_hash(kind: str, value: str) -> str:
    """Return the keyed HMAC used to find a record by a PII value without storing the value."""
    return hmac.new(_derived(f"lookup:{kind}"), value.encode(), hashlib.sha256).hexdigest()


def new_wrapped_key() -> str:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    wrapped = AESGCM(_derived("kek")).encrypt(nonce, data_key, b"holder-key")
    return base64.b64encode(nonce + wrapped).decode()


def _unwrap(wrapped_key: str | None) -> bytes:
    if not wrapped_key:
        raise KeyDestroyed("holder key destroyed")
    raw = base64.b64decode(wrapped_key)
    return AESGCM(_derived("kek")).decrypt(raw[:12], raw[12:], b"holder-key")


def encrypt(wrapped_key: str, plaintext: str, *, context: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_unwrap(wrapped_key)).encrypt(nonce, plaintext.encode(), context.encode())
    return base64.b64encode(nonce + sealed).decode()


def decrypt(wrapped_key: str | None, token: str, *, context: str) -> str:
    """Return the plaintext.

    :raises KeyDestroyed: after the holder's key was shredded.
    """
    raw = base64.b64decode(token)
    return AESGCM(_unwrap(wrapped_key)).decrypt(raw[:12], raw[12:], context.encode()).decode()


def seal(plaintext: str, *, context: str) -> str:
    """Encrypt short-lived data that belongs to no holder yet (what a browser typed into a form, kept
    in its session between two requests) under a key derived from the master key."""
    nonce = os.urandom(12)
    sealed = AESGCM(_derived("transient")).encrypt(nonce, plaintext.encode(), context.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(token: str, *, context: str) -> str:
    """Return what `seal` sealed for `context`.

    :raises ValueError: for a token not sealed here for this context (or under another master key).
    """
    try:
        raw = base64.b64decode(token)
        return AESGCM(_derived("transient")).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise ValueError("not sealed for this context") from exc


def key_fingerprint() -> str:
    """Return a fingerprint of the master key: the same for the same key, telling nothing of it."""
    return hmac.new(_derived("fingerprint"), b"closeout pii master key", hashlib.sha256).hexdigest()


def key_opens(wrapped_key: str) -> bool:
    """Whether the master key unwraps this holder key (one AES-GCM open: cheap)."""
    try:
        _unwrap(wrapped_key)
    except (InvalidTag, ValueError):
        return False
    return True
