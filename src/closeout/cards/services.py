"""Writes for holders and cards: issue with PII sealed, top-ups through the ledger, authorizations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from closeout.audit.services import audit_record
from closeout.cards.models import AuthorizationAttempt, Binding, Card, CardCharge, Holder
from closeout.catalog.models import Product
from closeout.common import clock
from closeout.common.fastinsert import insert_one
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


DECLINED_STATUSES = {Card.Status.CLOSING, Card.Status.CLOSED, Card.Status.BLOCKED}


# Authorizations are the hottest read: the card, its product's currency and its value balance come
# back in one statement, written out because the ORM's subquery annotation costs more to compile
# than the query takes to run.
_CARD_WITH_VALUE = """
    SELECT card.id, card.status, product.currency,
           COALESCE((SELECT SUM(line.amount_minor) FROM ledger_line line
                     JOIN ledger_account account ON account.id = line.account_id
                     WHERE account.code = 'card:' || card.id || ':value'), 0)  -- ledger.card_value_account
    FROM cards_card card JOIN catalog_product product ON product.id = card.product_id
    WHERE card.number = %s"""


@dataclass(frozen=True)
class _CardValue:
    id: int
    status: str
    currency: str
    value_sum: int  # sum of the value account's lines: the balance is its negative


def _card_with_value(number: str) -> _CardValue | None:
    with connection.cursor() as cursor:
        cursor.execute(_CARD_WITH_VALUE, [number])
        row = cursor.fetchone()
    return _CardValue(*row) if row else None


def authorization_decide(*, card_number: str, amount: Money, source: str = "api") -> AuthorizationAttempt:
    """Decide an authorization or top-up; a closing, closed or blocked card is always declined.

    The attempt is recorded either way, with time, amount and source.
    """
    card = _card_with_value(card_number)
    if card is None:
        decision, reason = "declined", "unknown_card"
    elif card.status in DECLINED_STATUSES:
        decision, reason = "declined", f"card_{card.status}"
    elif amount.currency != card.currency:
        decision, reason = "declined", "currency_mismatch"
    elif amount.minor > 0 and -card.value_sum < amount.minor:
        decision, reason = "declined", "insufficient_balance"
    else:
        decision, reason = "approved", "ok"
    attempt = AuthorizationAttempt(card_id=card.id if card else None, at=clock.now(), amount_minor=amount.minor,
                                   currency=amount.currency, source=source, decision=decision, reason=reason)
    if card is None or card.status == Card.Status.ACTIVE:
        # A log row, one statement, no transaction: on PostgreSQL not waiting for the WAL flush
        # (an authorization moves no money). Declines of closing or closed cards are evidence
        # and are committed durably with their audit event below.
        insert_one(attempt, durable=False)
        return attempt
    with transaction.atomic():
        attempt.save(force_insert=True)
        audit_record(actor=f"source:{source}", action="authorization.declined", subject=f"card:{card.id}",
                     reason=reason, data={"amount": amount.minor, "currency": amount.currency})
    return attempt
