"""`closeout partner register` says where unbind messages really go: its help names
CLOSEOUT_PARTNERS, and registering a real endpoint while the simulator is in use says so."""

from __future__ import annotations

import pytest

from closeout import cli

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_help_says_deliveries_need_closeout_partners_http_and_where_the_format_is(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["partner", "register", "--help"])

    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    assert "only by a worker running with CLOSEOUT_PARTNERS=http" in shown
    assert "/sim/partners/deliveries" in shown and "docs/integrations.md" in shown


def test_registering_a_real_endpoint_under_the_simulator_warns_on_stderr_only(capsys, monkeypatch):
    monkeypatch.delenv("CLOSEOUT_PARTNERS", raising=False)

    assert cli.main(["partner", "register", "--code", "maps-app", "--url", "https://maps.example/hook"]) == 0

    out, err = capsys.readouterr()
    assert out.startswith("whsec_") and len(out.splitlines()) == 1  # scripts read the secret from stdout
    assert "CLOSEOUT_PARTNERS=http" in err and out.strip() not in err


@pytest.mark.parametrize("adapter,url", [("http", "https://maps.example/hook"),
                                         ("simulator", "http://127.0.0.1:8000/sim/partners/maps-app/webhook")])
def test_no_warning_when_messages_go_where_the_endpoint_says(capsys, monkeypatch, adapter, url):
    monkeypatch.setenv("CLOSEOUT_PARTNERS", adapter)

    assert cli.main(["partner", "register", "--code", "maps-app", "--url", url]) == 0

    assert capsys.readouterr().err == ""


def test_a_partner_whose_endpoint_moved_gets_its_new_one_from_the_command_line(capsys):
    # A partner that answers 308 sends its cases to staff with "update its endpoint URL"; there was
    # no command to do it with, only `register`, which refuses a code already taken.
    from closeout.audit.models import AuditEvent
    from closeout.integrations.models import Partner

    assert cli.main(["partner", "register", "--code", "maps-app", "--url", "https://maps.example/hook"]) == 0
    capsys.readouterr()

    assert cli.main(["partner", "update", "--code", "maps-app", "--url", "https://maps.example/v2/hook"]) == 0
    assert capsys.readouterr().out == (
        "partner maps-app: endpoint https://maps.example/v2/hook (was https://maps.example/hook)\n")
    assert Partner.objects.get(code="maps-app").endpoint_url == "https://maps.example/v2/hook"
    event = AuditEvent.objects.get(action="partner.update", subject="partner:maps-app")
    assert event.actor == "operator:cli" and event.data["after"]["endpoint"] == "https://maps.example/v2/hook"

    assert cli.main(["partner", "update", "--code", "maps-app", "--url", "http://169.254.169.254/hook"]) == 2
    assert cli.main(["partner", "update", "--code", "map-app", "--url", "https://maps.example/v3/hook"]) == 2
    err = capsys.readouterr().err
    assert "link-local" in err or "metadata" in err
    assert "registered partners: maps-app" in err
    assert Partner.objects.get(code="maps-app").endpoint_url == "https://maps.example/v2/hook"
