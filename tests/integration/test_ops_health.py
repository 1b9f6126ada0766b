"""Operations fixes: one live worker per executor id, /readyz that answers fast when the DBOS system
database is unreachable, /metrics that survives a main-database outage, and worker/refund gauges."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from prometheus_client.parser import text_string_to_metric_families

from closeout import cli
from closeout import worker as closeout_worker
from closeout.common import clock
from closeout.ops import selectors, services
from closeout.ops.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)

HOST = socket.gethostname()[:255]


def _beat(executor_id, *, pid, host=HOST, age=0.0, stopped=False, launched=True, pid_space=None):
    """A worker's heartbeat row, `age` seconds after its last beat; one that `launched` has beaten
    since it started (a worker beats once DBOS runs). On this host it shares this process's pid
    space unless `pid_space` says otherwise."""
    now = clock.now()
    beat_at = now - timedelta(seconds=age)
    if pid_space is None:
        pid_space = services.pid_space() if host == HOST else "another-boot:1"
    return WorkerHeartbeat.objects.create(
        executor_id=executor_id, app_version="test", host=host, pid=pid, pid_space=pid_space,
        started_at=beat_at - timedelta(seconds=5 if launched else 0), beat_at=beat_at,
        stopped_at=now if stopped else None)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _families(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _sample(families, name, **labels):
    return next((s.value for s in families[name].samples if s.labels == labels), None)


# 1. One live worker per executor id -------------------------------------------------------------


def test_a_second_worker_under_a_live_id_refuses_to_start(monkeypatch, capsys):
    # Another process on this machine (our parent: alive, not us) beats under worker-x.
    _beat("worker-x", pid=os.getppid(), age=1)
    launched = []
    monkeypatch.setattr(closeout_worker, "launch", lambda **kw: launched.append(kw))

    code = cli.cmd_worker(cli._parser().parse_args(["worker", "--executor-id", "worker-x"]))

    assert code != 0
    err = capsys.readouterr().err
    assert "worker-x" in err and "--executor-id" in err and "CLOSEOUT_EXECUTOR_ID" in err
    assert launched == []  # nothing launched
    assert WorkerHeartbeat.objects.get(executor_id="worker-x").pid == os.getppid()  # row untouched


def test_a_worker_that_cannot_launch_says_why_in_one_line_and_is_not_counted_as_running(tmp_path, client):
    # A worker that could not reach its DBOS system database died with a traceback and left a
    # fresh "live" heartbeat behind: restarted in a loop by its supervisor, it kept /readyz ready and
    # closeout_workers_live at 1 while it never ran a thing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSEOUT_CRASH")}
    env.update(DATABASE_URL=_database_url(), CLOSEOUT_EXECUTOR_ID="worker-broken", CLOSEOUT_LOG_LEVEL="WARNING",
               CLOSEOUT_DBOS_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere")
    done = subprocess.run([sys.executable, "-m", "closeout.cli", "worker"], env=env, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 2
    said = [line for line in done.stderr.splitlines() if line.startswith("closeout worker:")]
    assert len(said) == 1 and "DBOS system database" in said[0] and "not starting" in said[0]
    assert all(line.startswith("{") for line in done.stderr.splitlines() if line not in said)  # no raw traceback
    beat = WorkerHeartbeat.objects.get(executor_id="worker-broken")
    assert beat.stopped_at is not None  # its id is free for the next start, and nothing waits for it
    assert _sample(_families(client), "closeout_workers_live") == 0
    assert client.get("/readyz").json()["checks"]["workers"] == "failed"


def test_a_worker_counts_as_running_once_it_has_launched(client):
    from closeout.ops.selectors import workers_status

    _beat("worker-starting", pid=1, age=1, launched=False)  # claimed its id, DBOS not running yet
    _beat("worker-running", pid=2, age=1)

    assert _sample(_families(client), "closeout_workers_live") == 1
    assert {w["executor_id"]: w["state"] for w in workers_status()} == {
        "worker-starting": "starting", "worker-running": "live"}
    with pytest.raises(services.ExecutorIdInUse):  # a starting worker holds its id all the same
        services.heartbeat_claim(executor_id="worker-starting")
    WorkerHeartbeat.objects.filter(executor_id="worker-running").update(stopped_at=clock.now())
    assert client.get("/readyz").json()["checks"]["workers"] == "failed"

    services.heartbeat_beat(executor_id="worker-starting")  # its first beat once launched
    assert client.get("/readyz").json()["checks"]["workers"] == "ok"


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_live_worker_on_another_host_holds_its_id():
    _beat("worker-x", pid=os.getpid(), host="some-other-host", age=1)
    with pytest.raises(services.ExecutorIdInUse, match="worker-x"):
        services.heartbeat_claim(executor_id="worker-x")


@pytest.mark.parametrize("previous", [
    dict(pid=os.getppid(), stopped=True),  # stopped cleanly
    dict(pid=os.getppid(), age=3600),  # went stale
    dict(pid="dead"),  # crashed on this machine and restarted at once
    dict(pid=os.getpid()),  # same process (a container restarted as the same pid)
])
def test_a_restarted_worker_takes_its_id_back(previous):
    previous = dict(previous)
    if previous["pid"] == "dead":
        previous["pid"] = _dead_pid()
    _beat("worker-x", **previous)
    beat = services.heartbeat_claim(executor_id="worker-x")
    assert beat.pid == os.getpid() and beat.stopped_at is None
    assert WorkerHeartbeat.objects.get(executor_id="worker-x").pid == os.getpid()


def test_a_worker_of_another_pid_space_on_this_host_name_is_judged_by_its_heartbeat():
    # Containers on the host's network share its name, never each other's pids: a pid missing
    # here says nothing of a worker in another container, which must not be taken over while it beats.
    _beat("worker-sibling", pid=_dead_pid(), age=1, pid_space="same-boot:4026531836")
    assert not services.process_gone(WorkerHeartbeat.objects.get())
    with pytest.raises(services.ExecutorIdInUse):
        services.heartbeat_claim(executor_id="worker-sibling")
    assert services.stale_executors_recover() == {}
    status = {w["executor_id"]: w for w in selectors.workers_status()}
    assert status["worker-sibling"]["state"] == "live"


def test_a_new_id_is_claimed():
    beat = services.heartbeat_claim(executor_id="worker-new")
    assert WorkerHeartbeat.objects.get(executor_id="worker-new").pid == beat.pid == os.getpid()


def test_the_default_executor_id_differs_per_machine():
    env = {k: v for k, v in os.environ.items() if k != "CLOSEOUT_EXECUTOR_ID"}
    env["DJANGO_SETTINGS_MODULE"] = "closeout.settings"
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DBOS_EXECUTOR_ID)"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"worker-{socket.gethostname()}"[:120]
    env["CLOSEOUT_EXECUTOR_ID"] = "worker-7"
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DBOS_EXECUTOR_ID)"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "worker-7"


# 2. /readyz with an unreachable system database -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed


def test_readyz_answers_fast_when_the_system_database_is_unreachable(client, settings):
    settings.DBOS_SYSTEM_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{_free_port()}/closeout_dbos"
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "system_database": "failed", "workers": "failed"}


def test_readyz_does_not_create_a_missing_sqlite_system_database(client, settings, tmp_path):
    path = tmp_path / "missing" / "dbos_sys.sqlite3"
    settings.DBOS_SYSTEM_DATABASE_URL = f"sqlite:///{path}"
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["system_database"] == "failed"
    assert not path.exists()


# 3.-5. /metrics ---------------------------------------------------------------------------------


def test_metrics_survive_a_main_database_outage(client, monkeypatch):
    def down(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    families = _families(client)
    assert _sample(families, "closeout_database_up") == 0
    assert families["closeout_database_up"].type == "gauge"
    # Process metrics are still served.
    assert "closeout_step_duration_seconds" in families and "closeout_adapter_errors" in families
    assert "closeout_cases" not in families


def test_metrics_report_the_database_up_and_live_workers(client):
    families = _families(client)
    assert _sample(families, "closeout_database_up") == 1
    assert families["closeout_workers_live"].type == "gauge"
    assert _sample(families, "closeout_workers_live") == 0  # present even with no worker

    _beat("worker-a", pid=1, age=1)
    _beat("worker-b", pid=2, age=3600)  # stale
    _beat("worker-c", pid=3, stopped=True)
    _beat("worker-d", pid=4, age=2)
    assert _sample(_families(client), "closeout_workers_live") == 2


def test_refund_figures_are_gauges(client):
    families = _families(client)
    for name in ("closeout_refunds", "closeout_refund_amount_minor"):
        assert families[name].type == "gauge", name
    text = client.get("/metrics").content.decode()
    assert "closeout_refunds_total" not in text and "closeout_refund_amount_minor_total" not in text


def test_metrics_show_cases_stuck_by_state_and_age_and_overdue_actions(client, make_card):
    # "A refund has not moved for an hour" and "actions fall due and nothing runs them" are alerts
    # written on these gauges; counts by state alone cannot tell a stuck case from a busy day.
    from closeout.closures import services as closures
    from closeout.closures import states
    from closeout.closures.models import ClosureCase

    families = _families(client)
    assert _sample(families, "closeout_case_oldest_unchanged_seconds", state="refund_pending") == 0
    assert _sample(families, "closeout_action_oldest_overdue_seconds", action="refund") == 0
    assert _sample(families, "closeout_actions_overdue", action="refund") == 0
    assert _sample(families, "closeout_case_oldest_unchanged_seconds", state="closed") is None  # only open states

    now = clock.now()
    stuck, fresh, waiting = (closures.closure_request(card=make_card("YKT", balance=500), channel="web",
                                                      requester="customer:web") for _ in range(3))
    ClosureCase.objects.filter(reference=stuck.reference).update(
        state=states.REFUND_PENDING, updated_at=now - timedelta(hours=2), next_action="refund",
        next_action_due_at=now - timedelta(hours=2))
    ClosureCase.objects.filter(reference=fresh.reference).update(
        state=states.REFUND_PENDING, updated_at=now - timedelta(seconds=30), next_action="refund",
        next_action_due_at=now - timedelta(seconds=30))
    ClosureCase.objects.filter(reference=waiting.reference).update(  # a poll due later is not overdue
        state=states.REFUND_PENDING, updated_at=now - timedelta(hours=1), next_action="refund_status",
        next_action_due_at=now + timedelta(minutes=5))

    families = _families(client)
    assert 7200 <= _sample(families, "closeout_case_oldest_unchanged_seconds", state="refund_pending") < 7300
    assert _sample(families, "closeout_actions_overdue", action="refund") == 2
    assert 7200 <= _sample(families, "closeout_action_oldest_overdue_seconds", action="refund") < 7300
    assert _sample(families, "closeout_actions_overdue", action="refund_status") == 0
    assert _sample(families, "closeout_case_oldest_unchanged_seconds", state="submitted") == 0


def test_a_case_waiting_for_the_customer_to_pay_its_fees_is_no_stuck_case(client, make_card):
    # CaseNotMoving pages on `verified` cases unchanged for an hour. One whose debts the refund
    # cannot cover waits there for the holder's payment or a staff waiver, for days if need be: it
    # kept the alert firing, and hid a case whose settle step nobody ran.
    from closeout.closures import services as closures
    from closeout.closures import states
    from closeout.closures.models import ClosureCase

    now = clock.now()
    owing = closures.closure_request(card=make_card("YKT", balance=500, charges=[("overdraft", 5000)]),
                                     channel="web", requester="customer:web")
    for step in (closures.closure_verify, closures.closure_settle):
        step(reference=owing.reference, workflow_id=ClosureCase.objects.get(id=owing.id).next_action_id)
    waiting = ClosureCase.objects.get(id=owing.id)
    assert (waiting.state, waiting.next_action, waiting.quote["uncovered"] > 0) == (states.VERIFIED, "", True)
    ClosureCase.objects.filter(id=owing.id).update(updated_at=now - timedelta(hours=30))
    assert _sample(_families(client), "closeout_case_oldest_unchanged_seconds", state="verified") == 0

    stuck = closures.closure_request(card=make_card("YKT", balance=500), channel="web", requester="customer:web")
    ClosureCase.objects.filter(id=stuck.id).update(state=states.VERIFIED, next_action="settle",
                                                   updated_at=now - timedelta(hours=2), next_action_due_at=now)
    assert 7200 <= _sample(_families(client), "closeout_case_oldest_unchanged_seconds", state="verified") < 7300


def test_every_action_a_workflow_runs_is_listed_for_the_metrics():
    from closeout.closures import states, workflow

    assert set(states.CASE_ACTIONS) == set(workflow.ACTIONS)


def test_a_dead_worker_whose_work_was_handed_on_leaves_the_alerts_and_shows_as_gone(client):
    from closeout.ops.selectors import workers_status

    crashed = _beat("worker-crashed", pid=1, age=3600)
    _beat("worker-waiting", pid=2, age=3600)
    _beat("worker-live", pid=3, age=1)
    WorkerHeartbeat.objects.filter(executor_id=crashed.executor_id).update(recovered_at=clock.now(),
                                                                          recovered_workflows=4)

    families = _families(client)
    assert _sample(families, "closeout_worker_heartbeat_age_seconds", executor_id="worker-crashed") is None
    assert _sample(families, "closeout_worker_heartbeat_age_seconds", executor_id="worker-waiting") >= 3600
    assert _sample(families, "closeout_workers_live") == 1
    assert {w["executor_id"]: w["state"] for w in workers_status()} == {
        "worker-crashed": "gone", "worker-waiting": "stale", "worker-live": "live"}

    # Started again under its id, it is counted and watched again.
    services.heartbeat_start(executor_id="worker-crashed")
    assert _sample(_families(client), "closeout_worker_heartbeat_age_seconds", executor_id="worker-crashed") < 60


def test_a_worker_killed_on_this_host_shows_as_gone_at_once_and_one_elsewhere_by_its_heartbeat(capsys):
    # A worker killed with kill -9 showed as live for up to CLOSEOUT_HEARTBEAT_STALE_SEC (30 s).
    from closeout import cli

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _beat("worker-here", pid=victim.pid, age=1)
        _beat("worker-there", pid=_dead_pid(), host="another-host.example", age=1)
        assert cli.main(["worker", "status"]) == 0
        before = {w["executor_id"]: w for w in json.loads(capsys.readouterr().out)}
        victim.kill()
        victim.wait()

        assert cli.main(["worker", "status"]) == 0
        after = {w["executor_id"]: w for w in json.loads(capsys.readouterr().out)}
    finally:
        if victim.poll() is None:
            victim.kill()

    assert before["worker-here"]["state"] == "live" and after["worker-here"]["state"] == "gone"
    assert after["worker-here"]["checked_by"].startswith("pid")
    assert after["worker-here"]["workflows_handed_on"] is False  # the sweep hands them on once it is stale
    assert after["worker-there"]["state"] == "live"  # another host's pid says nothing here
    assert after["worker-there"]["checked_by"] == "heartbeat: runs on another host, gone once silent for 30 s"
