"""SM-DP+ (eSIM profile server), ES2+ side: what the operator calls to end a profile's life."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

STATES = ("AVAILABLE", "ALLOCATED", "CONFIRMED", "RELEASED", "DOWNLOADED", "INSTALLED", "ENABLED", "DELETED",
          "UNAVAILABLE", "ERROR")
NOT_DOWNLOADED = ("AVAILABLE", "ALLOCATED", "CONFIRMED", "RELEASED")
ON_DEVICE = ("DOWNLOADED", "INSTALLED", "ENABLED")
FINAL_STATUS = ("Available", "Unavailable")
SUCCESS = "Executed-Success"
FAILED = "Failed"
# SGP.22-style status code data (subject code . reason code)
SUBJECT_ICCID = "8.2.1"
REASON_UNKNOWN = "3.9"
REASON_INSTALLED = "3.8"  # refused: the profile is on a device
REASON_INVALID_TRANSITION = "3.3"


@dataclass(frozen=True)
class Es2Result:
    status: str  # Executed-Success | Failed
    profile_state: str
    subject_code: str = ""
    reason_code: str = ""
    message: str = ""

    @property
    def executed(self) -> bool:
        return self.status == SUCCESS

    def as_json(self) -> dict:
        return {"status": self.status, "profile_state": self.profile_state, "subject_code": self.subject_code,
                "reason_code": self.reason_code, "message": self.message}


class SmdpPlus(Protocol):
    def cancel_order(self, *, iccid: str, final_profile_status: str, function_call_id: str) -> Es2Result:
        """ES2+ CancelOrder: end the order; the profile takes `final_profile_status` (Available or
        Unavailable). Refused (reason 3.8) while the profile is on a device; a repeated
        function call id returns the first answer.

        :raises TransientError: when the outcome is unknown.
        """

    def release_profile(self, *, iccid: str, function_call_id: str) -> Es2Result:
        """ES2+ ReleaseProfile: make a confirmed profile downloadable (CONFIRMED → RELEASED)."""

    def profile_status(self, *, iccid: str) -> str:
        """The profile's state (one of STATES); a vendor extension, not part of ES2+.

        :raises PermanentError: for an unknown ICCID.
        """
