"""When each API key was last used, and when a revoked key was last tried: recorded to the minute
(never a write on every request) and shown by `closeout apikey list`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from closeout import cli
from closeout.api import keys
from closeout.api.models import ApiKey
from closeout.common import clock

pytestmark = pytest.mark.django_db


def _call(client, token):
    return client.get("/api/v1/closures/CL-2026-999999", HTTP_AUTHORIZATION=f"Bearer {token}")


def _key_writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "api_apikey" in q["sql"]]


@pytest.fixture
def later(monkeypatch):
    """Move the clock on, as a process other than this one would see it (its own minute count)."""
    def move(seconds: float):
        start = clock.now()
        monkeypatch.setattr(clock, "now", lambda: start + timedelta(seconds=seconds))
        keys._recorded.clear()
        keys._verified.clear()

    return move


def test_a_key_in_use_shows_when_it_was_last_used_written_at_most_once_a_minute(client, capsys, later):
    key, token = keys.apikey_create(name="Maps app")
    unused, _ = keys.apikey_create(name="never used")

    assert _call(client, token).status_code == 404
    first = ApiKey.objects.get(id=key.id).last_used_at
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert _call(client, token).status_code == 404

    assert first is not None and abs(first - clock.now()) < timedelta(seconds=5)
    assert _key_writes(queries.captured_queries) == []
    later(30)  # another process within the minute: it asks, the database keeps the first time
    _call(client, token)
    assert ApiKey.objects.get(id=key.id).last_used_at == first
    later(61)
    _call(client, token)
    assert ApiKey.objects.get(id=key.id).last_used_at > first + timedelta(seconds=60)

    assert cli.main(["apikey", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["PREFIX", "SCOPE", "CREATED", "LAST_USED"]
    used_row = next(r for r in rows if r.startswith(key.prefix))
    unused_row = next(r for r in rows if r.startswith(unused.prefix))
    assert ApiKey.objects.get(id=key.id).last_used_at.strftime("%Y-%m-%d %H:%M") in used_row
    assert unused_row.split()[4] == "-"  # never used


def test_a_revoked_key_is_refused_and_its_attempts_show_in_the_list(client, capsys):
    key, token = keys.apikey_create(name="old partner")
    assert _call(client, token).status_code == 404
    keys.apikey_revoke(prefix=key.prefix)

    assert _call(client, token).status_code == 401
    assert _call(client, f"co_{key.prefix}_not-its-secret").status_code == 401

    tried = ApiKey.objects.get(id=key.id).last_refused_at
    assert tried is not None and tried >= ApiKey.objects.get(id=key.id).revoked_at
    assert cli.main(["apikey", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:7] == ["PREFIX", "SCOPE", "CREATED", "LAST_USED", "REVOKED", "TRIED_REVOKED", "NAME"]
    assert row.endswith("old partner")
    assert tried.strftime("%Y-%m-%d %H:%M") in row


def test_a_wrong_secret_for_a_revoked_keys_prefix_is_not_counted_as_its_attempt(client):
    key, _ = keys.apikey_create(name="old partner")
    keys.apikey_revoke(prefix=key.prefix)

    assert _call(client, f"co_{key.prefix}_not-its-secret").status_code == 401

    assert ApiKey.objects.get(id=key.id).last_refused_at is None


def _stale(key: ApiKey, field: str) -> None:
    """The key's `field` as another process wrote it two hours ago; this process has not since."""
    ApiKey.objects.filter(id=key.id).update(**{field: clock.now() - timedelta(hours=2)})
    keys._recorded.clear()
    keys._verified.clear()


def test_a_stale_use_is_written_once_after_the_answer_is_made_never_while_it_is(client, make_card):
    key, token = keys.apikey_create(name="Maps app")
    _stale(key, "last_used_at")

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert _call(client, token).status_code == 404

    sqls = [q["sql"] for q in queries.captured_queries]
    [write] = _key_writes(queries.captured_queries)
    before = sqls[:sqls.index(write)]
    assert sum("closures_closurecase" in sql for sql in before) == 1  # the first answer was made without it
    assert abs(ApiKey.objects.get(id=key.id).last_used_at - clock.now()) < timedelta(seconds=5)


def test_a_use_that_cannot_be_written_leaves_a_read_answered_200_and_is_logged_without_the_secret(
        client, make_card, monkeypatch, caplog):
    from django.db import OperationalError
    from django.db.models import QuerySet

    from tests.api.test_closures_api import body_for

    key, token = keys.apikey_create(name="Maps app")
    created = client.post("/api/v1/closures", data=body_for(make_card("YKT")), content_type="application/json",
                          HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="idem-1")
    reference = created.json()["reference"]
    _stale(key, "last_used_at")
    update = QuerySet.update

    def key_update_fails(queryset, **fields):
        if queryset.model is ApiKey:
            raise OperationalError("database is locked")
        return update(queryset, **fields)

    monkeypatch.setattr(QuerySet, "update", key_update_fails)

    answer = client.get(f"/api/v1/closures/{reference}", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 200 and answer.json()["reference"] == reference
    [warning] = [r for r in caplog.records if r.name == "closeout.api.keys"]
    assert key.prefix in warning.getMessage() and "OperationalError" in warning.getMessage()
    assert token.split("_", 2)[2] not in caplog.text
    monkeypatch.setattr(QuerySet, "update", update)
    assert ApiKey.objects.get(id=key.id).last_used_at < clock.now() - timedelta(hours=1)  # left to a later request


def test_a_revoked_keys_attempt_is_still_written_once_after_its_401(client):
    key, token = keys.apikey_create(name="old partner")
    keys.apikey_revoke(prefix=key.prefix)
    _stale(key, "last_refused_at")

    with CaptureQueriesContext(connection) as queries:
        assert _call(client, token).status_code == 401
        assert _call(client, token).status_code == 401

    assert len(_key_writes(queries.captured_queries)) == 1
    assert abs(ApiKey.objects.get(id=key.id).last_refused_at - clock.now()) < timedelta(seconds=5)
