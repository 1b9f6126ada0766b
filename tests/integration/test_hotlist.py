"""The hotlist: every card a closure blocks takes the next version; gates download a signed
snapshot or the deltas since their version, as CSV or a compact binary file, streamed."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import tracemalloc

import pytest
from django.db import connection, transaction

from closeout import cli
from closeout.api.keys import apikey_create
from closeout.cards.models import Card
from closeout.integrations.card_system import hotlist
from closeout.integrations.models import HotlistCounter

pytestmark = pytest.mark.django_db


def _block(card: Card, status: str = "blocked") -> int:
    with transaction.atomic():
        Card.objects.filter(id=card.id).update(status=status)
        card.status = status
        return hotlist.hotlist_add(card=card)


def _export(*argv: str) -> int:
    return cli.COMMANDS["hotlist"](cli._parser().parse_args(["hotlist", "export", *argv]))


def _listed_out_of_order(make_card) -> list[hotlist.Entry]:
    """Three listed cards (listed in another order than issued, one closed) and one active card."""
    first, second, third = make_card("OCTO"), make_card("YKT"), make_card("SUICA")
    make_card("OCTO")  # active, never listed
    listed = [(third, "blocked"), (first, "closed"), (second, "blocked")]
    return [hotlist.Entry(number=card.number, status=status, version=_block(card, status))
            for card, status in listed]


def test_each_blocked_card_takes_the_next_version_once(make_card):
    a, b = make_card("OCTO"), make_card("YKT")

    first, second = _block(a), _block(b)

    assert second == first + 1
    assert _block(a) == first  # listing again keeps the first version
    assert hotlist.hotlist_version() == second


def test_a_delta_holds_only_the_cards_listed_after_the_version(make_card):
    a, b, c = make_card("OCTO"), make_card("OCTO"), make_card("SUICA")
    v1 = _block(a)
    _block(b)
    _block(c)

    entries = list(hotlist.hotlist_entries(since=v1))

    assert entries == [hotlist.Entry(b.number, "blocked", v1 + 1), hotlist.Entry(c.number, "blocked", v1 + 2)]


def test_the_csv_export_lists_exactly_the_hotlisted_cards_in_version_order(make_card, tmp_path):
    expected = _listed_out_of_order(make_card)
    out = tmp_path / "hotlist.csv"

    assert _export("--out", str(out), "--format", "csv") == 0

    assert out.read_text().splitlines() == [f"{e.number},{e.status},{e.version}" for e in expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hotlist.csv", "hotlist.csv.sig"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not a temporary file's 0600
    document = json.loads((tmp_path / "hotlist.csv.sig").read_text())
    assert document["public_key"] == hotlist.hotlist_public_key() and document["alg"] == "Ed25519"
    statement = hotlist.verify_csv(out, document, public_key=hotlist.hotlist_public_key())
    assert (statement.since, statement.version, statement.count) == (0, expected[-1].version, 3)
    assert list(hotlist.read_csv(out)) == expected


def test_since_exports_only_the_cards_listed_after_that_version(make_card, tmp_path):
    expected = _listed_out_of_order(make_card)
    out = tmp_path / "delta.csv"

    assert _export("--out", str(out), "--since", str(expected[0].version)) == 0

    document = json.loads((tmp_path / "delta.csv.sig").read_text())
    statement = hotlist.verify_csv(out, document, public_key=hotlist.hotlist_public_key())
    assert (statement.since, statement.count) == (expected[0].version, 2)
    assert list(hotlist.read_csv(out)) == expected[1:]


def test_a_changed_byte_or_an_altered_signature_fails_csv_verification(make_card, tmp_path):
    _listed_out_of_order(make_card)
    out = tmp_path / "hotlist.csv"
    _export("--out", str(out))
    data, document = out.read_bytes(), json.loads((tmp_path / "hotlist.csv.sig").read_text())
    key = hotlist.hotlist_public_key()
    flipped = bytearray(data)
    flipped[3] = ord("0") + (flipped[3] - ord("0") + 1) % 10
    signature = bytearray(base64.b64decode(document["signature"]))
    signature[0] ^= 1

    with pytest.raises(hotlist.HotlistInvalid, match="does not match the signed sha256"):
        hotlist.verify_csv(io.BytesIO(bytes(flipped)), document, public_key=key)
    with pytest.raises(hotlist.HotlistInvalid, match="does not match the signed sha256"):
        hotlist.verify_csv(io.BytesIO(data[: data.rindex(b"\n", 0, -1) + 1]), document, public_key=key)
    with pytest.raises(hotlist.HotlistInvalid, match="signature does not match"):
        hotlist.verify_csv(out, {**document, "signature": base64.b64encode(signature).decode()}, public_key=key)
    with pytest.raises(hotlist.HotlistInvalid, match="signature does not match"):
        hotlist.verify_csv(out, {**document, "count": document["count"] - 1}, public_key=key)
    with pytest.raises(hotlist.HotlistInvalid, match="malformed"):
        hotlist.verify_csv(out, {**document, "signature": "not base64!"}, public_key=key)
    other_key = hotlist.crypto.public_key_b64(hotlist.crypto.Ed25519PrivateKey.generate())
    with pytest.raises(hotlist.HotlistInvalid, match="signature does not match"):
        hotlist.verify_csv(out, document, public_key=other_key)


def test_the_verify_command_names_what_is_wrong(make_card, tmp_path, capsys):
    _listed_out_of_order(make_card)
    out = tmp_path / "hotlist.csv"
    _export("--out", str(out))
    verify = cli._parser().parse_args(["hotlist", "verify", str(out)])

    assert cli.COMMANDS["hotlist"](verify) == 0
    assert "hotlist ok: csv" in capsys.readouterr().out
    out.write_bytes(out.read_bytes().replace(b"closed", b"active"))
    assert cli.COMMANDS["hotlist"](verify) == 1
    assert "hotlist invalid: file content does not match the signed sha256" in capsys.readouterr().err


def test_the_binary_export_is_compact_self_verifying_and_reads_back(make_card, tmp_path):
    cards = [make_card("OCTO"), make_card("TSIM", plan_days_left=3)]
    base = _block(cards[0]) - 1
    _block(cards[1])
    out = tmp_path / "delta.bin"

    assert _export("--out", str(out), "--since", str(base), "--format", "bin") == 0

    data = out.read_bytes()
    assert len(data) == hotlist.HEADER.size + 2 * hotlist.ENTRY.size + hotlist.TRAILER_SIZE
    statement = hotlist.verify_bin(out, public_key=hotlist.hotlist_public_key())
    assert (statement.since, statement.version, statement.count) == (base, base + 2, 2)
    assert [(e.number, e.status, e.version) for e in hotlist.read_bin(out)] == [
        (cards[0].number, "blocked", base + 1), (cards[1].number, "blocked", base + 2)]
    document = json.loads((tmp_path / "delta.bin.sig").read_text())
    assert hotlist.verify_document(document, public_key=hotlist.hotlist_public_key()) == statement
    assert base64.b64decode(document["signature"]) == data[-hotlist.SIGNATURE_SIZE:]


@pytest.mark.parametrize(("where", "message"), [
    ("header", "does not match the signed sha256"),
    ("entry", "does not match the signed sha256"),
    ("digest", "does not match the signed sha256"),
    ("signature", "signature does not match"),
    ("truncated", "truncated"),
    ("appended", "longer than its header"),
])
def test_a_changed_byte_anywhere_fails_binary_verification(make_card, tmp_path, where, message):
    _listed_out_of_order(make_card)
    out = tmp_path / "hotlist.bin"
    _export("--out", str(out), "--format", "bin")
    data = bytearray(out.read_bytes())
    offsets = {"header": 6, "entry": hotlist.HEADER.size + 2, "digest": -hotlist.TRAILER_SIZE,
               "signature": -1}
    if where == "truncated":
        data = data[:-1]
    elif where == "appended":
        data += b"\0"
    else:
        data[offsets[where]] ^= 0x01

    with pytest.raises(hotlist.HotlistInvalid, match=message):
        hotlist.verify_bin(io.BytesIO(bytes(data)), public_key=hotlist.hotlist_public_key())


def _feed_document(response, fmt: str) -> dict:
    return {"format": fmt, "since": int(response["X-Hotlist-Since"]), "version": int(response["X-Hotlist-Version"]),
            "count": int(response["X-Hotlist-Count"]), "sha256": response["X-Hotlist-Sha256"],
            "signature": response["X-Hotlist-Signature"]}


def test_gates_download_the_feed_streamed_with_its_signed_statement(client, make_card):
    card = make_card("OCTO")
    version = _block(card)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {apikey_create(name='gate-4', scope='operator')[1]}"

    response = client.get("/feeds/hotlist", {"since": version - 1})

    assert response.status_code == 200 and response.streaming
    content = b"".join(response.streaming_content)
    assert content == f"{card.number},blocked,{version}\n".encode()
    assert response["Content-Length"] == str(len(content))
    assert response["X-Hotlist-Version"] == str(version)
    statement = hotlist.verify_csv(io.BytesIO(content), _feed_document(response, "csv"),
                                   public_key=response["X-Hotlist-Public-Key"])
    assert statement.count == 1
    binary = client.get("/feeds/hotlist", {"format": "bin"})
    statement = hotlist.verify_bin(io.BytesIO(b"".join(binary.streaming_content)),
                                   public_key=binary["X-Hotlist-Public-Key"])
    assert (statement.version, statement.count) == (version, int(binary["X-Hotlist-Count"]))
    assert client.get("/feeds/hotlist", {"since": "-1"}).status_code == 400
    assert client.get("/feeds/hotlist", {"format": "xml"}).status_code == 400


def test_the_feed_lists_card_numbers_only_to_an_operator_key(client, make_card):
    card = make_card("OCTO")
    _block(card)
    partner = apikey_create(name="maps", scope="partner")[1]
    for headers, status in [({}, 401), ({"HTTP_AUTHORIZATION": "Bearer nope"}, 401),
                            ({"HTTP_AUTHORIZATION": f"Bearer {partner}"}, 403)]:
        response = client.get("/feeds/hotlist", **headers)
        assert response.status_code == status and response["Content-Type"] == "application/problem+json"
        assert card.number not in response.content.decode()
    assert client.get("/feeds/hotlist")["WWW-Authenticate"].startswith("Bearer")


def test_a_delta_past_the_current_version_is_empty_and_still_signed(make_card):
    _block(make_card("OCTO"))
    out = io.BytesIO()

    document = hotlist.hotlist_export_to(out, since=hotlist.hotlist_version(), fmt="csv")

    assert out.getvalue() == b"" and document["count"] == 0
    hotlist.verify_csv(io.BytesIO(b""), document, public_key=hotlist.hotlist_public_key())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["csv", "bin"])
def test_a_card_listed_while_an_export_runs_waits_for_the_next_version(make_card, tmp_path, monkeypatch, fmt):
    before, during = make_card("OCTO"), make_card("YKT")
    listed = _block(before)
    read_version = hotlist.hotlist_version

    def version_then_another_listing():
        version = read_version()

        def list_during():
            _block(Card.objects.get(id=during.id))
            connection.close()

        writer = threading.Thread(target=list_during)
        writer.start()
        writer.join()
        return version

    monkeypatch.setattr(hotlist, "hotlist_version", version_then_another_listing)
    out = tmp_path / f"hotlist.{fmt}"

    document = hotlist.write_export(out, fmt=fmt)

    monkeypatch.undo()
    assert (document["version"], document["count"]) == (listed, 1)
    assert Card.objects.get(id=during.id).hotlist_version == listed + 1
    read = hotlist.read_csv if fmt == "csv" else hotlist.read_bin
    assert [e.number for e in read(out)] == [before.number]


def _generate_listed_cards(template: Card, n: int) -> int:
    """List n generated cards straight in SQL, after the current version; return the new version."""
    base = hotlist.hotlist_version()
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            "INSERT INTO cards_card (number, product_id, holder_id, status, physical, issued_at, transaction_count, "
            "plan_price_minor, plan_data_mb, plan_data_used_mb, hotlist_version, original_payment_ref) "
            "SELECT '9' || CAST(100000000000000 + seq.n AS TEXT), t.product_id, t.holder_id, 'closed', t.physical, "
            "t.issued_at, 0, 0, 0, 0, %s + seq.n, '' FROM seq CROSS JOIN cards_card t WHERE t.id = %s",
            [n, base, template.id])
    HotlistCounter.objects.update_or_create(id=1, defaults={"version": base + n})
    return base + n


@pytest.mark.parametrize("fmt", ["csv", "bin"])
def test_exporting_200000_cards_never_holds_the_list_in_memory(make_card, tmp_path, fmt):
    cards = 200_000
    version = _generate_listed_cards(make_card("OCTO"), cards)
    out = tmp_path / f"big.{fmt}"

    tracemalloc.start()
    try:
        document = hotlist.write_export(out, fmt=fmt)
        _, export_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        verify = hotlist.verify_csv if fmt == "csv" else hotlist.verify_bin
        extra = (json.loads(out.with_name(out.name + ".sig").read_text()),) if fmt == "csv" else ()
        statement = verify(out, *extra, public_key=hotlist.hotlist_public_key())
        _, verify_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Holding the list would take ~60 MB of Python objects (200,000 entries) plus the file itself.
    assert export_peak < 8 * 2**20, f"export peak {export_peak / 2**20:.1f} MiB"
    assert verify_peak < 4 * 2**20, f"verify peak {verify_peak / 2**20:.1f} MiB"
    assert (document["count"], document["version"], statement.count) == (cards, version, cards)
    read = hotlist.read_csv if fmt == "csv" else hotlist.read_bin
    first = next(iter(read(out)))
    assert (first.number, first.status, first.version) == ("9100000000000001", "closed", version - cards + 1)
