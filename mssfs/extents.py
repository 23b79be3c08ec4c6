"""Extents: sets of byte offsets as sorted, disjoint, merged ``(start, end)`` ranges.

The write buffer records with them which ranges of a file's base object it holds
locally (fetched or written) and which were written since the base. Pure functions on
plain lists: none changes its argument (``add`` of an empty range returns it as it
is), so they need no lock of their own; the caller's lock guards the list it keeps.
"""

from __future__ import annotations

__all__ = ["Extents", "add", "clip", "gaps"]

Extents = list[tuple[int, int]]


def gaps(valid: Extents, start: int, end: int) -> Extents:
    """The parts of [start, end) not covered by ``valid``."""
    found, pos = [], start
    for a, b in valid:
        if b <= pos:
            continue
        if a >= end:
            break
        if a > pos:
            found.append((pos, a))
        pos = max(pos, b)
    if pos < end:
        found.append((pos, end))
    return found


def add(valid: Extents, start: int, end: int) -> Extents:
    """``valid`` with [start, end) merged in."""
    if start >= end:
        return valid
    merged, placed = [], False
    for a, b in valid:
        if b < start or a > end:
            if a > end and not placed:
                merged.append((start, end))
                placed = True
            merged.append((a, b))
        else:
            start, end = min(a, start), max(b, end)
    if not placed:
        merged.append((start, end))
    return sorted(merged)


def clip(valid: Extents, limit: int) -> Extents:
    """``valid`` without anything at or past ``limit``."""
    return [(a, min(b, limit)) for a, b in valid if a < limit]
