"""The Redis row-cache format: how a row travels between MySQL, Redis and the local tier.

A cached row is one Redis string holding the msgpack array ``[stamp, row]``:

- ``stamp``: the entity's schema stamp (generated from its column definitions);
  an entry written under another definition never decodes, it is a miss.
- ``row``: the column values in definition order, exactly as mysqlclient returns
  them: ``int``/``float``/``str``/``bytes``/``None`` natively, ``Decimal`` as
  ext type 1 (its text), ``datetime.date`` as ext type 2 and
  ``datetime.datetime`` as ext type 3 (ISO 8601 text).

Control values start with a NUL byte, which no msgpack array does:

- ``\\x00N`` — the row does not exist ("not found" marker);
- ``\\x00L<token>`` — a reader's fill lease (the key is being loaded);
- ``\\x00W`` — a writer's intent marker (a flush is changing the row).

Reading is ``msgpack.unpackb`` only: nothing in Redis can run code here.
"""

from __future__ import annotations

import datetime
import enum
import functools
import hashlib
import operator
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgpack

NOT_FOUND = b"\x00N"
WRITING = b"\x00W"
LEASE_PREFIX = b"\x00L"
_CONTROL = 0

_EXT_DECIMAL = 1
_EXT_DATE = 2
_EXT_DATETIME = 3
_EXT_BIG_INT = 4  # unique-index tokens only (decode_row never accepts it)

_first, _second = operator.itemgetter(0), operator.itemgetter(1)


class CodecError(ValueError):
    """A cached value could not be decoded (treated as a miss)."""


_ext_type = msgpack.ExtType
_new_tuple = tuple.__new__


def _default(value: Any) -> msgpack.ExtType:
    """msgpack's fallback for the values of a row. Called once per datetime, date and
    Decimal of every row written (cache fills, async flush records): dispatched on the
    exact type first, and the ``ExtType`` built without its constructor's checks (the
    code and the bytes are right by construction), which halves the encoding."""
    kind = type(value)
    if kind is datetime.datetime:
        data: msgpack.ExtType = _new_tuple(_ext_type, (_EXT_DATETIME, value.isoformat().encode()))
        return data
    if kind is Decimal:
        data = _new_tuple(_ext_type, (_EXT_DECIMAL, str(value).encode()))
        return data
    if kind is datetime.date:
        data = _new_tuple(_ext_type, (_EXT_DATE, value.isoformat().encode()))
        return data
    if isinstance(value, Decimal):  # (subclasses)
        return msgpack.ExtType(_EXT_DECIMAL, str(value).encode())
    if isinstance(value, datetime.datetime):
        return msgpack.ExtType(_EXT_DATETIME, value.isoformat().encode())
    if isinstance(value, datetime.date):
        return msgpack.ExtType(_EXT_DATE, value.isoformat().encode())
    if isinstance(value, int):  # beyond 64 bits: only in a lookup, never in a row
        return msgpack.ExtType(_EXT_BIG_INT, str(value).encode())
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _ext(code: int, data: bytes) -> Any:
    if code == _EXT_DECIMAL:
        return Decimal(data.decode())
    if code == _EXT_DATETIME:
        return datetime.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return datetime.date.fromisoformat(data.decode())
    raise CodecError(f"unknown msgpack extension type {code}")


def encode_row(stamp: str, row: Any) -> bytes:
    """``[stamp, row]`` as msgpack bytes."""
    data: bytes = msgpack.packb([stamp, tuple(row)], default=_default, use_bin_type=True)
    return data


def decode_row(stamp: str, data: bytes) -> tuple[Any, ...] | None:
    """The row tuple of a cached value, or ``None`` when it is not a current entry.

    ``None`` covers another schema stamp and any undecodable value (a bad
    decimal or date text included); callers check for the control values
    (``data[0] == 0``) before, and that the row's id is the key's.
    """
    try:
        decoded = msgpack.unpackb(data, ext_hook=_ext, use_list=False, raw=False)
    except Exception:  # whatever a corrupt or forged value makes a decoder raise
        return None
    if type(decoded) is not tuple or len(decoded) != 2 or decoded[0] != stamp:
        return None
    row = decoded[1]
    if type(row) is not tuple:
        return None
    return row


def decode_rows(
    stamp: str, values: list[Any], ids: Sequence[int], width: int
) -> dict[int, tuple[Any, ...] | None] | None:
    """``{id: row}`` of several entries, or ``None`` unless every value is a current entry
    of its id with ``width`` columns (the caller then looks at the values one by one:
    misses, markers, a corrupt value).

    The values are decoded as one msgpack array (one call into the decoder for the
    batch, not one per value). Checked before: every value is present, not empty and
    starts with the entry header (``[stamp, ...``: no control value, no other stamp);
    after: the batch is exactly ``len(ids)`` entries, each ``[stamp, row]`` with a
    tuple row of ``width`` columns whose id is its key's. A value that is not exactly
    one entry shifts the framing and breaks one of these; what could still pass is a
    forger's pair of values that splits entries across keys so that the shifted bytes
    are again valid entries of the right ids — rows he could have written directly.
    The value-by-value path the caller falls back to checks each value alone."""
    if len(values) != len(ids) or not all(values):  # (a missing key is None, b"" empty)
        return None
    try:
        if not all(map(operator.methodcaller("startswith", stamp_prefix(stamp)), values)):
            return None
        entries = msgpack.unpackb(
            b"\xdd" + len(values).to_bytes(4, "big") + b"".join(values),
            ext_hook=_ext,
            use_list=False,
            raw=False,
        )
        rows = list(map(_second, entries))
        if (
            set(map(len, entries)) != {2}
            or set(map(_first, entries)) != {stamp}
            or set(map(type, rows)) != {tuple}
            or set(map(len, rows)) != {width}
            or list(map(_first, rows)) != list(ids)
        ):
            return None
    except Exception:  # None among the values, or whatever a corrupt value makes it raise
        return None
    return dict(zip(ids, rows, strict=True))


@functools.cache
def stamp_prefix(stamp: str) -> bytes:
    """The bytes every current entry starts with (msgpack array header + stamp)."""
    data: bytes = msgpack.packb([stamp, ()], use_bin_type=True)
    return data[:-1]  # without the empty row


def is_control(data: bytes) -> bool:
    return not data or data[0] == _CONTROL


def index_value(value: Any) -> Any:
    """A unique-index value in its stored (row) form: bools as ints, enums as their values."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def unique_token(values: tuple[Any, ...]) -> str:
    """A stable hash of the values of a unique index, in their stored (row) form.

    The values are msgpack-encoded as one array before hashing: each value is
    typed and length-prefixed, so two different tuples never share an encoding
    (no separator a value could contain). Values that differ in form (``1.5``
    vs ``Decimal('1.50')``) give another token and simply never fill; a lookup
    always checks the row it finds against the values it asked for.
    """
    data = msgpack.packb([index_value(v) for v in values], default=_default, use_bin_type=True)
    return hashlib.sha256(data).hexdigest()[:32]
