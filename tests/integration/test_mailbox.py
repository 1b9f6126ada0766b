"""The demo's mailbox: `closeout demo` has no mail relay, so the customer's emails (one-time
codes, receipts) land in a built-in SMTP server and are listed at /sim/mail/messages."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from closeout.integrations.mailbox.models import SimMail
from closeout.integrations.mailbox.server import mailbox_serve
from closeout.notifications import services as notices

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mailbox(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = threading.Event()
    thread = threading.Thread(target=mailbox_serve, kwargs={"port": port, "stop": stop}, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the controller listens once its thread has started
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port
    stop.set()
    thread.join(5)


def _arrived(count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while SimMail.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(SimMail.objects.order_by("id").values())


def test_a_one_time_code_email_is_listed_with_its_text_and_a_masked_address(mailbox, client):
    notice = notices.notice_send(channel="email", to="Traveller@Example.test", template="otp", language="zh-hant",
                                 context={"minutes": 10}, secrets={"code": "493817"})
    [mail] = _arrived(1)
    listed = client.get("/sim/mail/messages").json()

    assert [m["to_masked"] for m in listed] == ["t•••@example.test"]
    assert "493817" in listed[0]["text"] and "驗證碼" in listed[0]["subject"] + listed[0]["text"]
    assert "traveller@example.test" not in str(mail).lower()
    notice.refresh_from_db()
    assert notice.status == "sent" and listed[0]["message_id"] == notice.provider_ref
    assert client.get("/sim/mail/messages", {"since": listed[0]["id"]}).json() == []


def test_the_mailbox_command_keeps_what_it_is_sent_until_it_is_stopped(tmp_path):
    import os
    import signal
    import smtplib
    import subprocess
    import sys
    from email.message import EmailMessage

    env = {k: v for k, v in os.environ.items() if k not in ("CLOSEOUT_DATA_DIR", "DATABASE_URL",
                                                                "DJANGO_SETTINGS_MODULE")}
    env["CLOSEOUT_DATA_DIR"] = str(tmp_path)
    subprocess.run([sys.executable, "-m", "closeout.cli", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailbox = subprocess.Popen([sys.executable, "-m", "closeout.cli", "mailbox", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and mailbox.poll() is None, mailbox.stderr.read()
                time.sleep(0.2)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "closeout <no-reply@closeout.invalid>", \
            "holder@example.test", "您的验证码"
        message.set_content("验证码 493817")
        with client:
            client.send_message(message)
        listed = subprocess.run([sys.executable, "-c", (
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'closeout.settings'); django.setup();"
            "from closeout.integrations.mailbox.models import SimMail;"
            "print([(m.to_masked, m.subject, m.text.strip()) for m in SimMail.objects.all()])")],
            env=env, capture_output=True, text=True, timeout=120, check=True).stdout
        assert "('h•••@example.test', '您的验证码', '验证码 493817')" in listed
    finally:
        mailbox.send_signal(signal.SIGTERM)
        assert mailbox.wait(timeout=20) == 0
