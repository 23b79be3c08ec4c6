"""Staging: in memory while small and within the shared budget, else a private file;
the same bytes either way."""

from __future__ import annotations

import os
import stat

import pytest

from mssfs.staging import MemoryBudget, Staging

KiB = 1024


def test_small_writes_stay_in_memory_with_holes_as_zeros(tmp_path):
    budget = MemoryBudget(64 * KiB)
    s = Staging(str(tmp_path), 16 * KiB, budget)
    s.pwrite(b"abc", 0)
    s.pwrite(b"xyz", 10)  # a hole of 7 bytes
    assert s.in_memory and s.path is None and os.listdir(tmp_path) == []
    assert (len(s), s.pread(100, 0)) == (13, b"abc" + bytes(7) + b"xyz")
    assert s.contents(5) == b"abc\0\0"
    assert budget.in_use == 16 * KiB
    s.close()
    assert budget.in_use == 0


@pytest.mark.parametrize("how", ["write", "truncate", "fileno"])
def test_moving_to_a_file_keeps_every_byte(tmp_path, how):
    budget = MemoryBudget(64 * KiB)
    s = Staging(str(tmp_path / "staging"), 16 * KiB, budget)
    s.pwrite(b"head", 0)
    s.pwrite(b"tail", 100)
    if how == "write":
        s.pwrite(b"far", 20 * KiB)
        expected_len = 20 * KiB + 3
    elif how == "truncate":
        s.truncate(20 * KiB)
        expected_len = 20 * KiB
    else:
        s.fileno()
        expected_len = 104
    assert not s.in_memory and budget.in_use == 0
    assert s.path is not None and os.path.getsize(s.path) == expected_len
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "staging").st_mode) == 0o700
    assert s.pread(104, 0) == b"head" + bytes(96) + b"tail"
    assert s.recovery_source() == s.fileno()
    path = s.path
    s.close()
    assert not os.path.exists(path)


def test_truncate_in_memory_shrinks_and_grows_with_zeros(tmp_path):
    s = Staging(str(tmp_path), 16 * KiB, MemoryBudget(16 * KiB))
    s.pwrite(b"0123456789", 0)
    s.truncate(4)
    s.truncate(6)
    assert s.in_memory and s.pread(10, 0) == b"0123\0\0"
    assert s.recovery_source() == b"0123\0\0"
    s.close()


def test_an_exhausted_budget_starts_with_a_file(tmp_path):
    budget = MemoryBudget(16 * KiB)
    first = Staging(str(tmp_path), 16 * KiB, budget)
    second = Staging(str(tmp_path), 16 * KiB, budget)  # no room left
    assert first.in_memory and not second.in_memory and second.path is not None
    first.close()
    third = Staging(str(tmp_path), 16 * KiB, budget)  # the reservation came back
    assert third.in_memory
    second.close()
    third.close()
    assert os.listdir(tmp_path) == []


def test_without_a_memory_limit_it_is_a_file_from_the_start(tmp_path):
    s = Staging(str(tmp_path))
    assert not s.in_memory and s.path is not None
    s.pwrite(b"x", 0)
    assert s.pread(1, 0) == b"x"
    s.close()
