"""Reads: ETag-pinned handles, block requests, close-to-open revalidation."""

import os

import pytest

from mssfs.errors import BadFileHandle, IsADirectory, NotFound, errno_for
from mssfs.store.errors import PreconditionFailed

MiB = 1024 * 1024


@pytest.fixture
def big(env):
    data = bytes(range(256)) * (16 * MiB // 256)
    env.put("big.bin", data)
    env.fs.getattr("/big.bin")
    env.store.reset_counts()
    return data


def test_random_4k_read_costs_one_get_and_rereading_none(env, big):
    fh = env.fs.open("/big.bin", os.O_RDONLY)
    offset = 5 * MiB + 12345
    assert env.fs.read("/big.bin", fh, offset, 4096) == big[offset : offset + 4096]
    assert env.store.counts["GetObject"] == 1
    assert env.store.counts["HeadObject"] == 0  # the stat entry was fresh
    assert env.fs.read("/big.bin", fh, offset, 4096) == big[offset : offset + 4096]
    assert env.store.counts["GetObject"] == 1
    env.fs.release("/big.bin", fh)


def test_whole_file_and_reads_past_the_end(env):
    env.put("s.txt", b"small")
    fh = env.fs.open("/s.txt", os.O_RDONLY)
    assert env.fs.read("/s.txt", fh, 0, 100) == b"small"
    assert env.fs.read("/s.txt", fh, 3, 100) == b"ll"
    assert env.fs.read("/s.txt", fh, 5, 100) == b""
    assert env.fs.read("/s.txt", fh, 500, 100) == b""
    env.fs.release("/s.txt", fh)


def test_empty_file(env):
    env.put("empty", b"")
    assert env.read_file("/empty") == b""


def test_open_revalidates_a_stale_entry_only(env):
    env.put("f", b"one")
    env.fs.getattr("/f")
    env.store.reset_counts()
    env.fs.release("/f", env.fs.open("/f", os.O_RDONLY))
    assert env.store.counts["HeadObject"] == 0
    env.put("f", b"second")  # another client overwrites
    env.clock.advance(env.stat_ttl + 1)
    assert env.read_file("/f") == b"second"
    assert env.store.counts["HeadObject"] == 1


def test_a_handle_stays_pinned_to_the_version_it_opened(env, big):
    fh = env.fs.open("/big.bin", os.O_RDONLY)
    assert env.fs.read("/big.bin", fh, 0, 10) == big[:10]
    env.put("big.bin", b"overwritten elsewhere" * 1000)
    with pytest.raises(PreconditionFailed) as raised:
        env.fs.read("/big.bin", fh, 12 * MiB, 10)
    assert errno_for(raised.value) == 116  # ESTALE, not mixed bytes
    env.fs.release("/big.bin", fh)


def test_open_errors(env):
    env.put("d/x", b"1")
    with pytest.raises(IsADirectory):
        env.fs.open("/d", os.O_RDONLY)
    with pytest.raises(NotFound):
        env.fs.open("/nope", os.O_RDONLY)
    fh = env.fs.open("/d/x", os.O_RDONLY)
    with pytest.raises(BadFileHandle):
        env.fs.write("/d/x", fh, 0, b"no")
    env.fs.release("/d/x", fh)
    with pytest.raises(BadFileHandle):
        env.fs.read("/d/x", fh, 0, 1)


def test_write_only_handle_cannot_read(env):
    env.put("w", b"data")
    fh = env.fs.open("/w", os.O_WRONLY)
    with pytest.raises(BadFileHandle):
        env.fs.read("/w", fh, 0, 4)
    env.fs.release("/w", fh)


def test_reader_sees_dirty_data_of_a_writer_of_the_same_file(env):
    env.put("shared", b"aaaa")
    wfh = env.fs.open("/shared", os.O_WRONLY)
    env.fs.write("/shared", wfh, 0, b"bb")
    rfh = env.fs.open("/shared", os.O_RDONLY)
    assert env.fs.read("/shared", rfh, 0, 10) == b"bbaa"
    env.fs.flush("/shared", wfh)
    env.fs.release("/shared", wfh)
    assert env.fs.read("/shared", rfh, 0, 10) == b"bbaa"
    env.fs.release("/shared", rfh)


def _keeps(env, path: str, flags: int = os.O_RDONLY) -> bool:
    fh = env.fs.open(path, flags)
    try:
        return env.fs.keep_cache(fh)
    finally:
        env.fs.release(path, fh)


def test_the_kernel_keeps_its_pages_only_for_the_same_version(env):
    env.put("f", b"one")
    assert not _keeps(env, "/f")  # first open: whatever the kernel holds is dropped
    assert _keeps(env, "/f")  # same ETag: a re-read comes from the page cache
    env.put("f", b"two")  # another client overwrites
    env.clock.advance(env.stat_ttl + 1)  # close-to-open sees the new ETag
    assert not _keeps(env, "/f")
    assert env.read_file("/f") == b"two"
    assert _keeps(env, "/f")


def test_pages_are_dropped_after_a_write_through_the_mount(env):
    env.put("f", b"one")
    assert not _keeps(env, "/f")
    fh = env.fs.open("/f", os.O_WRONLY)
    assert not env.fs.keep_cache(fh)
    env.fs.write("/f", fh, 0, b"ONE")
    env.fs.release("/f", fh)
    assert not _keeps(env, "/f")  # a new version: the next open drops the pages
    assert env.read_file("/f") == b"ONE"
    assert _keeps(env, "/f")


def test_pages_of_a_renamed_or_recreated_file_are_not_kept(env):
    env.put("a", b"aaa")
    env.put("b", b"bbb")
    assert not _keeps(env, "/a") and not _keeps(env, "/b")
    env.fs.rename("/a", "/b")  # the kernel moves a's node, with its pages, to /b
    assert not _keeps(env, "/b")
    assert env.read_file("/b") == b"aaa"
    env.fs.unlink("/b")
    fh = env.fs.create("/b", 0o644, os.O_WRONLY)
    env.fs.write("/b", fh, 0, b"aaa")  # the same bytes again: the same ETag
    env.fs.release("/b", fh)
    assert not _keeps(env, "/b")
