"""Reads about one-time codes for the portal's pages."""

from __future__ import annotations

from dataclasses import dataclass

from closeout.identity.models import OtpChallenge
from closeout.identity.services import code_channels


@dataclass(frozen=True)
class CodeSentTo:
    """Where a code went, masked; both empty when no code was sent."""

    email: str = ""
    sms: str = ""
    sim_by_email: bool = False  # a SIM's code went to the email address, though SMS was chosen

    def __bool__(self) -> bool:
        return bool(self.email or self.sms)


def code_sent_to(*, public_id: str) -> CodeSentTo:
    """Say where the code of a challenge was sent, so the customer knows where to look.

    Nothing when no code was sent: details that matched no card, or a holder with no contact (or
    whose data was erased). The page then says what it said before it knew.
    """
    challenge = (OtpChallenge.objects.select_related("card__holder", "card__product")
                 .filter(public_id=public_id).first())
    if challenge is None or challenge.card is None or not challenge.card.holder.data_key:
        return CodeSentTo()
    card, holder = challenge.card, challenge.card.holder
    channels = code_channels(card, challenge.channel)
    return CodeSentTo(email=holder.email_masked if "email" in channels else "",
                      sms=holder.phone_masked if "sms" in channels else "",
                      sim_by_email="email" in channels and challenge.channel == OtpChallenge.Channel.SMS
                      and card.product.kind != card.product.Kind.STORED_VALUE)
