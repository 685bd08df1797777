"""``check_sequence_numbers`` checks by chunks: a bad id anywhere (past the first chunk
too) is named; a good batch returns its lengths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncbatch import InvalidEventError
from asyncbatch._sources._base import _DIGITS_CHUNK, check_sequence_numbers

GOOD = [str(10**20 + i) for i in range(3 * _DIGITS_CHUNK + 5)]


@pytest.mark.parametrize("position", [0, _DIGITS_CHUNK - 1, _DIGITS_CHUNK, 2 * _DIGITS_CHUNK + 7,
                                      len(GOOD) - 1])
@pytest.mark.parametrize("bad", ["", "12a", "\u0661\u0662", "-1", " 1", 12, None])
def test_a_bad_id_in_any_chunk_is_named(position: int, bad: Any) -> None:
    ids = GOOD[:]
    ids[position] = bad
    with pytest.raises(InvalidEventError) as caught:
        check_sequence_numbers(ids, "kinesis.sequenceNumber")
    assert caught.value.index == position


def test_a_good_batch_gives_its_lengths() -> None:
    assert check_sequence_numbers(GOOD, "x") == {21}
    assert check_sequence_numbers(["1", "22", "333"], "x") == {1, 2, 3}
    assert check_sequence_numbers([], "x") == set()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.from_regex(r"\A[0-9]{1,30}\Z"), st.text(max_size=4)),
                max_size=40))
def test_accepts_exactly_ascii_digit_strings(ids: list[str]) -> None:
    good = all(i and i.isascii() and i.isdigit() for i in ids)
    if good:
        assert check_sequence_numbers(ids, "x") == set(map(len, ids))
    else:
        with pytest.raises(InvalidEventError):
            check_sequence_numbers(ids, "x")
