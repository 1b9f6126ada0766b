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
    worker.add_argument("--metrics-port", type=int, default=int(os.environ.get("CLOSEOUT_METRICS_PORT", "0")) or None,
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
    audit = with_data_dir(sub.add_parser("audit", help="audit trail"))
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad event")
    with_data_dir(sub.add_parser("sweep", help="run one sweep pass now (restart stranded actions)"))
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
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", _fresh_metrics_dir())
    web = subprocess.Popen(_serve_command(args.port, 2), env=env)
    work = subprocess.Popen([sys.executable, "-m", "closeout.cli", "worker"], env=env)
    print(f"closeout is running at http://127.0.0.1:{args.port}/  (console /console/, API /api/v1/docs)")
    return _supervise([web, work])


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
    worker.run_forever(executor_id=args.executor_id, metrics_port=args.metrics_port)
    return 0


def _worker_recover(args) -> int:
    from closeout.ops.services import UnableToRecover, executor_recover

    try:
        moved = executor_recover(executor_id=args.dead_executor_id, actor=f"operator:{_whoami()}",
                                 force=args.force)
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


COMMANDS = {
    "demo": cmd_demo, "serve": cmd_serve, "worker": cmd_worker, "migrate": cmd_migrate,
    "demo-data": cmd_demo_data, "apikey": cmd_apikey, "audit": cmd_audit, "sweep": cmd_sweep,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup(args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
