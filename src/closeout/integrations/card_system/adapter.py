"""The card management system's REST protocol (the simulator serves it under /sim/cards/api):

    POST /cards/{number}/block          Idempotency-Key → {status: "blocked", block_ref}
    POST /numbers/{iccid}/deactivate    Idempotency-Key → {status: "deactivated", ref}
    GET  /cards/{number}                → {number, status, balance, currency, transaction_count}

Authenticated with a bearer token (CLOSEOUT_CARD_SYSTEM_TOKEN)."""

from __future__ import annotations

import os

import httpx

from closeout.common.money import Money
from closeout.integrations import http
from closeout.integrations.card_system.port import CardInfo
from closeout.integrations.errors import PermanentError


class HttpCardSystem:
    def __init__(self, *, base_url: str | None = None, token: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        base_url = base_url or os.environ.get("CLOSEOUT_CARD_SYSTEM_URL", "http://127.0.0.1:8000/sim/cards/api")
        token = token or os.environ.get("CLOSEOUT_CARD_SYSTEM_TOKEN", "")
        self._http = http.client(base_url, headers={"Authorization": f"Bearer {token}"} if token else {},
                                 transport=transport)

    def block(self, *, card_number: str, idempotency_key: str) -> dict:
        response = http.send(self._http, "POST", f"/cards/{card_number}/block", what="card system block",
                             headers={"Idempotency-Key": idempotency_key})
        body = response.json()
        return {"status": body["status"], "block_ref": body["block_ref"]}

    def block_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, dict]:
        """Block many cards, one call per card with the item's own Idempotency-Key (the REST
        protocol has no batch endpoint). A card the system refuses comes back as `failed`.

        :raises TransientError: when an outcome is unknown (retry the whole call: blocked items replay).
        """
        results = {}
        for item in items:
            try:
                results[item["idempotency_key"]] = self.block(card_number=item["card_number"],
                                                              idempotency_key=item["idempotency_key"])
            except PermanentError as exc:
                results[item["idempotency_key"]] = {"status": "failed", "error": str(exc)[:200]}
        return results

    def deactivate_number(self, *, iccid: str, idempotency_key: str) -> dict:
        response = http.send(self._http, "POST", f"/numbers/{iccid}/deactivate", what="number deactivation",
                             headers={"Idempotency-Key": idempotency_key})
        body = response.json()
        return {"status": body["status"], "ref": body["ref"]}

    def card_info(self, *, card_number: str) -> CardInfo:
        body = http.send(self._http, "GET", f"/cards/{card_number}", what="card system read").json()
        return CardInfo(number=body["number"], status=body["status"], balance=Money(body["balance"], body["currency"]),
                        transaction_count=body["transaction_count"])
