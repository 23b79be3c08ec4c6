"""DiskBlockCache: persistence, permissions, LRU bound with hole punching, corruption
handling, whole-object files for passthrough."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mssfs.disk_cache import CacheDirInUse, DiskBlockCache, DiskCacheConfig

BS = 4096  # block size in these tests


def key(n: int, etag: str = "e1", obj: str = "k") -> tuple[str, str, str, int]:
    return ("bucket", obj, etag, n)


def config(cache_dir: Path, **kw: int) -> DiskCacheConfig:
    kw.setdefault("block_size", BS)
    return DiskCacheConfig(str(cache_dir), **kw)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path) -> Iterator[DiskBlockCache]:
    c = DiskBlockCache(config(cache_dir, capacity_bytes=10 * BS))
    yield c
    c.close()


def data_files(root: Path) -> list[Path]:
    return sorted(root.glob("??/*.obj"))


def journals(root: Path) -> list[Path]:
    return sorted(root.glob("??/*.idx"))


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_put_get_and_read_range(cache: DiskBlockCache) -> None:
    data = os.urandom(1000)
    assert cache.get(key(0)) is None
    cache.put(key(0), data)
    assert cache.get(key(0)) == data
    assert cache.read_range(key(0), 100, 50) == data[100:150]
    assert cache.read_range(key(0), 990, 20) is None  # beyond the block: a miss
    assert cache.get(key(0, etag="e2")) is None  # the ETag is part of the key
    assert (cache.hits, cache.misses) == (2, 3)


def test_blocks_sit_at_their_offsets_in_one_private_file_named_by_hash(
        cache: DiskBlockCache, cache_dir: Path) -> None:
    a, b = os.urandom(BS), os.urandom(10)
    cache.put(key(2, obj="secret/name.txt"), b)  # the short last block of a 2*BS+10 object
    cache.put(key(0, obj="secret/name.txt"), a)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    (path,) = data_files(cache_dir)
    (journal,) = journals(cache_dir)
    for p in (path, journal):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "secret" not in str(path)
    raw = path.read_bytes()
    assert len(raw) == 2 * BS + 10
    assert raw[:BS] == a and raw[2 * BS:] == b and raw[BS:2 * BS] == bytes(BS)
    assert cache.total_bytes == BS + 10


def test_blocks_survive_a_remount(cache_dir: Path) -> None:
    first = DiskBlockCache(config(cache_dir))
    first.put(key(0), b"persisted")
    first.put(key(3), b"three")
    first.close()
    second = DiskBlockCache(config(cache_dir))
    try:
        assert second.get(key(0)) == b"persisted"
        assert second.read_range(key(3), 1, 3) == b"hre"
        assert second.total_bytes == len(b"persisted") + len(b"three")
    finally:
        second.close()


def test_a_cache_of_another_block_size_is_not_reused(cache_dir: Path) -> None:
    first = DiskBlockCache(config(cache_dir))
    first.put(key(1), b"x" * 100)
    first.close()
    second = DiskBlockCache(config(cache_dir, block_size=2 * BS))
    try:
        assert second.get(key(1)) is None
        assert len(second) == 0 and data_files(cache_dir) == journals(cache_dir) == []
    finally:
        second.close()


def test_one_process_per_directory(cache: DiskBlockCache, cache_dir: Path) -> None:
    with pytest.raises(CacheDirInUse):
        DiskBlockCache(config(cache_dir))


def test_lru_eviction_keeps_the_bound_and_punches_the_blocks_out(
        cache: DiskBlockCache, cache_dir: Path) -> None:
    for n in range(8):
        cache.put(key(n), os.urandom(2 * BS // 2))
    assert cache.get(key(0)) is not None  # 0 is now the most recent
    for n in range(8, 11):
        cache.put(key(n), os.urandom(BS))
    assert cache.total_bytes <= 10 * BS
    assert len(cache) == 10
    assert [cache.get(key(n)) is not None for n in range(11)] == [
        True, False, True, True, True, True, True, True, True, True, True
    ]
    (path,) = data_files(cache_dir)
    assert allocated(path) <= 10 * BS  # the evicted block's range is a hole again
    assert cache.read_range(key(1), 0, 10) is None


def test_block_larger_than_the_cache_is_not_stored(cache_dir: Path) -> None:
    small = DiskBlockCache(config(cache_dir, capacity_bytes=1000))
    try:
        small.put(key(0), bytes(2000))
        assert len(small) == 0
    finally:
        small.close()


def test_scan_at_start_evicts_to_a_smaller_size_and_removes_strays(cache_dir: Path) -> None:
    big = DiskBlockCache(config(cache_dir, capacity_bytes=100 * BS))
    for n in range(5):
        big.put(key(n), bytes(1000))
    big.put(key(0, obj="other"), bytes(1000))
    big.close()
    parent = data_files(cache_dir)[0].parent
    stray = parent / "leftover.123.tmp"
    stray.write_bytes(b"partial")
    orphan = parent / ("0" * 64 + ".obj")  # a data file without its journal
    orphan.write_bytes(b"x")
    small = DiskBlockCache(config(cache_dir, capacity_bytes=2100))
    try:
        assert len(small) == 2
        assert not stray.exists() and not orphan.exists()
        assert small.get(key(0, obj="other")) is not None  # the most recently written
    finally:
        small.close()


def test_a_journal_with_many_dead_records_is_rewritten_at_start(cache_dir: Path) -> None:
    first = DiskBlockCache(config(cache_dir, capacity_bytes=2 * BS))
    for n in range(40):  # every put past the second evicts one block: two records each
        first.put(key(n), os.urandom(BS))
    first.close()
    (journal,) = journals(cache_dir)
    before = journal.stat().st_size
    second = DiskBlockCache(config(cache_dir, capacity_bytes=2 * BS))
    try:
        assert journal.stat().st_size < before / 10
        assert [n for n in range(40) if second.get(key(n)) is not None] == [38, 39]
    finally:
        second.close()


@pytest.mark.parametrize("damage", ["flip_payload", "truncate_data"])
def test_corrupt_or_short_block_is_a_miss_and_removed(cache_dir: Path, damage: str) -> None:
    cache = DiskBlockCache(config(cache_dir))
    try:
        cache.put(key(0), os.urandom(500))
        (path,) = data_files(cache_dir)
        raw = bytearray(path.read_bytes())
        if damage == "flip_payload":
            raw[10] ^= 0xFF
        else:
            raw = raw[:-1]
        path.write_bytes(bytes(raw))
        assert cache.get(key(0)) is None
        assert not path.exists()
        assert len(cache) == 0 and cache.total_bytes == 0
    finally:
        cache.close()


@pytest.mark.parametrize("damage", ["bad_magic", "empty", "torn_record"])
def test_a_damaged_journal_is_read_as_far_as_it_goes(cache_dir: Path, damage: str) -> None:
    first = DiskBlockCache(config(cache_dir))
    first.put(key(0), b"zero")
    first.put(key(1), b"one")
    first.close()
    (journal,) = journals(cache_dir)
    raw = bytearray(journal.read_bytes())
    if damage == "bad_magic":
        raw[0:8] = b"XXXXXXXX"
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = raw[:-5]  # the last record cut short by a crash
    journal.write_bytes(bytes(raw))
    second = DiskBlockCache(config(cache_dir))
    try:
        got = [second.get(key(0)), second.get(key(1))]
        if damage == "torn_record":
            assert got == [b"zero", None]
        else:
            assert got == [None, None]
            assert data_files(cache_dir) == []
    finally:
        second.close()


def test_block_vanished_from_disk_is_a_miss(cache: DiskBlockCache, cache_dir: Path) -> None:
    cache.put(key(0), b"abc")
    data_files(cache_dir)[0].unlink()
    assert cache.read_range(key(0), 0, 3) is None
    assert len(cache) == 0


def test_open_file_limit_is_respected(cache_dir: Path) -> None:
    cache = DiskBlockCache(config(cache_dir, max_open_files=2))
    try:
        blocks = {n: os.urandom(100) for n in range(6)}
        for n, data in blocks.items():
            cache.put(key(0, obj=f"k{n}"), data)
        for _ in range(3):
            for n, data in blocks.items():
                assert cache.read_range(key(0, obj=f"k{n}"), 10, 20) == data[10:30]
        assert len(cache._fds) <= 2
    finally:
        cache.close()


def test_concurrent_reads_writes_and_evictions(cache_dir: Path) -> None:
    cache = DiskBlockCache(config(cache_dir, capacity_bytes=20 * 256, block_size=256))
    payload = {n: bytes([n % 256]) * 256 for n in range(60)}
    wrong: list[int] = []

    def worker(seed: int) -> None:
        for i in range(400):
            n = (seed * 7 + i) % 60
            k = key(n // 6, obj=f"k{n % 6}")
            cache.put(k, payload[n])
            got = cache.read_range(k, 0, 256)
            if got is not None and got != payload[n]:
                wrong.append(n)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert wrong == []
        assert cache.total_bytes <= 20 * 256
        assert cache.total_bytes == 256 * len(cache)
    finally:
        cache.close()


def fill(cache: DiskBlockCache, data: bytes, obj: str = "k") -> None:
    for n in range(-(-len(data) // BS)):
        cache.put(key(n, obj=obj), data[n * BS:(n + 1) * BS])


def test_whole_file_only_when_every_block_is_cached(cache: DiskBlockCache) -> None:
    data = os.urandom(3 * BS + 100)
    fill(cache, data[: 3 * BS])
    assert cache.whole_file("bucket", "k", "e1", len(data)) is None  # the tail is missing
    cache.put(key(3), data[3 * BS:])
    assert cache.whole_file("bucket", "k", "e2", len(data)) is None  # another version
    assert cache.whole_file("bucket", "k", "e1", len(data) + 1) is None  # another size
    fd = cache.whole_file("bucket", "k", "e1", len(data))
    assert fd is not None
    try:
        assert os.fstat(fd).st_size == len(data)
        assert os.pread(fd, len(data) + 1, 0) == data
    finally:
        os.close(fd)
        cache.unpin("bucket", "k", "e1")


def test_a_pinned_file_is_unlinked_not_punched_when_evicted(
        cache: DiskBlockCache, cache_dir: Path) -> None:
    data = os.urandom(4 * BS)
    fill(cache, data)
    fd = cache.whole_file("bucket", "k", "e1", len(data))
    assert fd is not None
    try:
        fill(cache, os.urandom(8 * BS), obj="newer")  # needs room: evicts the pinned file
        assert cache.whole_file("bucket", "k", "e1", len(data)) is None
        assert len(data_files(cache_dir)) == 1
        assert os.pread(fd, len(data), 0) == data  # what the kernel reads is intact
    finally:
        os.close(fd)
        cache.unpin("bucket", "k", "e1")
    assert cache.total_bytes <= 10 * BS


@pytest.mark.allow_warnings("block 1 of a cached object is corrupt")
def test_whole_file_checks_blocks_written_by_an_earlier_mount(cache_dir: Path) -> None:
    data = os.urandom(3 * BS)
    first = DiskBlockCache(config(cache_dir))
    fill(first, data)
    first.close()
    (path,) = data_files(cache_dir)
    raw = bytearray(path.read_bytes())
    raw[BS + 7] ^= 0x01
    path.write_bytes(bytes(raw))
    second = DiskBlockCache(config(cache_dir))
    try:
        assert second.whole_file("bucket", "k", "e1", len(data)) is None
        assert len(second) == 0 and data_files(cache_dir) == []
    finally:
        second.close()


def test_a_checked_file_is_sealed_at_close_and_not_read_again(cache_dir: Path,
                                                              monkeypatch) -> None:
    data = os.urandom(3 * BS)
    first = DiskBlockCache(config(cache_dir))
    fill(first, data)
    first.close()  # never handed out: not sealed
    checks: list[int] = []
    real = DiskBlockCache._verify
    monkeypatch.setattr(DiskBlockCache, "_verify",
                        staticmethod(lambda *a: checks.append(1) or real(*a)))
    for expected_checks in (1, 1, 1):
        cache = DiskBlockCache(config(cache_dir))
        try:
            fd = cache.whole_file("bucket", "k", "e1", len(data))
            assert fd is not None and os.pread(fd, len(data), 0) == data
            os.close(fd)
            cache.unpin("bucket", "k", "e1")
        finally:
            cache.close()
        assert len(checks) == expected_checks  # checked by the first, sealed since
    # A block written after the seal (evicted, then read again) unseals the file.
    cache = DiskBlockCache(config(cache_dir))
    try:
        with cache._lock:
            cache._remove_block(cache._index.__iter__().__next__()[0], 2)
        cache.put(key(2), data[2 * BS:])
    finally:
        cache.close()
    cache = DiskBlockCache(config(cache_dir))
    try:
        fd = cache.whole_file("bucket", "k", "e1", len(data))
        assert fd is not None
        os.close(fd)
        assert len(checks) == 2
    finally:
        cache.close()
