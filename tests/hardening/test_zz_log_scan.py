"""The last test of the run (conftest moves it to the end): every log line the suite wrote — this
process's records (conftest sends them to logs/suite.log) and everything the live servers and CLI
runs printed — is scanned for the personal data of the demo cards and of the test fixtures (ID
numbers, phones, emails, bank accounts) and for secrets (API keys, SECRET_KEY, the PII master key).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.fixtures import CN_ID, HKID
from tests.hardening.conftest import LOG_DIR, LOG_SCAN_TEST, SUITE_LOG

# Personal data the test fixtures use (tests/fixtures.py make_card, the stateful test's bank account).
FIXTURE_PII = {
    "id": [HKID, "A123456(3)", CN_ID],
    "email": ["holder@example.test"],
    "phone": ["+85291234567", "85291234567", "9123 4567"],
    "bank account": ["HK12-3456-7890-12", "HK123456789012"],
}


def _id_variants(number: str) -> list[str]:
    variants = {number}
    if len(number) >= 8 and number[-1].isalnum() and number[:-1].isalnum():
        variants.add(f"{number[:-1]}({number[-1]})")  # HKID as printed: A123456(3)
    return sorted(variants)


def _phone_variants(phone: str) -> list[str]:
    digits = phone.lstrip("+")
    return [phone, digits, digits[-8:]]  # the local number alone is still the person's number


def demo_cards() -> list[dict]:
    """The demo cards of a live server of this run, or a fresh load into a scratch directory."""
    from tests.hardening import live

    for server in live.STARTED:
        if server.demo_cards:
            return server.demo_cards
    data_dir = LOG_DIR / "canaries"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLOSEOUT_DBOS_DATABASE_URL")}
    env.update(CLOSEOUT_DATA_DIR=str(data_dir), CLOSEOUT_LOG_LEVEL="DEBUG")
    with open(data_dir / "cli.log", "a") as log:
        subprocess.run([sys.executable, "-m", "closeout.cli", "demo-data"], env=env, check=True, stdout=log,
                       stderr=log, timeout=300)
        listed = subprocess.run([sys.executable, "-m", "closeout.cli", "demo-data", "--list-json"], env=env,
                                check=True, stdout=subprocess.PIPE, stderr=log, text=True, timeout=300)
    return json.loads(listed.stdout)


def canaries() -> dict[str, str]:
    """{text that must not appear: what it is}."""
    found: dict[str, str] = {}
    for kind, values in FIXTURE_PII.items():
        for value in values:
            found[value] = f"fixture {kind}"
    for card in demo_cards():
        for value in _id_variants(card["id_document"]["number"]):
            found[value] = f"demo ID number ({card['id_document']['type']})"
        if card["contact"].get("email"):
            found[card["contact"]["email"]] = "demo email"
        if card["contact"].get("phone"):
            for value in _phone_variants(card["contact"]["phone"]):
                found[value] = "demo phone"
    found[settings.SECRET_KEY] = "SECRET_KEY"
    found[settings.PII_MASTER_KEY] = "PII master key"
    from tests.hardening import live

    for server in live.STARTED:
        for token in (server.operator_key, server.partner_key):
            found[token.split("_", 2)[-1]] = "API key secret"
        for name, what in (("secret_key", "server SECRET_KEY"), ("pii_key", "server PII master key")):
            path = server.data_dir / name
            if path.exists():
                found[path.read_text().strip()] = what
    return {value: what for value, what in found.items() if len(value) >= 6}


def log_files() -> list[Path]:
    return sorted(path for path in LOG_DIR.rglob("*.log") if path.is_file())


def test_no_pii_in_any_log_line_of_the_suite():
    assert LOG_SCAN_TEST == test_no_pii_in_any_log_line_of_the_suite.__name__
    watch = canaries()
    lowered = {value.lower(): what for value, what in watch.items()}
    files = log_files()
    assert SUITE_LOG in files
    lines = 0
    hits = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                lines += 1
                text = line.lower()
                for value, what in lowered.items():
                    if value in text:
                        hits.append(f"{path.relative_to(LOG_DIR)}:{number}: {what}")
    print(f"\nlog scan: {lines} lines in {len(files)} files, {len(watch)} canaries, {len(hits)} hits")
    assert lines > 0, "nothing was logged: the scan proves nothing"
    # The report names the file, line and kind of data, never the data itself.
    assert not hits, "personal data or secrets in the logs:\n" + "\n".join(hits[:50])
