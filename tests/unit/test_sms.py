"""SMS segments as carriers count them (domain/sms.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.sms import GSM7, GSM7_BASIC, GSM7_EXTENSION, UCS2, measure


@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("", GSM7, 0),
    ("a" * 160, GSM7, 1),
    ("a" * 161, GSM7, 2),
    ("a" * 306, GSM7, 2),
    ("a" * 307, GSM7, 3),
    ("€" * 80, GSM7, 1),  # 160 septets: each extension character is an escape and itself
    ("€" * 81, GSM7, 2),
    ("é" * 160, GSM7, 1),  # in the basic table
    ("ç" * 70, UCS2, 1),  # not GSM-7 (only Ç is)
    ("ç" * 71, UCS2, 2),
    ("ç" * 134, UCS2, 2),
    ("ç" * 135, UCS2, 3),
    ("😀" * 35, UCS2, 1),  # 70 UTF-16 code units
    ("😀" * 36, UCS2, 2),
])
def test_segments_at_the_boundaries_of_each_encoding(text, encoding, segments):
    size = measure(text)

    assert (size.encoding, size.segments) == (encoding, segments)


def test_an_escape_pair_never_splits_across_two_segments():
    # 152 septets, then a two-septet "€" that would straddle the 153-septet boundary.
    text = "a" * 152 + "€" + "a" * 10

    size = measure(text)

    assert size.units == 164
    assert size.segments == 2  # 152 | 2 + 10 (a split pair would still be 2 — see next test)
    assert measure("a" * 152 + "€" * 77).segments == 3  # 152 | 76×2 | 2: the pair moved whole


def test_a_surrogate_pair_never_splits_across_two_segments():
    assert measure("ç" * 66 + "😀" + "ç" * 66).segments == 3  # 66 | 2 + 65 | 1: not 67 | 67 | 1 → 2
    assert measure("ç" * 66 + "ç" + "ç" * 66).segments == 2


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION) + ["ç", "😀", "Ж"], max_size=700))
def test_segments_hold_every_unit_and_no_segment_overflows(text):
    size = measure(text)
    room = 153 if size.encoding == GSM7 else 67
    single = 160 if size.encoding == GSM7 else 70
    if size.units <= single:
        assert size.segments == (1 if text else 0)
    else:
        # every segment but the last is full, or short by the one unit a pair could not split
        assert (size.segments - 1) * (room - 1) < size.units <= size.segments * room
