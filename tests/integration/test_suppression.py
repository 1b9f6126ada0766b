"""Marketing suppression: a holder goes on the list the moment their closure is submitted; a
marketing campaign sent over real SMTP reaches no closing or closed account, while service
notices still do."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes

import pytest

from closeout.cards.models import Card, Holder
from closeout.cards.services import holder_contact
from closeout.closures import services
from closeout.suppression.models import MarketingDelivery, Suppression
from closeout.suppression.sender import SERVICE, Campaign, email_send, marketing_send
from tests.aftercare_support import close_card

pytestmark = pytest.mark.django_db

CAMPAIGN = Campaign(
    code="spring-2027",
    subject={"en": "Top up now and get 5% back", "zh-hans": "现在充值享 5% 回赠", "zh-hant": "立即增值享 5% 回贈"},
    body={"en": "Offer for card holders.", "zh-hans": "持卡人专享。", "zh-hant": "持卡人專享。"},
)


class Inbox:
    """An SMTP server's mailboxes: who received what."""

    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def recipients(self, purpose: str | None = None) -> set[str]:
        out = set()
        for rcpts, content in self.messages:
            if purpose is None or message_from_bytes(content)["X-Closeout-Purpose"] == purpose:
                out.update(rcpts)
        return out


@pytest.fixture
def smtp(settings):
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield inbox
    controller.stop()


def test_submitting_a_closure_suppresses_the_holders_email_and_phone_at_once(make_card):
    card = make_card("YKT", email="mei@example.test", phone="+85291234567")
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    entries = Suppression.objects.filter(case_reference=case.reference)
    assert {(e.kind, e.contact_hash) for e in entries} == {("email", card.holder.email_hash),
                                                           ("phone", card.holder.phone_hash)}
    assert "mei@example.test" not in str(list(entries.values()))


def test_a_campaign_to_every_demo_holder_reaches_no_closing_or_closed_account(smtp):
    from closeout.demo import demo_data_load

    demo_data_load()
    cards = list(Card.objects.select_related("holder").filter(charges__isnull=True).order_by("id"))
    closed = [close_card(card).card for card in cards[:4]]
    closing = []
    for card in cards[4:8]:
        services.closure_request(card=card, channel="phone", requester="staff:1")
        closing.append(card)
    assert {c.status for c in Card.objects.filter(id__in=[c.id for c in closed])} == {"closed"}
    assert {c.status for c in Card.objects.filter(id__in=[c.id for c in closing])} == {"closing"}
    left = {holder_contact(c.holder)["email"] for c in closed + closing}
    holders = list(Holder.objects.order_by("id"))
    everyone = {holder_contact(h)["email"] for h in holders}

    report = marketing_send(campaign=CAMPAIGN, holders=holders)

    delivered = smtp.recipients("marketing")
    assert delivered.isdisjoint(left)
    assert delivered == everyone - left  # everybody else did get it: the path really sends
    assert (report.sent, report.suppressed) == (len(everyone - left), len(left))
    assert MarketingDelivery.objects.filter(campaign=CAMPAIGN.code, outcome="suppressed").count() == len(left)

    # Service notices about the case still reach the closed account.
    closed_holder = closed[0].holder
    assert email_send(holder=closed_holder, subject="Your refund was paid", body="…", purpose=SERVICE)
    assert smtp.recipients("service") == {holder_contact(closed_holder)["email"]}

    # Running the campaign again sends nobody a second copy.
    again = marketing_send(campaign=CAMPAIGN, holders=holders)
    assert again.sent == 0 and again.outcomes["already_done"] == len(holders)
    assert len([m for m in smtp.messages if m[0][0] in delivered]) == len(delivered)


def test_the_holders_language_picks_the_campaign_text(smtp, make_card):
    card = make_card("YKT", email="lang@example.test")
    Holder.objects.filter(id=card.holder_id).update(language="zh-hant")
    marketing_send(campaign=CAMPAIGN, holders=Holder.objects.filter(id=card.holder_id))
    message = message_from_bytes(smtp.messages[0][1])
    from email.header import decode_header, make_header

    assert str(make_header(decode_header(message["Subject"]))) == "立即增值享 5% 回贈"
    assert message["List-Unsubscribe"]


def test_partners_look_up_a_contact_hash_with_their_key(client, make_card):
    from closeout.api.keys import apikey_create

    _, token = apikey_create(name="maps-app")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    closing = make_card("YKT", email="gone@example.test")
    services.closure_request(card=closing, channel="web", requester="customer:web")
    staying = make_card("YKT", email="stay@example.test")

    body = client.get(f"/api/v1/suppressions/{closing.holder.email_hash}", **auth).json()
    assert body["suppressed"] is True and body["kind"] == "email"
    assert body["reason"] is None and body["since"] is None  # that the holder closed an account is not the partner's
    operator = {"HTTP_AUTHORIZATION": f"Bearer {apikey_create(name='ops', scope='operator')[1]}"}
    full = client.get(f"/api/v1/suppressions/{closing.holder.email_hash}", **operator).json()
    assert full["reason"] == "closure_submitted" and full["since"]
    assert client.get(f"/api/v1/suppressions/{closing.holder.phone_hash.upper()}", **auth).json()["suppressed"]
    assert client.get(f"/api/v1/suppressions/{staying.holder.email_hash}", **auth).json() == {
        "contact_hash": staying.holder.email_hash, "suppressed": False, "kind": None, "reason": None, "since": None}

    assert client.get(f"/api/v1/suppressions/{closing.holder.email_hash}").status_code == 401
    bad = client.get("/api/v1/suppressions/gone@example.test", **auth)
    assert bad.status_code == 422 and bad["Content-Type"] == "application/problem+json"
    assert "gone@example.test" not in bad.content.decode()


def test_partners_check_the_contacts_they_hold_without_knowing_any_hash(client, make_card):
    from closeout.api.keys import apikey_create

    _, token = apikey_create(name="maps-app")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    closing = make_card("YKT", email="gone@example.test", phone="+85291234567")
    services.closure_request(card=closing, channel="web", requester="customer:web")
    make_card("YKT", email="stay@example.test", phone="+85298765432")
    contacts = [{"email": " Gone@Example.TEST "}, {"phone": "+852 9123 4567"}, {"email": "stay@example.test"},
                {"phone": "85298765432"}, {"email": "never@example.test"},
                {"phone": "9123 4567"}]  # a local number: in the operator's country (852)

    response = client.post("/api/v1/suppressions/check", {"contacts": contacts}, content_type="application/json",
                           **auth)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["suppressed"] for r in results] == [True, True, False, False, False, True]
    assert results[0]["contact_hash"] == closing.holder.email_hash and results[1]["kind"] == "phone"
    assert "example.test" not in response.content.decode() and "9123" not in response.content.decode()
    # The hash handed back answers later lookups.
    assert client.get(f"/api/v1/suppressions/{results[1]['contact_hash']}", **auth).json()["suppressed"]


@pytest.mark.parametrize("contacts,field", [
    ([{"email": "not-an-address"}], "contacts.0.email"),
    ([{"email": "a@example.test"}, {"phone": "12"}], "contacts.1.phone"),
    ([{"email": "a@example.test", "phone": "+85291234567"}], "contacts.0"),
    ([{}], "contacts.0"),
])
def test_a_malformed_contact_is_a_422_naming_it_without_echoing_it(client, contacts, field):
    from closeout.api.keys import apikey_create

    _, token = apikey_create(name="maps-app")
    response = client.post("/api/v1/suppressions/check", {"contacts": contacts}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert "not-an-address" not in response.content.decode()


def test_a_bulk_closure_suppresses_every_holder_in_the_file(make_card, tmp_path):
    from closeout.closures import bulk
    from tests.integration.test_bulk_close import write_csv

    cards = [make_card("YKT", balance=1000, days_old=2000, email=f"dormant{i}@example.test") for i in range(3)]
    bulk.bulk_intake(path=write_csv(tmp_path / "dormant.csv", [c.number for c in cards]), reason="dormant",
                     requester="operator:test", batch_size=2)
    hashes = {c.holder.email_hash for c in cards} | {c.holder.phone_hash for c in cards}
    assert set(Suppression.objects.values_list("contact_hash", flat=True)) == hashes
