"""The hotlist: cards that gates and readers must refuse, as a full snapshot or the deltas since
a version. Each card blocked by a closure takes the next global version.

Two formats, both signed with Ed25519 (key CLOSEOUT_HOTLIST_SIGNING_KEY, a base64 32-byte seed,
or one derived from the master key):

- `csv`: one card a line, `number,status,version`, in version order; the signature travels in a
  detached `<file>.sig` JSON document `{format, since, version, count, sha256, alg, public_key,
  signature}` whose signature covers the file's bytes.
- `bin`: a compact file for readers with little memory: header `CLHL` | format version (1 byte)
  | since (u64) | version (u64) | count (u32), then per card 10 bytes of packed BCD digits
  (0xF fills), 1 status byte and the version (u64), all big-endian; the last 64 bytes are the
  signature over everything before them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from closeout.cards.models import Card
from closeout.integrations import crypto
from closeout.integrations.models import HotlistCounter

MAGIC = b"CLHL"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sBQQI")
ENTRY = struct.Struct(">10sBQ")
STATUS_CODES = {"blocked": 1, "closed": 2, "closing": 3, "active": 0}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
SIGNATURE_SIZE = 64


class HotlistInvalid(Exception):
    """A hotlist file failed its signature or format check."""


@dataclass(frozen=True)
class Entry:
    number: str
    status: str
    version: int


def signing_key():
    return crypto.kept_signing_key("hotlist_signing_key")


def hotlist_public_key() -> str:
    return crypto.public_key_b64(signing_key())


def hotlist_add(*, card: Card) -> int:
    """List the card (inside the caller's transaction) with the next version; listing twice keeps the first."""
    if card.hotlist_version is not None:
        return card.hotlist_version
    HotlistCounter.objects.get_or_create(id=1)
    counter = HotlistCounter.objects.select_for_update().get(id=1)
    counter.version += 1
    counter.save(update_fields=["version"])
    Card.objects.filter(id=card.id).update(hotlist_version=counter.version)
    card.hotlist_version = counter.version
    return counter.version


def hotlist_reserve(count: int) -> int:
    """Take `count` consecutive versions under one lock of the version counter; return the first.

    The caller writes them on its cards in the same transaction (bulk closure sets status and
    version in one UPDATE).
    """
    HotlistCounter.objects.get_or_create(id=1)
    counter = HotlistCounter.objects.select_for_update().get(id=1)
    first = counter.version + 1
    counter.version += count
    counter.save(update_fields=["version"])
    return first


def hotlist_add_many(*, cards: list[Card]) -> None:
    """List many cards under one lock of the version counter.

    `cards` need only `id` and `hotlist_version`; each one listed gets its new version.
    """
    from closeout.common.fastinsert import update_int_column

    fresh = [card for card in cards if card.hotlist_version is None]
    if not fresh:
        return
    first = hotlist_reserve(len(fresh))
    for offset, card in enumerate(fresh):
        card.hotlist_version = first + offset
    update_int_column(Card, "hotlist_version", [(card.id, card.hotlist_version) for card in fresh])


def hotlist_version() -> int:
    counter = HotlistCounter.objects.filter(id=1).first()
    return counter.version if counter else 0


def hotlist_entries(*, since: int = 0) -> tuple[list[Entry], int]:
    """Return the cards listed after `since`, in version order, and the current version."""
    current = hotlist_version()
    rows = (Card.objects.filter(hotlist_version__gt=since, hotlist_version__lte=current)
            .order_by("hotlist_version").values_list("number", "status", "hotlist_version"))
    return [Entry(number=n, status=s, version=v) for n, s, v in rows], current


def _bcd(number: str) -> bytes:
    if not number.isdigit() or len(number) > 20:
        raise ValueError("card numbers on the hotlist are up to 20 digits")
    nibbles = [int(d) for d in number] + [0xF] * (20 - len(number))
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, 20, 2))


def _unbcd(raw: bytes) -> str:
    digits = []
    for byte in raw:
        for nibble in (byte >> 4, byte & 0xF):
            if nibble == 0xF:
                return "".join(digits)
            digits.append(str(nibble))
    return "".join(digits)


def render_csv(entries: list[Entry]) -> bytes:
    return "".join(f"{e.number},{e.status},{e.version}\n" for e in entries).encode()


def render_bin(entries: list[Entry], *, since: int, version: int) -> bytes:
    body = HEADER.pack(MAGIC, FORMAT_VERSION, since, version, len(entries)) + b"".join(
        ENTRY.pack(_bcd(e.number), STATUS_CODES.get(e.status, 1), e.version) for e in entries)
    return body + signing_key().sign(body)


def signature_document(data: bytes, *, since: int, version: int, count: int, fmt: str) -> dict:
    return {
        "format": fmt, "since": since, "version": version, "count": count,
        "sha256": hashlib.sha256(data).hexdigest(), "alg": "Ed25519", "public_key": hotlist_public_key(),
        "signature": base64.b64encode(signing_key().sign(data)).decode(),
    }


def hotlist_export(*, since: int = 0, fmt: str = "csv") -> tuple[bytes, dict]:
    """Return the file's bytes and its signature document (for `bin` the signature is also inside)."""
    if fmt not in ("csv", "bin"):
        raise ValueError("format must be csv or bin")
    entries, version = hotlist_entries(since=since)
    data = render_csv(entries) if fmt == "csv" else render_bin(entries, since=since, version=version)
    return data, signature_document(data, since=since, version=version, count=len(entries), fmt=fmt)


def verify_csv(data: bytes, document: dict, *, public_key: str) -> list[Entry]:
    """:raises HotlistInvalid: unless the detached signature matches the file."""
    try:
        crypto.load_public_key(public_key).verify(base64.b64decode(document["signature"]), data)
    except (InvalidSignature, KeyError, ValueError, crypto.SignatureInvalid) as exc:
        raise HotlistInvalid("signature does not match") from exc
    out = []
    for line in data.decode().splitlines():
        number, status, version = line.split(",")
        out.append(Entry(number=number, status=status, version=int(version)))
    return out


def verify_bin(data: bytes, *, public_key: str) -> tuple[int, int, list[Entry]]:
    """Return (since, version, entries) of a signed binary hotlist.

    :raises HotlistInvalid: for a bad signature or a malformed file.
    """
    if len(data) < HEADER.size + SIGNATURE_SIZE:
        raise HotlistInvalid("file too short")
    body, signature = data[:-SIGNATURE_SIZE], data[-SIGNATURE_SIZE:]
    try:
        crypto.load_public_key(public_key).verify(signature, body)
    except (InvalidSignature, crypto.SignatureInvalid) as exc:
        raise HotlistInvalid("signature does not match") from exc
    magic, fmt, since, version, count = HEADER.unpack_from(body)
    if magic != MAGIC or fmt != FORMAT_VERSION or len(body) != HEADER.size + count * ENTRY.size:
        raise HotlistInvalid("not a hotlist file")
    entries = []
    for i in range(count):
        raw, status, entry_version = ENTRY.unpack_from(body, HEADER.size + i * ENTRY.size)
        entries.append(Entry(number=_unbcd(raw), status=STATUS_NAMES.get(status, "blocked"), version=entry_version))
    return since, version, entries


def write_export(path: str, *, since: int = 0, fmt: str = "csv") -> dict:
    """Write the hotlist file and `<path>.sig`; return the signature document."""
    data, document = hotlist_export(since=since, fmt=fmt)
    with open(path, "wb") as handle:
        handle.write(data)
    with open(f"{path}.sig", "w") as handle:
        json.dump(document, handle, indent=2)
    return document
