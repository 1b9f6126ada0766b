"""Writes for holders and cards: issue with PII sealed, top-ups through the ledger, authorizations."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from closeout.audit.services import audit_record
from closeout.cards.models import AuthorizationAttempt, Binding, Card, CardCharge, Holder
from closeout.catalog.models import Product
from closeout.common import clock
from closeout.common.fastinsert import fetch_one, insert_one
from closeout.common.money import Money
from closeout.identity import documents, vault
from closeout.ledger import services as ledger


def holder_create(*, name: str, id_type: str, id_number: str, email: str = "", phone: str = "",
                  language: str = "en") -> Holder:
    """Create a holder with the ID number and contacts sealed under a new per-holder key.

    :raises documents.InvalidDocument: for a malformed ID number, email or phone.
    """
    id_number = documents.normalize_id_number(id_type, id_number)
    email = documents.normalize_email(email) if email else ""
    phone = documents.normalize_phone(phone) if phone else ""
    key = vault.new_wrapped_key()
    holder = Holder(
        name=name, language=language, data_key=key, id_type=id_type,
        id_hash=vault.lookup_hash("id", f"{id_type}:{id_number}"),
        id_encrypted=vault.encrypt(key, id_number, context="id"),
        id_masked=documents.mask_id_number(id_number),
    )
    if email:
        holder.email_hash = vault.lookup_hash("email", email)
        holder.email_encrypted = vault.encrypt(key, email, context="email")
        holder.email_masked = documents.mask_email(email)
    if phone:
        holder.phone_hash = vault.lookup_hash("phone", phone)
        holder.phone_encrypted = vault.encrypt(key, phone, context="phone")
        holder.phone_masked = documents.mask_phone(phone)
    holder.save()
    return holder


def holder_contact(holder: Holder) -> dict:
    """Return the holder's decrypted contacts (for sending notices only; never log them)."""
    out = {}
    if holder.email_encrypted:
        out["email"] = vault.decrypt(holder.data_key, holder.email_encrypted, context="email")
    if holder.phone_encrypted:
        out["phone"] = vault.decrypt(holder.data_key, holder.phone_encrypted, context="phone")
    return out


def card_issue(*, number: str, product: Product, holder: Holder, issued_at: datetime, balance: Money,
               physical: bool = True, transaction_count: int = 0, last_used_at: datetime | None = None,
               **plan) -> Card:
    """Issue a card: the deposit and the initial value are posted to the ledger."""
    number = documents.normalize_card_number(number)
    with transaction.atomic():
        card = Card.objects.create(
            number=number, product=product, holder=holder, issued_at=issued_at, physical=physical,
            transaction_count=transaction_count, last_used_at=last_used_at, **plan,
        )
        lines = []
        if product.deposit_minor:
            lines += [(ledger.CASH_IN, product.deposit), (ledger.card_deposit_account(card.id), -product.deposit)]
        if balance.minor:
            lines += [(ledger.CASH_IN, balance), (ledger.card_value_account(card.id), -balance)]
        if lines:
            ledger.ledger_post(key=f"issue:{card.id}", lines=lines, memo="card issued", subject=number[-4:])
    return card


def card_charge_add(*, card: Card, code: str, reason: str, amount: Money) -> CardCharge:
    return CardCharge.objects.create(
        card=card, code=code, reason=reason, amount_minor=amount.minor, currency=amount.currency,
        created_at=clock.now(),
    )


def binding_add(*, card: Card, partner: str, external_ref: str) -> Binding:
    return Binding.objects.create(card=card, partner=partner, external_ref=external_ref, bound_at=clock.now())


# Authorizations are the hottest path. The decision is one SQL statement (the card, its product's
# currency and its value balance, read together; the ORM's subquery annotation costs more to
# compile than the query takes to run). On PostgreSQL the same rules live in the function
# `closeout_authorize` (migration cards 0003), which also logs the attempt when the card is active
# or unknown: one round trip, and a plan PostgreSQL keeps for the session instead of making anew
# per request. Only an active card can be approved; any other status is declined as `card_<status>`.
_DECIDE = """
    SELECT card.id, card.status,
           CASE WHEN card.id IS NULL THEN 'unknown_card'
                WHEN card.status <> %(active)s THEN 'card_' || card.status
                WHEN product.currency <> %(currency)s THEN 'currency_mismatch'
                WHEN %(amount)s > 0 AND %(amount)s > -COALESCE(
                    (SELECT SUM(line.amount_minor) FROM ledger_line line
                     JOIN ledger_account account ON account.id = line.account_id
                     WHERE account.code = 'card:' || card.id || ':value'), 0)  -- ledger.card_value_account
                    THEN 'insufficient_balance'
                ELSE 'ok' END
    FROM (SELECT %(number)s AS number) wanted
    LEFT JOIN cards_card card ON card.number = wanted.number
    LEFT JOIN catalog_product product ON product.id = card.product_id"""

_DECIDE_AND_LOG = "SELECT * FROM closeout_authorize(%(number)s, %(amount)s, %(currency)s, %(source)s, %(at)s)"


def authorization_decide(*, card_number: str, amount: Money, source: str = "api") -> AuthorizationAttempt:
    """Decide an authorization or top-up; a closing, closed or blocked card is always declined.

    The attempt is recorded either way, with time, amount and source. Attempts on active or
    unknown cards are a log, written without a transaction of their own and, on PostgreSQL,
    without waiting for the WAL flush (an authorization moves no money); declines of closing,
    closed or blocked cards are evidence, committed durably with their audit event.
    """
    now = clock.now()
    params = {"number": card_number, "amount": amount.minor, "currency": amount.currency, "source": source,
              "at": now, "active": Card.Status.ACTIVE}
    if connection.vendor == "postgresql":
        card_id, status, reason, logged = fetch_one(_DECIDE_AND_LOG, params, durable=False)
    else:
        (card_id, status, reason), logged = fetch_one(_DECIDE, params), None
    attempt = AuthorizationAttempt(card_id=card_id, at=now, amount_minor=amount.minor, currency=amount.currency,
                                   source=source, decision="approved" if reason == "ok" else "declined",
                                   reason=reason)
    if logged is not None:
        attempt.pk, attempt._state.adding, attempt._state.db = logged, False, connection.alias
        return attempt
    if status is None or status == Card.Status.ACTIVE:
        insert_one(attempt, durable=False)
        return attempt
    with transaction.atomic():
        insert_one(attempt)
        audit_record(actor=f"source:{source}", action="authorization.declined", subject=f"card:{card_id}",
                     reason=reason, data={"amount": amount.minor, "currency": amount.currency})
    return attempt
