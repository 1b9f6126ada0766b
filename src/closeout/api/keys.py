"""API keys: `co_<prefix>_<secret>`, shown once; only a SHA-256 of the secret is kept."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
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
# and process, and not at all when another process wrote it within the minute. It is written once
# the request is finished (`apikey_uses_record`), never by the request itself.
USE_RECORDED_EVERY = 60.0
_recorded: dict[tuple[str, str], float] = {}  # (prefix, field): ids come back after a restore
_pending = threading.local()

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
        _use_note(cached[1], "last_used_at")
        return cached[1]
    key = ApiKey.objects.filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.secret_hash, digest):
        return None
    if key.revoked_at is not None:
        _use_note(key, "last_refused_at")
        return None
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[cache_key] = (time.monotonic() + CACHE_SECONDS, key)
    _use_note(key, "last_used_at")
    return key


def _use_note(key: ApiKey, field: str) -> None:
    """Note that `field` is due to be set to now, if this process has not done so within the minute.

    Only noted here: a GET must not write, nor wait for the database's write lock, while it is
    answered."""
    from closeout.common import clock

    mark = (key.prefix, field)
    if time.monotonic() < _recorded.get(mark, float("-inf")) + USE_RECORDED_EVERY:
        return
    if len(_recorded) > 10_000:
        _recorded.clear()
    _recorded[mark] = time.monotonic()
    if not hasattr(_pending, "uses"):
        _pending.uses = []
    _pending.uses.append((key.id, key.prefix, field, clock.now()))


def apikey_uses_record(**signal_kwargs) -> None:
    """Write the key uses noted while the request that just finished was answered (Django's
    `request_finished`): after its answer went out, each in a transaction of its own, so that a
    failed write is logged and costs the answer nothing."""
    from django.db import close_old_connections, connection

    uses, _pending.uses = getattr(_pending, "uses", []), []
    for key_id, prefix, field, at in uses:
        _use_write(key_id=key_id, prefix=prefix, field=field, at=at)
    if uses and not connection.in_atomic_block:
        close_old_connections()  # what Django did before these writes, at the end of the request


def _use_write(*, key_id: int, prefix: str, field: str, at) -> None:
    """Set `field` to `at` unless another process set it within the minute; bookkeeping never fails
    the request (a busy database: the next minute's request records it)."""
    from datetime import timedelta

    from django.db import DatabaseError, transaction
    from django.db.models import Q

    stale = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": at - timedelta(seconds=USE_RECORDED_EVERY)})
    try:
        with transaction.atomic():
            ApiKey.objects.filter(stale, id=key_id).update(**{field: at})
    except DatabaseError as exc:
        log.warning("API key %s: could not record its %s (%s)", prefix, field, type(exc).__name__)


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
