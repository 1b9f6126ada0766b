"""The chaos run: closures through the API of a real closeout while a nemesis kills, pauses and
restarts its processes, breaks the simulated outside systems and cuts its database connections;
then a checker reads what the clients were told and what the database holds.

    python -m tests.faults.chaos [--minutes 60] [--engine postgres|sqlite] [--seed N] [--workers 2]

What RELIABILITY.md asks of it: at least 1,000 cases, a fault every 10–30 s, no broken invariant;
the cases in flight survive a deploy (every worker stopped and started again at once); every
case is closed within 60 s of the last fault healing. `test_chaos.py` runs a short version in the
suite. The run's history (requests, faults, answers) is written as JSON lines beside the server's
logs, so a broken invariant can be traced to the faults around it.

The cards are stored-value cards and travel eSIMs (their profiles on a device, or never
downloaded); some refunds are above their product's approval threshold and wait for a second
person: a refund approver and a supervisor sign in to the staff console and approve them while the
faults go on. The supervisor also opens some of those closures at the console, for callers, and
tries to approve them itself.

The invariants, each checked over every case:
- every case a client was told of (201) exists, for the card it named; no card has two cases;
- each first answer is replayed byte for byte for the same Idempotency-Key;
- no answer is a 500 (a 503 while the database is cut off is an answer: it says "try again"), to
  the clients or the approvers; no approver is told that a decision was refused (but the
  supervisor, of its own closures, that it asked for them);
- every case closes; at the provider, one refund of the quoted amount (none when nothing is owed);
- a stored-value card blocked once in the card system; an eSIM's number taken out of service once,
  its profile left Unavailable at the SM-DP+ after one executed CancelOrder, deleted on its device
  once (one signed notification kept) when it was installed there, never when it was not;
- a refund needs approval exactly when it was issued to; such a refund is approved once, by an
  approver who did not open the case nor ask for the refund, before the provider is asked to pay it;
- one refund posting per case; every posting balances; one certificate per closed case; the
  audit chain verifies.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.hardening.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
HKID = "A1234563"
# Outages the simulators act on that heal by themselves: every call after them succeeds, so each
# case must still close. (Declines are answers, not outages: a declined refund waits for staff.)
ADAPTER_FAULTS = [
    ("payments", "refund", "timeout"), ("payments", "refund", "error_5xx"), ("payments", "refund", "lost_response"),
    ("payments", "refund", "latency"), ("payments", "webhook", "duplicate_webhook"),
    ("payments", "webhook", "out_of_order_webhook"), ("payments", "webhook", "drop_webhook"),
    ("card_system", "block", "timeout"), ("card_system", "block", "error_5xx"),
    ("card_system", "block", "lost_response"), ("partners", "unbind", "error_5xx"), ("partners", "unbind", "timeout"),
    ("card_system", "deactivate_number", "timeout"), ("card_system", "deactivate_number", "error_5xx"),
    ("card_system", "deactivate_number", "lost_response"), ("smdp", "cancel_order", "timeout"),
    ("smdp", "cancel_order", "error_5xx"), ("smdp", "cancel_order", "lost_response"), ("smdp", "cancel_order", "latency"),
    ("smdp", "webhook", "duplicate_webhook"), ("smdp", "webhook", "out_of_order_webhook"),
]
# Only eSIM cases make these calls, a few a second at most: a run of faults longer than a step's
# five attempts could meet every attempt of one case's call, which then goes to staff, as it should.
# (No dropped ES9+ notification either: closeout does not ask the SM-DP+ again, so a lost one keeps
# its case waiting for the device's deletion until the deadline, days later, and then for staff.)
FEW_CALLS = {("card_system", "deactivate_number"), ("smdp", "cancel_order")}


@dataclass
class History:
    """What happened, in order: each request's outcome and each fault, as JSON lines."""

    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.monotonic)

    def add(self, kind: str, **data) -> None:
        line = json.dumps({"t": round(time.monotonic() - self.started, 3), "kind": kind, **data})
        with self.lock, self.path.open("a") as out:
            out.write(line + "\n")


class ChaosServer(LiveServer):
    """The live server with the product's own settings (not the suite's), so that the sweep, the
    queues and the takeover of dead workers run on their real timings."""

    def env(self) -> dict:
        env = super().env()
        env.update(DJANGO_SETTINGS_MODULE="closeout.settings", CLOSEOUT_LOG_LEVEL="INFO")
        env.pop("CLOSEOUT_SWEEP_SCHEDULE", None)
        # The simulated holders delete a refused eSIM profile from their phone after 3 s.
        env["CLOSEOUT_SIM_ESIM_DEVICE_DELETES_AFTER"] = "3"
        return env

    def kill(self) -> None:
        """kill -9 gunicorn and every process it started (its session)."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
            self._process = None


class Cluster:
    """One web server and `n` workers on one database, and what the nemesis does to them."""

    def __init__(self, data_dir: Path, engine: str, workers: int, history: History):
        self.server = ChaosServer(data_dir=data_dir, engine=engine)
        self.history = history
        self.n = workers
        self.workers: dict[int, subprocess.Popen] = {}
        self.names: dict[int, str] = {}
        self.paused: set[int] = set()
        self.generation = 0

    def start(self) -> None:
        self.server.start()
        for i in range(self.n):
            self.worker_start(i, f"chaos-{i}")

    def worker_start(self, i: int, executor_id: str) -> None:
        log = open(self.server.data_dir / f"worker-{executor_id}.log", "ab")  # noqa: SIM115 - kept for the process
        self.workers[i] = subprocess.Popen(
            [sys.executable, "-m", "closeout.cli", "worker", "--executor-id", executor_id],
            env=self.server.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.names[i] = executor_id

    def worker_kill(self, i: int) -> None:
        self.workers[i].kill()
        self.workers[i].wait(timeout=30)
        self.paused.discard(i)

    def workers_stop(self) -> None:
        """A graceful stop of every worker at once, as a deploy does it (SIGTERM; each drains its
        workflows for up to 10 s; SIGKILL after 30 s)."""
        for i, proc in self.workers.items():
            if i in self.paused:
                proc.send_signal(signal.SIGCONT)
                self.paused.discard(i)
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)

    def supervise(self) -> None:
        """Start again whatever exited on its own, as systemd's Restart=always would (a worker
        that found no database, a server that could not connect at start)."""
        for i, proc in self.workers.items():
            if proc.poll() is not None:
                self.history.add("restarted", worker=i, code=proc.returncode)
                self.worker_start(i, self.names[i])
        if self.server._process is None or self.server._process.poll() is not None:
            self.serve()

    def serve(self, patience: float = 120) -> None:
        """Start the web server, trying again while it exits at start (the database full, say)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                self.server.serve()
                return
            except RuntimeError as exc:
                self.history.add("serve_failed", error=str(exc)[:200])
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def heal(self) -> None:
        """Every paused worker goes on, every dead process starts again; no scripted fault is left."""
        for i in sorted(self.paused):
            self.workers[i].send_signal(signal.SIGCONT)
        self.paused.clear()
        self.supervise()
        httpx.delete(self.server.url + "/sim/faults", timeout=30)

    def stop(self) -> None:
        self.workers_stop()
        self.server.stop()


class Nemesis:
    """One fault at a time, every `gap` seconds (uniformly at random), each healed before the next
    one starts: kill -9 or pause a worker, kill -9 the web server, deploy, an outage of an outside
    system, the database's connections cut (PostgreSQL)."""

    def __init__(self, cluster: Cluster, rng: random.Random, gap: tuple[float, float], history: History):
        self.cluster, self.rng, self.gap, self.history = cluster, rng, gap, history
        self.faults = [self.kill_worker, self.pause_worker, self.kill_web, self.deploy, self.outside_outage]
        if cluster.server.engine == "postgres":
            self.faults.append(self.cut_database)
        self.done: Counter = Counter()
        self.errors: list[str] = []

    def run(self, until: float, stop: threading.Event, at_least: int = 2) -> None:
        """Faults until `until`, and past it until `at_least` were done: one fault may outlast a short
        run's window (a pause of 40 s; a web server that takes half a minute to start on a busy
        machine), and a run with one fault is hardly a chaos run."""
        while not stop.is_set():
            if stop.wait(self.rng.uniform(*self.gap)) or (time.monotonic() > until
                                                           and sum(self.done.values()) >= at_least):
                return
            fault = self.rng.choice(self.faults)
            self.history.add("fault", name=fault.__name__)
            try:
                self.cluster.supervise()
                fault()
            except Exception as exc:  # noqa: BLE001 - reported: the run did not go as planned
                self.errors.append(f"{fault.__name__}: {type(exc).__name__}: {str(exc)[:200]}")
                self.history.add("nemesis_error", name=fault.__name__, error=str(exc)[:200])
            self.done[fault.__name__] += 1

    def kill_worker(self) -> None:
        """kill -9; it comes back after a few seconds under its own id (DBOS recovers its
        workflows) or under a new one (another worker takes the dead one's over)."""
        c = self.cluster
        i = self.rng.randrange(c.n)
        c.worker_kill(i)
        time.sleep(self.rng.uniform(1, 5))
        c.generation += 1
        name = c.names[i] if self.rng.random() < 0.5 else f"chaos-{i}-r{c.generation}"
        c.worker_start(i, name)
        self.history.add("heal", name="kill_worker", worker=i, executor_id=name)

    def pause_worker(self) -> None:
        """SIGSTOP for 5–40 s: past 30 s of silence the other workers take its workflows over, and
        then it wakes up in the middle of a step it no longer owns."""
        c = self.cluster
        i = self.rng.randrange(c.n)
        c.workers[i].send_signal(signal.SIGSTOP)
        c.paused.add(i)
        time.sleep(self.rng.uniform(5, 40))
        if i in c.paused:
            c.workers[i].send_signal(signal.SIGCONT)
            c.paused.discard(i)
        self.history.add("heal", name="pause_worker", worker=i)

    def kill_web(self) -> None:
        self.cluster.server.kill()
        time.sleep(self.rng.uniform(0.5, 3))
        self.cluster.serve()
        self.history.add("heal", name="kill_web")

    def deploy(self) -> None:
        """Every worker stopped and started again at once, as a new release goes out."""
        c = self.cluster
        c.workers_stop()
        for i in list(c.workers):
            c.worker_start(i, c.names[i])
        self.history.add("heal", name="deploy")

    def outside_outage(self) -> None:
        system, operation, mode = self.rng.choice(ADAPTER_FAULTS)
        remaining = self.rng.randint(1, 6)
        if (system, operation) in FEW_CALLS and mode != "latency":
            # At most four failures wait for such a call at any time, however the outages pile up.
            pending = httpx.get(self.cluster.server.url + "/sim/faults", params={"system": system}, timeout=30).json()
            remaining = min(remaining, 4 - sum(f["remaining"] for f in pending
                                               if f["operation"] == operation and f["mode"] != "latency"))
            if remaining < 1:
                mode, remaining = "latency", 1
        httpx.post(self.cluster.server.url + "/sim/faults", timeout=30,
                   json={"system": system, "operation": operation, "mode": mode, "remaining": remaining})
        self.history.add("outage", system=system, operation=operation, mode=mode, remaining=remaining)

    def cut_database(self) -> None:
        """Terminate every server connection of closeout's two databases (a failover, or a
        network cut between them and PostgreSQL)."""
        import psycopg

        names = [self.cluster.server.database, f"{self.cluster.server.database}_dbos"]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            cut = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (names,)).fetchone()[0]
        self.history.add("heal", name="cut_database", connections=cut)


class Clients:
    """Partners closing cards through the API, each retrying with its Idempotency-Key until it gets
    an answer, as a well-behaved client does through a restart or an outage."""

    def __init__(self, server: ChaosServer, cards: list[dict], rng: random.Random, history: History, seed: int):
        self.server, self.cards, self.rng, self.history, self.seed = server, cards, rng, history, seed
        self.accepted: dict[str, str] = {}  # reference -> card number
        self.first_answers: dict[str, bytes] = {}  # Idempotency-Key -> the 201's body
        self.server_errors: list[dict] = []
        self.replay_mismatches: list[str] = []
        self.refused: Counter = Counter()
        self.unanswered: list[str] = []
        self.lock = threading.Lock()
        self.next = 0

    def _card(self) -> tuple[int, dict] | None:
        """The next card of the list that is the partners' (a supervisor closes the others)."""
        with self.lock:
            while self.next < len(self.cards):
                self.next += 1
                if self.cards[self.next - 1]["channel"] == "partner_api":
                    return self.next - 1, self.cards[self.next - 1]
            return None

    def run(self, until: float, stop: threading.Event, pace: float) -> None:
        while not stop.is_set() and time.monotonic() < until:
            taken = self._card()
            if taken is None:
                return
            self.close(*taken)
            stop.wait(self.rng.uniform(0, 2 * pace))

    def close(self, i: int, card: dict) -> None:
        key, body = self._request(i, card)
        answer = self._post(key, body)
        if answer is None:
            self.unanswered.append(key)
            self.history.add("unanswered", key=key)
            return
        if answer.status_code != 201:
            self.refused[answer.status_code] += 1
            self.history.add("refused", key=key, status=answer.status_code)
            return
        reference = answer.json()["reference"]
        with self.lock:
            self.accepted[reference] = card["number"]
            self.first_answers[key] = answer.content
        self.history.add("accepted", key=key, reference=reference)
        if self.rng.random() < 0.1:  # the client lost the answer and asks again
            self.replay(key, body)

    def replay(self, key: str, body: bytes) -> None:
        again = self._post(key, body)
        if again is not None and again.content != self.first_answers[key]:
            self.replay_mismatches.append(key)
            self.history.add("replay_mismatch", key=key, status=again.status_code)

    def _post(self, key: str, body: bytes, give_up_after: float = 180) -> httpx.Response | None:
        headers = {**self.server.headers(scope="partner"), "Idempotency-Key": key,
                   "Content-Type": "application/json"}
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(self.server.url + "/api/v1/closures", content=body, headers=headers, timeout=30)
            except httpx.HTTPError as exc:
                self.history.add("no_answer", key=key, error=type(exc).__name__)
                time.sleep(0.5)
                continue
            if answer.status_code == 503:
                self.history.add("unavailable", key=key)
                time.sleep(float(answer.headers.get("Retry-After", "1")))
                continue
            if answer.status_code >= 500:
                self.server_errors.append({"key": key, "status": answer.status_code})
                self.history.add("server_error", key=key, status=answer.status_code)
                time.sleep(0.5)
                continue
            return answer
        return None

    def replay_all(self) -> None:
        """Ask again for every accepted closure after the faults: the same bytes each time."""
        for i, card in enumerate(self.cards[: self.next]):
            key, body = self._request(i, card)
            if key in self.first_answers:
                self.replay(key, body)

    def _request(self, i: int, card: dict) -> tuple[str, bytes]:
        """The i-th closure request: its Idempotency-Key and body, the same each time it is sent."""
        return f"chaos-{self.seed}-{i}", json.dumps({
            "card_number": card["number"], "holder_name": card["holder_name"],
            "id_document": {"type": "hkid", "number": HKID}, "contact": {"email": "chaos@example.test"},
            "refund_destination": {"type": "original"}, "channel": "partner_api", "reason": "chaos",
        }).encode()

    def burst(self, count: int) -> None:
        """`count` closures at once, from eight connections."""
        from concurrent.futures import ThreadPoolExecutor

        taken = [t for t in (self._card() for _ in range(count)) if t is not None]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: self.close(*t), taken))


class NotSignedIn(Exception):
    """The console asked the approver to sign in (again), or a sign-in step went wrong."""


class Approver:
    """A refund approver at the staff console, as a person works it: signs in with a password and
    the code of an authenticator app, reads /console/refunds/ and approves every refund listed
    there with the form's own `seen` version, through restarts and outages. Two of them work the
    same list, so they often decide one refund at the same moment."""

    FORM = re.compile(r'<form method="post" action="/console/refunds/([^"/]+)/approve".*?</form>', re.S)
    TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
    MESSAGE = re.compile(r'<li class="([a-z ]*)"[^>]*role="status"[^>]*>(.*?)</li>', re.S)

    def __init__(self, server: ChaosServer, account: dict, rng: random.Random, history: History):
        self.server, self.rng, self.history = server, rng, history
        self.email, self.password = account["email"], account["password"]
        self.name = self.email.split("@")[0]
        enrolment = parse_qs(urlsplit(account["enrolment"]).query)  # the otpauth:// URI of `staff create`
        self.key = base64.b32decode(enrolment["secret"][0])
        self.step, self.digits = int(enrolment["period"][0]), int(enrolment["digits"][0])
        self.last_step = 0  # a code is good once: the next sign-in waits for the next one
        self.http = httpx.Client(base_url=server.url, timeout=30, headers={"Accept-Language": "en"})
        self.posted: list[str] = []  # references whose approval was answered (a redirect to the list)
        self.told: Counter = Counter()  # the console's messages to this approver, by kind
        self.refused: list[str] = []  # what the console refused, said or showed instead of a decision
        self.server_errors: list[dict] = []
        self.sign_ins = 0

    @property
    def actor(self) -> str:
        return f"staff:{self.email}"

    def summary(self) -> dict:
        return {"name": self.name, "sign_ins": self.sign_ins, "sent": len(self.posted), "told": dict(self.told),
                "refused": self.refused}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.round()
            except NotSignedIn:
                self._sign_in(stop)
            except httpx.HTTPError as exc:
                self.history.add("approver_no_answer", approver=self.name, error=type(exc).__name__)
            stop.wait(self.rng.uniform(0.5, 2.5))

    def round(self) -> None:
        """Read the refunds waiting and approve each (in another order than the other approver)."""
        page = self._get("/console/refunds/")
        if page is None:
            return
        forms = {form[1]: form[0] for form in self.FORM.finditer(page.text)}
        listed = re.findall(r'<tr data-reference="([^"]+)"', page.text)
        for reference in set(listed) - set(forms) - self.own():
            self._refuse(reference, "listed without an approval form")
        for reference in self.rng.sample(sorted(forms), len(forms)):
            if reference in self.own():
                self._refuse(reference, "offered the approval of a refund this approver asked for")
                continue
            seen = re.search(r'name="seen" value="([^"]*)"', forms[reference])
            answer = self._post(f"/console/refunds/{reference}/approve", page,
                                {"back": "list", "seen": seen[1] if seen else "", "note": f"checked by {self.name}"})
            if answer is None:
                continue
            if answer.status_code == 302 and answer.headers["location"] == "/console/refunds/":
                self.posted.append(reference)
                self.history.add("approved", approver=self.name, reference=reference)
            else:
                self._refuse(reference, f"approval answered {answer.status_code}")

    def own(self) -> set[str]:
        """The cases this person opened (an approver opens none)."""
        return set()

    def expected(self, text: str) -> bool:
        """Whether an error the console showed is one this person meant to provoke."""
        return False

    def _get(self, path: str) -> httpx.Response | None:
        """GET a console page; note the messages it shows (what came of the last requests)."""
        answer = self.http.get(path)
        if answer.status_code == 302 and answer.headers["location"].startswith("/console/login/"):
            raise NotSignedIn(path)
        if not self._answered(answer, path):
            return None
        for kind, text in self.MESSAGE.findall(answer.text):
            text = html.unescape(text).strip()
            self.told[kind] += 1
            if "error" in kind.split() and not self.expected(text):
                self._refuse("", f"told: {text}")
        return answer

    def _post(self, path: str, page: httpx.Response, data: dict) -> httpx.Response | None:
        answer = self._send(path, page, data)
        if answer is not None and answer.status_code == 302 and answer.headers["location"].startswith("/console/login/"):
            raise NotSignedIn(path)
        return answer

    def _send(self, path: str, page: httpx.Response, data: dict) -> httpx.Response | None:
        """POST a form of `page`, with the CSRF token it holds."""
        token = self.TOKEN.search(page.text)
        answer = self.http.post(path, data={**data, "csrfmiddlewaretoken": token[1] if token else ""})
        return answer if self._answered(answer, path) else None

    def _answered(self, answer: httpx.Response, path: str) -> bool:
        """A 503 (the database cut off) says "try again"; any other 5xx is a broken invariant."""
        if answer.status_code == 503:
            self.history.add("approver_unavailable", approver=self.name, path=path)
            return False
        if answer.status_code >= 500:
            self.server_errors.append({"key": f"{self.name} {path}", "status": answer.status_code})
            self.history.add("server_error", approver=self.name, path=path, status=answer.status_code)
            return False
        return True

    def _refuse(self, reference: str, what: str) -> None:
        self.refused.append(f"{reference} {what}".strip())
        self.history.add("approver_refused", approver=self.name, reference=reference, what=what[:200])

    def _sign_in(self, stop: threading.Event) -> None:
        """Password, then a code not used before; any step that fails starts it all again."""
        while not stop.is_set():
            try:
                if self._signed_in(stop):
                    self.sign_ins += 1
                    self.history.add("signed_in", approver=self.name)
                    return
            except httpx.HTTPError as exc:
                self.history.add("approver_no_answer", approver=self.name, error=type(exc).__name__)
            stop.wait(1)

    def _signed_in(self, stop: threading.Event) -> bool:
        from django_otp.oath import totp  # what the authenticator app computes

        self.http.cookies.clear()
        page = self.http.get("/console/login/")
        if not self._answered(page, "/console/login/") or page.status_code != 200:
            return False
        answer = self._send("/console/login/", page, {"email": self.email, "password": self.password})
        if answer is None or answer.status_code != 302 or not answer.headers["location"].startswith("/console/login/code/"):
            return False
        page = self.http.get(answer.headers["location"])
        if not self._answered(page, "/console/login/code/") or page.status_code != 200:
            return False
        # A code is accepted once: one sent before (its answer lost, say) is a failed sign-in, and
        # five of those lock the account. Wait for the next period's.
        if stop.wait(max(0.0, (self.last_step + 1) * self.step - time.time())):
            return False
        self.last_step = int(time.time() // self.step)
        code = f"{totp(self.key, step=self.step, digits=self.digits):0{self.digits}d}"
        answer = self._send("/console/login/code/", page, {"code": code})
        return answer is not None and answer.status_code == 302 and answer.headers["location"] == "/console/"


class Supervisor(Approver):
    """A supervisor, who may both open closures and approve refunds. Opens a closure at the console
    for each caller whose card is set aside for it (once the partners have come that far down the
    list), and approves refunds like any approver; those of its own closures it tries to approve
    too, once they have one to approve, with a forged form (the console offers none), until the
    console says it asked for them itself: four eyes must refuse each try (any other answer is a
    broken invariant), and the other approver decides them."""

    OWN = "You requested this refund, so another approver must decide it."

    def __init__(self, server: ChaosServer, account: dict, rng: random.Random, history: History,
                 clients: Clients):
        super().__init__(server, account, rng, history)
        self.clients = clients
        self.callers = [(i, card) for i, card in enumerate(clients.cards) if card["channel"] == "phone"]
        self.opened: dict[str, str] = {}  # reference -> card number
        self.trying: set[str] = set()  # own closures the console has not yet refused to let it approve
        self.own_refused = 0

    def summary(self) -> dict:
        return super().summary() | {"opened": len(self.opened), "own_refused": self.own_refused}

    def callers_waiting(self) -> bool:
        """Whether a caller the partners have passed in the list still waits for their closure."""
        return bool(self.callers) and self.callers[0][0] < self.clients.next

    def own(self) -> set[str]:
        return set(self.opened)

    def expected(self, text: str) -> bool:
        if text == self.OWN:
            self.own_refused += 1
        return text == self.OWN

    def round(self) -> None:
        if self.callers_waiting():
            reference = self.open_closure(self.callers[0][1])
            if reference is None:  # perhaps opened, its answer lost: found first thing next round
                return
            self.opened[reference] = self.callers.pop(0)[1]["number"]
            with self.clients.lock:  # held to the invariants with the partners' closures
                self.clients.accepted[reference] = self.opened[reference]
            self.trying.add(reference)
            self.history.add("opened", approver=self.name, reference=reference)
        for reference in sorted(self.trying):
            page = self._get(f"/console/cases/{reference}/")
            if page is None or "data-approval=" not in page.text:  # no refund to approve yet
                continue
            if f'action="/console/refunds/{reference}/approve"' in page.text:
                self._refuse(reference, "offered the approval of a refund this supervisor asked for")
            answer = self._post(f"/console/refunds/{reference}/approve", page, {"back": "case", "seen": ""})
            if answer is None:
                continue
            if answer.status_code != 302:
                self._refuse(reference, f"approving its own refund answered {answer.status_code}")
                continue
            refused = self.own_refused
            if self._get(answer.headers["location"]) is not None and self.own_refused > refused:
                self.trying.discard(reference)
        super().round()

    def open_closure(self, card: dict) -> str | None:
        """Identify the caller, read them the quote, record their consent; the case's reference,
        or None when the console did not answer (asked again next round: an open case is found)."""
        page = self._get("/console/open/")
        if page is None:
            return None
        call = f"call-{card['number'][-6:]}"
        answer = self._post("/console/open/", page, {
            "channel": "phone", "channel_ref": call, "card_number": card["number"], "holder_name": card["holder_name"],
            "contact": card["email"], "id_type": "hkid", "id_number": HKID, "check_card_number": "on",
            "check_name": "on", "check_contact": "on", "check_id_document": "on"})
        if answer is None:
            return None
        where = answer.headers.get("location", "") if answer.status_code == 302 else ""
        if where.startswith("/console/cases/"):  # opened by an earlier try whose answer was lost
            return where.split("/")[3]
        if where != "/console/open/quote/":
            self._refuse(card["number"][-4:], f"identifying the caller answered {answer.status_code}")
            return None
        page = self._get(where)
        if page is None:
            return None
        answer = self._post(where, page, {"destination": "original", "reason": "chaos", "consent_ref": call,
                                          "consent": "on"})
        if answer is None:
            return None
        where = answer.headers.get("location", "") if answer.status_code == 302 else ""
        if not where.startswith("/console/cases/"):
            self._refuse(card["number"][-4:], f"recording the consent answered {answer.status_code}")
            return None
        return where.split("/")[3]


@dataclass
class Report:
    seconds: float
    faults: dict
    accepted: int
    refused: dict
    unanswered: int
    server_errors: list
    replay_mismatches: list
    check: dict
    settled_in: float | None
    deployed_in_flight: int = 0
    nemesis_errors: list = field(default_factory=list)
    approvers: list = field(default_factory=list)

    @property
    def breaks(self) -> list[str]:
        found = list(self.check.get("breaks", []))
        found += [f"server error {e['status']} for {e['key']}" for e in self.server_errors]
        for a in self.approvers:
            found += [f"{a['name']} was refused: {what}" for what in a["refused"]]
            found += [f"{a['name']} never signed in"] if not a["sign_ins"] else []
        found += [f"replay of {key} differs from the first answer" for key in self.replay_mismatches]
        found += [f"{self.unanswered} requests never answered"] if self.unanswered else []
        found += [f"the nemesis failed: {e}" for e in self.nemesis_errors]
        if self.settled_in is None:
            found.append("not every case closed within the wait after the last fault")
        return found

    def text(self) -> str:
        lines = [f"chaos run: {self.seconds:.0f} s, faults {dict(self.faults)}",
                 f"deployed with {self.deployed_in_flight} cases in flight",
                 f"closures accepted {self.accepted}, refused {dict(self.refused)}, unanswered {self.unanswered}",
                 f"states {self.check.get('states')}, kinds {self.check.get('kinds')}, eSIM profiles on a phone "
                 f"{self.check.get('esim_on_device')} (deleted there {self.check.get('esim_deleted_on_device')})",
                 f"refunds approved {self.check.get('approvals')}, by {self.check.get('approved_by')}",
                 *(f"{a['name']}: " + ", ".join(f"{k} {v}" for k, v in a.items() if k not in ("name", "refused"))
                   for a in self.approvers),
                 f"all closed {self.settled_in:.1f} s after the last fault healed" if self.settled_in is not None
                 else "NOT all closed after the last fault healed",
                 f"invariants broken: {len(self.breaks)}"]
        lines += [f"  open: {c}" for c in self.check.get("open", [])[:20]]
        lines += [f"  - {b}" for b in self.breaks[:50]]
        return "\n".join(lines)


def run(*, data_dir: Path, engine: str, seconds: float, seed: int, workers: int = 2, clients: int = 2,
        gap: tuple[float, float] = (10, 30), pace: float = 1.0, cards: int | None = None,
        settle: float = 60, burst: int = 100) -> Report:
    """Deploy with `burst` cases in flight, run the chaos for `seconds`, heal, wait up to `settle`
    seconds for every case to close, check."""
    rng = random.Random(seed)
    history = History(data_dir / "history.jsonl")
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(data_dir, engine, workers, history)
    cluster.start()
    try:
        count = cards or int(seconds / pace * clients * 1.2) + 20 + burst
        issued, accounts = json.loads(subprocess.run(
            [sys.executable, "-m", "tests.faults.chaos", "issue", str(count), str(seed)], env=cluster.server.env(),
            check=True, capture_output=True, text=True, timeout=1800, cwd=ROOT).stdout)
        partners = Clients(cluster.server, issued, rng, history, seed)
        nemesis = Nemesis(cluster, random.Random(seed + 1), gap, history)
        approvers = [Approver(cluster.server, accounts[0], random.Random(seed + 2), history),
                     Supervisor(cluster.server, accounts[1], random.Random(seed + 3), history, partners)]
        approving = threading.Event()  # set when every case is closed, or the wait for it is over
        checkers = [threading.Thread(target=a.run, args=(approving,), daemon=True) for a in approvers]
        for t in checkers:
            t.start()
        in_flight = _deploy_with_cases_in_flight(cluster, partners, nemesis, burst) if burst else 0
        stop = threading.Event()
        started = time.monotonic()
        until = started + seconds
        threads = [threading.Thread(target=partners.run, args=(until, stop, pace), daemon=True)
                   for _ in range(clients)]
        threads.append(threading.Thread(target=nemesis.run, args=(until, stop), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cluster.heal()
        history.add("healed")
        healed = time.monotonic()
        settled_in = _wait_closed(cluster.server, partners.accepted, settle, healed, busy=approvers[1].callers_waiting)
        approving.set()
        for t in checkers:
            t.join()
        partners.replay_all()
        check = _check(cluster.server, partners.accepted, issued=issued, approvers=[a.actor for a in approvers])
        return Report(seconds=healed - started, faults=dict(nemesis.done), accepted=len(partners.accepted),
                      refused=dict(partners.refused), unanswered=len(partners.unanswered),
                      server_errors=partners.server_errors + [e for a in approvers for e in a.server_errors],
                      replay_mismatches=partners.replay_mismatches,
                      check=check, settled_in=settled_in, deployed_in_flight=in_flight,
                      nemesis_errors=nemesis.errors, approvers=[a.summary() for a in approvers])
    finally:
        cluster.stop()


def _deploy_with_cases_in_flight(cluster: Cluster, partners: Clients, nemesis: Nemesis, count: int) -> int:
    """A release goes out while `count` cases are being worked on: the workers stop, the cases
    arrive meanwhile, the workers start and take them up, and a few seconds in every worker is
    stopped and started again. Return how many cases were open at that moment."""
    cluster.workers_stop()
    partners.burst(count)
    for i in list(cluster.workers):
        cluster.worker_start(i, cluster.names[i])
    time.sleep(3)
    states = _check(cluster.server, partners.accepted, states_only=True)["states"]
    nemesis.deploy()
    return sum(n for state, n in states.items() if state != "closed")


def _wait_closed(server: ChaosServer, accepted: dict, settle: float, healed: float,
                 busy=lambda: False) -> float | None:
    """Seconds from `healed` until every case is closed and `busy()` is false, or None."""
    deadline = healed + settle
    while True:
        states = _check(server, accepted, states_only=True)["states"]
        if set(states) <= {"closed"} and not busy():
            return time.monotonic() - healed
        if time.monotonic() > deadline:
            return None
        time.sleep(1)


def _check(server: ChaosServer, accepted: dict, states_only: bool = False, issued: list[dict] = (),
           approvers: list[str] = ()) -> dict:
    """Read the database through closeout's own models, in a process pointed at its databases."""
    accepted = dict(accepted)  # as it is now: the supervisor may be adding to it
    path = server.data_dir / "check.json"
    path.write_text(json.dumps({"accepted": accepted, "issued": {card["number"]: card for card in issued},
                                "approvers": list(approvers)}))
    done = subprocess.run([sys.executable, "-m", "tests.faults.chaos", "check", str(path)]
                          + (["--states-only"] if states_only else []),
                          env=server.env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the checker failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- run inside the server's environment (Django on closeout's databases) ---------------------------


# Which card is which follows from its place in the list, so that the hundred cases of the deploy
# hold twenty eSIMs and a dozen refunds to approve, whatever the seed.
ESIM_EVERY, APPROVAL_EVERY = 5, 8


def issue(count: int, seed: int) -> list[dict]:
    """Issue `count` cards that need not be posted back: stored-value cards of three products and,
    one in five, travel eSIMs whose profile is either on the holder's phone (the simulated holder
    deletes it once the SM-DP+ refuses to cancel it, and the phone notifies closeout) or was never
    downloaded. One card in eight holds more than its product's approval threshold, so its refund
    waits for an approver; a quarter of those are closed by their holder on the phone (a supervisor
    opens the closure at the console), the others by partners. One card in five is bound to partner
    apps (so closing it unbinds). Each card is listed with what it was issued as, for the checker."""
    from datetime import timedelta

    from closeout.cards import services as cards
    from closeout.common import clock
    from closeout.common.money import Money
    from closeout.demo import PARTNERS, products_load
    from closeout.identity.documents import luhn_check_digit
    from closeout.integrations.smdp.simulator import profile_seed

    products = products_load()
    rng = random.Random(seed)
    out = []
    for i in range(count):
        esim, approval = i % ESIM_EVERY == 1, i % APPROVAL_EVERY == 3
        at_console = i % (4 * APPROVAL_EVERY) == 19  # one refund to approve in four: 19, 51, 83, ...
        product = products["ESIM" if esim else rng.choice(["YKT", "YKT", "OCTO", "SUICA"])]
        name, email = f"Chaos Holder {i}", f"chaos{i}@example.test"
        holder = cards.holder_create(name=name, id_type="hkid", id_number=HKID, email=email)
        length = 19 if esim else 16  # an ICCID, a card number
        body = product.number_prefix + f"{seed % 1000:03d}{i:0{length - len(product.number_prefix) - 4}d}"
        if approval:  # above the threshold by more than any fee takes
            balance = product.policy.rules["refund_approval_threshold"] + rng.choice([6000, 25000])
        else:
            balance = rng.choice([0, 500, 2000, 8800] if esim else [0, 50, 1234, 15000])
        plan = {}
        if esim:
            starts = clock.now() - timedelta(days=rng.randint(1, 25))
            plan = dict(plan_price_minor=rng.choice([9800, 16800, 28800]), plan_starts_at=starts,
                        plan_ends_at=starts + timedelta(days=30), plan_data_mb=10240,
                        plan_data_used_mb=rng.randrange(0, 4096))
        card = cards.card_issue(number=body + luhn_check_digit(body), product=product, holder=holder,
                                issued_at=clock.now() - timedelta(days=rng.randint(100, 2000)),
                                balance=Money(balance, product.currency), physical=False,
                                transaction_count=rng.randint(0, 50), **plan)
        profile = None
        if esim:
            profile = "ENABLED" if i // ESIM_EVERY % 2 else "RELEASED"
            profile_seed(iccid=card.number, state=profile)
        if rng.random() < 0.2:
            for partner in PARTNERS[: rng.randint(1, 3)]:
                cards.binding_add(card=card, partner=partner, external_ref=f"{partner}-{card.id}")
        out.append({"number": card.number, "holder_name": name, "email": email, "kind": product.kind,
                    "profile": profile, "approval": approval, "channel": "phone" if at_console else "partner_api"})
    return out


def staff_accounts() -> list[dict]:
    """Create a refund approver and a supervisor as `closeout staff create` does; return the email,
    password and TOTP enrolment URI (otpauth://) it prints for each."""
    from closeout.console.services import staff_create

    accounts = []
    for role in ("refund_approver", "supervisor"):
        _profile, device, password = staff_create(email=f"{role.split('_')[-1]}@staff.chaos.test", role=role)
        accounts.append({"email": device.user.email, "password": password, "enrolment": device.config_url})
    return accounts


def check(accepted: dict[str, str], issued: dict[str, dict] | None = None, approvers: list[str] = (),
          states_only: bool = False) -> dict:
    """Hold every accepted case to the invariants; `issued` says what each card was issued as (by
    number), `approvers` who may approve refunds."""
    from closeout.audit.models import AuditEvent
    from closeout.audit.services import audit_verify
    from closeout.cards.models import Card
    from closeout.certificates.models import Certificate
    from closeout.closures import states
    from closeout.closures.models import CaseEvent, ClosureCase, RefundApproval
    from closeout.closures.services import approval_reason
    from closeout.integrations.models import (
        EsimDeletionProof,
        SimCardBlock,
        SimEsimProfile,
        SimNumberDeactivation,
        SimRefund,
    )
    from closeout.integrations.smdp import port as smdp
    from closeout.ledger.models import Line, Posting

    cases = {c.reference: c for c in ClosureCase.objects.select_related("card__product__policy")
             .filter(reference__in=accepted)}
    result = {"states": dict(Counter(c.state for c in cases.values()))}
    if states_only:
        return result
    issued = issued or {}
    breaks = []
    for reference, number in accepted.items():
        case = cases.get(reference)
        if case is None:
            breaks.append(f"{reference}: told to the client, not in the database")
        elif case.card.number != number:
            breaks.append(f"{reference}: opened for another card than the one asked for")
    per_card = Counter(ClosureCase.objects.exclude(state__in=(states.WITHDRAWN, states.REJECTED))
                       .values_list("card_id", flat=True))
    breaks += [f"card {card}: {n} cases" for card, n in per_card.items() if n > 1]

    refunds: dict[str, list] = {}
    first_paid: dict[str, object] = {}  # reference -> when the provider was first asked to pay
    for key, amount, status, at in SimRefund.objects.values_list("idempotency_key", "amount_minor", "status",
                                                                 "created_at"):
        if status != "failed":
            reference = key.split(":", 1)[0]
            refunds.setdefault(reference, []).append(amount)
            first_paid[reference] = min(at, first_paid.get(reference, at))
    blocks = Counter(SimCardBlock.objects.values_list("card_number", flat=True))
    numbers_off = Counter(SimNumberDeactivation.objects.values_list("iccid", flat=True))
    profiles = {p.iccid: p for p in SimEsimProfile.objects.filter(iccid__in=[c.card.number for c in cases.values()])}
    proofs = Counter(EsimDeletionProof.objects.values_list("iccid", flat=True))
    approvals = {a.case_id: a for a in RefundApproval.objects.filter(case__reference__in=accepted)}
    approve_events = Counter(CaseEvent.objects.filter(case__reference__in=accepted, key__startswith="approve:")
                             .values_list("case__reference", flat=True))
    approve_audits: dict[str, list] = {}
    for subject, actor in AuditEvent.objects.filter(action="closure.refund.scheduled", subject__in=accepted
                                                    ).values_list("subject", "actor"):
        approve_audits.setdefault(subject, []).append(actor)
    certified = set(Certificate.objects.values_list("case__reference", flat=True))
    refund_postings = Counter(Posting.objects.filter(key__endswith=":refund").values_list("subject", flat=True))
    kinds: Counter = Counter()
    for reference, case in cases.items():
        card = case.card
        meant = issued.get(card.number, {})
        kinds[card.product.kind] += 1
        if meant and meant["kind"] != card.product.kind:
            breaks.append(f"{reference}: a {card.product.kind} card, issued as {meant['kind']}")
        owed = case.quote["refund"]
        paid = refunds.get(reference, [])
        if len(paid) > 1 or sum(paid) > owed:
            breaks.append(f"{reference}: refunded {len(paid)} times, {sum(paid)} of {owed}")
        breaks += _approval_breaks(case, approvals.get(case.id), meant, paid_at=first_paid.get(reference),
                                   approvers=approvers, events=approve_events[reference],
                                   scheduled_by=approve_audits.get(reference, []), needs=approval_reason(case))
        if case.state != states.CLOSED:
            continue
        if owed and paid != [owed]:
            breaks.append(f"{reference}: closed with refunds {paid} at the provider for {owed} owed")
        if card.product.kind == "esim":
            breaks += _esim_breaks(reference, profiles.get(card.number), meant, smdp=smdp,
                                   proofs=proofs[card.number], numbers_off=numbers_off[card.number],
                                   blocks=blocks[card.number])
        elif blocks[card.number] != 1 or numbers_off[card.number]:
            breaks.append(f"{reference}: card blocked {blocks[card.number]} times, "
                          f"its number taken out of service {numbers_off[card.number]} times")
        if reference not in certified:
            breaks.append(f"{reference}: closed without a certificate")
        if card.status != Card.Status.CLOSED:
            breaks.append(f"{reference}: closed, its card is {card.status}")
        if owed and refund_postings[reference] != 1:
            breaks.append(f"{reference}: closed with {refund_postings[reference]} refund postings")
    breaks += [f"{subject}: {n} refund postings" for subject, n in refund_postings.items() if n > 1]
    unbalanced = (Line.objects.values("posting_id", "currency").annotate(total=_sum("amount_minor"))
                  .exclude(total=0).count())
    if unbalanced:
        breaks.append(f"{unbalanced} postings do not balance")
    chain = audit_verify()
    if chain is not None:
        breaks.append(f"audit chain: {chain}")
    open_cases = [c for c in cases.values() if c.state != states.CLOSED]
    last_events = {e.case_id: e for e in CaseEvent.objects.filter(case__in=open_cases).order_by("at", "id")}
    result["open"] = [{"reference": c.reference, "state": c.state, "attention": c.attention_reason,
                       "next_action": c.next_action, "last_event": getattr(last_events.get(c.id), "note", "")}
                      for c in open_cases]
    on_device = sum(1 for c in cases.values() if issued.get(c.card.number, {}).get("profile") == "ENABLED")
    result.update(breaks=breaks, cases=len(cases), refunds=sum(len(v) for v in refunds.values()),
                  blocks=sum(blocks.values()), certificates=len(certified), kinds=dict(kinds),
                  esim_on_device=on_device, esim_deleted_on_device=sum(proofs.values()),
                  approvals=sum(1 for a in approvals.values() if a.decision == RefundApproval.Decision.APPROVED),
                  approved_by=dict(Counter(a.decided_by for a in approvals.values())))
    return result


def _approval_breaks(case, approval, meant: dict, *, paid_at, approvers, events: int, scheduled_by: list,
                     needs: str) -> list[str]:
    """A refund waits for an approver exactly when the card was issued to need one (above its
    product's threshold); such a refund is approved once, by one of the approvers, who did not
    ask for it, before the provider is asked to pay it."""
    from closeout.closures import states

    reference, found = case.reference, []
    if meant and bool(needs) != meant["approval"]:
        found.append(f"{reference}: refund of {case.quote['refund']} needs approval: {needs or 'no'}; "
                     f"the card was issued {'above' if meant['approval'] else 'below'} the threshold")
    if not needs:
        if approval is not None or events or scheduled_by:
            found.append(f"{reference}: a refund that needs no approval has one ({events} approval events)")
        return found
    decided = approval is not None and approval.decision == "approved"
    if paid_at is not None and not (decided and approval.decided_at <= paid_at):
        found.append(f"{reference}: the provider was asked to pay before the refund was approved")
    if not decided:
        if case.state == states.CLOSED or paid_at is not None:
            found.append(f"{reference}: {case.state} without an approved refund")
        return found
    if approval.decided_by not in approvers:
        found.append(f"{reference}: approved by {approval.decided_by}, not an approver")
    if approval.decided_by in (approval.requested_by, case.requester):
        found.append(f"{reference}: approved by {approval.decided_by}, who asked for it")
    if events != 1 or scheduled_by != [approval.decided_by]:
        found.append(f"{reference}: approved {events} times, its refund started by {scheduled_by}")
    return found


def _esim_breaks(reference: str, profile, meant: dict, *, smdp, proofs: int, numbers_off: int,
                 blocks: int) -> list[str]:
    """A closed eSIM: its number taken out of service once (never blocked as a card), its profile
    Unavailable at the SM-DP+ after one executed CancelOrder; when it was on the phone, one
    CancelOrder refused for that before, and one deletion on the phone, notified and kept."""
    found = []
    if numbers_off != 1 or blocks:
        found.append(f"{reference}: number taken out of service {numbers_off} times, blocked {blocks} times")
    if profile is None:
        return [*found, f"{reference}: closed, its profile unknown to the SM-DP+"]
    on_device = int(meant.get("profile") == "ENABLED")
    cancels = [c for c in profile.calls if c["function"] == "cancelOrder"]
    executed = [c for c in cancels if c["status"] == smdp.SUCCESS]
    refused = [c["reason_code"] for c in cancels if c["status"] != smdp.SUCCESS]
    if profile.state != "UNAVAILABLE":
        found.append(f"{reference}: closed, its profile {profile.state} at the SM-DP+")
    if len(executed) != 1 or refused != [smdp.REASON_INSTALLED] * on_device:
        found.append(f"{reference}: CancelOrder executed {len(executed)} times, refused {refused} "
                     f"(profile {'on' if on_device else 'never on'} a phone)")
    if profile.notification_seq != on_device or proofs != on_device:
        found.append(f"{reference}: profile deleted {profile.notification_seq} times on the phone, "
                     f"{proofs} notifications kept (profile {'on' if on_device else 'never on'} a phone)")
    return found


def _sum(column: str):
    from django.db.models import Sum

    return Sum(column)


def _inside_server(argv: list[str]) -> None:
    import django

    django.setup()
    if argv[0] == "issue":
        print(json.dumps([issue(int(argv[1]), int(argv[2])), staff_accounts()]))
    else:
        asked = json.loads(Path(argv[1]).read_text())
        print(json.dumps(check(asked["accepted"], asked["issued"], asked["approvers"],
                               states_only="--states-only" in argv)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between one client's requests, on average")
    parser.add_argument("--gap", type=float, nargs=2, default=(10, 30), metavar=("LO", "HI"),
                        help="seconds between faults, drawn uniformly from LO to HI")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    data_dir = args.data_dir or Path(f"var/chaos-{seed}")
    print(f"chaos: seed {seed}, history and logs in {data_dir}", flush=True)
    report = run(data_dir=data_dir.resolve(), engine=args.engine, seconds=args.minutes * 60, seed=seed,
                 workers=args.workers, pace=args.pace, gap=tuple(args.gap))
    print(report.text())
    return 1 if report.breaks else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("issue", "check"):
        _inside_server(sys.argv[1:])
    else:
        sys.exit(main())
