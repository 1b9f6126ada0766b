"""The `closeout` command."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closeout", description="Close card accounts end to end.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p):
        p.add_argument("--data-dir", help="where the SQLite files and generated keys live (default: ./var)")
        return p

    demo = with_data_dir(sub.add_parser("demo", help="migrate, load demo data, serve web + worker"))
    demo.add_argument("--port", type=int, default=8000)
    serve = with_data_dir(sub.add_parser("serve", help="serve the portal, console, API and simulators"))
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    worker = with_data_dir(sub.add_parser("worker", help="run the closure actions (DBOS)"))
    worker.add_argument("--executor-id", help="stable id of this worker (default: CLOSEOUT_EXECUTOR_ID or worker-1)")
    with_data_dir(sub.add_parser("migrate", help="create or update the databases"))
    demo_data = with_data_dir(sub.add_parser("demo-data", help="load the demo data into the database"))
    demo_data.add_argument("--list-json", action="store_true", help="print the demo cards as JSON")
    apikey = with_data_dir(sub.add_parser("apikey", help="manage API keys"))
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["partner", "operator"], default="partner")
    audit = with_data_dir(sub.add_parser("audit", help="audit trail"))
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad event")
    with_data_dir(sub.add_parser("sweep", help="run one sweep pass now (restart stranded actions)"))
    staff = with_data_dir(sub.add_parser("staff", help="manage staff console accounts"))
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    staff_create = staff_sub.add_parser("create", help="create an account; print its password and TOTP enrolment")
    staff_create.add_argument("--role", required=True,
                              choices=["agent", "branch_clerk", "warehouse", "refund_approver", "supervisor", "admin"])
    staff_create.add_argument("--email", required=True)
    staff_create.add_argument("--branch", default="", help="branch code of a branch clerk")
    staff_create.add_argument("--no-qr", action="store_true", help="print only the otpauth:// URI")
    bulk = with_data_dir(sub.add_parser("bulk-close", help="close the cards listed in a CSV (column card_number)"))
    bulk.add_argument("file", help="CSV file with a card_number column")
    bulk.add_argument("--reason", required=True, help="why these cards are closed (e.g. dormant 3 years)")
    bulk.add_argument("--dry-run", action="store_true", help="validate and quote only; write nothing")
    bulk.add_argument("--rejects", help="where to write rejected rows (default FILE.rejects.csv)")
    bulk.add_argument("--batch-size", type=int, default=1000)
    return parser


def _setup(args) -> None:
    if getattr(args, "data_dir", None):
        os.environ["CLOSEOUT_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeout.settings")
    import django

    django.setup()


def _migrate(verbosity: int = 0) -> None:
    from django.core.management import call_command

    from closeout import worker

    call_command("migrate", interactive=False, verbosity=verbosity)
    worker.migrate_system_database()
    _compile_messages()


def _compile_messages() -> None:
    """Compile the gettext catalogs when a checkout has only the .po files."""
    from closeout.i18n import compile_catalogs

    compile_catalogs()


def _serve_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "closeout.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
            str(workers), "--worker-class", "sync", "--timeout", "60", "--access-logfile", "-",
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms', "--config",
            "python:closeout.gunicorn_conf"]


def cmd_demo(args) -> int:
    from closeout.demo import demo_data_load

    _migrate()
    created = demo_data_load()
    print(f"demo data ready ({created} new cards); try `closeout demo-data --list-json`")
    env = dict(os.environ)
    web = subprocess.Popen(_serve_command(args.port, 2), env=env)
    work = subprocess.Popen([sys.executable, "-m", "closeout.cli", "worker"], env=env)
    print(f"closeout is running at http://127.0.0.1:{args.port}/  (console /console/, API /api/v1/docs)")
    return _supervise([web, work])


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
    os.execv(sys.executable, _serve_command(args.port, args.workers))
    return 0


def cmd_worker(args) -> int:
    from closeout import worker

    worker.run_forever(executor_id=args.executor_id)
    return 0


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
    from closeout.api.keys import apikey_create

    _, token = apikey_create(name=args.name, scope=args.scope)
    print(token)
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


def cmd_staff(args) -> int:
    import segno

    from closeout.console.services import UnableToCreateStaff, staff_create

    _migrate()
    password = os.environ.get("CLOSEOUT_STAFF_PASSWORD") or None
    try:
        profile, device, password = staff_create(email=args.email, role=args.role, password=password,
                                                 branch_code=args.branch)
    except UnableToCreateStaff as exc:
        print(f"cannot create staff account: {exc}", file=sys.stderr)
        return 2
    print(f"staff account {profile.user.email} ({profile.role}) created")
    print(f"password (shown once): {password}")
    print(f"TOTP enrolment URI: {device.config_url}")
    if not args.no_qr:
        segno.make(device.config_url, error="m").terminal(compact=True)
    return 0


def cmd_bulk_close(args) -> int:
    from closeout.closures.bulk import BulkFileError, bulk_intake
    from closeout.common.progress import Progress, count_lines

    path = Path(args.file)
    if not path.is_file():
        print(f"closeout bulk-close: {path}: no such file", file=sys.stderr)
        return 2
    if not 1 <= args.batch_size <= 10000:
        print("closeout bulk-close: --batch-size must be between 1 and 10000", file=sys.stderr)
        return 2
    progress = Progress(total=max(0, count_lines(path) - 1), label="dry run" if args.dry_run else "closing")
    try:
        summary = bulk_intake(path=path, reason=args.reason, requester="operator:bulk", dry_run=args.dry_run,
                              batch_size=args.batch_size, rejects_path=Path(args.rejects) if args.rejects else None,
                              progress=progress.advance)
    except BulkFileError as exc:
        print(f"closeout bulk-close: {path}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.done()
        print("interrupted: run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    progress.done()
    totals = ", ".join(f"{currency} {minor}" for currency, minor in sorted(summary.refund_total.items())) or "none"
    verb = "would create" if summary.dry_run else "created"
    resumed = f" (resumed after line {summary.resumed_after})" if summary.resumed_after else ""
    print(f"{summary.lines} rows read{resumed}: {verb} {summary.created} closures in {summary.batches} batches, "
          f"{summary.rejected} rejected; refunds (minor units): {totals}")
    if summary.rejected:
        print(f"rejected rows: {args.rejects or path.with_name(path.stem + '.rejects.csv')}")
    return 0


COMMANDS = {
    "demo": cmd_demo, "serve": cmd_serve, "worker": cmd_worker, "migrate": cmd_migrate,
    "demo-data": cmd_demo_data, "apikey": cmd_apikey, "audit": cmd_audit, "sweep": cmd_sweep,
    "staff": cmd_staff,
    "bulk-close": cmd_bulk_close,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup(args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
