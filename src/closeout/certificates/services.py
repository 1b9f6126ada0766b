"""Issue closure certificates and manage the keys that sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from types import SimpleNamespace

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction

from closeout.audit.services import audit_record
from closeout.cards.models import Binding
from closeout.certificates import signing
from closeout.certificates.models import Certificate, SigningKey
from closeout.closures import states
from closeout.closures.models import ClosureCase, Refund
from closeout.common import clock
from closeout.identity import documents
from closeout.integrations.smdp import port as smdp


class UnableToIssueCertificate(Exception):
    """The case is not closed, so there is nothing to certify yet."""


class NoSigningKey(Exception):
    """No active key can sign (the private half is missing)."""


def _sealing_key() -> bytes:
    return hmac.new(settings.PII_MASTER_KEY.encode(), b"certificate-signing-key", hashlib.sha256).digest()


def _seal(private_raw: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(_sealing_key()).encrypt(nonce, private_raw, b"ed25519")).decode()


def _unseal(sealed: str) -> bytes:
    raw = base64.b64decode(sealed)
    return AESGCM(_sealing_key()).decrypt(raw[:12], raw[12:], b"ed25519")


def signing_key_rotate(*, actor: str = "system") -> SigningKey:
    """Make a new active signing key; the old one is retired and its private half destroyed."""
    private_raw, now = signing.new_private_key(), clock.now()
    with transaction.atomic():
        old = SigningKey.objects.select_for_update().filter(active=True).first()
        if old is not None:
            old.active, old.retired_at, old.private_key_sealed = False, now, ""
            old.save(update_fields=["active", "retired_at", "private_key_sealed"])
        return _key_create(private_raw, now, actor=actor, before=old.key_id if old else "")


def _key_create(private_raw: bytes, now, *, actor: str, before: str = "") -> SigningKey:
    public_raw = signing.public_key_of(private_raw)
    key = SigningKey.objects.create(
        key_id=signing.key_id_of(public_raw), public_key=base64.b64encode(public_raw).decode(),
        private_key_sealed=_seal(private_raw), active=True, created_at=now,
    )
    audit_record(actor=actor, action="certificate.key_rotated", subject=key.key_id, before=before, after=key.key_id)
    return key


def signing_key_ensure() -> None:
    """Create the first signing key, in a transaction of its own, unless there is one.

    Workers call this before they start, so that the first certificates do not create it inside
    their closing transactions (see `_first_key`).
    """
    if not SigningKey.objects.filter(active=True).exists():
        _first_key()


def _first_key() -> SigningKey:
    """Create the very first key; when another transaction has just created it, use that one.

    It never retires a key. (Rotating here did: a closing that had looked for a key a moment
    before another's commit retired the key just made, destroying its private half, and on
    PostgreSQL deadlocked with a closing whose new certificate referred to that key.)
    """
    try:
        with transaction.atomic():
            return _key_create(signing.new_private_key(), clock.now(), actor="system")
    except IntegrityError:  # the one-active-key constraint: another process created it first
        return SigningKey.objects.get(active=True)


def _active_key() -> SigningKey:
    key = SigningKey.objects.filter(active=True).first() or _first_key()
    if not key.private_key_sealed:
        raise NoSigningKey(key.key_id)
    return key


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def certificate_facts(case: ClosureCase, *, certificate_id: uuid.UUID, issued_at) -> dict:
    """Collect what a certificate states: no names, ID numbers or contacts, only masked card data."""
    return _facts(
        case, refund=Refund.objects.filter(case=case).first(),
        events=list(case.events.filter(from_state=states.DEACTIVATING).order_by("at", "id")),
        unbound=list(Binding.objects.filter(card_id=case.card_id, unbound_at__isnull=False)),
        certificate_id=certificate_id, issued_at=issued_at,
    )


def _deactivations(kind: str, events: list) -> list[dict]:
    """What the closure took out of service, read from the case's events leaving DEACTIVATING.

    A stored-value card is blocked and hotlisted; a travel SIM's number is taken out of service;
    an eSIM's number too, and its profile is then cancelled at the SM-DP+ (never downloaded),
    deleted from the device, or the deletion waived by staff after the wait ran out.
    """
    facts: dict[str, dict] = {}
    for event in events:
        if event.from_state != states.DEACTIVATING or event.to_state == states.FAILED:
            continue
        data = event.data or {}
        if kind == "stored_value":
            fact = {"what": "card", "system": "card_system", "status": "blocked", "hotlist": True,
                    "ref": str(data.get("block_ref", ""))}
        elif data.get("override"):
            fact = {"what": "esim_profile", "system": "smdp", "status": "waived", "ref": ""}
        elif (data.get("smdp") or {}).get("status") == smdp.SUCCESS:
            fact = {"what": "esim_profile", "system": "smdp",
                    "status": "deleted" if data.get("deletion_proof") else "cancelled", "ref": ""}
        elif data.get("status") == "deactivated":
            fact = {"what": "number", "system": "card_system", "status": "deactivated", "ref": str(data.get("ref", ""))}
        else:
            continue  # waiting for the device, or a retry: nothing taken out of service yet
        facts.setdefault(fact["what"], {**fact, "at": _iso(event.at)})
    return list(facts.values())


def _facts(case: ClosureCase, *, refund: Refund | None, events: list, unbound: list[Binding],
           certificate_id: uuid.UUID, issued_at) -> dict:
    card = case.card
    product = card.product
    quote = case.quote or {}
    deactivated = _deactivations(product.kind, events)
    destination = dict(case.refund_destination or {"type": "original"})
    return {
        "format": signing.FORMAT,
        "certificate_id": str(certificate_id),
        "reference": case.reference,
        "card": {"number_masked": documents.mask_card_number(card.number), "product": product.code,
                 "product_name": product.name, "product_kind": product.kind},
        "requested_at": _iso(case.created_at),
        "closed_at": _iso(case.closed_at),
        "issued_at": _iso(issued_at),
        "currency": quote.get("currency", product.currency),
        "balance": quote.get("balance", 0),
        "deposit": quote.get("deposit", 0),
        "plan_refund": quote.get("plan_refund", 0),
        "fees": [{"code": f["code"], "amount": f["amount"]} for f in quote.get("fees", [])],
        "refund": {
            "amount": refund.amount_minor if refund else quote.get("refund", 0),
            "currency": refund.currency if refund else quote.get("currency", product.currency),
            "destination": destination,
            "status": refund.status if refund else "succeeded",
            "provider_ref": refund.provider_ref if refund else "",
            "settled_at": _iso(refund.settled_at) if refund else _iso(case.closed_at),
        },
        "deactivated": deactivated,
        "unbound": [{"partner": b.partner, "at": _iso(b.unbound_at)} for b in sorted(unbound, key=lambda b: b.partner)],
        "verify_url": f"{settings.PUBLIC_URL}/verify/{certificate_id}",
    }


def _plain_rows(queryset, columns: tuple[str, ...]) -> list[SimpleNamespace]:
    """The rows of `queryset` as plain objects with `columns` as attributes (no model instances)."""
    return [SimpleNamespace(**dict(zip(columns, row, strict=True))) for row in queryset.values_list(*columns)]


def certificate_issue_many(*, case_ids: list[int]) -> int:
    """Issue the certificates of many cases closed together (bulk closure), in the caller's
    transaction; cases that already have one are skipped. Return how many were issued."""
    from closeout.audit.services import audit_record_many
    from closeout.catalog.models import Product
    from closeout.closures.models import CaseEvent
    from closeout.common.fastinsert import among, insert_rows

    # Plain rows instead of model instances: the facts read a handful of attributes per case.
    done = set(Certificate.objects.filter(among("case_id", case_ids)).values_list("case_id", flat=True))
    cases = _plain_rows(
        ClosureCase.objects.filter(among("id", [i for i in case_ids if i not in done]), state=states.CLOSED)
        .order_by("id"),
        ("id", "reference", "quote", "refund_destination", "created_at", "closed_at", "card_id", "card__number",
         "card__product_id"))
    if not cases:
        return 0
    products = Product.objects.in_bulk({c.card__product_id for c in cases})
    for case in cases:
        case.card = SimpleNamespace(number=case.card__number, product=products[case.card__product_id])
    ids = [c.id for c in cases]
    refunds = {r.case_id: r for r in _plain_rows(
        Refund.objects.filter(among("case_id", ids)),
        ("case_id", "amount_minor", "currency", "status", "provider_ref", "settled_at"))}
    events: dict[int, list] = {}
    for event in _plain_rows(
            CaseEvent.objects.filter(among("case_id", ids), from_state=states.DEACTIVATING).order_by("at", "id"),
            ("case_id", "from_state", "to_state", "data", "at")):
        events.setdefault(event.case_id, []).append(event)
    unbound: dict[int, list] = {}
    for binding in Binding.objects.filter(among("card_id", [c.card_id for c in cases]), unbound_at__isnull=False):
        unbound.setdefault(binding.card_id, []).append(binding)
    key = _active_key()
    sign = signing.signer(_unseal(key.private_key_sealed))
    now = clock.now()
    rows, audits = [], []
    for case in cases:
        certificate_id = uuid.uuid4()
        text = signing.canonical(_facts(case, refund=refunds.get(case.id), events=events.get(case.id, []),
                                        unbound=unbound.get(case.card_id, []), certificate_id=certificate_id,
                                        issued_at=now))
        rows.append((certificate_id, case.id, key.id, text, sign(text), now))
        audits.append({"actor": "system", "action": "certificate.issued", "subject": case.reference,
                       "after": str(certificate_id),
                       "data": {"key_id": key.key_id, "facts_sha256": hashlib.sha256(text.encode()).hexdigest()}})
    with transaction.atomic():
        insert_rows(Certificate, ("id", "case_id", "key_id", "facts", "signature", "issued_at"), rows)
        audit_record_many(audits)
    return len(rows)


def certificate_issue(*, case: ClosureCase) -> Certificate:
    """Sign the facts of a closed case once; a second call returns the certificate already issued.

    Runs inside the caller's transaction when there is one (the closing transition).

    :raises UnableToIssueCertificate: when the case is not closed.
    :raises NoSigningKey: when the active key has lost its private half.
    """
    existing = Certificate.objects.filter(case=case).first()
    if existing is not None:
        return existing
    if case.state != states.CLOSED:
        raise UnableToIssueCertificate(f"{case.reference} is {case.state}")
    key = _active_key()
    certificate_id = uuid.uuid4()
    now = clock.now()
    facts_text = signing.canonical(certificate_facts(case, certificate_id=certificate_id, issued_at=now))
    signature = signing.sign(_unseal(key.private_key_sealed), facts_text)
    with transaction.atomic():
        certificate = Certificate.objects.create(id=certificate_id, case=case, key=key, facts=facts_text,
                                                 signature=signature, issued_at=now)
        audit_record(actor="system", action="certificate.issued", subject=case.reference, after=str(certificate_id),
                     data={"key_id": key.key_id, "facts_sha256": hashlib.sha256(facts_text.encode()).hexdigest()})
    return certificate


def certificate_envelope(certificate: Certificate) -> dict:
    return signing.envelope(facts_text=certificate.facts, signature=certificate.signature,
                            key_id=certificate.key.key_id)


def public_keys() -> dict[str, str]:
    """Return every key that ever signed, {key_id: base64 public key}: old certificates still verify."""
    return dict(SigningKey.objects.order_by("created_at").values_list("key_id", "public_key"))


def public_keys_json() -> str:
    return json.dumps({"format": "closeout-keys/1", "keys": public_keys()}, indent=2)
