"""API keys: `co_<prefix>_<secret>`, shown once; only a SHA-256 of the secret is kept."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from closeout.api.models import ApiKey


def apikey_create(*, name: str, scope: str = ApiKey.Scope.PARTNER) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name, prefix=prefix, scope=scope, secret_hash=hashlib.sha256(secret.encode()).hexdigest()
    )
    return key, f"co_{prefix}_{secret}"


def apikey_check(token: str) -> ApiKey | None:
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "co":
        return None
    key = ApiKey.objects.filter(prefix=parts[1], revoked_at__isnull=True).first()
    digest = hashlib.sha256(parts[2].encode()).hexdigest()
    if key is None or not hmac.compare_digest(key.secret_hash, digest):
        return None
    return key
