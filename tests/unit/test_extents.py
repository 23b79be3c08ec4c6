"""Extents (``mssfs.extents``) against a model: the set of offsets they stand for."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mssfs import extents

ranges = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=8)


@given(ranges, st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_extents_match_a_set_model(adds, start, end, limit):
    valid, model = [], set()
    for a, b in adds:
        valid = extents.add(valid, a, b)
        model |= set(range(a, b))
    assert {i for a, b in valid for i in range(a, b)} == model
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(valid))  # disjoint, merged
    gaps = extents.gaps(valid, start, end)
    assert {i for a, b in gaps for i in range(a, b)} == set(range(start, end)) - model
    assert all(a < b for a, b in gaps)
    clipped = extents.clip(valid, limit)
    assert {i for a, b in clipped for i in range(a, b)} == {i for i in model if i < limit}


def test_the_argument_is_never_changed():
    valid = [(0, 4), (8, 12)]
    extents.add(valid, 2, 10)
    extents.clip(valid, 5)
    extents.gaps(valid, 0, 20)
    assert valid == [(0, 4), (8, 12)]
    assert extents.add(valid, 2, 10) == [(0, 12)]
    assert extents.gaps(valid, 0, 20) == [(4, 8), (12, 20)]
    assert extents.clip(valid, 10) == [(0, 4), (8, 10)]
