"""Whether a typed name is the holder's: forgiving about order, case, width and punctuation,
never about the letters themselves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from closeout.identity.documents import same_name

parts = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz陈陳大文明", min_size=1, max_size=8),
                 min_size=1, max_size=4)


@given(parts, st.randoms(use_true_random=False))
def test_the_same_parts_in_any_order_and_case_are_the_same_name(names, rng):
    shuffled = names[:]
    rng.shuffle(shuffled)
    assert same_name(", ".join(part.upper() for part in shuffled), " ".join(names))


@given(parts, st.text(alphabet="abcdefghijklmnopqrstuvwxyz陈", min_size=1, max_size=5))
def test_a_part_more_is_another_name(names, extra):
    assert not same_name(" ".join([*names, extra]), " ".join(names))


@given(parts)
def test_an_empty_or_blank_name_matches_nobody(names):
    assert not same_name("", " ".join(names)) and not same_name(" ,. ", " ".join(names))


def test_full_width_letters_and_joined_given_names_are_read_as_typed():
    assert same_name("ＣＨＡＮ　Ｔａｉ　Ｍａｎ", "CHAN Tai Man")
    assert same_name("Chan Taiman", "CHAN Tai-man")
    assert same_name("陈 大文", "陈大文")
    assert same_name("陳大文", "陈大文") and same_name("楊艷", "杨艳")  # traditional for simplified
    assert not same_name("陈小文", "陈大文")
    assert not same_name("Chan Tai", "CHAN Tai Man")
