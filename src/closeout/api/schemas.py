from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import AfterValidator


def _no_control_characters(value: str) -> str:
    # NUL cannot be stored by PostgreSQL, and escape sequences or line breaks would forge log lines.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_no_control_characters)]


class IdDocumentIn(Schema):
    type: Literal["cn_resident_id", "hkid", "passport"]
    number: Text = Field(..., min_length=1, max_length=40)


class ContactIn(Schema):
    email: Text | None = Field(None, max_length=254)
    phone: Text | None = Field(None, max_length=24)


class DestinationIn(Schema):
    type: Literal["original", "bank", "ewallet", "cash"] = "original"
    account_number: Text | None = Field(None, max_length=40)
    bank_code: Text | None = Field(None, max_length=20)
    wallet_id: Text | None = Field(None, max_length=64)
    provider: Text | None = Field(None, max_length=20)


class ClosureIn(Schema):
    card_number: Text = Field(..., min_length=1, max_length=32)
    holder_name: Text = Field(..., min_length=1, max_length=200)
    id_document: IdDocumentIn
    contact: ContactIn | None = None
    refund_destination: DestinationIn | None = None
    channel: Literal["web", "phone", "email", "chat", "branch", "partner_api"] = "partner_api"
    reason: Text = Field("", max_length=200)


class FeeOut(Schema):
    code: str
    amount: int
    reason: str


class QuoteOut(Schema):
    currency: str
    balance: int
    deposit: int
    plan_refund: int = 0
    fees: list[FeeOut]
    refund: int
    uncovered: int = 0  # debts the refund could not cover: the customer pays these before closing
    instant: bool = Field(..., description="True when the refund is at or below the product's instant-refund "
                                           "cap, or the product has none.")


class ClosureCreated(Schema):
    reference: str
    state: str
    quote: QuoteOut
    sla_due: str | None


class TimelineItem(Schema):
    at: str
    state: str
    note: str


class CertificateRef(Schema):
    id: str
    verify_url: str


class ClosureOut(Schema):
    reference: str
    state: str
    quote: QuoteOut
    sla_due: str | None
    timeline: list[TimelineItem]
    certificate: CertificateRef | None = None


class AuthorizationIn(Schema):
    card_number: Text = Field(..., min_length=1, max_length=32)
    amount: int = Field(..., ge=0, le=10**12, strict=True)  # minor units: no floats, strings or booleans
    currency: Text = Field(..., min_length=3, max_length=3)
    source: Text = Field("api", max_length=40)


class AuthorizationOut(Schema):
    decision: Literal["approved", "declined"]
    reason: str


class CardReceivedIn(Schema):
    note: Text = Field("", max_length=200)


class Problem(Schema):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict] | None = None
