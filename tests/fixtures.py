"""Factories and fixtures shared by every layer of tests."""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import timedelta

import pytest

from closeout.common.money import Money

_numbers = itertools.count(1)


def card_number(prefix: str = "8101", length: int = 16) -> str:
    from closeout.identity.documents import luhn_check_digit

    body = prefix + f"{next(_numbers) + os.getpid() % 1000 * 10**6:0{length - len(prefix) - 1}d}"
    return body + luhn_check_digit(body)


HKID = "A1234563"  # check digit valid: A123456(3)
CN_ID = "11010119900307803X"


@pytest.fixture(autouse=True)
def default_language():
    """Every test starts in the default language: a page or a notice an earlier test rendered in this
    thread leaves its language active, and month names and messages would follow it."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def products(db):
    from closeout.demo import products_load

    return products_load()


@pytest.fixture
def make_card(products):
    """Issue a card: make_card("OCTO", balance=12000, days_old=200, charges=[("overdraft", 500)])."""
    from closeout.cards import services as cards
    from closeout.common import clock

    def make(product_code="OCTO", *, balance=10000, days_old=400, id_type="hkid", id_number=HKID,
             charges=(), bindings=(), physical=True, transactions=10, email="holder@example.test",
             phone="+85291234567", plan_days_left=None, holder_name="陈大文"):
        product = products[product_code]
        holder = cards.holder_create(name=holder_name, id_type=id_type, id_number=id_number, email=email, phone=phone)
        plan = {}
        prefix, length = product.number_prefix, 16 if product.kind == "stored_value" else 19
        if plan_days_left is not None:
            now = clock.now()
            plan = dict(plan_price_minor=30000, plan_starts_at=now - timedelta(days=30 - plan_days_left),
                        plan_ends_at=now + timedelta(days=plan_days_left), plan_data_mb=10240)
        card = cards.card_issue(
            number=card_number(prefix, length), product=product, holder=holder,
            issued_at=clock.now() - timedelta(days=days_old), balance=Money(balance, product.currency),
            physical=physical, transaction_count=transactions, **plan,
        )
        for code, amount in charges:
            cards.card_charge_add(card=card, code=code, reason=code, amount=Money(amount, product.currency))
        for partner in bindings:
            _partner_registered(partner)
            cards.binding_add(card=card, partner=partner, external_ref=f"{partner}-{card.id}")
        return card

    return make


def _partner_registered(code: str) -> None:
    """Bound partners must be registered to receive unbind webhooks (at the simulated endpoint)."""
    from closeout.integrations.models import Partner
    from closeout.integrations.partners import services as partners

    if not Partner.objects.filter(code=code).exists():
        partners.partner_register(code=code, name=code, endpoint_url=partners.simulator_endpoint(code),
                                  actor="test")


def _drain(timeout: float = 15.0) -> None:
    """Let in-flight workflows finish so no step outlives its test and writes into the next one."""
    import time

    from dbos import DBOS

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], load_input=False, load_output=False)
        if not [w for w in busy if w.name != "closeout.sweep"]:
            return
        time.sleep(0.2)


def unique_dbos_url(tmp_path) -> str:
    """A fresh DBOS system database for one test: a file on SQLite, a database on PostgreSQL."""
    from django.conf import settings

    if settings.IS_SQLITE:
        return f"sqlite:///{tmp_path / 'dbos_sys.sqlite3'}"
    return f"postgresql://postgres@127.0.0.1:5432/closeout_dbos_{uuid.uuid4().hex[:10]}"


def drop_dbos_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def dbos_worker(transactional_db, settings, tmp_path):
    """Run DBOS in this process as the worker, with dispatch on, on a fresh system database."""
    from closeout import worker
    from closeout.closures import dispatch

    url = unique_dbos_url(tmp_path)
    settings.DBOS_SYSTEM_DATABASE_URL = url
    settings.CLOSEOUT_DISPATCH = True
    dispatch.reset_client()
    worker.migrate_system_database()
    worker.launch(executor_id="test-worker")
    yield url
    _drain()
    _shutdown_when_idle()
    _end_other_sessions()
    dispatch.reset_client()
    drop_dbos_database(url)


def _shutdown_when_idle(timeout: float = 60.0) -> None:
    """Stop DBOS, then wait for the workflows its executor threads were still running (`_drain`
    leaves the sweep, which the scheduler starts every second, to finish here). DBOS's shutdown
    abandons them: a sweep whose system database is then dropped retries its step for ever, and the
    test process never exits, waiting for that thread."""
    from dbos import _dbos

    from closeout import worker

    instance = _dbos._dbos_global_instance
    worker.shutdown()
    if instance is not None:
        wait_for(lambda: not instance._active_workflows_set.activeList(), timeout=timeout, interval=0.05)


def _end_other_sessions() -> None:
    """End the sessions DBOS's executor threads left open on the test database (a worker process
    closes them by exiting), so that they do not keep it from being dropped at the end of the run."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def wait_for(predicate, timeout=60.0, interval=0.1):
    """Poll until predicate() is truthy; return its value or fail after timeout seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class WorkerProcess:
    """`closeout worker` as a separate OS process sharing this test's databases and keys."""

    def __init__(self, dbos_url: str, tmp_path, executor_id: str = "proc-worker"):
        self.dbos_url = dbos_url
        self.tmp_path = tmp_path
        self.executor_id = executor_id
        self.proc = None

    def env(self, **extra) -> dict:
        from django.db import connection

        db = connection.settings_dict
        if connection.vendor == "sqlite":
            url = f"sqlite:///{db['NAME']}"
        else:
            url = f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSEOUT_CRASH")}
        env.update(DATABASE_URL=url, CLOSEOUT_DBOS_DATABASE_URL=self.dbos_url, CLOSEOUT_DISPATCH="1",
                   CLOSEOUT_EXECUTOR_ID=self.executor_id, CLOSEOUT_SWEEP_SCHEDULE="* * * * * *",
                   CLOSEOUT_QUEUE_POLL_SEC="0.1", CLOSEOUT_LOG_LEVEL="WARNING")
        env.update(extra)
        return env

    def start(self, **extra) -> WorkerProcess:
        import subprocess
        import sys

        log = open(self.tmp_path / f"worker-{self.executor_id}.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen([sys.executable, "-m", "closeout.cli", "worker"], env=self.env(**extra),
                                     stdout=log, stderr=log)
        return self

    def wait_killed(self, timeout=60.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def dbos_system(transactional_db, settings, tmp_path):
    """A migrated DBOS system database that this process enqueues into (no worker here)."""
    from closeout import worker
    from closeout.closures import dispatch

    url = unique_dbos_url(tmp_path)
    settings.DBOS_SYSTEM_DATABASE_URL = url
    settings.CLOSEOUT_DISPATCH = True
    dispatch.reset_client()
    worker.migrate_system_database()
    yield url
    dispatch.reset_client()
    drop_dbos_database(url)
