"""The chaos run: closures through the API of a real closeout while a nemesis kills, pauses and
restarts its processes, breaks the simulated outside systems and cuts its database connections;
then a checker reads what the clients were told and what the database holds.

    python -m tests.faults.chaos [--minutes 60] [--engine postgres|sqlite] [--seed N] [--workers 2]

What RELIABILITY.md asks of it: at least 1,000 cases, a fault every 10–30 s, no broken invariant;
the cases in flight survive a deploy (every worker stopped and started again at once); every
case is closed within 60 s of the last fault healing. `test_chaos.py` runs a short version in the
suite. The run's history (requests, faults, answers) is written as JSON lines beside the server's
logs, so a broken invariant can be traced to the faults around it.

The invariants, each checked over every case:
- every case a client was told of (201) exists, for the card it named; no card has two cases;
- each first answer is replayed byte for byte for the same Idempotency-Key;
- no answer is a 500 (a 503 while the database is cut off is an answer: it says "try again");
- every case closes; at the provider, one refund of the quoted amount (none when nothing is owed);
- one block per card in the card system; one refund posting per case; every posting balances;
- one certificate per closed case; the audit chain verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
]


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

    def worker_stop(self, i: int) -> None:
        """A graceful stop, as a deploy does it (SIGTERM; SIGKILL after 30 s)."""
        proc = self.workers[i]
        if i in self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused.discard(i)
        proc.terminate()
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
        for i in list(self.workers):
            if self.workers[i].poll() is None:
                self.worker_stop(i)
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

    def run(self, until: float, stop: threading.Event) -> None:
        while not stop.is_set():
            if stop.wait(self.rng.uniform(*self.gap)) or time.monotonic() > until:
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
        for i in list(c.workers):
            c.worker_stop(i)
        for i in list(c.workers):
            c.worker_start(i, c.names[i])
        self.history.add("heal", name="deploy")

    def outside_outage(self) -> None:
        system, operation, mode = self.rng.choice(ADAPTER_FAULTS)
        remaining = self.rng.randint(1, 6)
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
        with self.lock:
            if self.next >= len(self.cards):
                return None
            self.next += 1
            return self.next - 1, self.cards[self.next - 1]

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

    @property
    def breaks(self) -> list[str]:
        found = list(self.check.get("breaks", []))
        found += [f"server error {e['status']} for {e['key']}" for e in self.server_errors]
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
                 f"states {self.check.get('states')}",
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
        issued = json.loads(subprocess.run(
            [sys.executable, "-m", "tests.faults.chaos", "issue", str(count), str(seed)], env=cluster.server.env(),
            check=True, capture_output=True, text=True, timeout=1800, cwd=ROOT).stdout)
        partners = Clients(cluster.server, issued, rng, history, seed)
        nemesis = Nemesis(cluster, random.Random(seed + 1), gap, history)
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
        settled_in = _wait_closed(cluster.server, partners.accepted, settle, healed)
        partners.replay_all()
        check = _check(cluster.server, partners.accepted)
        return Report(seconds=healed - started, faults=dict(nemesis.done), accepted=len(partners.accepted),
                      refused=dict(partners.refused), unanswered=len(partners.unanswered),
                      server_errors=partners.server_errors, replay_mismatches=partners.replay_mismatches,
                      check=check, settled_in=settled_in, deployed_in_flight=in_flight,
                      nemesis_errors=nemesis.errors)
    finally:
        cluster.stop()


def _deploy_with_cases_in_flight(cluster: Cluster, partners: Clients, nemesis: Nemesis, count: int) -> int:
    """A release goes out while `count` cases are being worked on: the workers stop, the cases
    arrive meanwhile, the workers start and take them up, and a few seconds in every worker is
    stopped and started again. Return how many cases were open at that moment."""
    for i in list(cluster.workers):
        cluster.worker_stop(i)
    partners.burst(count)
    for i in list(cluster.workers):
        cluster.worker_start(i, cluster.names[i])
    time.sleep(3)
    states = _check(cluster.server, partners.accepted, states_only=True)["states"]
    nemesis.deploy()
    return sum(n for state, n in states.items() if state != "closed")


def _wait_closed(server: ChaosServer, accepted: dict, settle: float, healed: float) -> float | None:
    deadline = healed + settle
    while True:
        states = _check(server, accepted, states_only=True)["states"]
        if set(states) <= {"closed"}:
            return time.monotonic() - healed
        if time.monotonic() > deadline:
            return None
        time.sleep(1)


def _check(server: ChaosServer, accepted: dict, states_only: bool = False) -> dict:
    """Read the database through closeout's own models, in a process pointed at its databases."""
    path = server.data_dir / "accepted.json"
    path.write_text(json.dumps(accepted))
    done = subprocess.run([sys.executable, "-m", "tests.faults.chaos", "check", str(path)]
                          + (["--states-only"] if states_only else []),
                          env=server.env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the checker failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- run inside the server's environment (Django on closeout's databases) ---------------------------


def issue(count: int, seed: int) -> list[dict]:
    """Issue `count` cards that close without anyone's help: stored-value cards of several
    products that need not be posted back, with refunds below every product's approval threshold,
    one in five bound to partner apps (so closing them unbinds)."""
    from datetime import timedelta

    from closeout.cards import services as cards
    from closeout.common import clock
    from closeout.common.money import Money
    from closeout.demo import PARTNERS, products_load
    from closeout.identity.documents import luhn_check_digit

    products = products_load()
    rng = random.Random(seed)
    out = []
    for i in range(count):
        product = products[rng.choice(["YKT", "YKT", "OCTO", "SUICA"])]
        name = f"Chaos Holder {i}"
        holder = cards.holder_create(name=name, id_type="hkid", id_number=HKID, email=f"chaos{i}@example.test")
        body = product.number_prefix + f"{seed % 1000:03d}{i:0{16 - len(product.number_prefix) - 4}d}"
        card = cards.card_issue(number=body + luhn_check_digit(body), product=product, holder=holder,
                                issued_at=clock.now() - timedelta(days=rng.randint(100, 2000)),
                                balance=Money(rng.choice([0, 50, 1234, 15000]), product.currency), physical=False,
                                transaction_count=rng.randint(0, 50))
        if rng.random() < 0.2:
            for partner in PARTNERS[: rng.randint(1, 3)]:
                cards.binding_add(card=card, partner=partner, external_ref=f"{partner}-{card.id}")
        out.append({"number": card.number, "holder_name": name})
    return out


def check(accepted: dict[str, str], states_only: bool = False) -> dict:
    from closeout.audit.services import audit_verify
    from closeout.cards.models import Card
    from closeout.certificates.models import Certificate
    from closeout.closures import states
    from closeout.closures.models import CaseEvent, ClosureCase
    from closeout.integrations.models import SimCardBlock, SimRefund
    from closeout.ledger.models import Line, Posting

    cases = {c.reference: c for c in ClosureCase.objects.select_related("card").filter(reference__in=accepted)}
    result = {"states": dict(Counter(c.state for c in cases.values()))}
    if states_only:
        return result
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
    for key, amount, status in SimRefund.objects.values_list("idempotency_key", "amount_minor", "status"):
        if status != "failed":
            refunds.setdefault(key.split(":", 1)[0], []).append(amount)
    blocks = Counter(SimCardBlock.objects.values_list("card_number", flat=True))
    certified = set(Certificate.objects.values_list("case__reference", flat=True))
    refund_postings = Counter(Posting.objects.filter(key__endswith=":refund").values_list("subject", flat=True))
    for reference, case in cases.items():
        owed = case.quote["refund"]
        paid = refunds.get(reference, [])
        if len(paid) > 1 or sum(paid) > owed:
            breaks.append(f"{reference}: refunded {len(paid)} times, {sum(paid)} of {owed}")
        if case.state != states.CLOSED:
            continue
        if owed and paid != [owed]:
            breaks.append(f"{reference}: closed with refunds {paid} at the provider for {owed} owed")
        if blocks[case.card.number] != 1:
            breaks.append(f"{reference}: card blocked {blocks[case.card.number]} times")
        if reference not in certified:
            breaks.append(f"{reference}: closed without a certificate")
        if case.card.status != Card.Status.CLOSED:
            breaks.append(f"{reference}: closed, its card is {case.card.status}")
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
    result.update(breaks=breaks, cases=len(cases), refunds=sum(len(v) for v in refunds.values()),
                  blocks=sum(blocks.values()), certificates=len(certified))
    return result


def _sum(column: str):
    from django.db.models import Sum

    return Sum(column)


def _inside_server(argv: list[str]) -> None:
    import django

    django.setup()
    if argv[0] == "issue":
        print(json.dumps(issue(int(argv[1]), int(argv[2]))))
    else:
        accepted = json.loads(Path(argv[1]).read_text())
        print(json.dumps(check(accepted, states_only="--states-only" in argv)))


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
