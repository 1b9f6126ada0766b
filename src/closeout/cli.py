"""The `closeout` command."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MAX_WORKERS = 256  # far above any one machine's cores, short of a fork bomb
BULK_REASON = "dormant"  # bulk closure is for dormant cards unless the operator says otherwise


def _port(text: str) -> int:
    """A TCP port to listen on: gunicorn would crash on 99999 and pick a random one for 0."""
    port = _whole_number(text)
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return port


def _worker_count(text: str) -> int:
    """How many web processes: gunicorn waits forever with none."""
    workers = _whole_number(text)
    if workers is None or not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 1 to {MAX_WORKERS}")
    return workers


def _whole_number(text: str) -> int | None:
    """`text` as a non-negative whole number, or None (for 1.5, nan, 1e9, -1, full-width digits)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closeout", description="Close card accounts end to end.")
    # --data-dir is read before the command (`closeout --data-dir DIR demo`) or after it; left out,
    # it is no attribute at all, so that a command's parser does not overwrite one given before it.
    data_dir_help = "where the SQLite files and generated keys live (default: ./var)"
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help=data_dir_help)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p):
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=data_dir_help)
        return p

    demo = with_data_dir(sub.add_parser("demo", help="migrate, load demo data, serve web + worker"))
    demo.add_argument("--port", type=_port, default=8000)
    mailbox = with_data_dir(sub.add_parser("mailbox", help="a local SMTP server that keeps the emails it is sent "
                                                           "(listed at /sim/mail/messages): the demo's mail relay"))
    mailbox.add_argument("--port", type=_port, default=1025)
    serve = with_data_dir(sub.add_parser("serve", help="serve the portal, console, API and simulators"))
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--workers", type=_worker_count, default=2)
    worker = with_data_dir(sub.add_parser("worker", help="run the closure actions (DBOS)"))
    worker.add_argument("--executor-id", help="stable id of this worker (default: CLOSEOUT_EXECUTOR_ID or worker-<hostname>)")
    # A default given as text goes through `type` too, so a bad CLOSEOUT_METRICS_PORT is one line.
    worker.add_argument("--metrics-port", type=_port, default=os.environ.get("CLOSEOUT_METRICS_PORT", "0").lstrip("0") or None,
                        help="serve this worker's own metrics on 127.0.0.1:PORT")
    worker_sub = worker.add_subparsers(dest="worker_command")
    recover = worker_sub.add_parser("recover", help="hand a dead worker's pending workflows to the live ones")
    recover.add_argument("--executor-id", dest="dead_executor_id", required=True, help="the dead worker's id")
    recover.add_argument("--force", action="store_true", help="even if its heartbeat looks fresh")
    worker_sub.add_parser("status", help="list the workers and whether they are alive")
    with_data_dir(sub.add_parser("migrate", help="create or update the databases"))
    demo_data = with_data_dir(sub.add_parser("demo-data", help="load the demo data into the database"))
    demo_data.add_argument("--list-json", action="store_true", help="print the demo cards as JSON")
    apikey = with_data_dir(sub.add_parser("apikey", help="manage API keys"))
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["partner", "operator"], default="partner")
    revoke = apikey_sub.add_parser("revoke", help="revoke a key by its prefix (the part after co_)")
    revoke.add_argument("--prefix", required=True)
    apikey_sub.add_parser("list", help="list the keys: prefix, scope, when created, last used and revoked, "
                           "when a revoked key was last tried, name (never secrets)")
    audit = with_data_dir(sub.add_parser("audit", help="audit trail"))
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad event")
    with_data_dir(sub.add_parser("sweep", help="run one sweep pass now (restart stranded actions)"))
    cert = with_data_dir(sub.add_parser("certificate", help="closure certificates"))
    cert_sub = cert.add_subparsers(dest="certificate_command", required=True)
    cert_verify = cert_sub.add_parser("verify", help="check a certificate PDF offline; exit 1 when not valid")
    cert_verify.add_argument("file", help="the certificate PDF")
    cert_verify.add_argument("--keys", help="public keys JSON (from `certificate keys` or /api/v1/certificates/keys);"
                             " default: this installation's key table")
    cert_keys = cert_sub.add_parser("keys", help="print the public keys as JSON")
    cert_keys.add_argument("--out", help="write to this file instead")
    cert_sub.add_parser("rotate-key", help="start signing with a new key (old certificates still verify)")
    guard = with_data_dir(sub.add_parser("guard", help="charge guard"))
    guard_sub = guard.add_subparsers(dest="guard_command", required=True)
    guard_check = guard_sub.add_parser("check", help="nightly: alert staff to charges on closing/closed cards; "
                                       "exit 1 when new ones were found")
    guard_check.add_argument("--days", type=int, default=2, help="how far back to read the card system feed")
    reconcile = with_data_dir(sub.add_parser("reconcile", help="compare ledger, provider, card system and partners "
                                             "for every closed case; exit 1 on mismatches"))
    reconcile.add_argument("--out", help="also write the mismatches to this CSV file")
    retention = with_data_dir(sub.add_parser("retention", help="data retention"))
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    retention_run = retention_sub.add_parser("run", help="crypto-shred holders whose closed cases are past retention")
    retention_run.add_argument("--dry-run", action="store_true", help="only report who is due")
    staff = with_data_dir(sub.add_parser("staff", help="manage staff console accounts"))
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    staff_create = staff_sub.add_parser("create", help="create an account; print its password and TOTP enrolment")
    staff_create.add_argument("--role", required=True,
                              choices=["agent", "branch_clerk", "warehouse", "refund_approver", "supervisor", "admin"])
    staff_create.add_argument("--email", required=True)
    staff_create.add_argument("--branch", default="", help="branch code of a branch clerk")
    staff_create.add_argument("--name", default="", help="the name the console shows them by (without one: "
                                                         "their email, until an admin sets one)")
    staff_create.add_argument("--no-qr", action="store_true", help="print only the otpauth:// URI")
    bulk = with_data_dir(sub.add_parser("bulk-close", help="close the cards listed in a CSV (column card_number)"))
    bulk.add_argument("file", help="CSV file with a card_number column")
    bulk.add_argument("--reason", default=BULK_REASON,
                      help=f"why these cards are closed (default: {BULK_REASON}; e.g. dormant 3 years); a run "
                           "resumes only under the reason it started with")
    bulk.add_argument("--dry-run", action="store_true",
                      help="validate and quote what is left to do (after an interrupted run: the rest); write nothing")
    bulk.add_argument("--rejects", help="where to write rejected rows (default FILE.rejects.csv)")
    bulk.add_argument("--batch-size", type=int, default=1000)
    bulk.add_argument("--waiting", action="store_true",
                      help="list the file's closures that wait for a payment or a waiver, and stop")
    hotlist = with_data_dir(sub.add_parser("hotlist", help="the signed hotlist for gates and readers"))
    hotlist_sub = hotlist.add_subparsers(dest="hotlist_command", required=True)
    export = hotlist_sub.add_parser("export", help="write the hotlist (and FILE.sig) as a snapshot or delta")
    export.add_argument("--out", required=True, help="file to write; the signature goes to FILE.sig")
    export.add_argument("--since", type=int, default=0, help="only cards listed after this version")
    export.add_argument("--format", choices=["csv", "bin"], default="csv")
    check = hotlist_sub.add_parser("verify", help="check a hotlist file against FILE.sig (bin: its own trailer)")
    check.add_argument("file")
    check.add_argument("--public-key", help="base64 Ed25519 public key (default: this installation's)")
    partner = with_data_dir(sub.add_parser("partner", help="partner apps that receive unbind webhooks"))
    partner_sub = partner.add_subparsers(dest="partner_command", required=True)
    register = partner_sub.add_parser(
        "register", help="register a partner and print its signing secret once",
        description="Register a partner app and print its signing secret (whsec_...) once. When a card bound "
                    "to the partner is closed, the worker sends it a card.unbind message signed with Standard "
                    "Webhooks headers (webhook-id, webhook-timestamp, webhook-signature).",
        epilog="Messages are posted to --url only by a worker running with CLOSEOUT_PARTNERS=http. By default "
               "(CLOSEOUT_PARTNERS unset or 'simulator', as in `closeout demo`) the built-in simulator receives "
               "and acknowledges every message and lists it at /sim/partners/deliveries; nothing is sent to "
               "--url. The message body and how to verify its signature: docs/integrations.md.")
    register.add_argument("--code", required=True, help="1-40 ASCII letters, digits, '-' or '_'; the code "
                                                        "card bindings name the partner by")
    register.add_argument("--name", default="")
    register.add_argument("--url", required=True, help="the partner's webhook endpoint (http or https); "
                                                       "used only with CLOSEOUT_PARTNERS=http")
    rotate = partner_sub.add_parser("rotate-secret", help="issue a new signing secret and print it once")
    rotate.add_argument("--code", required=True)
    rotate.add_argument("--grace-hours", default="24",
                        help="whole hours the old secret keeps signing, 0 (stops at once) to 720 (default 24)")
    update = partner_sub.add_parser(
        "update", help="give a partner a new endpoint or name (e.g. one whose endpoint answered a redirect)",
        epilog="A case sent to staff because a partner's endpoint moved (a 3xx answer: redirects are not "
               "followed) is resumed from the console once its new endpoint is set here.")
    update.add_argument("--code", required=True)
    update.add_argument("--url", help="the partner's new webhook endpoint (http or https)")
    update.add_argument("--name")
    partner_sub.add_parser("list", help="list partners (secrets shown by their last characters)")
    _data_dir_everywhere(sub)
    return parser


def _data_dir_everywhere(sub) -> None:
    """Accept --data-dir after a nested subcommand too (`closeout apikey create --name x --data-dir d`)."""
    for command in sub.choices.values():
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for nested in action.choices.values():
                    nested.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _data_dir_everywhere(action)


def _setup(args) -> None:
    if getattr(args, "data_dir", None):
        os.environ["CLOSEOUT_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeout.settings")
    import django

    # A new PII key is kept only once `_pii_key_check` has seen the database hold no personal data.
    os.environ["CLOSEOUT_PII_KEY_UNSAVED"] = "1"
    try:
        django.setup()
    finally:
        os.environ.pop("CLOSEOUT_PII_KEY_UNSAVED", None)  # not for the servers and workers started from here


def _migrate(verbosity: int = 0) -> None:
    from django.core.management import call_command

    from closeout import worker

    call_command("migrate", interactive=False, verbosity=verbosity)
    _pii_key_check()  # records the key's fingerprint in a database that has just got the table for it
    worker.migrate_system_database()
    _compile_messages()


def _compile_messages() -> None:
    """Compile the gettext catalogs when a checkout has only the .po files."""
    from closeout.i18n import compile_catalogs

    compile_catalogs()


def _serve_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "closeout.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
            str(workers), "--timeout", "60", "--access-logfile", "-",
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms', "--config",
            "python:closeout.gunicorn_conf"]


def cmd_demo(args) -> int:
    from django.conf import settings

    from closeout.demo import demo_data_load

    _migrate()
    env = dict(os.environ)
    env.setdefault("CLOSEOUT_PUBLIC_URL", f"http://127.0.0.1:{args.port}")  # links in mail, certificates
    env["CLOSEOUT_DATA_DIR"] = str(settings.DATA_DIR)  # the worker and mailbox find the data dir made here
    settings.PUBLIC_URL = env["CLOSEOUT_PUBLIC_URL"].rstrip("/")  # the demo partners' endpoints too
    created = demo_data_load()
    print(f"demo data ready ({created} new cards); try `closeout demo-data --list-json`")
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", _fresh_metrics_dir())
    children = [subprocess.Popen(_serve_command(args.port, 2), env=env),
                subprocess.Popen([sys.executable, "-m", "closeout.cli", "worker"], env=env)]
    if _demo_mailbox_wanted(settings):
        children.append(subprocess.Popen(
            [sys.executable, "-m", "closeout.cli", "mailbox", "--port", str(settings.EMAIL_PORT)], env=env))
        print(f"emails go to the demo mailbox: {settings.PUBLIC_URL}/sim/mail/messages")
    print(f"closeout is running at http://127.0.0.1:{args.port}/  (console /console/, API /api/v1/docs)")
    return _supervise(children)


def _demo_mailbox_wanted(settings) -> bool:
    """The demo brings its own mailbox unless a relay is configured or already listens locally."""
    if "CLOSEOUT_SMTP_HOST" in os.environ or settings.EMAIL_HOST not in ("localhost", "127.0.0.1"):
        return False
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", settings.EMAIL_PORT)) != 0


def cmd_mailbox(args) -> int:
    from closeout.integrations.mailbox.server import mailbox_serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        mailbox_serve(port=args.port, stop=stop)
    except OSError as exc:
        print(f"closeout mailbox: cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    return 0


def _fresh_metrics_dir() -> str:
    """An empty directory where the demo's web and worker processes share their metrics."""
    import shutil

    from django.conf import settings

    path = settings.DATA_DIR / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def _supervise(children: list[subprocess.Popen]) -> int:
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping else 1


def cmd_serve(args) -> int:
    _migrate()
    # Links the web answers with (a certificate's verify_url, links in mail) name the port it serves
    # on, as under `closeout demo`, unless the installation says where it is reached.
    os.environ.setdefault("CLOSEOUT_PUBLIC_URL", f"http://127.0.0.1:{args.port}")
    os.execv(sys.executable, _serve_command(args.port, args.workers))
    return 0


def cmd_worker(args) -> int:
    from closeout import worker

    if args.worker_command == "recover":
        return _worker_recover(args)
    if args.worker_command == "status":
        from closeout.ops.selectors import workers_status

        print(json.dumps(workers_status(), indent=2))
        return 0
    from closeout.closures.dispatch import BadQueueLimits
    from closeout.ops.services import ExecutorIdInUse

    try:
        worker.run_forever(executor_id=args.executor_id, metrics_port=args.metrics_port)
    except BadQueueLimits as exc:
        print(f"closeout worker: {exc}; not starting.", file=sys.stderr)
        return 2
    except worker.UnableToLaunch as exc:
        print(f"closeout worker: {exc}; not starting.", file=sys.stderr)
        return 2
    except ExecutorIdInUse as exc:
        print(f"closeout worker: {exc}; not starting. Give each worker its own id with "
              f"--executor-id ID or CLOSEOUT_EXECUTOR_ID=ID (or stop the worker running as {exc.executor_id!r}).",
              file=sys.stderr)
        return 2
    return 0


def _worker_recover(args) -> int:
    from closeout.ops.services import UnableToRecover, UnknownExecutor, executor_recover

    try:
        moved = executor_recover(executor_id=args.dead_executor_id, actor=f"operator:{_whoami()}",
                                 force=args.force)
    except UnknownExecutor as exc:
        print(f"closeout worker recover: {exc} (see `closeout worker status`)", file=sys.stderr)
        return 2
    except UnableToRecover as exc:
        print(f"not recovering: {exc} (use --force if you are sure it is gone)", file=sys.stderr)
        return 2
    print(f"{moved} workflows of {args.dead_executor_id} handed back to the queues")
    return 0


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def cmd_migrate(args) -> int:
    _migrate(verbosity=1)
    return 0


def cmd_demo_data(args) -> int:
    from closeout.demo import demo_cards, demo_data_load

    if args.list_json:
        print(json.dumps(demo_cards(), ensure_ascii=False, indent=2))
        return 0
    _migrate()
    print(f"{demo_data_load()} new demo cards loaded")
    return 0


def cmd_apikey(args) -> int:
    from closeout.api.keys import UnableToCreateApiKey, apikey_create, apikey_list, apikey_revoke

    if args.apikey_command == "list":
        return _apikey_list(apikey_list())
    if args.apikey_command == "revoke":
        if not apikey_revoke(prefix=args.prefix):
            print(f"no active API key with prefix {args.prefix} (see `closeout apikey list`)", file=sys.stderr)
            return 1
        print(f"API key {args.prefix} revoked")
        return 0
    try:
        _, token = apikey_create(name=args.name, scope=args.scope)
    except UnableToCreateApiKey as exc:
        print(f"closeout apikey create: --name: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _apikey_list(keys: list[dict]) -> int:
    """One key a line, in columns; the name last, as it may hold spaces. Times are UTC; when a key
    was last used is recorded to the minute, and for a revoked key when its secret was last tried."""
    def when(at) -> str:
        return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if at else "-"

    print(f"{'PREFIX':<10} {'SCOPE':<9} {'CREATED':<16} {'LAST_USED':<16} {'REVOKED':<16} {'TRIED_REVOKED':<16} NAME")
    for key in keys:
        print(f"{key['prefix']:<10} {key['scope']:<9} {when(key['created_at']):<16} {when(key['last_used_at']):<16} "
              f"{when(key['revoked_at']):<16} {when(key['last_refused_at']):<16} {key['name']}")
    return 0


def cmd_audit(args) -> int:
    from closeout.audit.services import audit_verify

    problem = audit_verify()
    if problem:
        print(f"audit chain broken: {problem}", file=sys.stderr)
        return 1
    print("audit chain intact")
    return 0


def cmd_sweep(args) -> int:
    from closeout.closures.sweeper import sweep_once

    print(f"{sweep_once()} actions restarted")
    return 0


def cmd_certificate(args) -> int:
    from closeout.certificates import pdf
    from closeout.certificates.services import public_keys, public_keys_json, signing_key_rotate

    if args.certificate_command == "rotate-key":
        print(f"signing with {signing_key_rotate(actor='cli').key_id}")
        return 0
    if args.certificate_command == "keys":
        text = public_keys_json()
        if args.out:
            Path(args.out).write_text(text + "\n")
        else:
            print(text)
        return 0
    if args.keys:  # offline: no database needed
        try:
            loaded = json.loads(Path(args.keys).read_text())
            keys = loaded.get("keys", loaded)
        except (OSError, ValueError, AttributeError):
            print(f"cannot read public keys from {args.keys}", file=sys.stderr)
            return 2
    else:
        keys = public_keys()
    try:
        verdict = pdf.verify_pdf(Path(args.file).read_bytes(), keys)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except pdf.NotACertificate as exc:
        print(f"NOT VALID: {exc}", file=sys.stderr)
        return 1
    if not verdict.valid:
        print(f"NOT VALID: {verdict.reason}", file=sys.stderr)
        return 1
    facts = verdict.facts
    refund = facts["refund"]
    from closeout.common.money import Money

    print(f"VALID: certificate {facts['certificate_id']} signed by {verdict.key_id}")
    print(f"  case {facts['reference']}, card {facts['card']['number_masked']} ({facts['card']['product']})")
    print(f"  closed {facts['closed_at']}, refunded {Money(refund['amount'], refund['currency']).format()} "
          f"to {refund['destination'].get('type', 'original')}")
    return 0


def cmd_guard(args) -> int:
    from datetime import timedelta

    from closeout.aftercare.guard import guard_check
    from closeout.common import clock
    from closeout.common.money import Money

    alerts = guard_check(since=clock.now() - timedelta(days=args.days))
    for alert in alerts:
        print(f"ALERT {alert.case_reference} {alert.card_masked} "
              f"{Money(alert.amount_minor, alert.currency).format()} at {alert.charged_at.isoformat()}")
    print(f"{len(alerts)} new charge(s) on closing or closed cards")
    return 1 if alerts else 0


def cmd_reconcile(args) -> int:
    from closeout.aftercare.reconcile import mismatches_write_csv, reconcile_run

    # Written to a file beside --out and renamed at the end: a bad path fails before the run, and
    # a run that stops half-way leaves the last report as it was (and no partial file).
    if args.out and Path(args.out).is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), args.out)
    partial = Path(f"{args.out}.partial") if args.out else None
    try:
        out = partial.open("w", newline="", encoding="utf-8") if partial else None
    except OSError as exc:  # name the file asked for, not the one written on the way
        exc.filename = args.out
        raise
    try:
        mismatches = reconcile_run()
        for mismatch in mismatches:
            print(mismatch)
        if out is not None:
            mismatches_write_csv(mismatches, out)
            out.close()
            os.replace(partial, args.out)
    finally:
        if out is not None:  # gone already once renamed
            out.close()
            partial.unlink(missing_ok=True)
    print(f"{len(mismatches)} mismatch(es)")
    return 1 if mismatches else 0


def cmd_retention(args) -> int:
    from closeout.aftercare.retention import retention_run

    report = retention_run(dry_run=args.dry_run)
    verb = "would crypto-shred" if args.dry_run else "crypto-shredded"
    print(f"{verb} {len(report.due)} holder(s); {report.kept} kept within retention")
    return 0


def cmd_staff(args) -> int:
    import segno

    from closeout.console.services import UnableToCreateStaff, staff_create

    _migrate()
    password = os.environ.get("CLOSEOUT_STAFF_PASSWORD") or None
    try:
        profile, device, password = staff_create(email=args.email, role=args.role, password=password,
                                                 branch_code=args.branch, name=args.name)
    except UnableToCreateStaff as exc:
        print(f"cannot create staff account: {exc}", file=sys.stderr)
        return 2
    print(f"staff account {profile.user.email} ({profile.role}) created")
    if profile.role == "branch_clerk" and not profile.branch_code:
        print("note: this clerk has no branch and cannot serve at a counter until an admin sets one on "
              "/console/staff/ (or create the account with --branch CODE)", file=sys.stderr)
    print(f"password (shown once): {password}")
    print(f"TOTP enrolment URI: {device.config_url}")
    if not args.no_qr:
        segno.make(device.config_url, error="m").terminal(compact=True)
    return 0


def cmd_bulk_close(args) -> int:
    from closeout.closures.bulk import REASON_MAX_LENGTH, BulkFileError, bulk_intake
    from closeout.common.progress import Progress

    path = Path(args.file)
    if not path.is_file():
        print(f"closeout bulk-close: {path}: {'not a file' if path.exists() else 'no such file'}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("closeout bulk-close: --reason must say why these cards are closed", file=sys.stderr)
        return 2
    if len(args.reason) > REASON_MAX_LENGTH:
        print(f"closeout bulk-close: --reason is {len(args.reason)} characters long; at most {REASON_MAX_LENGTH} fit",
              file=sys.stderr)
        return 2
    if args.waiting:
        return _bulk_waiting(args, path)
    if not 1 <= args.batch_size <= 10000:
        print("closeout bulk-close: --batch-size must be between 1 and 10000", file=sys.stderr)
        return 2
    # The total is the data rows left to read, counted the way the intake reads them (`expect`).
    progress = Progress(total=0, label="dry run" if args.dry_run else "closing")
    try:
        summary = bulk_intake(path=path, reason=args.reason, requester="operator:bulk", dry_run=args.dry_run,
                              batch_size=args.batch_size, rejects_path=Path(args.rejects) if args.rejects else None,
                              progress=progress.advance, expect=progress.expect,
                              warn=lambda text: print(f"closeout bulk-close: warning: {text}", file=sys.stderr))
    except BulkFileError as exc:
        print(f"closeout bulk-close: {path}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.done()
        if args.dry_run:
            print("interrupted: the dry run changed nothing and its rejects file lists only the rows read so far; "
                  "run it again for the whole report", file=sys.stderr)
        else:
            print("interrupted: run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    progress.done()
    _print_bulk_summary(summary)
    if summary.rejected:
        print(f"rejected rows{' (dry run)' if summary.dry_run else ''}: {summary.rejects_path}")
    if summary.waiting:
        _print_bulk_waiting(args, summary)
    return 0


def _print_bulk_summary(summary) -> None:
    """Say what earlier runs of the file already did apart from what this one did (or, dry, would
    do), so that a dry run after an interrupt does not read as a fresh start."""
    if summary.resumed_after:
        print(f"already done by an earlier run (lines up to {summary.resumed_after}): {summary.done_created} "
              f"closures in {summary.done_batches} batches, {summary.done_rejected} rejected")
    totals = ", ".join(f"{currency} {minor}" for currency, minor in sorted(summary.refund_total.items())) or "none"
    rows = f"{summary.lines} rows read"
    if summary.resumed_after:
        rows = (f"{summary.lines} rows left after line {summary.resumed_after}" if summary.dry_run
                else f"{rows} (resumed after line {summary.resumed_after})")
    verb = "would create" if summary.dry_run else "created"
    one_case = f" ({summary.one_case} SIM/eSIM closures on the one-case path)" if summary.one_case else ""
    print(f"{rows}: {verb} {summary.created} closures in {summary.batches} batches"
          f"{one_case}, {summary.rejected} rejected; refunds (minor units): {totals}")


def _print_bulk_waiting(args, summary) -> None:
    """Cases whose debts the refund cannot cover stop in `verified` until the holder pays or staff
    waive the charges: no batch moves them on, so the summary says how many and how to find them."""
    if summary.dry_run:
        print(f"{summary.waiting} of them would wait for a payment or a waiver: their cards owe more than the "
              "refund covers")
        return
    parts = ["closeout", "bulk-close", args.file, "--reason", args.reason]
    if getattr(args, "data_dir", None):
        parts += ["--data-dir", args.data_dir]
    command = " ".join(shlex.quote(part) for part in parts)
    print(f"{summary.waiting} closures of this file wait for a payment or a waiver (their cards owe more than the "
          f"refund covers); list them with: {command} --waiting")


def _bulk_waiting(args, path: Path) -> int:
    from closeout.closures.bulk import bulk_run_find, waiting_cases
    from closeout.common.money import Money
    from closeout.identity.documents import mask_card_number

    run = bulk_run_find(path=path, reason=args.reason)
    if run is None:
        print(f"closeout bulk-close: {path}: no bulk-close of this file with this --reason has run", file=sys.stderr)
        return 2
    cases = waiting_cases(run).order_by("reference").values_list("reference", "state", "card__number", "quote")
    count = 0
    for reference, state, number, quote in cases.iterator():
        count += 1
        owed = Money(quote["uncovered"], quote["currency"]).format()
        print(f"{reference}  {mask_card_number(number)}  owes {owed}  {state}")
    print(f"{count} closures wait for a payment or a waiver; take the payment or waive the charges on each case's "
          "page in the console (/console/cases/REFERENCE/)")
    return 0


def cmd_hotlist(args) -> int:
    from closeout.integrations.card_system import hotlist

    if args.hotlist_command == "verify":
        return _hotlist_verify(args)
    if args.since < 0:
        print("--since must be a non-negative version", file=sys.stderr)
        return 2
    document = hotlist.write_export(args.out, since=args.since, fmt=args.format)
    print(f"hotlist version {document['version']}: {document['count']} cards since {args.since} "
          f"written to {args.out} (signature in {args.out}.sig)")
    return 0


def _hotlist_verify(args) -> int:
    from closeout.integrations.card_system import hotlist

    public_key = args.public_key or hotlist.hotlist_public_key()
    sig_path = Path(f"{args.file}.sig")
    try:
        with open(args.file, "rb") as handle:
            is_bin = handle.read(len(hotlist.MAGIC)) == hotlist.MAGIC
            handle.seek(0)
            if is_bin:
                statement = hotlist.verify_bin(handle, public_key=public_key)
            elif not sig_path.exists():
                print(f"hotlist invalid: {sig_path} not found (a csv hotlist is signed there)", file=sys.stderr)
                return 1
            else:
                document = json.loads(sig_path.read_text())
                statement = hotlist.verify_csv(handle, document, public_key=public_key)
    except (hotlist.HotlistInvalid, ValueError) as exc:
        print(f"hotlist invalid: {exc}", file=sys.stderr)
        return 1
    print(f"hotlist ok: {statement.format}, version {statement.version}, {statement.count} cards since "
          f"{statement.since}, sha256 {statement.sha256}")
    return 0


def cmd_partner(args) -> int:
    from closeout.integrations.partners import services as partners

    where = f"closeout partner {args.partner_command}"
    try:
        if args.partner_command == "register":
            partner, secret = partners.partner_register(code=args.code, name=args.name, endpoint_url=args.url,
                                                        actor="operator:cli")
            print(secret)
            _partner_simulated_note(partner.endpoint_url)
        elif args.partner_command == "rotate-secret":
            return _partner_rotate(args, where)
        elif args.partner_command == "update":
            return _partner_update(args, where)
        else:
            print(json.dumps(partners.partner_list(), default=str, indent=2))
    except partners.UnableToRegisterPartner as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    return 0


def _partner_simulated_note(endpoint_url: str) -> None:
    """Warn on stderr (stdout holds the secret only) that a real endpoint will get nothing while
    the partners adapter is the simulator: unbinds would look acknowledged and the partner never
    hear of them."""
    from closeout.integrations import registry

    if registry.simulated("partners") and "/sim/partners/" not in endpoint_url:
        print("closeout partner register: note: CLOSEOUT_PARTNERS is not 'http' here, so unbind messages go to "
              "the built-in simulator, not to this endpoint; run the worker with CLOSEOUT_PARTNERS=http",
              file=sys.stderr)


def _partner_update(args, where: str) -> int:
    from closeout.integrations.partners import services as partners

    if args.url is None and args.name is None:
        print(f"{where}: name what to change: --url, --name or both", file=sys.stderr)
        return 2
    before = next((p for p in partners.partner_list() if p["code"] == args.code.strip().lower()), None)
    try:
        partner = partners.partner_update(code=args.code.strip().lower(), actor="operator:cli", endpoint_url=args.url,
                                          name=args.name)
    except partners.PartnerNotFound as exc:
        codes = [p["code"] for p in partners.partner_list()]
        print(f"{where}: {exc}; registered partners: {', '.join(codes) or 'none'}", file=sys.stderr)
        return 2
    changes = []
    if args.url is not None:
        changes.append(f"endpoint {partner.endpoint_url} (was {before['endpoint_url']})")
        _partner_simulated_note(partner.endpoint_url)
    if args.name is not None:
        changes.append(f"name {partner.name} (was {before['name']})")
    print(f"partner {partner.code}: {'; '.join(changes)}")
    return 0


def _partner_rotate(args, where: str) -> int:
    from datetime import timedelta

    from closeout.integrations.partners import services as partners

    hours = _whole_number(args.grace_hours)
    if hours is None or hours > partners.MAX_GRACE_HOURS:
        print(f"{where}: --grace-hours must be whole hours from 0 to {partners.MAX_GRACE_HOURS}", file=sys.stderr)
        return 2
    try:
        secret = partners.partner_secret_rotate(code=args.code, actor="operator:cli", grace=timedelta(hours=hours))
    except partners.PartnerNotFound as exc:
        codes = [p["code"] for p in partners.partner_list()]  # codes only: the listing's secret hints stay out
        print(f"{where}: {exc}; registered partners: {', '.join(codes) or 'none'}", file=sys.stderr)
        return 2
    except partners.UnableToRotateSecret as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    print(secret)
    return 0


COMMANDS = {
    "demo": cmd_demo, "mailbox": cmd_mailbox, "serve": cmd_serve, "worker": cmd_worker, "migrate": cmd_migrate,
    "demo-data": cmd_demo_data, "apikey": cmd_apikey, "audit": cmd_audit, "sweep": cmd_sweep,
    "certificate": cmd_certificate, "guard": cmd_guard, "reconcile": cmd_reconcile, "retention": cmd_retention,
    "staff": cmd_staff,
    "bulk-close": cmd_bulk_close,
    "hotlist": cmd_hotlist, "partner": cmd_partner,
}


# Commands that create or update the database themselves before using it.
MIGRATING = {"demo", "serve", "migrate", "demo-data", "staff"}


def _migrates(args) -> bool:
    """`demo-data --list-json` only reads the cards: a mistyped data dir must not be set up for it."""
    return args.command in MIGRATING and not (args.command == "demo-data" and args.list_json)


def _offline(args) -> bool:
    """Checking a file against public keys given on the command line needs no database."""
    return ((args.command == "certificate" and args.certificate_command == "verify" and args.keys)
            or (args.command == "hotlist" and args.hotlist_command == "verify" and args.public_key))


def _unmigrated() -> bool:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def main(argv: list[str] | None = None) -> int:
    where = "closeout"
    try:
        args = _parser().parse_args(argv)
        where = f"closeout {args.command}"
        return _main(args)
    except KeyboardInterrupt:  # from the first moment, Django's setup included: one line, never a traceback
        print(f"{where}: interrupted", file=sys.stderr)
        return 130


def _main(args) -> int:
    data_dir = getattr(args, "data_dir", None)
    uses_data = not _migrates(args) and not _offline(args)
    waits = _waits_for_setup(args)
    if waits:
        _await_setup(args, lambda: not _setup_pending(args))
    if refusal := _data_dir_refusal(args, uses_data=uses_data):
        print(f"closeout {args.command}: {refusal}", file=sys.stderr)
        return 2
    try:
        _setup(args)  # creates the data dir and its keys for a command that may
    except OSError as exc:
        return _os_error(args, exc)
    from django.db import OperationalError

    try:
        if waits:
            _await_setup(args, _migrated_now)
        if uses_data and _unmigrated():
            print(f"closeout {args.command}: the database is not set up or is out of date; run "
                  f"`closeout migrate{f' --data-dir {data_dir}' if data_dir else ''}` first", file=sys.stderr)
            return 2
        if not _offline(args):
            _pii_key_check()
        return COMMANDS[args.command](args)
    except PiiKeyRefused as exc:
        print(f"closeout {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        return _os_error(args, exc)
    except OperationalError as exc:
        return _database_error(args, exc)


# Commands that set up a data directory where there is none (the databases, the keys).
CREATING = {"demo", "serve", "migrate"}
KEYS = ("secret_key", "pii_key")
RUNBOOK = {"pii_key": ' (docs/reliability.md, "The PII key")'}
SETUP_WAIT_SEC = 120  # how long a worker waits for `closeout serve` or `closeout migrate` to set up


def _waits_for_setup(args) -> bool:
    """A worker started beside `closeout serve` (or during a deploy's `closeout migrate`) waits for
    the data directory and database they are setting up, instead of exiting before they exist."""
    return args.command == "worker" and getattr(args, "worker_command", None) is None


def _await_setup(args, ready) -> None:
    """Wait until `ready()`, for SETUP_WAIT_SEC at most, saying once on stderr what it waits for; the
    checks that follow refuse as ever if it is still not set up (a mistyped --data-dir)."""
    deadline = time.monotonic() + SETUP_WAIT_SEC
    said = False
    while not ready() and time.monotonic() < deadline:
        if not said:
            given = getattr(args, "data_dir", None)
            print(f"closeout {args.command}: waiting up to {SETUP_WAIT_SEC} s for the database of {_data_dir_path(args)} "
                  f"to be set up (by `closeout serve` or `closeout migrate{f' --data-dir {given}' if given else ''}`)",
                  file=sys.stderr)
            said = True
        time.sleep(1)


def _data_dir_path(args) -> Path:
    return Path(getattr(args, "data_dir", None) or os.environ.get("CLOSEOUT_DATA_DIR") or "var").resolve()


def _setup_pending(args) -> bool:
    """Whether the data directory or its database does not exist yet (checked before the settings
    load, as loading them would create the directory)."""
    where = _data_dir_path(args)
    if os.environ.get("DATABASE_URL"):
        return not where.is_dir() and not _nothing_to_keep()
    return not (where / "closeout.sqlite3").exists()


def _migrated_now() -> bool:
    """Whether the database is migrated; a database that cannot be read yet (locked by the migration
    under way, a server still starting) is not."""
    from django.db import OperationalError, connection

    try:
        return not _unmigrated()
    except OperationalError:
        connection.close()
        return False


def _data_dir_refusal(args, *, uses_data: bool) -> str | None:
    """Why the command must not start: loading the settings would create a data directory with a
    new database and new keys (or new keys beside a database) in place of the one it should use.

    None when the settings are loaded already (this process set itself up), for the commands that
    set up a data directory, and for those that need none.
    """
    if "closeout.settings" in sys.modules or args.command in CREATING or _offline(args):
        return None
    given = getattr(args, "data_dir", None)
    named = os.environ.get("CLOSEOUT_DATA_DIR")
    where = _data_dir_path(args)
    migrate = f"`closeout migrate{f' --data-dir {given}' if given else ''}`"
    if not where.is_dir():
        if given:
            return f"{given} is not a closeout data directory; create one with {migrate}"
        if not named and _nothing_to_keep():
            return None  # a server database with its keys in the environment needs no data directory
        if named:
            return (f"CLOSEOUT_DATA_DIR is {named}, which is not a closeout data directory; point it at yours, or "
                    f"create one there with {migrate}")
        return (f"no closeout data directory here: {where} does not exist (without --data-dir or "
                f"CLOSEOUT_DATA_DIR the commands use ./var); run it where yours is, point CLOSEOUT_DATA_DIR at "
                f"it, or create one with {migrate}")
    if not uses_data or os.environ.get("DATABASE_URL"):
        # staff create and demo-data set up the databases of a data directory that exists; whether
        # a server database is set up only the server can tell.
        return None
    if not (where / "closeout.sqlite3").exists():
        return f"the database in {where} is not set up; run {migrate} first"
    for name in KEYS:  # made with the database: one missing was lost, and a new one would read nothing
        if not os.environ.get(f"CLOSEOUT_{name.upper()}") and not (where / name).exists():
            return (f"{where} has no {name} file and CLOSEOUT_{name.upper()} is not set; a new key could not read "
                    f"what the old one protects: restore the file from a backup or set the variable{RUNBOOK.get(name, '')}")
    return None


def _nothing_to_keep() -> bool:
    """Whether the settings would keep nothing in the data directory: the database is a server
    and both keys come from the environment."""
    return bool(os.environ.get("DATABASE_URL")) and all(os.environ.get(f"CLOSEOUT_{k.upper()}") for k in KEYS)


class PiiKeyRefused(Exception):
    """The PII key is missing or wrong for the database: nothing may start with it."""


def _pii_key_check() -> None:
    from closeout.identity.services import UnableToUsePiiKey, pii_key_check

    try:
        pii_key_check()
    except UnableToUsePiiKey as exc:
        raise PiiKeyRefused(str(exc)) from exc


def _database_error(args, exc: Exception) -> int:
    """The database server cannot be reached (down, full, wrong address): one line saying so, and an
    exit status a script or a check tells apart from a finding (reconcile's and audit's 1)."""
    from closeout.common.text import first_line

    print(f"closeout {args.command}: cannot reach the database: {first_line(exc)}", file=sys.stderr)
    return 2


def _os_error(args, exc: OSError) -> int:
    """A file or folder that cannot be read or written: say which, without a traceback."""
    where = f"{exc.filename}: " if exc.filename else ""
    print(f"closeout {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
