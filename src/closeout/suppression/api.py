"""Partners ask whether a hashed contact may receive marketing (API key required)."""

from __future__ import annotations

import re

from ninja import Router, Schema

from closeout.api.problems import problem
from closeout.suppression.selectors import suppression_status

router = Router(tags=["suppressions"])
HASH = re.compile(r"^[0-9a-f]{64}$")


class SuppressionOut(Schema):
    contact_hash: str
    suppressed: bool
    kind: str | None
    reason: str | None
    since: str | None


@router.get("/{contact_hash}", response={200: SuppressionOut}, summary="Is this contact suppressed?")
def suppression_read(request, contact_hash: str):
    wanted = contact_hash.strip().lower()
    if not HASH.match(wanted):
        return problem(422, "validation-error", "Invalid request", "contact_hash must be 64 hex characters.",
                       errors=[{"field": "contact_hash", "message": "must be 64 hex characters"}])
    return 200, suppression_status(wanted)
