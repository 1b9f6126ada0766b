"""One-time codes: 6 digits, single use, 10-minute life, 5 tries, throttles, no enumeration."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from unittest import mock

import pytest

from closeout.identity import rules
from closeout.identity import services as otp
from closeout.identity.models import OtpChallenge
from closeout.integrations.sms.models import SimSmsMessage
from closeout.notifications.models import Notice
from tests.fixtures import HKID, card_number

pytestmark = pytest.mark.django_db(transaction=True)  # notices leave on commit


def _request(card, *, client="198.51.100.7", channel="sms", id_number=HKID, number=None):
    return otp.otp_request(card_number=number or card.number, id_type="hkid", id_number=id_number, channel=channel,
                           client_address=client, language="en")


def _code() -> str:
    return re.search(r"\b(\d{6})\b", SimSmsMessage.objects.order_by("-id").first().body)[1]


def _later(minutes):
    from closeout.common import clock

    real = clock.now()
    return mock.patch("closeout.common.clock.now", return_value=real + timedelta(minutes=minutes))


def test_a_matching_card_gets_a_six_digit_code_by_sms_that_signs_in_once(make_card):
    card = make_card("YKT")
    challenge = _request(card)

    assert SimSmsMessage.objects.count() == 1
    code = _code()
    assert otp.otp_verify(public_id=challenge.public_id, code=code, client_address="198.51.100.7").card == card
    with pytest.raises(otp.CodeUsedUp):
        otp.otp_verify(public_id=challenge.public_id, code=code, client_address="198.51.100.7")


def test_the_code_is_stored_only_as_a_keyed_hash(make_card):
    card = make_card("YKT")
    challenge = _request(card)
    code = _code()
    row = OtpChallenge.objects.get(id=challenge.id)
    assert code not in row.code_hash and len(row.code_hash) == 64
    notice = Notice.objects.get()
    assert code not in str(notice.context) and notice.has_secrets


def test_a_code_expires_after_ten_minutes(make_card):
    card = make_card("YKT")
    challenge = _request(card)
    code = _code()
    with _later(10), pytest.raises(otp.CodeExpired):
        otp.otp_verify(public_id=challenge.public_id, code=code, client_address="198.51.100.7")
    with _later(9):
        assert otp.otp_verify(public_id=challenge.public_id, code=code, client_address="198.51.100.7").card == card


def test_five_wrong_codes_use_the_code_up_even_for_the_right_code_after(make_card):
    card = make_card("YKT")
    challenge = _request(card)
    code = _code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    lefts = []
    for _ in range(4):
        with pytest.raises(otp.CodeWrong) as exc:
            otp.otp_verify(public_id=challenge.public_id, code=wrong, client_address="198.51.100.7")
        lefts.append(exc.value.attempts_left)
    with pytest.raises(otp.CodeUsedUp):
        otp.otp_verify(public_id=challenge.public_id, code=wrong, client_address="198.51.100.7")
    with pytest.raises(otp.CodeUsedUp):
        otp.otp_verify(public_id=challenge.public_id, code=code, client_address="198.51.100.7")
    assert lefts == [4, 3, 2, 1]


def test_a_wrong_id_document_sends_nothing_and_answers_like_a_match(make_card):
    card = make_card("YKT")
    wrong_id = "C6681539"  # valid HKID check digit, not the holder's
    challenge = _request(card, id_number=wrong_id)
    assert SimSmsMessage.objects.count() == 0 and Notice.objects.count() == 0
    assert isinstance(challenge, OtpChallenge) and challenge.card is None
    with pytest.raises(otp.CodeWrong) as exc:
        otp.otp_verify(public_id=challenge.public_id, code="123456", client_address="198.51.100.7")
    assert exc.value.attempts_left == 4


def test_an_unknown_card_number_is_throttled_exactly_like_a_known_one(make_card):
    known = make_card("YKT")
    unknown = card_number("8103")
    for number in (known.number, unknown):
        for _ in range(3):
            _request(known, number=number)
        with pytest.raises(otp.CodeSendThrottled) as exc:
            _request(known, number=number)
        assert timedelta(minutes=55) < exc.value.until - OtpChallenge.objects.latest("id").created_at <= timedelta(hours=1)


def test_sends_are_limited_to_three_an_hour_and_ten_a_day_per_card(make_card):
    card = make_card("YKT")
    sent = 0
    for hour in range(6):
        with _later(hour * 61):
            for _ in range(3):
                try:
                    _request(card, client=f"203.0.113.{hour}")
                    sent += 1
                except otp.CodeSendThrottled:
                    pass
    assert sent == 10
    assert SimSmsMessage.objects.count() == 10


def test_one_client_address_is_limited_across_card_numbers(make_card):
    cards = [make_card("YKT") for _ in range(11)]
    for card in cards[:10]:
        _request(card, client="192.0.2.50")
    with pytest.raises(otp.CodeSendThrottled):
        _request(cards[10], client="192.0.2.50")
    _request(cards[10], client="192.0.2.51")


def test_ten_wrong_codes_for_one_card_lock_it_for_fifteen_minutes(make_card):
    card = make_card("YKT")
    challenges = [_request(card, client=f"203.0.113.{i}") for i in range(3)]
    code = _code()
    for challenge in challenges[:2]:
        for _ in range(5):
            with pytest.raises((otp.CodeWrong, otp.CodeUsedUp)):
                otp.otp_verify(public_id=challenge.public_id, code="000000", client_address="203.0.113.1")
    with pytest.raises(otp.VerifyLocked) as exc:
        otp.otp_verify(public_id=challenges[2].public_id, code=code, client_address="203.0.113.200")
    assert timedelta(minutes=14) < exc.value.until - challenges[2].created_at <= timedelta(minutes=15, seconds=5)
    with _later(14), pytest.raises(otp.VerifyLocked):
        otp.otp_verify(public_id=challenges[2].public_id, code=code, client_address="203.0.113.200")
    with _later(16), pytest.raises(otp.CodeExpired):
        otp.otp_verify(public_id=challenges[2].public_id, code=code, client_address="203.0.113.200")
    # Another card from the same address is not locked: 10 failures are below the address limit of 30.
    other = make_card("YKT")
    challenge = _request(other, client="203.0.113.1")
    assert otp.otp_verify(public_id=challenge.public_id, code=_code(), client_address="203.0.113.1").card == other


def test_the_code_goes_by_email_when_chosen_and_falls_back_when_the_contact_is_missing(make_card):
    with_email = make_card("YKT")
    no_phone = make_card("YKT", phone="")
    with mock.patch("closeout.notifications.services._deliver"):
        _request(with_email, channel="email")
        _request(no_phone, channel="sms")
    assert list(Notice.objects.order_by("id").values_list("channel", "card_id")) == [
        ("email", with_email.id), ("email", no_phone.id)]


@pytest.mark.parametrize(("product", "chosen", "phone", "sent"), [
    ("TSIM", "sms", "+85291234567", ["email", "sms"]),
    ("TSIM", "email", "+85291234567", ["email"]),
    ("ESIM", "sms", "", ["email"]),
    ("YKT", "sms", "+85291234567", ["sms"]),
])
def test_a_sim_code_always_goes_to_the_email_address_never_only_to_the_phone(make_card, product, chosen, phone,
                                                                             sent):
    """The phone on file of a SIM may be the SIM being closed: out of the customer's phone, abroad
    or already out of service."""
    card = make_card(product, phone=phone, **({"physical": False} if product == "ESIM" else {}))
    with mock.patch("closeout.notifications.services._deliver"):
        challenge = _request(card, channel=chosen)
    assert sorted(Notice.objects.values_list("channel", flat=True)) == sent
    assert challenge.card == card


def test_a_sim_holder_without_an_email_address_gets_the_code_by_sms(make_card):
    card = make_card("TSIM", email="")
    _request(card, channel="email")
    assert SimSmsMessage.objects.count() == 1 and not Notice.objects.filter(channel="email").exists()


def _resend(challenge, *, client="198.51.100.7"):
    return otp.otp_resend(public_id=challenge.public_id, client_address=client, language="en")


def test_a_new_code_for_the_same_sign_in_goes_to_the_same_contact_and_replaces_the_old_one(make_card):
    card = make_card("TSIM")
    first = _request(card)
    old_code = _code()
    with _later(1):
        second = _resend(first)
        assert SimSmsMessage.objects.count() == 2 and Notice.objects.filter(channel="email").count() == 2
        new_code = _code()
        with pytest.raises(otp.CodeExpired):
            otp.otp_verify(public_id=first.public_id, code=old_code, client_address="198.51.100.7")
        assert otp.otp_verify(public_id=second.public_id, code=new_code, client_address="198.51.100.7").card == card
    with _later(2), pytest.raises(otp.SignInNotPending):
        _resend(second)  # signed in: nothing is pending any more


def test_a_new_code_waits_a_minute_after_the_last_one(make_card):
    first = _request(make_card("YKT"))
    with _later(0.5), pytest.raises(otp.ResendTooSoon) as exc:
        _resend(first)
    assert exc.value.until == OtpChallenge.objects.get(id=first.id).created_at + timedelta(minutes=1)
    assert SimSmsMessage.objects.count() == 1 and OtpChallenge.objects.count() == 1


def test_a_replaced_challenge_starts_no_new_wait(make_card):
    """Resending from the challenge a resend already replaced (a second tab, a double click) is
    held to the minute after the last code, not after that old challenge."""
    first = _request(make_card("YKT"))
    with _later(1.5):
        second = _resend(first)
    with _later(2), pytest.raises(otp.ResendTooSoon) as exc:
        _resend(first)
    assert exc.value.until == OtpChallenge.objects.get(id=second.id).created_at + timedelta(minutes=1)
    assert SimSmsMessage.objects.count() == 2


def test_new_codes_count_towards_the_three_sends_an_hour_of_the_card(make_card):
    challenge = _request(make_card("YKT"))
    for minute in (2, 4):
        with _later(minute):
            challenge = _resend(challenge)
    with _later(6), pytest.raises(otp.CodeSendThrottled):
        _resend(challenge)
    assert SimSmsMessage.objects.count() == 3


def test_a_new_code_for_details_that_matched_no_card_sends_nothing_and_answers_the_same(make_card):
    first = _request(make_card("YKT"), id_number="C6681539")
    with _later(1):
        second = _resend(first)
    assert second.card is None and second.public_id != first.public_id
    assert SimSmsMessage.objects.count() == 0 and Notice.objects.count() == 0


def test_blocked_until_never_allows_more_than_the_limit_in_any_window():
    from hypothesis import given
    from hypothesis import strategies as st

    limit = rules.Limit(3, timedelta(hours=1))

    @given(st.lists(st.integers(min_value=0, max_value=600), max_size=30))
    def check(minutes):
        from datetime import datetime

        origin = datetime(2026, 1, 1, tzinfo=UTC)
        accepted = []
        for m in sorted(minutes):
            now = origin + timedelta(minutes=m)
            if rules.blocked_until(accepted, [limit], now) is None:
                accepted.append(now)
        for i in range(len(accepted) - 3):
            assert accepted[i + 3] - accepted[i] >= timedelta(hours=1)

    check()
