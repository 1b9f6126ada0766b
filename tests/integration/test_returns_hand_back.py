"""A card kept for the customer goes back to its holder: posted back with a tracking reference, or
collected at a branch counter. The hand-back is recorded once, leaves the warehouse's list, and
shows on the case page, the case's timeline and the customer's status page."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from closeout.audit.models import AuditEvent
from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures.models import CaseEvent, ClosureCase
from closeout.console.models import StaffProfile
from closeout.returns import services as returns
from closeout.returns.models import CheckIn, Destruction, HandBack
from tests.fixtures import HKID
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state

staff_client = support.staff_client
pytestmark = pytest.mark.django_db

TRACKING = "RR123456785HK"


def _kept_on_the_shelf(make_card, *, stopped_by: str = "withdrawn") -> CheckIn:
    """A card received at the warehouse whose closure the customer withdrew (or staff rejected)."""
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    if stopped_by == "withdrawn":
        closures.closure_withdraw(reference=case.reference, actor="customer:web")
    else:
        closures.closure_reject(reference=case.reference, actor="staff:lead@staff.example.test", reason="fraud")
    assert Card.objects.get(id=card.id).status == Card.Status.ACTIVE
    return CheckIn.objects.create(at=timezone.now(), staff="staff:wh", scanned_masked=card.number[-4:], case=case,
                                  card=card, outcome=CheckIn.Outcome.RECEIVED)


def _destroyable_on_the_shelf(make_card) -> CheckIn:
    """A card received for a closure whose refund has started: it goes into a destruction batch."""
    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    return returns.return_check_in(code=card.number, actor="staff:wh")


def _named(profile: StaffProfile, name: str) -> StaffProfile:
    profile.name = name
    profile.save(update_fields=["name"])
    return profile


def _nothing_written() -> bool:
    return (not HandBack.objects.exists() and not AuditEvent.objects.filter(action="card.handed_back").exists()
            and not CaseEvent.objects.filter(key__startswith="hand_back:").exists())


def _section(page: str) -> str:
    return page.split('id="card-return"')[1].split("<h2")[0]


def test_a_kept_card_posted_back_leaves_the_list_and_shows_on_the_case_page(staff_client, make_card):
    desk, clerk = staff_client("warehouse")
    _named(clerk, "陳小明")
    supervisor, _ = staff_client("supervisor")
    kept = _kept_on_the_shelf(make_card)
    listed = desk.get("/console/warehouse/").content.decode()
    assert f'data-hand-back="{kept.id}"' in listed and f"/console/warehouse/received/{kept.id}/hand-back" in listed

    said = desk.post(f"/console/warehouse/received/{kept.id}/hand-back",
                     {"method": "POST", "tracking_ref": f" {TRACKING} ", "note": "envelope B"},
                     follow=True).content.decode()

    assert f"Recorded: the card of case {kept.case.reference} went back to the customer." in said
    assert f'data-hand-back="{kept.id}"' not in said and f'data-keep="{kept.id}"' not in said
    record = HandBack.objects.get()
    assert (record.checkin, record.card, record.case, record.method, record.tracking_ref, record.note,
            record.handed_back_by) == (kept, kept.card, kept.case, "POST", TRACKING, "envelope B", clerk.actor)
    pages = {language: _section(supervisor.get(f"/console/cases/{kept.case.reference}/",
                                               HTTP_ACCEPT_LANGUAGE=language).content.decode())
             for language in ("en", "zh-hans", "zh-hant")}
    shown_at = timezone.localtime(record.handed_back_at).strftime("%Y-%m-%d %H:%M")
    for language, words in {"en": ("Handed back to the customer", "Posted back to the holder", "Handed back by"),
                            "zh-hans": ("已交还客户", "已寄回持卡人", "交还经办人"),
                            "zh-hant": ("已交還客戶", "已寄回持卡人", "交還經辦人")}.items():
        section = pages[language]
        assert all(word in section for word in words), (language, section)
        assert 'data-card-fate="handed_back"' in section and f"<td data-tracking-ref>{TRACKING}</td>" in section
        assert shown_at in section and "<td data-handed-back-by>陳小明</td>" in section
        assert clerk.user.email not in section  # the console names staff; the audit keeps the email
        assert kept.card.number not in section and HKID not in section and "holder@example.test" not in section


def test_a_card_collected_at_the_counter_has_no_tracking_reference(staff_client, make_card):
    desk, _ = staff_client("warehouse")
    supervisor, _ = staff_client("supervisor")
    kept = _kept_on_the_shelf(make_card, stopped_by="rejected")

    desk.post(f"/console/warehouse/received/{kept.id}/hand-back", {"method": "COUNTER", "tracking_ref": ""})

    assert HandBack.objects.get().method == HandBack.Method.COUNTER and HandBack.objects.get().tracking_ref == ""
    section = _section(supervisor.get(f"/console/cases/{kept.case.reference}/",
                                      HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode())
    assert "已在客務中心櫃位領取" in section and "data-tracking-ref" not in section


def test_the_hand_back_is_audited_and_on_the_case_timeline(make_card, client):
    from closeout.api.keys import apikey_create
    from closeout.audit.services import audit_verify

    kept = _kept_on_the_shelf(make_card)

    record = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, note="box 4",
                                    actor="staff:wh@staff.example.test", desk="三號枱")

    event = AuditEvent.objects.get(action="card.handed_back")
    assert (event.actor, event.subject, event.after, event.reason) == (
        "staff:wh@staff.example.test", f"card:{kept.card_id}", "POST", TRACKING)
    assert event.data == {"case": kept.case.reference, "checkin": kept.id, "desk": "三號枱"}
    assert "box 4" not in str(event.data)  # the typed note stays on the record, not in the trail
    timeline = CaseEvent.objects.get(case=kept.case, key=f"hand_back:{kept.id}")
    assert timeline.note == f"card posted back to the holder (tracking {TRACKING})"
    assert (timeline.from_state, timeline.to_state, timeline.at) == ("withdrawn", "withdrawn", record.handed_back_at)
    assert audit_verify() is None
    key = apikey_create(name="ops", scope="operator")[1]
    public = client.get(f"/api/v1/closures/{kept.case.reference}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert public["timeline"][-1]["note"] == timeline.note


@pytest.mark.django_db(transaction=True)  # the one-time code leaves on commit
def test_the_customer_reads_on_the_status_page_that_the_card_went_back(make_card, client, settings):
    from tests.integration.test_portal import Visitor

    settings.CLOSEOUT_DISPATCH = False
    kept = _kept_on_the_shelf(make_card)
    returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")
    visitor = Visitor(client, language="zh-hans")
    visitor.sign_in(kept.card)

    page = visitor.get(f"case/{kept.case.reference}/").content.decode()

    back = page.split('id="card-back"')[1].split("</p>")[0]
    assert "将卡片寄回给您" in back and TRACKING in back


def test_a_card_that_may_be_destroyed_is_not_handed_back(staff_client, make_card):
    desk, _ = staff_client("warehouse")
    destroyable = _destroyable_on_the_shelf(make_card)

    with pytest.raises(returns.CardNotToHandBack) as refused:
        returns.card_hand_back(checkin_id=destroyable.id, method="COUNTER", actor="staff:wh")
    said = desk.post(f"/console/warehouse/received/{destroyable.id}/hand-back", {"method": "COUNTER"},
                     follow=True).content.decode()

    assert refused.value.may_destroy
    assert (f"The card of case {destroyable.case.reference} may be destroyed: it is not handed back. "
            "Nothing was recorded.") in said
    assert f'id="d-{destroyable.id}"' in said  # still offered for destruction
    assert _nothing_written()


@pytest.mark.parametrize("state", ["returned", "on_hold"])
def test_a_card_whose_closure_may_still_go_on_stays_on_the_shelf(make_card, state):
    kept = _kept_on_the_shelf(make_card)
    ClosureCase.objects.filter(id=kept.case_id).update(state=state, resume_to="awaiting_return")
    Card.objects.filter(id=kept.card_id).update(status=Card.Status.CLOSING)

    with pytest.raises(returns.CardNotToHandBack, match="may still be needed by its closure") as refused:
        returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:wh")

    assert not refused.value.may_destroy
    assert _nothing_written()


def test_a_card_is_handed_back_once(staff_client, make_card):
    desk, clerk = staff_client("warehouse")
    kept = _kept_on_the_shelf(make_card)
    first = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor=clerk.actor)

    with pytest.raises(returns.CardHandedBackAlready) as again:
        returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:other")
    said = desk.post(f"/console/warehouse/received/{kept.id}/hand-back", {"method": "COUNTER"},
                     follow=True).content.decode()

    assert again.value.earlier == first
    shown_at = timezone.localtime(first.handed_back_at).strftime("%Y-%m-%d %H:%M")
    assert f"This card was already handed back on {shown_at} by {clerk.user.email}. Nothing changed." in said
    assert HandBack.objects.count() == 1 and AuditEvent.objects.filter(action="card.handed_back").count() == 1
    assert CaseEvent.objects.filter(key__startswith="hand_back:").count() == 1


def test_the_database_keeps_one_hand_back_per_card_received(make_card):
    kept = _kept_on_the_shelf(make_card)
    fields = {"checkin": kept, "card": kept.card, "case": kept.case, "handed_back_by": "staff:wh",
              "handed_back_at": timezone.now()}
    HandBack.objects.create(method="COUNTER", **fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        HandBack.objects.create(method="POST", tracking_ref=TRACKING, **fields)


@pytest.mark.parametrize("method,tracking_ref", [("POST", ""), ("COUNTER", TRACKING), ("LOST", "")])
def test_the_database_refuses_a_hand_back_that_does_not_say_how(make_card, method, tracking_ref):
    kept = _kept_on_the_shelf(make_card)

    with pytest.raises(IntegrityError), transaction.atomic():
        HandBack.objects.create(checkin=kept, card=kept.card, case=kept.case, method=method,
                                tracking_ref=tracking_ref, handed_back_by="staff:wh", handed_back_at=timezone.now())


def test_a_destroyed_card_cannot_be_handed_back(make_card):
    kept = _kept_on_the_shelf(make_card)
    Destruction.objects.create(card=kept.card, case=kept.case, method="SHRED", batch="B-0", place="warehouse",
                               destroyed_by="staff:wh", destroyed_at=timezone.now())

    with pytest.raises(returns.UnableToHandBack, match="destroyed"):
        returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:wh")

    assert _nothing_written()


def test_a_card_handed_back_is_not_destroyed_in_a_batch(make_card):
    kept = _kept_on_the_shelf(make_card)
    returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:wh")
    Card.objects.filter(id=kept.card_id).update(status=Card.Status.CLOSING)  # the holder closes it again

    with pytest.raises(returns.CardHandedBack):
        returns.destruction_batch(checkin_ids=[kept.id], method="SHRED", batch="B-1", actor="staff:wh",
                                  witness="staff:lead")

    assert not Destruction.objects.exists()


@pytest.mark.parametrize("role", ["supervisor", "agent", "branch_clerk"])
def test_only_warehouse_staff_hand_a_card_back(staff_client, make_card, role):
    client, _ = staff_client(role)
    kept = _kept_on_the_shelf(make_card)

    refused = client.post(f"/console/warehouse/received/{kept.id}/hand-back",
                          {"method": "POST", "tracking_ref": TRACKING})

    assert refused.status_code == 403 and _nothing_written()


def test_a_warehouse_page_without_the_right_offers_no_hand_back(staff_client, make_card, monkeypatch):
    from closeout.console import roles

    client, _ = staff_client("warehouse")
    kept = _kept_on_the_shelf(make_card)
    monkeypatch.setitem(roles.PERMISSIONS, "warehouse.hand_back", frozenset())

    page = client.get("/console/warehouse/").content.decode()

    assert f"/console/warehouse/received/{kept.id}/hand-back" not in page


@pytest.mark.parametrize("language,data,said", [
    ("en", {"method": "POST", "tracking_ref": "  "},
     "Enter the carrier&#x27;s tracking reference of the envelope posted back."),
    ("zh-hans", {"method": "POST", "tracking_ref": ""}, "请填写寄回邮件的运单号。"),
    ("zh-hant", {"method": "COUNTER", "tracking_ref": TRACKING}, "在櫃位領取的卡片沒有郵件追蹤編號，此欄請留空。"),
    ("zh-hans", {"method": "POST", "tracking_ref": TRACKING, "note": "x" * 301}, "最多"),
    ("en", {"method": "POST", "tracking_ref": "RR1\u202e23"}, "Use letters, digits, spaces and punctuation only."),
    ("en", {"method": "LOST"}, "Select a valid choice."),
])
def test_a_form_error_is_shown_beside_the_card_in_the_staffs_language(staff_client, make_card, language, data, said):
    desk, _ = staff_client("warehouse")
    kept = _kept_on_the_shelf(make_card)

    page = desk.post(f"/console/warehouse/received/{kept.id}/hand-back", data,
                     HTTP_ACCEPT_LANGUAGE=language).content.decode()

    beside = page.split(f'data-hand-back="{kept.id}"')[1].split("</form>")[0]
    assert said in beside and 'class="errorlist' in beside
    assert _nothing_written()
    if data.get("note"):
        assert "x" * 301 in beside  # what was typed comes back to be corrected


def test_no_holder_contact_reaches_the_page_the_messages_or_the_log(staff_client, make_card, caplog):
    desk, _ = staff_client("warehouse")
    kept = _kept_on_the_shelf(make_card)
    holder = kept.card.holder

    pages = [desk.post(f"/console/warehouse/received/{kept.id}/hand-back",
                       {"method": "POST", "tracking_ref": TRACKING}, follow=True).content.decode(),
             desk.post(f"/console/warehouse/received/{kept.id}/hand-back", {"method": "COUNTER"},
                       follow=True).content.decode()]

    secrets = [kept.card.number, HKID, "holder@example.test", "91234567", holder.email_masked]
    for text in pages + [caplog.text, str(list(AuditEvent.objects.values("reason", "data")))]:
        assert not [secret for secret in secrets if secret and secret in text]
