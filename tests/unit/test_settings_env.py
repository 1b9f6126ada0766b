"""The settings read the environment variables the docs name, and nothing later overrides them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PRINT_MAIL_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps([settings.EMAIL_HOST, settings.EMAIL_PORT, settings.DEFAULT_FROM_EMAIL]))
"""


def _mail_settings(tmp_path, **env) -> list:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSEOUT_SMTP", "CLOSEOUT_MAIL"))}
    environ.update(DJANGO_SETTINGS_MODULE="closeout.settings", CLOSEOUT_DATA_DIR=str(tmp_path), **env)
    done = subprocess.run([sys.executable, "-c", PRINT_MAIL_SETTINGS], env=environ, capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mail_goes_to_the_local_relay_by_default(tmp_path):
    assert _mail_settings(tmp_path)[:2] == ["localhost", 1025]


def test_the_documented_mail_variables_are_the_ones_used(tmp_path):
    chosen = _mail_settings(tmp_path, CLOSEOUT_SMTP_HOST="mail.example.test", CLOSEOUT_SMTP_PORT="2525",
                            CLOSEOUT_MAIL_FROM="Octopus Cards <closing@example.test>")
    assert chosen == ["mail.example.test", 2525, "Octopus Cards <closing@example.test>"]


PRINT_SCOPE = """
import django
from django.conf import settings
django.setup()
print(settings.AUTHORIZATIONS_SCOPE)
"""


def test_the_authorizations_scope_is_read_forgivingly_and_a_typo_stops_the_start(tmp_path):
    environ = dict(os.environ, DJANGO_SETTINGS_MODULE="closeout.settings", CLOSEOUT_DATA_DIR=str(tmp_path))

    def start(value: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", PRINT_SCOPE], env={**environ, "CLOSEOUT_AUTHORIZATIONS_SCOPE": value},
                              capture_output=True, text=True, timeout=60)

    assert start(" Operator ").stdout.strip().splitlines()[-1] == "operator"
    refused = start("operators")
    assert refused.returncode != 0 and "must be partner or operator" in refused.stderr
