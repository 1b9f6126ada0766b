"""Fast writes for bulk work: COPY inserts, set-based updates and array filters give the same rows
as the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import transaction

from closeout.common.clock import now
from closeout.common.fastinsert import among, insert_rows, update_by_ids, update_columns
from closeout.ledger.models import Account
from closeout.suppression.models import Suppression

pytestmark = pytest.mark.django_db

ODD_CODES = ['plain', 'with "quotes"', "back\\slash", "comma,brace}{", "空白 and space", "it's", "NULL", ""]


def test_rows_inserted_without_ids_take_the_next_ids_and_the_field_defaults():
    with transaction.atomic():
        insert_rows(Suppression, ("contact_hash", "kind", "reason", "created_at"),
                    [(f"h{i}", "email", "closure_submitted", now()) for i in range(3)])

    rows = list(Suppression.objects.order_by("id").values_list("contact_hash", "case_reference"))
    assert rows == [("h0", ""), ("h1", ""), ("h2", "")]


def test_an_array_filter_matches_the_same_rows_as_an_in_filter_whatever_the_characters():
    Account.objects.bulk_create([Account(code=c, kind="LIABILITY", currency="CNY") for c in ODD_CODES + ["other"]])

    assert sorted(Account.objects.filter(among("code", ODD_CODES)).values_list("code", flat=True)) == sorted(ODD_CODES)
    ids = list(Account.objects.filter(code__in=ODD_CODES[:3]).values_list("id", flat=True))
    assert sorted(Account.objects.filter(among("id", ids)).values_list("id", flat=True)) == sorted(ids)
    assert not Account.objects.filter(among("code", [])).exists()


def test_set_based_updates_change_only_the_rows_named():
    accounts = Account.objects.bulk_create([Account(code=f"a{i}", kind="LIABILITY", currency="CNY") for i in range(4)])
    first, second, third, untouched = (a.id for a in accounts)

    with transaction.atomic():
        assert update_by_ids(Account, [first, second], currency="HKD") == 2
        assert update_by_ids(Account, [], currency="USD") == 0

    assert dict(Account.objects.values_list("id", "currency")) == {
        first: "HKD", second: "HKD", third: "CNY", untouched: "CNY"}


def test_columns_are_set_row_by_row_with_shared_values(make_card):
    from closeout.cards.models import Card

    cards = [make_card("YKT") for _ in range(3)]
    awkward = 'quote " back\\slash, comma {brace} 中文'

    with transaction.atomic():
        changed = update_columns(Card, ["hotlist_version", "original_payment_ref"],
                                 [(cards[0].id, 7, awkward), (cards[1].id, 9, "")], status="blocked")

    assert changed == 2
    rows = {pk: (version, ref, status) for pk, version, ref, status in
            Card.objects.values_list("id", "hotlist_version", "original_payment_ref", "status")}
    assert rows == {cards[0].id: (7, awkward, "blocked"), cards[1].id: (9, "", "blocked"),
                    cards[2].id: (None, cards[2].original_payment_ref, "active")}


@pytest.mark.django_db(transaction=True)
def test_a_log_row_written_without_waiting_for_the_flush_is_there_and_the_session_stays_durable():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from closeout.common.fastinsert import insert_one

    row = Suppression(contact_hash="h-log", kind="email", reason="closure_submitted", created_at=now())
    with CaptureQueriesContext(connection) as sent:
        pk = insert_one(row, durable=False)

    assert Suppression.objects.get(pk=pk).contact_hash == "h-log"
    if connection.vendor == "postgresql":  # the relaxed commit was for that one statement only
        assert [q["sql"].startswith("SET LOCAL synchronous_commit TO off;") for q in sent.captured_queries] == [True]
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_a_log_row_inside_a_transaction_leaves_the_transaction_durable():
    from django.db import connection

    from closeout.common.fastinsert import insert_one

    transaction.set_autocommit(False)
    try:
        insert_one(Suppression(contact_hash="h-in-tx", kind="email", reason="closure_submitted", created_at=now()),
                   durable=False)
        if connection.vendor == "postgresql":  # a SET LOCAL here would relax the whole transaction
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert Suppression.objects.filter(contact_hash="h-in-tx").exists()


def test_a_row_whose_unique_value_is_taken_is_not_inserted_and_the_transaction_goes_on():
    from closeout.common.fastinsert import insert_one

    with transaction.atomic():
        first = insert_one(Account(code="payable:CL-1", kind="LIABILITY", currency="CNY"), unless_taken="code")
        again = Account(code="payable:CL-1", kind="ASSET", currency="HKD")
        assert insert_one(again, unless_taken="code") is None and again.pk is None
        other = insert_one(Account(code="payable:CL-2", kind="LIABILITY", currency="CNY"), unless_taken="code")

    assert list(Account.objects.order_by("id").values_list("id", "code", "kind")) == [
        (first, "payable:CL-1", "LIABILITY"), (other, "payable:CL-2", "LIABILITY")]
