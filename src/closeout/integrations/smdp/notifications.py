"""ES9+ handleNotification, closeout's side: the device's signed profile-deletion notification is
checked (certificate issuer → eUICC certificate → notification signature), kept as proof, and
handed to the closure that waits for it. A repeated notification changes nothing."""

from __future__ import annotations

import base64
import json
import logging
import os

from cryptography.exceptions import InvalidSignature
from django.conf import settings
from django.db import IntegrityError, transaction

from closeout.common import clock
from closeout.integrations import crypto
from closeout.integrations.models import EsimDeletionProof

log = logging.getLogger(__name__)
DELETE = "notificationDelete"


class NotificationRejected(Exception):
    """The notification is malformed or its signatures do not check out."""


def trusted_ci_keys() -> list[str]:
    keys = [k for k in os.environ.get("CLOSEOUT_SMDP_CI_PUBLIC_KEYS", "").split(",") if k]
    if settings.INTEGRATIONS.get("smdp", "simulator") == "simulator":
        from closeout.integrations.smdp.simulator import ci_public_key

        keys.append(ci_public_key())
    return keys


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _verify(notification: dict) -> tuple[dict, dict, str]:
    try:
        signed = notification["pendingNotification"]["otherSignedNotification"]
        tbs, certificate = signed["tbsOtherNotification"], signed["euiccCertificate"]
        signature = base64.b64decode(signed["euiccNotificationSignature"])
        eid, public = str(certificate["eid"]), str(certificate["public_key"])
        cert_signature = base64.b64decode(certificate["signature"])
        iccid = str(tbs["iccid"])
        int(tbs["seqNumber"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NotificationRejected("not an ES9+ signed notification") from exc
    for ci in trusted_ci_keys():
        try:
            crypto.load_public_key(ci).verify(cert_signature, f"{eid}.{public}".encode())
            break
        except (InvalidSignature, crypto.SignatureInvalid):
            continue
    else:
        raise NotificationRejected("eUICC certificate not issued by a trusted CI")
    try:
        crypto.load_public_key(public).verify(signature, canonical(tbs))
    except (InvalidSignature, crypto.SignatureInvalid) as exc:
        raise NotificationRejected("notification signature does not match") from exc
    return tbs, certificate, iccid


def esim_notification_receive(*, body: bytes) -> str:
    """Record a verified deletion notification once and wake the closure that waits for it.

    Returns `recorded`, `duplicate` or `ignored` (an operation other than delete).

    :raises NotificationRejected: for a malformed or wrongly signed notification.
    """
    try:
        notification = json.loads(body)
    except ValueError as exc:
        raise NotificationRejected("body is not JSON") from exc
    if not isinstance(notification, dict):
        raise NotificationRejected("body is not an object")
    tbs, certificate, iccid = _verify(notification)
    if tbs.get("profileManagementOperation") != DELETE:
        return "ignored"
    from closeout.closures import services

    signed = notification["pendingNotification"]["otherSignedNotification"]
    with transaction.atomic():
        try:
            with transaction.atomic():
                EsimDeletionProof.objects.create(
                    iccid=iccid, eid=certificate["eid"], seq_number=int(tbs["seqNumber"]), operation=DELETE,
                    notification=tbs, signature=signed["euiccNotificationSignature"], certificate=certificate,
                    received_at=clock.now(),
                )
        except IntegrityError:
            return "duplicate"
        services.esim_deletion_recorded(iccid=iccid)
    return "recorded"


def receive(body: bytes, headers: dict) -> int:
    """Inline delivery target for the simulator's outbox: the status ES9+ would answer."""
    try:
        esim_notification_receive(body=body)
    except NotificationRejected:
        return 400
    return 204
