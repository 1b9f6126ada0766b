"""The public contract of DESIGN.md, as a test outside the repository relies on it: the commands as
written there, with only the arguments written there."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from closeout import cli
from closeout import worker as closeout_worker
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.ops.models import WorkerHeartbeat
from tests.fixtures import wait_for

HOST = socket.gethostname()[:255]


class Launched(Exception):
    """Stands for DBOS launching: the worker got this far, under the id it claimed."""


def _live_worker(executor_id: str, *, pid: int) -> None:
    now = clock.now()
    WorkerHeartbeat.objects.create(executor_id=executor_id, app_version="test", host=HOST, pid=pid,
                                   started_at=now - timedelta(seconds=10), beat_at=now - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_a_second_plain_worker_on_the_same_database_runs_beside_the_first(monkeypatch, settings):
    # `closeout worker [--data-dir DIR]` twice: "several workers may share one database".
    settings.DBOS_EXECUTOR_ID_NAMED = False
    default = settings.DBOS_EXECUTOR_ID
    _live_worker(default, pid=os.getppid())  # the first worker: alive on this machine, not us
    launched = []

    def launch(*, executor_id):
        launched.append(executor_id)
        raise Launched

    monkeypatch.setattr(closeout_worker, "launch", launch)

    with pytest.raises(Launched):
        cli.cmd_worker(cli._parser().parse_args(["worker"]))

    assert launched == [f"{default}-2"]
    assert WorkerHeartbeat.objects.get(executor_id=default).pid == os.getppid()  # the first keeps its id


@pytest.mark.django_db(transaction=True)
def test_bulk_close_takes_just_the_csv_file(make_card, tmp_path, capsys):
    # `bulk-close FILE.csv`: the operator's bulk closure of dormant cards.
    card = make_card("YKT", balance=500, days_old=2000)
    path = tmp_path / "dormant.csv"
    path.write_text(f"card_number\n{card.number}\n", encoding="utf-8")

    assert cli.main(["bulk-close", str(path)]) == 0

    assert capsys.readouterr().out.startswith("1 rows read: created 1 closures")
    case = ClosureCase.objects.get(card=card)
    assert (case.channel, case.reason) == (ClosureCase.Channel.BULK, "dormant")


class Served(Exception):
    """Stands for gunicorn replacing the process."""


def test_serve_on_another_port_names_that_port_in_its_links(monkeypatch):
    # `closeout serve --port 8731`: a certificate's verify_url must lead to this server, not to 8000.
    monkeypatch.delenv("CLOSEOUT_PUBLIC_URL", raising=False)
    monkeypatch.setattr(cli, "_migrate", lambda: None)
    served = {}

    def execv(path, argv):
        served.update(argv=argv, public_url=os.environ.get("CLOSEOUT_PUBLIC_URL"))
        raise Served

    monkeypatch.setattr(cli.os, "execv", execv)

    with pytest.raises(Served):
        cli.cmd_serve(cli._parser().parse_args(["serve", "--port", "8731"]))

    assert "127.0.0.1:8731" in served["argv"]
    assert served["public_url"] == "http://127.0.0.1:8731"


def test_serve_keeps_the_public_url_an_installation_sets(monkeypatch):
    monkeypatch.setenv("CLOSEOUT_PUBLIC_URL", "https://close.example.com")
    monkeypatch.setattr(cli, "_migrate", lambda: None)

    def execv(path, argv):
        raise Served

    monkeypatch.setattr(cli.os, "execv", execv)

    with pytest.raises(Served):
        cli.cmd_serve(cli._parser().parse_args(["serve", "--port", "8731"]))

    assert os.environ["CLOSEOUT_PUBLIC_URL"] == "https://close.example.com"


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer co_nothing_likethis", "Basic dXNlcjpwYXNz"])
def test_an_api_call_without_a_valid_key_asks_for_a_bearer_key(client, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/api/v1/closures/CL-2026-000001", **headers)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert {"type", "title", "status", "detail"} <= set(response.json())


@pytest.mark.parametrize("where", ["before", "after"])
def test_data_dir_is_read_before_or_after_the_command(tmp_path, where):
    missing = str(tmp_path / "no-such-dir")
    command = ["--data-dir", missing, "audit", "verify"] if where == "before" else ["audit", "verify", "--data-dir", missing]
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DJANGO_SETTINGS_MODULE")}

    done = subprocess.run([sys.executable, "-m", "closeout.cli", *command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 2
    assert done.stderr.strip() == (f"closeout audit: {missing} is not a closeout data directory; "
                                   f"create one with `closeout migrate --data-dir {missing}`")


@pytest.mark.sqlite_only  # a data directory of its own, whatever the engine of the pass
def test_a_worker_started_beside_serve_waits_for_the_database_it_sets_up(tmp_path):
    # `closeout serve --data-dir DIR` and `closeout worker --data-dir DIR` started together: the
    # worker must not exit because serve has not created DIR and its database yet.
    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CLOSEOUT_DBOS_DATABASE_URL", "CLOSEOUT_DATA_DIR", "DJANGO_SETTINGS_MODULE")
           and not k.startswith("CLOSEOUT_CRASH")}
    env.update(CLOSEOUT_EXECUTOR_ID="contract-worker", CLOSEOUT_LOG_FORMAT="plain", CLOSEOUT_LOG_LEVEL="INFO")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "closeout.cli", "worker", "--data-dir", str(data_dir)],
                                  env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "waiting up to" in log_path.read_text(), timeout=30)
        assert worker.poll() is None

        migrated = subprocess.run([sys.executable, "-m", "closeout.cli", "migrate", "--data-dir", str(data_dir)],
                                  env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert migrated.returncode == 0, migrated.stderr

        wait_for(lambda: "worker contract-worker running" in log_path.read_text(), timeout=120)
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, log_path.read_text()
