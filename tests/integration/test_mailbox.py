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
