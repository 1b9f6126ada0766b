"""The demo's mailbox: an SMTP server on the loopback interface that keeps every message it is
given, so `closeout demo` shows its emails (one-time codes, receipts) at `/sim/mail/messages`
without a mail relay. Real deployments point `CLOSEOUT_SMTP_HOST` at their relay instead."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import threading

from django.db import close_old_connections

from closeout.common import clock
from closeout.identity import documents, vault
from closeout.integrations.mailbox.models import SimMail

log = logging.getLogger(__name__)


class Mailbox:
    """The aiosmtpd handler: one `SimMail` row per recipient of each message."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        def keep() -> None:
            for recipient in envelope.rcpt_tos:
                mail_keep(to=recipient, subject=str(message["Subject"] or ""), text=text,
                          message_id=str(message["Message-ID"] or ""))

        try:
            await asyncio.get_running_loop().run_in_executor(None, keep)  # the ORM does not run in the event loop
        except Exception:  # the sender learns the message was not kept and may send it again
            log.exception("the mailbox could not keep a message")
            return "451 Requested action aborted: local error in processing"
        return "250 Message accepted for delivery"


def mail_keep(*, to: str, subject: str, text: str, message_id: str = "") -> SimMail:
    close_old_connections()  # the SMTP thread outlives any one database connection
    address = to.strip().lower()
    return SimMail.objects.create(
        message_id=message_id[:250], to_masked=documents.mask_email(address)[:254],
        to_hash=vault.lookup_hash("email", address), subject=subject[:500], text=text, received_at=clock.now())


def mailbox_serve(*, host: str = "127.0.0.1", port: int = 1025, stop: threading.Event | None = None) -> None:
    """Serve the mailbox until `stop` is set (or forever)."""
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per SMTP command
    controller = Controller(Mailbox(), hostname=host, port=port)
    controller.start()
    log.info("demo mailbox listening on %s:%s", host, port)
    try:
        (stop or threading.Event()).wait()
    finally:
        controller.stop()
