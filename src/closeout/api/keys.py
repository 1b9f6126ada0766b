"""API keys: `co_<prefix>_<secret>`, shown once; only a SHA-256 of the secret is kept."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from closeout.api.models import ApiKey

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length


class UnableToCreateApiKey(ValueError):
    """The key's name is blank or does not fit (a database would refuse it, or cut it)."""


def apikey_create(*, name: str, scope: str = ApiKey.Scope.PARTNER) -> tuple[ApiKey, str]:
    """Create a key; return it with its token, which is shown only now.

    :raises UnableToCreateApiKey: for a blank name or one longer than NAME_MAX_LENGTH.
    """
    name = (name or "").strip()
    if not name:
        raise UnableToCreateApiKey("a key needs a name saying who holds it")
    if len(name) > NAME_MAX_LENGTH:
        raise UnableToCreateApiKey(f"the name is {len(name)} characters long; at most {NAME_MAX_LENGTH} fit")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name, prefix=prefix, scope=scope, secret_hash=hashlib.sha256(secret.encode()).hexdigest()
    )
    return key, f"co_{prefix}_{secret}"


# Verified keys are kept per process for a few seconds: one query less on every API call.
# A revoked key therefore stops working within CACHE_SECONDS.
CACHE_SECONDS = 10.0
_verified: dict[str, tuple[float, ApiKey]] = {}


# When a key was last used (and a revoked key last tried) is written at most once a minute per key
# and process, and not at all when another process wrote it within the minute.
USE_RECORDED_EVERY = 60.0
_recorded: dict[tuple[int, str], float] = {}

log = logging.getLogger(__name__)


def apikey_check(token: str) -> ApiKey | None:
    """Return the active key the token belongs to, noting that it was used; None for any other
    token (a revoked key's attempt is noted on the key too)."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "co":
        return None
    digest = hashlib.sha256(parts[2].encode()).hexdigest()
    cache_key = f"{parts[1]}:{digest}"
    cached = _verified.get(cache_key)
    if cached and cached[0] > time.monotonic():
        _use_record(cached[1], "last_used_at")
        return cached[1]
    key = ApiKey.objects.filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.secret_hash, digest):
        return None
    if key.revoked_at is not None:
        _use_record(key, "last_refused_at")
        return None
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[cache_key] = (time.monotonic() + CACHE_SECONDS, key)
    _use_record(key, "last_used_at")
    return key


def _use_record(key: ApiKey, field: str) -> None:
    """Set `field` to now if it is a minute old or more; bookkeeping never fails the request."""
    from datetime import timedelta

    from django.db import DatabaseError
    from django.db.models import Q

    from closeout.common import clock

    mark = (key.id, field)
    if time.monotonic() < _recorded.get(mark, float("-inf")) + USE_RECORDED_EVERY:
        return
    if len(_recorded) > 10_000:
        _recorded.clear()
    _recorded[mark] = time.monotonic()
    now = clock.now()
    stale = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": now - timedelta(seconds=USE_RECORDED_EVERY)})
    try:
        ApiKey.objects.filter(stale, id=key.id).update(**{field: now})
    except DatabaseError as exc:  # a busy database: the next minute's request records it
        log.warning("API key %s: could not record its use (%s)", key.prefix, type(exc).__name__)


def apikey_revoke(*, prefix: str) -> int:
    """Revoke a key; other processes stop accepting it within CACHE_SECONDS."""
    from closeout.common import clock

    count = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).update(revoked_at=clock.now())
    for cache_key in [k for k in _verified if k.startswith(f"{prefix}:")]:
        _verified.pop(cache_key, None)
    return count


def apikey_list() -> list[dict]:
    """Every key, oldest first, by what tells them apart (never the secret or its hash)."""
    return list(ApiKey.objects.order_by("created_at", "id").values("name", "prefix", "scope", "created_at",
                                                                    "last_used_at", "revoked_at", "last_refused_at"))
