"""The row-cache codec's batch decoder: one pass over many entries, never a wrong row."""

from __future__ import annotations

import datetime
from decimal import Decimal

from fluxa_django.runtime import codec

STAMP = "0123456789ab"


def _rows(count: int) -> list[tuple[object, ...]]:
    moment = datetime.datetime(2024, 5, 1, 12, 30)
    return [(i, f"name {i}", Decimal("9.99"), moment, None, b"\x00\xff") for i in range(count)]


def test_a_batch_decodes_to_the_rows_of_value_by_value_decoding() -> None:
    rows = _rows(50)
    values = [codec.encode_row(STAMP, row) for row in rows]
    ids = [int(str(row[0])) for row in rows]
    decoded = codec.decode_rows(STAMP, values, ids, 6)
    assert decoded == {i: codec.decode_row(STAMP, v) for i, v in zip(ids, values, strict=True)}
    assert decoded == dict(zip(ids, rows, strict=True))


def test_a_batch_with_anything_off_is_refused_whole() -> None:
    values = [codec.encode_row(STAMP, row) for row in _rows(3)]
    two_in_one = values[0] + values[1]  # a forged value holding two entries
    truncated = values[1][:-3]
    other_stamp = codec.encode_row("ba9876543210", _rows(2)[1])
    other_id = values[0]  # a current entry of another row
    narrower = codec.encode_row(STAMP, _rows(2)[1][:5])
    not_a_pair = codec.encode_row(STAMP, ())[:-1] + b"\x01"
    for bad in (
        b"",  # an empty value (the one-by-one path takes the lease for it)
        two_in_one,
        truncated,
        other_stamp,
        other_id,
        narrower,
        not_a_pair,
        b"\xc1",
        codec.NOT_FOUND,
        codec.WRITING,
        None,
    ):
        assert codec.decode_rows(STAMP, [values[0], bad, values[2]], [0, 1, 2], 6) is None, bad


def test_a_batch_accepts_ids_of_any_sequence_and_refuses_a_count_mismatch() -> None:
    rows = _rows(4)
    values = [codec.encode_row(STAMP, row) for row in rows]
    expected = dict(zip(range(4), rows, strict=True))
    assert codec.decode_rows(STAMP, values, (0, 1, 2, 3), 6) == expected
    assert codec.decode_rows(STAMP, values, range(4), 6) == expected
    assert codec.decode_rows(STAMP, values[:3], [0, 1, 2, 3], 6) is None
    assert codec.decode_rows(STAMP, values, [0, 1, 2], 6) is None
    assert codec.decode_rows(STAMP, values, [0, 2, 1, 3], 6) is None  # in the keys' order


def test_values_that_shift_the_framing_between_keys_are_refused() -> None:
    """An empty value before a value holding two entries, or one entry split across two
    keys, decode as a whole to the right number of entries: each value is checked to
    start an entry, so the batch is refused (the value-by-value path decides)."""
    a, b = (codec.encode_row(STAMP, row) for row in _rows(2))
    assert codec.decode_rows(STAMP, [b"", a + b], [0, 1], 6) is None
    assert codec.decode_rows(STAMP, [a[:5], a[5:] + b], [0, 1], 6) is None
    assert codec.decode_rows(STAMP, [a, b], [0, 1], 6) == dict(enumerate(_rows(2)))
