"""The hotlist: cards that gates and readers must refuse, as a full snapshot or the deltas since
a version. Each card blocked by a closure takes the next global version; a version is never
taken back, so the cards listed in (since, version] never change once `version` is committed.

An export is streamed: the cards are read in version order through a server-side cursor (on
PostgreSQL inside one REPEATABLE READ, READ ONLY transaction), bounded by the version current at
the start, written in chunks and hashed (SHA-256) as they go, so memory stays flat whatever the
size of the list. Ed25519 (key CLOSEOUT_HOTLIST_SIGNING_KEY, a base64 32-byte seed, or one derived
from the master key) then signs a small statement about the file, not the file itself:

    {"count":N,"format":"csv"|"bin","sha256":"<hex>","since":S,"version":V}

in its canonical JSON form (keys sorted, no spaces, ASCII). A verifier hashes the file in one
streaming pass, rebuilds the statement and checks the signature.

Two formats:

- `csv`: one card a line, `number,status,version\\n`, in version order, nothing else. `sha256`
  is over the whole file. The signature travels in a detached `<file>.sig` JSON document: the
  statement plus `alg` ("Ed25519"), `public_key` and `signature` (both base64).
- `bin`: a compact file for readers with little memory, self-verifying, all big-endian:

      header   25 bytes  "CLHL" | format version u8 (= 2) | since u64 | version u64 | count u32
      entries  19 bytes  card number as 10 bytes of packed BCD (0xF fills) | status u8 | version u64
      trailer  96 bytes  sha256 (32 bytes) | Ed25519 signature (64 bytes) over the statement

  `sha256` covers the header and the entries (everything before the trailer); the count in the
  header comes from a COUNT at the same snapshot bound. `<file>.sig` is written for this format
  too and carries the same statement and signature. Status codes: 0 active, 1 blocked, 2 closed,
  3 closing. Format version 1 (a signature over the raw bytes) is no longer written or read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import islice
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from django.db import connection, transaction

from closeout.cards.models import Card
from closeout.integrations import crypto
from closeout.integrations.models import HotlistCounter

FORMATS = ("csv", "bin")
MAGIC = b"CLHL"
FORMAT_VERSION = 2
HEADER = struct.Struct(">4sBQQI")
ENTRY = struct.Struct(">10sBQ")
DIGEST_SIZE = 32
SIGNATURE_SIZE = 64
TRAILER_SIZE = DIGEST_SIZE + SIGNATURE_SIZE
STATUS_CODES = {"active": 0, "blocked": 1, "closed": 2, "closing": 3}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
CHUNK_ROWS = 5_000
READ_BLOCK = 1 << 20


class HotlistInvalid(Exception):
    """A hotlist file failed its signature or format check."""


class UnableToExportHotlist(Exception):
    """The listed cards changed under a running export (versions are never reused, so they should not)."""


@dataclass(frozen=True)
class Entry:
    number: str
    status: str
    version: int


@dataclass(frozen=True)
class Statement:
    """What the signature covers: which list a file holds and the SHA-256 of its bytes."""

    format: str
    since: int
    version: int
    count: int
    sha256: str

    def canonical(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signing_key():
    return crypto.kept_signing_key("hotlist_signing_key")


def hotlist_public_key() -> str:
    return crypto.public_key_b64(signing_key())


def hotlist_add(*, card: Card) -> int:
    """List the card (inside the caller's transaction) with the next version; listing twice keeps the first."""
    if card.hotlist_version is not None:
        return card.hotlist_version
    version = hotlist_reserve(1)
    Card.objects.filter(id=card.id).update(hotlist_version=version)
    card.hotlist_version = version
    return version


def hotlist_reserve(count: int) -> int:
    """Take `count` consecutive versions and return the first; the caller writes them on its cards
    in the same transaction (bulk closure sets status and version in one UPDATE).

    The counter stays locked until commit: versions are gap-free and commit in order, so a reader
    asking for everything after version N never misses a card listed later.
    """
    from closeout.common.fastinsert import increment

    (last,) = increment(HotlistCounter, 1, "version", count)
    return last - count + 1


def hotlist_version() -> int:
    counter = HotlistCounter.objects.filter(id=1).first()
    return counter.version if counter else 0


@contextmanager
def _snapshot():
    """Run the export's reads against one snapshot of the database.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction, which also lets the server-side cursor
    live without WITH HOLD (that would copy the whole result on the server). Inside a caller's
    transaction its isolation stays. SQLite: no transaction (closeout's begin IMMEDIATE, which
    would stop every writer for the length of the export); one statement reads one snapshot, and
    the version bound keeps the count and the rows to the same cards.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _listed(*, since: int, version: int):
    return Card.objects.filter(hotlist_version__gt=since, hotlist_version__lte=version)


def _row_chunks(*, since: int, version: int) -> Iterator[list[tuple[str, str, int]]]:
    rows = (_listed(since=since, version=version).order_by("hotlist_version")
            .values_list("number", "status", "hotlist_version").iterator(chunk_size=CHUNK_ROWS))
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk


def hotlist_entries(*, since: int = 0, version: int | None = None) -> Iterator[Entry]:
    """Yield the cards listed after `since` up to `version` (default: the current one), in version order."""
    with _snapshot():
        bound = hotlist_version() if version is None else version
        for chunk in _row_chunks(since=since, version=bound):
            for number, status, entry_version in chunk:
                yield Entry(number=number, status=status, version=entry_version)


def _bcd(number: str) -> bytes:
    if not number.isdigit() or len(number) > 20:
        raise ValueError("card numbers on the hotlist are up to 20 digits")
    return bytes.fromhex(number.ljust(20, "f"))


def _unbcd(raw: bytes) -> str:
    digits = raw.hex().partition("f")[0]
    if not digits.isdigit() and digits:
        raise HotlistInvalid("a card number is not packed BCD")
    return digits


def _csv_chunk(chunk: list[tuple[str, str, int]]) -> bytes:
    return "".join([f"{number},{status},{version}\n" for number, status, version in chunk]).encode()


def _bin_chunk(chunk: list[tuple[str, str, int]]) -> bytes:
    pack = ENTRY.pack
    return b"".join([pack(_bcd(number), STATUS_CODES.get(status, 1), version) for number, status, version in chunk])


def signature_document(statement: Statement, signature: bytes) -> dict:
    return {**asdict(statement), "alg": "Ed25519", "public_key": hotlist_public_key(),
            "signature": base64.b64encode(signature).decode()}


def hotlist_export_to(out: BinaryIO, *, since: int = 0, fmt: str = "csv") -> dict:
    """Stream the hotlist after `since` into the binary writer `out`; return its signature document.

    :raises ValueError: for an unknown format or a negative `since`.
    :raises UnableToExportHotlist: if the number of cards changed under the export.
    """
    if fmt not in FORMATS:
        raise ValueError("format must be csv or bin")
    if since < 0:
        raise ValueError("since must be a non-negative version")
    digest = hashlib.sha256()
    render = _csv_chunk if fmt == "csv" else _bin_chunk
    count = 0
    with _snapshot():
        version = hotlist_version()
        if fmt == "bin":
            expected = _listed(since=since, version=version).count()
            header = HEADER.pack(MAGIC, FORMAT_VERSION, since, version, expected)
            digest.update(header)
            out.write(header)
        for chunk in _row_chunks(since=since, version=version):
            data = render(chunk)
            digest.update(data)
            out.write(data)
            count += len(chunk)
    if fmt == "bin" and count != expected:
        raise UnableToExportHotlist(f"counted {expected} cards but read {count}")
    statement = Statement(format=fmt, since=since, version=version, count=count, sha256=digest.hexdigest())
    signature = signing_key().sign(statement.canonical())
    if fmt == "bin":
        out.write(digest.digest() + signature)
    return signature_document(statement, signature)


def write_export(path: str | os.PathLike, *, since: int = 0, fmt: str = "csv") -> dict:
    """Write the hotlist file and `<path>.sig`, each complete or not at all; return the signature document.

    :raises ValueError: for an unknown format or a negative `since`.
    :raises UnableToExportHotlist: if the number of cards changed under the export.
    :raises OSError: when the file cannot be written there (a missing folder, a directory).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        temporary = tempfile.NamedTemporaryFile("wb", dir=folder, prefix=".hotlist-", delete=False)  # noqa: SIM115
    except OSError as exc:
        raise _naming(exc, path) from None
    with temporary as handle:
        try:
            document = hotlist_export_to(handle, since=since, fmt=fmt)
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    sig_path = f"{path}.sig"
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)  # as a plain open() would have made it, not the temp file's 0600
        with open(f"{sig_path}.tmp", "w") as sig:
            json.dump(document, sig, indent=2)
        os.replace(handle.name, path)
        os.replace(f"{sig_path}.tmp", sig_path)
    except BaseException as exc:  # e.g. `path` is a directory: leave no half-made files behind
        for leftover in (handle.name, f"{sig_path}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        if isinstance(exc, OSError) and exc.filename == handle.name:
            raise _naming(exc, path) from None
        raise
    return document


def _naming(exc: OSError, path: str) -> OSError:
    """The same error said of the file the caller asked for, not of the hidden temporary one beside it."""
    return type(exc)(exc.errno, exc.strerror, path)


def verify_document(document: dict, *, public_key: str) -> Statement:
    """Return the statement of a signature document once its signature checks out.

    :raises HotlistInvalid: for a malformed document or a signature that does not match it.
    """
    try:
        statement = Statement(**{field: document[field] for field in ("format", "since", "version", "count",
                                                                       "sha256")})
        signature = base64.b64decode(document["signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise HotlistInvalid("malformed signature document") from exc
    if (statement.format not in FORMATS or not all(isinstance(getattr(statement, f), int)
                                                   for f in ("since", "version", "count"))
            or not isinstance(statement.sha256, str)):
        raise HotlistInvalid("malformed signature document")
    _check_signature(statement, signature, public_key=public_key)
    return statement


def _check_signature(statement: Statement, signature: bytes, *, public_key: str) -> None:
    try:
        crypto.load_public_key(public_key).verify(signature, statement.canonical())
    except (InvalidSignature, crypto.SignatureInvalid) as exc:
        raise HotlistInvalid("signature does not match the signed statement (wrong key or altered "
                             "signature, version, count or digest)") from exc


@contextmanager
def _opened(source: str | os.PathLike | BinaryIO):
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield handle
    else:
        yield source


def verify_csv(source: str | os.PathLike | BinaryIO, document: dict, *, public_key: str) -> Statement:
    """Check a CSV hotlist (a path or a binary reader) against its signature document in one
    streaming pass; return the signed statement. Read the entries with `read_csv` afterwards.

    :raises HotlistInvalid: naming what does not match.
    """
    statement = verify_document(document, public_key=public_key)
    if statement.format != "csv":
        raise HotlistInvalid(f"the signature is for a {statement.format} file, not csv")
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    with _opened(source) as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
            lines += block.count(b"\n")
            last = block[-1:]
    if digest.hexdigest() != statement.sha256:
        raise HotlistInvalid("file content does not match the signed sha256 (altered or truncated)")
    if lines != statement.count or last != b"\n":
        raise HotlistInvalid(f"file has {lines} lines but the signature says {statement.count}")
    return statement


def read_csv(source: str | os.PathLike | BinaryIO) -> Iterator[Entry]:
    """Yield the entries of a CSV hotlist, one line at a time (verify it first).

    :raises HotlistInvalid: for a line that is not `number,status,version`.
    """
    with _opened(source) as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                number, status, version = line.decode("ascii").rstrip("\n").split(",")
                yield Entry(number=number, status=status, version=int(version))
            except ValueError as exc:
                raise HotlistInvalid(f"line {line_number} is not number,status,version") from exc


def _read_exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise HotlistInvalid("file is shorter than its header says (truncated)")
    return data


def _read_header(handle: BinaryIO) -> tuple[bytes, int, int, int]:
    raw = handle.read(HEADER.size)
    if len(raw) != HEADER.size:
        raise HotlistInvalid("file too short for a hotlist header")
    magic, file_format, since, version, count = HEADER.unpack(raw)
    if magic != MAGIC:
        raise HotlistInvalid("not a hotlist file (no CLHL header)")
    if file_format != FORMAT_VERSION:
        raise HotlistInvalid(f"unsupported hotlist format version {file_format}")
    return raw, since, version, count


def verify_bin(source: str | os.PathLike | BinaryIO, *, public_key: str) -> Statement:
    """Check a binary hotlist (a path or a binary reader) against its own trailer in one
    streaming pass; return the signed statement. Read the entries with `read_bin` afterwards.

    :raises HotlistInvalid: naming what does not match.
    """
    with _opened(source) as handle:
        header, since, version, count = _read_header(handle)
        digest = hashlib.sha256(header)
        remaining = count * ENTRY.size
        while remaining:
            block = _read_exact(handle, min(READ_BLOCK, remaining))
            digest.update(block)
            remaining -= len(block)
        trailer = _read_exact(handle, TRAILER_SIZE)
        if handle.read(1):
            raise HotlistInvalid("file is longer than its header says")
    if trailer[:DIGEST_SIZE] != digest.digest():
        raise HotlistInvalid("file content does not match the signed sha256 (altered or truncated)")
    statement = Statement(format="bin", since=since, version=version, count=count, sha256=digest.hexdigest())
    _check_signature(statement, trailer[DIGEST_SIZE:], public_key=public_key)
    return statement


def read_bin(source: str | os.PathLike | BinaryIO) -> Iterator[Entry]:
    """Yield the entries of a binary hotlist, one at a time (verify it first).

    :raises HotlistInvalid: for a malformed file.
    """
    with _opened(source) as handle:
        count = _read_header(handle)[3]
        for _ in range(count):
            raw, status, version = ENTRY.unpack(_read_exact(handle, ENTRY.size))
            yield Entry(number=_unbcd(raw), status=STATUS_NAMES.get(status, "blocked"), version=version)
