"""ES2+ over HTTPS/JSON (SGP.22 style): POST {base}/gsma/rsp2/es2plus/<function> with the
`X-Admin-Protocol` header and a body carrying `header.functionRequesterIdentifier` and
`header.functionCallIdentifier`; the answer's `header.functionExecutionStatus` says
Executed-Success or Failed with `statusCodeData {subjectCode, reasonCode, message}`.
`getProfileStatus` is a vendor extension most SM-DP+ servers offer next to ES2+."""

from __future__ import annotations

import os

import httpx

from closeout.integrations import http
from closeout.integrations.errors import PermanentError
from closeout.integrations.smdp import port
from closeout.integrations.smdp.port import Es2Result

ADMIN_PROTOCOL = "gsma/rsp/v2.5.0"


class Es2PlusClient:
    def __init__(self, *, base_url: str | None = None, requester_id: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        base_url = base_url or os.environ.get("CLOSEOUT_SMDP_URL", "http://127.0.0.1:8000/sim/smdp")
        self._requester = requester_id or os.environ.get("CLOSEOUT_SMDP_REQUESTER_ID", "closeout")
        self._http = http.client(base_url, headers={"X-Admin-Protocol": ADMIN_PROTOCOL}, transport=transport)

    def _call(self, function: str, call_id: str, **fields) -> dict:
        body = {"header": {"functionRequesterIdentifier": self._requester, "functionCallIdentifier": call_id},
                **fields}
        return http.send(self._http, "POST", f"/gsma/rsp2/es2plus/{function}", json=body,
                         what=f"SM-DP+ {function}").json()

    @staticmethod
    def _result(answer: dict) -> Es2Result:
        status = answer.get("header", {}).get("functionExecutionStatus", {})
        data = status.get("statusCodeData") or {}
        if status.get("status") not in (port.SUCCESS, port.FAILED):
            raise PermanentError("SM-DP+ answer without an execution status")
        return Es2Result(status=status["status"], profile_state=str(answer.get("profileState", "")),
                         subject_code=str(data.get("subjectCode", "")), reason_code=str(data.get("reasonCode", "")),
                         message=str(data.get("message", ""))[:200])

    def cancel_order(self, *, iccid: str, final_profile_status: str, function_call_id: str) -> Es2Result:
        return self._result(self._call("cancelOrder", function_call_id, iccid=iccid,
                                       finalProfileStatusIndicator=final_profile_status))

    def release_profile(self, *, iccid: str, function_call_id: str) -> Es2Result:
        return self._result(self._call("releaseProfile", function_call_id, iccid=iccid))

    def profile_status(self, *, iccid: str) -> str:
        answer = self._call("getProfileStatus", f"status:{iccid}", iccidList=[iccid])
        result = self._result(answer)
        if not result.executed:
            raise PermanentError(f"SM-DP+ getProfileStatus: {result.message or result.reason_code}")
        return answer["profileStatusList"][0]["state"]
