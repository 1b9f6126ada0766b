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
from closeout.notifications.models import Notice
from closeout.returns import selectors as return_selectors
from closeout.returns import services as returns
from closeout.returns.models import CheckIn, Destruction, HandBack, ReturnException
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


# --- a card from the exception queue -------------------------------------------------------------
# A card whose closure was withdrawn before it arrived, or one nobody asked to close, lands in the
# exception queue, not on the list of cards received: it is handed back from there.


def _queued_after_withdrawal(make_card) -> ReturnException:
    """The card of a closure the customer withdrew while the card was in the post, scanned at the
    warehouse: no case waits for it."""
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    closures.closure_withdraw(reference=case.reference, actor="customer:web")
    checkin = returns.return_check_in(code=card.number, actor="staff:wh", desk="Desk 2")
    assert checkin.exception.reason == ReturnException.Reason.NOT_EXPECTED and checkin.exception.case == case
    return checkin.exception


def _still_open(item: ReturnException) -> bool:
    item.refresh_from_db()
    return item.resolved_at is None and item.resolution == ""


def _nothing_resolved() -> bool:
    return (_nothing_written() and not ReturnException.objects.filter(resolved_at__isnull=False).exists()
            and not AuditEvent.objects.filter(action="return.exception_resolved").exists())


def _offered(page: str, item: ReturnException) -> bool:
    return (f'data-exception-hand-back="{item.id}"' in page
            or f"/console/warehouse/exceptions/{item.id}/hand-back" in page)


def test_a_card_of_a_closure_withdrawn_before_it_arrived_is_handed_back_from_the_exception_queue(
        staff_client, make_card):
    from closeout.audit.services import audit_verify

    desk, clerk = staff_client("warehouse")
    queued = _queued_after_withdrawal(make_card)
    card, case = queued.checkin.card, queued.case
    listed = desk.get("/console/warehouse/").content.decode()
    assert _offered(listed, queued)
    row = listed.split(f'data-exception-hand-back="{queued.id}"')[1].split("</li>")[0]
    assert f"{case.reference} (Withdrawn)" in row and f"•••• {card.number[-4:]}" in row and card.number not in row

    said = desk.post(f"/console/warehouse/exceptions/{queued.id}/hand-back",
                     {"method": "POST", "tracking_ref": TRACKING, "note": "envelope C"}, follow=True).content.decode()

    assert f"Recorded: card •••• {card.number[-4:]} went back to the customer, and its exception is resolved." in said
    assert not _offered(said, queued) and card.number not in said
    record = HandBack.objects.get()
    assert (record.checkin, record.card, record.case, record.method, record.tracking_ref, record.note,
            record.handed_back_by) == (queued.checkin, card, case, "POST", TRACKING, "envelope C", clerk.actor)
    queued.refresh_from_db()
    assert queued.resolved_at is not None and queued.resolved_by == clerk.actor
    assert queued.resolution == f"handed back: card posted back to the holder (tracking {TRACKING})"
    resolved = AuditEvent.objects.get(action="return.exception_resolved")
    assert (resolved.subject, resolved.reason) == (case.reference, queued.resolution)
    handed = AuditEvent.objects.get(action="card.handed_back")
    assert (handed.subject, handed.after, handed.data["case"]) == (f"card:{card.id}", "POST", case.reference)
    timeline = CaseEvent.objects.get(case=case, key=f"hand_back:{queued.checkin_id}")
    assert timeline.note == f"card posted back to the holder (tracking {TRACKING})"
    assert audit_verify() is None
    supervisor, _ = staff_client("supervisor")
    section = _section(supervisor.get(f"/console/cases/{case.reference}/").content.decode())
    assert 'data-card-fate="handed_back"' in section and f"<td data-tracking-ref>{TRACKING}</td>" in section


def test_a_card_nobody_asked_to_close_is_handed_back_at_the_counter_from_the_exception_queue(make_card):
    card = make_card("OCTO")
    queued = returns.return_check_in(code=card.number, actor="staff:wh").exception
    assert queued.reason == ReturnException.Reason.NOT_EXPECTED and queued.case is None

    record = returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh",
                                                desk="三號枱")

    assert (record.card, record.case, record.checkin, record.desk) == (card, None, queued.checkin, "三號枱")
    queued.refresh_from_db()
    assert queued.resolution == "handed back: card collected at a branch counter"
    assert AuditEvent.objects.get(action="return.exception_resolved").subject == "unknown"
    assert not CaseEvent.objects.filter(key__startswith="hand_back:").exists()


def test_the_card_found_in_another_cases_envelope_is_handed_back_and_that_case_still_waits(make_card):
    labelled = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=labelled.reference)
    inside = make_card("OCTO")  # still in use: nobody asked to close it
    queued = returns.return_check_in(code=label.code, card_number=inside.number, actor="staff:wh").exception
    assert queued.reason == ReturnException.Reason.MISMATCH

    record = returns.return_exception_hand_back(exception_id=queued.id, method="POST", tracking_ref=TRACKING,
                                                actor="staff:wh")

    assert (record.card, record.case) == (inside, None)  # the labelled case's card never came back
    assert ClosureCase.objects.get(id=labelled.id).state == "awaiting_return"
    assert not CaseEvent.objects.filter(case=labelled, key__startswith="hand_back:").exists()


def test_a_card_its_closure_waits_for_is_matched_to_its_case_not_handed_back(staff_client, make_card):
    desk, _ = staff_client("warehouse")
    card = make_card("OCTO")
    case = case_in_state(card, "submitted")
    queued = returns.return_check_in(code=card.number, actor="staff:wh").exception  # arrived before its fees
    ClosureCase.objects.filter(id=case.id).update(state="awaiting_return")  # settled since

    listed = desk.get("/console/warehouse/").content.decode()
    with pytest.raises(returns.CardAwaited) as refused:
        returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh")
    said = desk.post(f"/console/warehouse/exceptions/{queued.id}/hand-back", {"method": "COUNTER"},
                     follow=True).content.decode()

    assert not _offered(listed, queued) and refused.value.reference == case.reference
    assert (f"Case {case.reference} is waiting for this card: resolve its exception by naming the case, so the "
            "card is checked in. Nothing was recorded.") in said
    assert _nothing_resolved() and _still_open(queued)
    returns.return_exception_resolve(exception_id=queued.id, actor="staff:sup", resolution="its own case",
                                     reference=case.reference)
    assert ClosureCase.objects.get(id=case.id).state == "refund_pending"


def test_a_card_in_another_envelope_that_its_own_closure_waits_for_is_not_handed_back(make_card):
    labelled = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=labelled.reference)
    inside = make_card("OCTO")
    waiting = case_in_state(inside, "awaiting_return")
    queued = returns.return_check_in(code=label.code, card_number=inside.number, actor="staff:wh").exception

    with pytest.raises(returns.CardAwaited) as refused:
        returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh")

    assert refused.value.reference == waiting.reference
    assert queued.id not in {item.id for item in return_selectors.exceptions_to_hand_back()}
    assert _nothing_resolved() and _still_open(queued)


@pytest.mark.parametrize("state,may_destroy", [("submitted", False), ("closed", True)])
def test_a_card_whose_closure_goes_on_or_is_done_is_not_handed_back(make_card, state, may_destroy):
    card = make_card("OCTO")
    case = case_in_state(card, "submitted")
    queued = returns.return_check_in(code=card.number, actor="staff:wh").exception
    if state == "closed":
        ClosureCase.objects.filter(id=case.id).update(state=state)
        Card.objects.filter(id=card.id).update(status=Card.Status.CLOSED)

    with pytest.raises(returns.CardNotToHandBack) as refused:
        returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh")

    assert (refused.value.reference, refused.value.may_destroy) == (case.reference, may_destroy)
    assert queued.id not in {item.id for item in return_selectors.exceptions_to_hand_back()}
    assert _nothing_resolved() and _still_open(queued)


@pytest.mark.parametrize("code,inside", [("8101000000000001", ""), ("RL20269999999", "8101000000000001")],
                         ids=["unknown-card", "unknown-label-unknown-card-inside"])
def test_an_unknown_card_is_not_offered_for_hand_back(staff_client, make_card, code, inside):
    desk, _ = staff_client("warehouse")
    queued = returns.return_check_in(code=code, card_number=inside, actor="staff:wh").exception
    assert queued.reason == ReturnException.Reason.UNKNOWN

    listed = desk.get("/console/warehouse/").content.decode()
    queue = desk.get("/console/warehouse/exceptions/").content.decode()
    with pytest.raises(returns.UnknownCardInHand):
        returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh")
    said = desk.post(f"/console/warehouse/exceptions/{queued.id}/hand-back", {"method": "COUNTER"},
                     follow=True).content.decode()

    assert not _offered(listed, queued) and "data-hand-back-link" not in queue
    assert "This card is not one of ours: there is nobody to give it back to. Nothing was recorded." in said
    assert _nothing_resolved() and _still_open(queued)


def test_nothing_is_half_written_when_resolving_the_exception_fails(make_card, monkeypatch):
    queued = _queued_after_withdrawal(make_card)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(returns, "_exception_resolved", broken)
    with pytest.raises(RuntimeError):
        returns.return_exception_hand_back(exception_id=queued.id, method="POST", tracking_ref=TRACKING,
                                           actor="staff:wh")

    assert _nothing_resolved() and _still_open(queued)
    assert not Notice.objects.filter(template="card_handed_back").exists()  # nothing told that did not happen


def test_an_exception_resolved_otherwise_or_handed_back_before_is_not_handed_back_again(staff_client, make_card):
    desk, clerk = staff_client("warehouse")
    queued = _queued_after_withdrawal(make_card)
    first = returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor=clerk.actor)
    other = returns.return_check_in(code=make_card("OCTO").number, actor="staff:wh").exception
    returns.return_exception_resolve(exception_id=other.id, actor="staff:sup", resolution="sent to the issuer")

    with pytest.raises(returns.CardHandedBackAlready) as again:
        returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:other")
    with pytest.raises(returns.ExceptionNotOpen):
        returns.return_exception_hand_back(exception_id=other.id, method="COUNTER", actor="staff:other")
    said = desk.post(f"/console/warehouse/exceptions/{other.id}/hand-back", {"method": "COUNTER"},
                     follow=True).content.decode()

    assert again.value.earlier == first
    assert "This exception was already resolved. Nothing was recorded." in said
    assert HandBack.objects.count() == 1 and AuditEvent.objects.filter(action="card.handed_back").count() == 1
    assert AuditEvent.objects.filter(action="return.exception_resolved").count() == 2


@pytest.mark.parametrize("role", ["supervisor", "agent", "branch_clerk"])
def test_only_warehouse_staff_hand_back_a_card_from_the_exception_queue(staff_client, make_card, role):
    client, _ = staff_client(role)
    queued = _queued_after_withdrawal(make_card)

    refused = client.post(f"/console/warehouse/exceptions/{queued.id}/hand-back",
                          {"method": "POST", "tracking_ref": TRACKING})

    assert refused.status_code == 403 and _nothing_resolved() and _still_open(queued)
    if role == "supervisor":  # sees the queue, and is not sent to a hand-back they may not record
        assert "data-hand-back-link" not in client.get("/console/warehouse/exceptions/").content.decode()


def test_the_exception_queue_sends_warehouse_staff_to_the_hand_back(staff_client, make_card, monkeypatch):
    from closeout.console import roles

    desk, _ = staff_client("warehouse")
    queued = _queued_after_withdrawal(make_card)

    row = desk.get("/console/warehouse/exceptions/").content.decode().split(
        f'data-exception="{queued.id}"')[1].split("</tr>")[0]
    monkeypatch.setitem(roles.PERMISSIONS, "warehouse.hand_back", frozenset())
    without = desk.get("/console/warehouse/").content.decode()

    assert f'href="/console/warehouse/#hand-back-x{queued.id}"' in row
    assert not _offered(without, queued)


@pytest.mark.parametrize("language,data,said", [
    ("en", {"method": "POST", "tracking_ref": "  "},
     "Enter the carrier&#x27;s tracking reference of the envelope posted back."),
    ("zh-hans", {"method": "POST", "tracking_ref": ""}, "请填写寄回邮件的运单号。"),
    ("zh-hant", {"method": "COUNTER", "tracking_ref": TRACKING}, "在櫃位領取的卡片沒有郵件追蹤編號，此欄請留空。"),
    ("zh-hans", {"method": "POST", "tracking_ref": TRACKING, "note": "x" * 301}, "最多"),
])
def test_a_form_error_is_shown_beside_the_exception_in_the_staffs_language(staff_client, make_card, language,
                                                                           data, said):
    desk, _ = staff_client("warehouse")
    queued = _queued_after_withdrawal(make_card)

    page = desk.post(f"/console/warehouse/exceptions/{queued.id}/hand-back", data,
                     HTTP_ACCEPT_LANGUAGE=language).content.decode()

    beside = page.split(f'data-exception-hand-back="{queued.id}"')[1].split("</form>")[0]
    assert said in beside and 'class="errorlist' in beside
    assert f'id="id_tracking_ref_x{queued.id}"' in beside
    assert _nothing_resolved() and _still_open(queued)
    if data.get("note"):
        assert "x" * 301 in beside  # what was typed comes back to be corrected


@pytest.mark.django_db(transaction=True)
def test_one_card_handed_back_from_the_exception_queue_at_two_desks_at_once_is_recorded_once(make_card):
    from tests.hardening.test_concurrency import kinds, race

    queued = _queued_after_withdrawal(make_card)

    outcomes = race(4, lambda i: returns.return_exception_hand_back(
        exception_id=queued.id, method="COUNTER", actor=f"staff:desk{i}"))

    recorded = [o for o in outcomes if isinstance(o, HandBack)]
    assert len(recorded) == 1, kinds(outcomes)
    assert all(isinstance(o, returns.CardHandedBackAlready) for o in outcomes if o not in recorded), kinds(outcomes)
    assert HandBack.objects.count() == 1 and AuditEvent.objects.filter(action="card.handed_back").count() == 1
    assert AuditEvent.objects.filter(action="return.exception_resolved").count() == 1
    assert Notice.objects.filter(template="card_handed_back").count() == 2  # the holder is told once: email, SMS


def test_the_exceptions_to_hand_back_are_listed_in_three_queries_however_long_the_queue(
        make_card, django_assert_max_num_queries):
    withdrawn = [_queued_after_withdrawal(make_card) for _ in range(3)]
    never_asked = returns.return_check_in(code=make_card("OCTO").number, actor="staff:wh").exception
    going_on = make_card("OCTO")
    case_in_state(going_on, "submitted")
    still_needed = returns.return_check_in(code=going_on.number, actor="staff:wh").exception
    destroyed_card = make_card("OCTO")
    destroyed = returns.return_check_in(code=destroyed_card.number, actor="staff:wh").exception
    Destruction.objects.create(card=destroyed_card, method="SHRED", batch="B-1", place="HQ", destroyed_by="staff:wh",
                               witnessed_by="staff:sup", destroyed_at=timezone.now())

    with django_assert_max_num_queries(3):
        listed = return_selectors.exceptions_to_hand_back()

    assert [item.id for item in listed] == [item.id for item in withdrawn] + [never_asked.id]
    assert [item.hand_back_case for item in listed] == [item.case for item in withdrawn] + [None]
    assert {item.id for item in listed}.isdisjoint({still_needed.id, destroyed.id})
