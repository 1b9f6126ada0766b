"""The hotlist: every card a closure blocks takes the next version; gates download a signed
snapshot or the deltas since their version, as CSV or a compact binary file."""

from __future__ import annotations

import base64
import json

import pytest

from closeout import cli
from closeout.cards.models import Card
from closeout.integrations.card_system import hotlist

pytestmark = pytest.mark.django_db


def _block(card: Card) -> int:
    Card.objects.filter(id=card.id).update(status="blocked")
    card.status = "blocked"
    return hotlist.hotlist_add(card=card)


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

    entries, version = hotlist.hotlist_entries(since=v1)

    assert [e.number for e in entries] == [b.number, c.number]
    assert version == v1 + 2


def test_the_csv_export_is_one_card_a_line_and_its_signature_verifies(make_card, tmp_path):
    cards = [make_card("OCTO"), make_card("YKT")]
    versions = [_block(c) for c in cards]
    out = tmp_path / "hotlist.csv"

    args = cli._parser().parse_args(["hotlist", "export", "--out", str(out), "--format", "csv"])
    assert cli.COMMANDS["hotlist"](args) == 0

    data = out.read_bytes()
    document = json.loads((tmp_path / "hotlist.csv.sig").read_text())
    assert data.decode().splitlines() == [f"{c.number},blocked,{v}" for c, v in zip(cards, versions, strict=True)]
    entries = hotlist.verify_csv(data, document, public_key=hotlist.hotlist_public_key())
    assert [e.number for e in entries] == [c.number for c in cards]
    with pytest.raises(hotlist.HotlistInvalid):
        hotlist.verify_csv(data.replace(b"blocked", b"active!"), document, public_key=hotlist.hotlist_public_key())


def test_the_binary_export_is_compact_signed_and_reads_back(make_card, tmp_path):
    cards = [make_card("OCTO"), make_card("TSIM", plan_days_left=3)]
    base = _block(cards[0]) - 1
    _block(cards[1])
    out = tmp_path / "delta.bin"

    args = cli._parser().parse_args(["hotlist", "export", "--out", str(out), "--since", str(base), "--format", "bin"])
    cli.COMMANDS["hotlist"](args)

    data = out.read_bytes()
    assert len(data) == hotlist.HEADER.size + 2 * hotlist.ENTRY.size + hotlist.SIGNATURE_SIZE
    since, version, entries = hotlist.verify_bin(data, public_key=hotlist.hotlist_public_key())
    assert (since, version) == (base, base + 2)
    assert [(e.number, e.status) for e in entries] == [(c.number, "blocked") for c in cards]
    tampered = bytearray(data)
    tampered[hotlist.HEADER.size + 1] ^= 0x11
    with pytest.raises(hotlist.HotlistInvalid):
        hotlist.verify_bin(bytes(tampered), public_key=hotlist.hotlist_public_key())


def test_gates_download_the_feed_with_its_version_and_signature(client, make_card):
    card = make_card("OCTO")
    version = _block(card)

    response = client.get("/feeds/hotlist", {"since": version - 1})

    assert response.status_code == 200
    assert response.content.decode() == f"{card.number},blocked,{version}\n"
    assert response["X-Hotlist-Version"] == str(version)
    public = hotlist.crypto.load_public_key(response["X-Hotlist-Public-Key"])
    public.verify(base64.b64decode(response["X-Hotlist-Signature"]), response.content)
    assert client.get("/feeds/hotlist", {"since": "-1"}).status_code == 400
    assert client.get("/feeds/hotlist", {"format": "xml"}).status_code == 400


def test_a_delta_past_the_current_version_is_empty(make_card):
    _block(make_card("OCTO"))
    data, document = hotlist.hotlist_export(since=hotlist.hotlist_version(), fmt="csv")

    assert data == b"" and document["count"] == 0
