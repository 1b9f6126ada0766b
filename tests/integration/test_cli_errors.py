"""The `closeout` command answers a mistake with one line naming it and exit status 2: a path
that cannot be written, a file given twice, a data directory that does not exist or was never
set up. No traceback, and nothing half written."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from closeout import cli
from tests.integration.test_bulk_close import write_csv

pytestmark = pytest.mark.django_db(transaction=True)


def _refused(capsys, argv: list[str], *names: str) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for name in names:
        assert name in err, err
    return err


@pytest.mark.parametrize("where", ["missing/hotlist.csv", "."])
def test_a_hotlist_that_cannot_be_written_names_the_path_and_leaves_no_temporary_files(capsys, tmp_path, where):
    out = tmp_path / where
    _refused(capsys, ["hotlist", "export", "--out", str(out)], str(out.parent))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_reconcile_to_a_folder_that_does_not_exist_fails_before_it_runs_naming_the_file_asked_for(capsys, tmp_path):
    out = tmp_path / "nope" / "m.csv"

    err = _refused(capsys, ["reconcile", "--out", str(out)], f"{out}: No such file or directory")

    assert ".partial" not in err


def test_certificate_keys_to_a_folder_that_does_not_exist(capsys, tmp_path):
    _refused(capsys, ["certificate", "keys", "--out", str(tmp_path / "nope" / "keys.json")], "nope")


def test_verifying_a_hotlist_file_that_does_not_exist(capsys, tmp_path):
    _refused(capsys, ["hotlist", "verify", str(tmp_path / "hotlist.csv")], "hotlist.csv")


def test_bulk_close_refuses_to_write_its_rejects_over_the_input(capsys, make_card, tmp_path):
    path = write_csv(tmp_path / "dormant.csv", [make_card("YKT").number, "1234"])
    before = path.read_bytes()

    _refused(capsys, ["bulk-close", str(path), "--reason", "dormant", "--rejects", str(path)], "rejects file")

    assert path.read_bytes() == before


def test_bulk_close_of_a_folder_or_without_a_reason(capsys, make_card, tmp_path):
    _refused(capsys, ["bulk-close", str(tmp_path), "--reason", "dormant"], "not a file")
    path = write_csv(tmp_path / "dormant.csv", [make_card("YKT").number])
    _refused(capsys, ["bulk-close", str(path), "--reason", "  "], "--reason")


def test_an_api_key_needs_a_name(capsys):
    _refused(capsys, ["apikey", "create", "--name", " "], "--name")


# `staff create` migrates first, which on PostgreSQL would create the configured database's DBOS
# system database rather than the test's own.
@pytest.mark.sqlite_only
def test_a_branch_clerks_branch_must_exist_and_only_a_clerk_has_one(capsys):
    _refused(capsys, ["staff", "create", "--role", "branch_clerk", "--email", "clerk@staff.example.test",
                      "--branch", "NOWHERE", "--no-qr"], "no open branch 'NOWHERE'")
    _refused(capsys, ["staff", "create", "--role", "agent", "--email", "agent@staff.example.test",
                      "--branch", "HK-CEN", "--no-qr"], "leave --branch out")
    assert cli.main(["staff", "create", "--role", "branch_clerk", "--email", "clerk@staff.example.test",
                     "--no-qr"]) == 0
    assert "no branch and cannot serve at a counter" in capsys.readouterr().err  # until an admin sets one


@pytest.mark.parametrize("argv", [["apikey", "--data-dir", "D", "create", "--name", "x"],
                                  ["apikey", "create", "--name", "x", "--data-dir", "D"],
                                  ["worker", "status", "--data-dir", "D"], ["reconcile", "--data-dir", "D"]])
def test_the_data_dir_may_come_before_or_after_a_subcommand(argv):
    assert cli._parser().parse_args(argv).data_dir == "D"


def _run(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DATABASE_URL",
                                                                "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "-m", "closeout.cli", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_a_mistyped_data_dir_is_refused_not_created(tmp_path):
    mistyped = tmp_path / "var-prod"
    done = _run(tmp_path, "reconcile", "--data-dir", str(mistyped))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{mistyped} is not a closeout data directory" in done.stderr and "closeout migrate" in done.stderr
    assert not mistyped.exists()


@pytest.mark.parametrize("argv", [["audit", "verify"], ["apikey", "create", "--name", "x"], ["worker", "status"],
                                  ["staff", "create", "--role", "agent", "--email", "a@staff.example.test"]])
def test_a_command_run_where_there_is_no_data_dir_says_where_it_looked_and_creates_nothing(tmp_path, argv):
    done = _run(tmp_path, *argv)

    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert f"no closeout data directory here: {tmp_path / 'var'} does not exist" in line
    assert "CLOSEOUT_DATA_DIR" in line and "closeout migrate" in line
    assert list(tmp_path.iterdir()) == []


def test_a_data_dir_named_by_the_environment_that_does_not_exist_is_refused_not_created(tmp_path):
    missing = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["CLOSEOUT_DATA_DIR"] = str(missing)

    done = subprocess.run([sys.executable, "-m", "closeout.cli", "reconcile"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and done.stderr.strip() == (
        f"closeout reconcile: CLOSEOUT_DATA_DIR is {missing}, which is not a closeout data directory; point it "
        "at yours, or create one there with `closeout migrate`")
    assert not missing.exists()


def test_a_data_dir_that_lost_its_pii_key_is_refused_not_given_a_new_one(tmp_path):
    assert _run(tmp_path, "migrate").returncode == 0
    (tmp_path / "var" / "pii_key").unlink()

    done = _run(tmp_path, "apikey", "create", "--name", "x")

    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert f"{tmp_path / 'var'} has no pii_key file and CLOSEOUT_PII_KEY is not set" in done.stderr
    assert not (tmp_path / "var" / "pii_key").exists()


def _run_or_stop(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    """`_run` for a command that serves when it does not refuse: it and what it started are stopped
    after a minute (and the test fails) instead of being left running."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DATABASE_URL",
                                                                "DJANGO_SETTINGS_MODULE")}
    child = subprocess.Popen([sys.executable, "-m", "closeout.cli", *argv], env=env, cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"closeout {argv[0]} started instead of refusing")
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


@pytest.fixture(scope="module")
def data_dir_with_holders(tmp_path_factory):
    made = tmp_path_factory.mktemp("with-holders")
    assert _run(made, "migrate").returncode == 0
    assert _run(made, "demo-data").returncode == 0
    return made / "var"


@pytest.fixture
def lost_pii_key(tmp_path, data_dir_with_holders):
    """A data dir with holders encrypted under its PII key, and then the key file lost."""
    shutil.copytree(data_dir_with_holders, tmp_path / "var")
    (tmp_path / "var" / "pii_key").unlink()


@pytest.mark.parametrize("argv", [["migrate"], ["serve", "--port", "18841"], ["demo", "--port", "18842"], ["worker"],
                                  ["demo-data"], ["staff", "create", "--role", "agent", "--email", "a@staff.example.test"]])
def test_a_command_that_sets_up_the_database_refuses_to_make_a_new_pii_key_over_encrypted_data(tmp_path, argv,
                                                                                                 lost_pii_key):
    done = _run_or_stop(tmp_path, *argv)

    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert f"{tmp_path / 'var'} has no pii_key file and CLOSEOUT_PII_KEY is not set" in line
    assert "restore pii_key from your backup" in line or "restore the file from a backup" in line
    assert 'docs/reliability.md, "The PII key"' in line
    assert not (tmp_path / "var" / "pii_key").exists()


def _gunicorn_or_stop(tmp_path, *options: str) -> subprocess.CompletedProcess:
    """gunicorn started on the WSGI module directly, as a deployment may, against the data dir
    under tmp_path; stopped after a minute (and the test fails) if it serves instead of refusing."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE",
                                                                "CLOSEOUT_PII_KEY")}
    env["CLOSEOUT_DATA_DIR"] = str(tmp_path / "var")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "gunicorn", "closeout.wsgi", "--bind", f"127.0.0.1:{port}",
                              "--workers", "2", *options], env=env, cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("gunicorn served instead of refusing")
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _no_closeout_traceback(stderr: str) -> bool:
    """No traceback through closeout's code. gunicorn may print one of its own: when two workers
    fail to load at once, its master meets the second while it stops for the first."""
    return not [line for line in stderr.splitlines() if line.strip().startswith('File "') and "/closeout/" in line]


@pytest.mark.parametrize("options", [[], ["--config", "python:closeout.gunicorn_conf"], ["--preload"]],
                         ids=["bare", "closeout-config", "preload"])
def test_gunicorn_started_directly_refuses_a_data_dir_that_lost_its_pii_key_and_makes_no_new_one(tmp_path, options,
                                                                                                  lost_pii_key):
    done = _gunicorn_or_stop(tmp_path, *options)

    assert done.returncode != 0 and _no_closeout_traceback(done.stderr), done.stderr
    # One line from each worker that got as far as loading the application before gunicorn stopped.
    [line] = {line for line in done.stderr.splitlines() if "has no pii_key file" in line}
    assert f"closeout: {tmp_path / 'var'} has no pii_key file and CLOSEOUT_PII_KEY is not set" in line
    assert 'docs/reliability.md, "The PII key"' in line
    assert not (tmp_path / "var" / "pii_key").exists()


def test_gunicorn_started_directly_refuses_a_pii_key_that_is_not_the_databases(tmp_path, lost_pii_key):
    (tmp_path / "var" / "pii_key").write_text("a-key-from-another-installation-" + "x" * 32)

    done = _gunicorn_or_stop(tmp_path)

    assert done.returncode != 0 and _no_closeout_traceback(done.stderr), done.stderr
    assert f"closeout: the PII key ({tmp_path / 'var' / 'pii_key'}) is not the one" in done.stderr


def test_gunicorn_started_directly_on_a_new_data_dir_keeps_a_new_key_that_migrate_then_records(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE",
                                                                "CLOSEOUT_PII_KEY")}
    env["CLOSEOUT_DATA_DIR"] = str(tmp_path / "var")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "gunicorn", "closeout.wsgi", "--bind", f"127.0.0.1:{port}"],
                             env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _answers(port) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
        assert _answers(port), "gunicorn did not serve"
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=30)

    key = (tmp_path / "var" / "pii_key").read_text()
    assert _run(tmp_path, "migrate").returncode == 0 and _run(tmp_path, "demo-data").returncode == 0
    assert (tmp_path / "var" / "pii_key").read_text() == key


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_a_fresh_data_dir_gets_a_pii_key_that_later_commands_keep_using(tmp_path):
    assert _run(tmp_path, "migrate").returncode == 0
    key = (tmp_path / "var" / "pii_key").read_text()
    assert len(key) > 40 and oct((tmp_path / "var" / "pii_key").stat().st_mode)[-3:] == "600"

    assert _run(tmp_path, "demo-data").returncode == 0
    listed = _run(tmp_path, "demo-data", "--list-json")

    assert listed.returncode == 0 and '"number"' in listed.stdout  # the ID numbers decrypt
    assert (tmp_path / "var" / "pii_key").read_text() == key


def test_a_wrong_pii_key_restored_is_refused_by_every_command_naming_both_fingerprints(tmp_path, lost_pii_key):
    (tmp_path / "var" / "pii_key").write_text("a-key-from-another-installation-" + "x" * 32)

    for argv in (["migrate"], ["worker", "status"], ["apikey", "create", "--name", "x"]):
        done = _run(tmp_path, *argv)

        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == "", argv
        [line] = done.stderr.strip().splitlines()
        assert f"the PII key ({tmp_path / 'var' / 'pii_key'}) is not the one this database's personal data" in line
        assert "its fingerprint is " in line and "restore the right pii_key from your backup" in line


def test_a_database_from_before_key_fingerprints_refuses_a_key_that_cannot_open_its_holders(tmp_path, lost_pii_key):
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "closeout.sqlite3") as db:
        db.execute("DELETE FROM identity_piikeycheck")
    (tmp_path / "var" / "pii_key").write_text("a-key-from-another-installation-" + "x" * 32)

    done = _run(tmp_path, "migrate")

    assert done.returncode == 2 and "it cannot open the holders' data keys" in done.stderr


def test_a_new_pii_key_is_not_kept_for_a_database_that_holds_personal_data(make_card, settings, tmp_path):
    # Runs on both engines: the check reads the database, whatever it is.
    from closeout.identity import services as identity

    make_card("OCTO")
    settings.PII_KEY_UNSAVED_PATH = tmp_path / "pii_key"

    with pytest.raises(identity.PiiKeyMissing):
        identity.pii_key_check()

    assert not (tmp_path / "pii_key").exists()


def test_a_key_kept_by_another_command_since_this_one_loaded_its_settings_is_taken_up(make_card, settings,
                                                                                      tmp_path):
    # A worker started beside `closeout serve` on a new data dir loads its settings before serve has
    # kept the key, and finds the database holding data under it by the time it checks.
    from closeout.identity import services as identity

    make_card("OCTO")  # under the settings' key, as serve would have written it
    (tmp_path / "pii_key").write_text(settings.PII_MASTER_KEY)
    kept, settings.PII_MASTER_KEY = settings.PII_MASTER_KEY, "a-key-made-before-the-file-existed"
    settings.PII_KEY_UNSAVED_PATH = tmp_path / "pii_key"

    identity.pii_key_check()

    assert settings.PII_MASTER_KEY == kept and settings.PII_KEY_UNSAVED_PATH is None


@pytest.mark.postgres_only
def test_migrate_against_a_postgresql_database_with_personal_data_refuses_a_data_dir_without_its_key(
        make_card, settings, tmp_path):
    make_card("OCTO")
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DJANGO_SETTINGS_MODULE",
                                                            "CLOSEOUT_PII_KEY")}
    env["DATABASE_URL"] = f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    (tmp_path / "var").mkdir()

    done = subprocess.run([sys.executable, "-m", "closeout.cli", "migrate"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "has no pii_key file and CLOSEOUT_PII_KEY is not set, but the database holds personal data" in done.stderr
    assert not (tmp_path / "var" / "pii_key").exists()


def test_an_interrupt_while_the_command_starts_up_is_one_line_and_exit_130(capsys, monkeypatch):
    def ctrl_c_during_django_setup(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_setup", ctrl_c_during_django_setup)

    assert cli.main(["audit", "verify"]) == 130
    assert capsys.readouterr().err == "closeout audit: interrupted\n"


def test_a_data_dir_never_migrated_says_to_migrate(tmp_path):
    empty = tmp_path / "fresh"
    empty.mkdir()
    done = _run(tmp_path, "audit", "verify", "--data-dir", str(empty))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"run `closeout migrate --data-dir {empty}` first" in done.stderr
    assert list(empty.iterdir()) == []  # no keys made for a database that is not there


@pytest.mark.parametrize("argv", [["worker", "status"], ["reconcile"], ["audit", "verify"]])
def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(tmp_path, argv):
    # What the on-call runs first when things break must say what is wrong when the database is.
    (tmp_path / "var").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DJANGO_SETTINGS_MODULE")}
    env.update(DATABASE_URL="postgresql://closeout:s3cret-pw@127.0.0.1:1/closeout", CLOSEOUT_DATA_DIR=str(tmp_path / "var"))
    done = subprocess.run([sys.executable, "-m", "closeout.cli", *argv], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"closeout {argv[0]}: cannot reach the database: ") and "127.0.0.1" in line
    assert "s3cret-pw" not in line


# --- partners -------------------------------------------------------------------------------------


@pytest.fixture
def maps_app():
    from closeout.integrations.partners import services as partners

    _, secret = partners.partner_register(code="maps-app", name="Maps", actor="test",
                                          endpoint_url="http://127.0.0.1:8000/sim/partners/maps-app/webhook")
    return secret


@pytest.mark.parametrize("hours", ["1e9", "99999999999", "nan", "inf", "-5", "-0.5", "1.5", "721", "２４", ""])
def test_a_grace_that_is_not_whole_hours_from_0_to_720_rotates_nothing(capsys, maps_app, hours):
    from closeout.integrations.partners import services as partners

    _refused(capsys, ["partner", "rotate-secret", "--code", "maps-app", "--grace-hours", hours], "--grace-hours",
             "720")

    assert partners.partner_secrets(code="maps-app") == (maps_app,)


@pytest.mark.parametrize("hours", ["0", "720"])
def test_a_grace_from_0_to_720_hours_rotates(capsys, maps_app, hours):
    assert cli.main(["partner", "rotate-secret", "--code", "maps-app", "--grace-hours", hours]) == 0
    assert capsys.readouterr().out.startswith("whsec_")


def test_rotating_an_unknown_partner_says_so_and_names_the_registered_ones_only(capsys, maps_app):
    err = _refused(capsys, ["partner", "rotate-secret", "--code", "nope"], "no partner 'nope'", "maps-app")

    assert "whsec_" not in err and maps_app[-4:] not in err and capsys.readouterr().out == ""


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/hook",
                                 "http://[::ffff:169.254.169.254]/", "http://2852039166/",
                                 "http://metadata.google.internal/computeMetadata/v1/", "file:///etc/passwd"])
def test_a_partner_endpoint_at_a_metadata_address_or_not_http_is_refused(capsys, url):
    from closeout.integrations.models import Partner

    _refused(capsys, ["partner", "register", "--code", "maps-app", "--url", url], "endpoint")

    assert not Partner.objects.exists() and capsys.readouterr().out == ""


@pytest.mark.parametrize("code", ["ﾃｽﾄ", "café", "maps/app", "x" * 41])
def test_a_partner_code_that_is_not_an_ascii_slug_is_refused(capsys, code):
    from closeout.integrations.models import Partner

    _refused(capsys, ["partner", "register", "--code", code, "--url", "https://maps.example/hook"], "code must be")

    assert not Partner.objects.exists()


# --- data dirs, servers, output files, workers ---------------------------------------------------


def test_listing_the_demo_cards_of_a_mistyped_data_dir_creates_nothing(tmp_path):
    mistyped = tmp_path / "x"

    done = _run(tmp_path, "demo-data", "--list-json", "--data-dir", str(mistyped))

    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert f"{mistyped} is not a closeout data directory" in done.stderr
    assert not mistyped.exists()


def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    where = tmp_path / "a-file" / "var"

    done = _run(tmp_path, "migrate", "--data-dir", str(where))

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"closeout migrate: {where}: Not a directory"]


@pytest.mark.parametrize("argv,option", [(["serve", "--port", "99999"], "--port"), (["serve", "--port", "0"], "--port"),
                                         (["demo", "--port", "-1"], "--port"), (["serve", "--workers", "0"], "--workers"),
                                         (["serve", "--workers", "x"], "--workers"),
                                         (["worker", "--metrics-port", "99999"], "--metrics-port")])
def test_a_port_or_worker_count_out_of_range_is_refused_before_anything_starts(capsys, argv, option):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)

    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err
    assert f"argument {option}:" in err.strip().splitlines()[-1]


def test_reconcile_to_a_folder_leaves_nothing_behind(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()

    _refused(capsys, ["reconcile", "--out", "adir"], "adir: Is a directory")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_a_hotlist_to_a_missing_folder_names_the_file_asked_for(capsys, tmp_path):
    out = tmp_path / "missing" / "x.csv"

    err = _refused(capsys, ["hotlist", "export", "--out", str(out)], f"{out}: No such file or directory")

    assert ".hotlist-" not in err


@pytest.mark.parametrize("executor_id", ["nope", ""])
def test_recovering_a_worker_that_never_ran_names_the_known_ones(capsys, executor_id):
    from closeout.common import clock
    from closeout.ops.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(executor_id="worker-a", app_version="t", started_at=clock.now(),
                                   beat_at=clock.now())

    _refused(capsys, ["worker", "recover", "--executor-id", executor_id], f"no worker has run as {executor_id!r}",
             "worker-a")

    assert WorkerHeartbeat.objects.get().recovered_at is None


# --- text that must fit its column ----------------------------------------------------------------


def test_an_api_key_name_longer_than_its_column_is_refused_not_stored(capsys):
    from closeout.api.models import ApiKey

    _refused(capsys, ["apikey", "create", "--name", "x" * 500], "--name", "500 characters", "at most 80")

    assert not ApiKey.objects.exists() and capsys.readouterr().out == ""
    assert cli.main(["apikey", "create", "--name", "x" * 80]) == 0


def test_a_partner_name_longer_than_its_column_is_refused_not_cut(capsys):
    from closeout.integrations.models import Partner

    _refused(capsys, ["partner", "register", "--code", "maps-app", "--name", "M" * 121,
                      "--url", "https://maps.example/hook"], "name is 121 characters long; at most 120 fit")

    assert not Partner.objects.exists()


@pytest.mark.sqlite_only  # `staff create` migrates first (see above)
def test_a_staff_email_longer_than_an_account_name_holds_is_refused(capsys):
    from django.contrib.auth import get_user_model

    email = "a" * 60 + "@" + "b" * 90 + ".example"

    _refused(capsys, ["staff", "create", "--role", "agent", "--email", email, "--no-qr"],
             f"email address is {len(email)} characters long", "at most 150")

    assert not get_user_model().objects.filter(email=email).exists()


@pytest.mark.sqlite_only  # `staff create` migrates first (see above)
def test_a_branch_code_matches_in_any_case_and_is_kept_as_the_branch_spells_it(capsys):
    from closeout.appointments.models import Branch
    from closeout.console.models import StaffProfile

    Branch.objects.get_or_create(code="HK-CEN", defaults={"name": "Central"})

    assert cli.main(["staff", "create", "--role", "branch_clerk", "--email", "clerk@staff.example.test",
                     "--branch", " hk-cen ", "--no-qr"]) == 0

    assert StaffProfile.objects.get(user__email="clerk@staff.example.test").branch_code == "HK-CEN"


def test_staff_accounts_take_a_branch_in_any_case_and_refuse_an_email_too_long_on_either_database():
    from closeout.appointments.models import Branch
    from closeout.console.services import UnableToCreateStaff, staff_create

    Branch.objects.get_or_create(code="HK-CEN", defaults={"name": "Central"})
    with pytest.raises(UnableToCreateStaff, match="at most 150"):
        staff_create(email="a" * 60 + "@" + "b" * 90 + ".example", role="agent")

    profile, _, _ = staff_create(email="clerk@staff.example.test", role="branch_clerk", branch_code="hk-Cen")

    assert profile.branch_code == "HK-CEN"


# --- partners' endpoints and API keys ------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://user:pa55word@maps.example/hook", "https://token@maps.example/hook",
                                 "http://:pa55word@127.0.0.1:8000/hook"])
def test_a_partner_endpoint_with_credentials_is_refused_without_repeating_them(capsys, url):
    from closeout.integrations.models import Partner

    err = _refused(capsys, ["partner", "register", "--code", "maps-app", "--url", url], "user name or password",
                   "signature")

    assert "pa55word" not in err and "token" not in err and not Partner.objects.exists()


def test_partner_list_masks_credentials_an_endpoint_was_registered_with_before(capsys, maps_app):
    from closeout.integrations.models import Partner

    Partner.objects.filter(code="maps-app").update(endpoint_url="https://user:pa55word@maps.example/hook")

    assert cli.main(["partner", "list"]) == 0

    out = capsys.readouterr().out
    assert "pa55word" not in out and "https://***@maps.example/hook" in out


def test_apikey_list_shows_each_key_by_prefix_and_never_its_secret(capsys):
    from closeout.api.keys import apikey_create, apikey_revoke

    partner, partner_token = apikey_create(name="Maps app (prod)")
    operator, operator_token = apikey_create(name="warehouse", scope="operator")
    apikey_revoke(prefix=partner.prefix)

    assert cli.main(["apikey", "list"]) == 0

    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["PREFIX", "SCOPE", "CREATED", "LAST_USED", "REVOKED", "TRIED_REVOKED", "NAME"]
    assert [row.split()[:2] for row in rows] == [[partner.prefix, "partner"], [operator.prefix, "operator"]]
    assert rows[0].endswith("Maps app (prod)") and rows[1].split()[-2:] == ["-", "warehouse"]
    assert partner.created_at.strftime("%Y-%m-%d") in rows[0]
    for token in (partner_token, operator_token):
        assert token.split("_", 2)[2] not in "\n".join(rows)
