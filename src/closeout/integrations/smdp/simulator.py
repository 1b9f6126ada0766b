"""The SM-DP+ and the devices (eUICCs) its profiles live on, simulated.

Profiles appear on first use: an eSIM that closeout issued is ENABLED on a simulated device.
When CancelOrder is refused because the profile is on the device, the simulated customer deletes
it after CLOSEOUT_SIM_ESIM_DEVICE_DELETES_AFTER seconds (default 10; `off` never), and the device
sends its signed ES9+ deletion notification to closeout. Each eUICC holds an Ed25519 key and a
certificate signed by the simulator's certificate issuer (CI), which closeout trusts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.db import transaction

from closeout.common import clock
from closeout.integrations import crypto
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimEsimProfile
from closeout.integrations.outbox import outbox_add
from closeout.integrations.smdp import port
from closeout.integrations.smdp.port import Es2Result

NOTIFICATION_PATH = "/gsma/rsp2/es9plus/handleNotification"


def ci_key() -> Ed25519PrivateKey:
    return crypto.kept_signing_key("sim_smdp_ci_key")


def ci_public_key() -> str:
    return crypto.public_key_b64(ci_key())


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _device_delete_delay() -> timedelta | None:
    raw = os.environ.get("CLOSEOUT_SIM_ESIM_DEVICE_DELETES_AFTER", "10")
    return None if raw == "off" else timedelta(seconds=float(raw))


def profile_seed(*, iccid: str, state: str = "ENABLED") -> SimEsimProfile:
    """Create the profile (and its device) if the SM-DP+ does not know it yet."""
    if state not in port.STATES:
        raise ValueError(f"unknown profile state {state}")
    existing = SimEsimProfile.objects.filter(iccid=iccid).first()
    if existing:
        return existing
    device = Ed25519PrivateKey.generate()
    eid = "89049032" + hashlib.sha256(iccid.encode()).hexdigest()[:24].translate(str.maketrans("abcdef", "012345"))
    public = crypto.public_key_b64(device)
    certificate = {"eid": eid, "public_key": public, "issuer": "closeout-sim-ci",
                   "signature": base64.b64encode(ci_key().sign(f"{eid}.{public}".encode())).decode()}
    raw = device.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SimEsimProfile.objects.create(iccid=iccid, eid=eid, state=state, euicc_key=base64.b64encode(raw).decode(),
                                         euicc_certificate=certificate, matching_id=iccid[-8:])


def _profile(iccid: str) -> SimEsimProfile:
    profile_seed(iccid=iccid)
    return SimEsimProfile.objects.select_for_update().get(iccid=iccid)


def _answer(profile: SimEsimProfile, function: str, call_id: str, result: Es2Result) -> Es2Result:
    profile.calls = [*profile.calls, {"function": function, "call_id": call_id, **result.as_json()}][-50:]
    profile.save()
    return result


def _replay(profile: SimEsimProfile, function: str, call_id: str) -> Es2Result | None:
    for call in profile.calls:
        if call["function"] == function and call["call_id"] == call_id:
            return Es2Result(**{k: call[k] for k in ("status", "profile_state", "subject_code", "reason_code",
                                                     "message")})
    return None


def _fault(operation: str) -> str | None:
    mode = take_fault("smdp", operation)
    if mode == "error_5xx":
        raise TransientError("SM-DP+ answered 503")
    return mode


def device_delete(*, iccid: str) -> bool:
    """The customer deletes the profile on the device; the eUICC signs and sends its notification."""
    with transaction.atomic():
        profile = _profile(iccid)
        if profile.state not in port.ON_DEVICE:
            return False
        profile.state = "DELETED"
        profile.device_delete_at = None
        profile.notification_seq += 1
        profile.save()
        tbs = {"seqNumber": profile.notification_seq, "profileManagementOperation": "notificationDelete",
               "notificationAddress": "closeout", "iccid": iccid}
        device = Ed25519PrivateKey.from_private_bytes(base64.b64decode(profile.euicc_key))
        body = {"pendingNotification": {"otherSignedNotification": {
            "tbsOtherNotification": tbs,
            "euiccNotificationSignature": base64.b64encode(device.sign(canonical(tbs))).decode(),
            "euiccCertificate": profile.euicc_certificate,
        }}}
        outbox_add(system="smdp", path=NOTIFICATION_PATH, body=body,
                   headers={"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.5.0"})
        return True


def devices_due() -> int:
    """Let the simulated customers whose time has come delete their profiles."""
    due = SimEsimProfile.objects.filter(device_delete_at__lte=clock.now()).values_list("iccid", flat=True)
    return sum(1 for iccid in list(due) if device_delete(iccid=iccid))


class SimulatedSmdpPlus:
    def cancel_order(self, *, iccid: str, final_profile_status: str, function_call_id: str) -> Es2Result:
        mode = _fault("cancel_order")
        if final_profile_status not in port.FINAL_STATUS:
            raise PermanentError("finalProfileStatusIndicator must be Available or Unavailable")
        with transaction.atomic():
            profile = _profile(iccid)
            result = _replay(profile, "cancelOrder", function_call_id)
            if result is None:
                target = final_profile_status.upper()
                if profile.state in port.NOT_DOWNLOADED or profile.state == "DELETED" or profile.state == target:
                    profile.state = target
                    result = Es2Result(port.SUCCESS, target)
                elif profile.state in port.ON_DEVICE:
                    delay = _device_delete_delay()
                    if delay is not None and profile.device_delete_at is None:
                        profile.device_delete_at = clock.now() + delay
                    result = Es2Result(port.FAILED, profile.state, port.SUBJECT_ICCID, port.REASON_INSTALLED,
                                       "profile is installed on a device; it must be deleted first")
                else:
                    result = Es2Result(port.FAILED, profile.state, port.SUBJECT_ICCID,
                                       port.REASON_INVALID_TRANSITION, f"cannot cancel from {profile.state}")
                _answer(profile, "cancelOrder", function_call_id, result)
        if mode in ("timeout", "lost_response"):
            raise TransientError("SM-DP+ timed out after cancelling")
        return result

    def release_profile(self, *, iccid: str, function_call_id: str) -> Es2Result:
        mode = _fault("release_profile")
        with transaction.atomic():
            profile = _profile(iccid)
            result = _replay(profile, "releaseProfile", function_call_id)
            if result is None:
                if profile.state in ("CONFIRMED", "RELEASED"):
                    profile.state = "RELEASED"
                    result = Es2Result(port.SUCCESS, "RELEASED")
                else:
                    result = Es2Result(port.FAILED, profile.state, port.SUBJECT_ICCID,
                                       port.REASON_INVALID_TRANSITION, f"cannot release from {profile.state}")
                _answer(profile, "releaseProfile", function_call_id, result)
        if mode in ("timeout", "lost_response"):
            raise TransientError("SM-DP+ timed out after releasing")
        return result

    def profile_status(self, *, iccid: str) -> str:
        _fault("profile_status")
        profile = SimEsimProfile.objects.filter(iccid=iccid).first()
        if profile is None:
            raise PermanentError("unknown ICCID")
        return profile.state
