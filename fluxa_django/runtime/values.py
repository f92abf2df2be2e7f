"""Validation and conversion helpers called by generated setters and getters.

Every error names ``Entity.field`` and says what was wrong; nothing here walks
schema metadata: generated code passes the constants it needs.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from fluxa_django.runtime.entity import EntityBase

S = TypeVar("S", bound=enum.StrEnum)
_UTC = datetime.UTC


def _kind(value: object) -> str:
    return type(value).__name__


def check_int(value: Any, lo: int, hi: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: expected int, got {_kind(value)}")
    number = int(value)
    if not lo <= number <= hi:
        raise ValueError(f"{where}: {number} is out of range {lo}..{hi}")
    return number


def check_bool(value: Any, where: str) -> int:
    if not isinstance(value, bool):
        raise TypeError(f"{where}: expected bool, got {_kind(value)}")
    return 1 if value else 0


def check_float(value: Any, precision: int | None, unsigned: bool, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where}: expected float, got {_kind(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(
            f"{where}: an int of {len(str(abs(int(value))))} digits is too large"
        ) from None
    if not math.isfinite(result):
        raise ValueError(f"{where}: {result} cannot be stored (not finite)")
    if precision is not None:
        result = round(result, precision) + 0.0  # + 0.0 turns -0.0 into 0.0
    if unsigned and result < 0:
        raise ValueError(f"{where}: {result} is negative but the column is unsigned")
    return result


def to_decimal(value: Any, digits: int, scale: int, unsigned: bool, where: str) -> Decimal:
    result = check_float(value, scale, unsigned, where)
    if abs(result) >= 10 ** (digits - scale):
        raise ValueError(f"{where}: {result} does not fit decimal({digits},{scale})")
    return Decimal(f"{result:.{scale}f}")


def check_str(value: Any, max_length: int, where: str, max_bytes: int | None = None) -> str:
    """A str of at most ``max_length`` characters (and ``max_bytes`` UTF-8 bytes: text
    columns count bytes) that MySQL can store: no lone surrogate."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected str, got {_kind(value)}")
    if len(value) > max_length:
        raise ValueError(f"{where}: {len(value)} characters exceed the maximum of {max_length}")
    text = value[:]  # the plain text (a subclass's __str__ is never called)
    if not text.isascii():
        size = utf8_size(text, where)
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{where}: {size} bytes (UTF-8) exceed the maximum of {max_bytes}")
    return text


def utf8_size(text: str, where: str) -> int:
    """The UTF-8 size of ``text``; ``ValueError`` for a lone surrogate (MySQL cannot store it)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{where}: the text holds a lone surrogate (not valid Unicode)") from None


def utc_naive(moment: datetime.datetime, where: str) -> datetime.datetime:
    """An aware datetime as naive UTC (how datetimes are stored); naive ones unchanged."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(_UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise ValueError(f"{where}: {moment!r} is out of the datetime range in UTC") from None


def check_bytes(value: Any, max_length: int, where: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{where}: expected bytes, got {_kind(value)}")
    result = bytes(value)
    if len(result) > max_length:
        raise ValueError(f"{where}: {len(result)} bytes exceed the maximum of {max_length}")
    return result


def check_date(value: Any, where: str) -> datetime.date:
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise TypeError(f"{where}: expected datetime.date, got {_kind(value)}")
    return value


def check_datetime(value: Any, where: str) -> datetime.datetime:
    """Second precision, naive UTC (an aware datetime is converted to UTC)."""
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"{where}: expected datetime.datetime, got {_kind(value)}")
    moment = utc_naive(value, where)
    if moment.year < 1000:
        raise ValueError(f"{where}: {moment} is before 1000-01-01, the first datetime MySQL stores")
    return moment.replace(microsecond=0) if moment.microsecond else moment


def to_enum_value(value: Any, allowed: frozenset[str], where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected str enum value, got {_kind(value)}")
    text = value.value if isinstance(value, enum.Enum) else str(value)
    if text not in allowed:
        raise ValueError(f"{where}: {text!r} is not one of {sorted(allowed)}")
    return text


def to_set_value(value: Any, order: tuple[str, ...], where: str) -> str:
    """An iterable of members/values -> MySQL SET text in definition order."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{where}: expected a set of values, got {_kind(value)}")
    chosen = set()
    for item in value:
        text = to_enum_value(item, frozenset(order), where)
        chosen.add(text)
    return ",".join(v for v in order if v in chosen)


def from_set_value(value: str, members: Mapping[str, S]) -> set[S]:
    return {members[v] for v in value.split(",") if v}


def from_set_text(value: str) -> set[str]:
    return {v for v in value.split(",") if v}


def entity_id(value: Any, expected: str, where: str) -> int | None:
    """The id of a referenced entity (``None`` for ``None``); it must be a ``expected``."""
    if value is None:
        return None
    provider = getattr(type(value), "_provider", None)
    if not isinstance(value, EntityBase) or provider is None or provider.entity_name != expected:
        raise TypeError(f"{where}: expected {expected} or None, got {_kind(value)}")
    return value.id


def check_reference(value: Any, id_max: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: expected an id (int), got {_kind(value)}")
    if not 1 <= value <= id_max:
        raise ValueError(f"{where}: {value} is not a valid id (1..{id_max})")
    return int(value)


def to_ids_json(value: Any, id_max: int, where: str, empty: str = "[]") -> str:
    """A list of ids as JSON; an empty list is ``empty`` (``""``, the zero of NOT NULL columns)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{where}: expected a list of ids, got {_kind(value)}")
    ids = [check_reference(v, id_max, where) for v in value]
    return json.dumps(ids, separators=(",", ":")) if ids else empty


def from_ids_json(value: str) -> list[int]:
    if not value:
        return []
    ids: list[int] = json.loads(value)
    return ids
