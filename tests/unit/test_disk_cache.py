"""DiskBlockCache: persistence, permissions, LRU bound, corruption handling."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mssfs.disk_cache import CacheDirInUse, DiskBlockCache, DiskCacheConfig

HEADER = 16


def key(n: int, etag: str = "e1", obj: str = "k") -> tuple[str, str, str, int]:
    return ("bucket", obj, etag, n)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path) -> Iterator[DiskBlockCache]:
    c = DiskBlockCache(DiskCacheConfig(str(cache_dir), capacity_bytes=10_000))
    yield c
    c.close()


def block_files(root: Path) -> list[Path]:
    return sorted(root.glob("??/*.blk"))


def test_put_get_and_read_range(cache: DiskBlockCache) -> None:
    data = os.urandom(1000)
    assert cache.get(key(0)) is None
    cache.put(key(0), data)
    assert cache.get(key(0)) == data
    assert cache.read_range(key(0), 100, 50) == data[100:150]
    assert cache.read_range(key(0), 990, 20) is None  # beyond the block: a miss
    assert cache.get(key(0, etag="e2")) is None  # the ETag is part of the key
    assert (cache.hits, cache.misses) == (2, 3)


def test_files_are_private_and_named_by_hash(cache: DiskBlockCache, cache_dir: Path) -> None:
    cache.put(key(0, obj="secret/name.txt"), b"x" * 10)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    (path,) = block_files(cache_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "secret" not in str(path)
    assert path.stat().st_size == HEADER + 10


def test_blocks_survive_a_remount(cache_dir: Path) -> None:
    first = DiskBlockCache(DiskCacheConfig(str(cache_dir)))
    first.put(key(0), b"persisted")
    first.close()
    second = DiskBlockCache(DiskCacheConfig(str(cache_dir)))
    try:
        assert second.get(key(0)) == b"persisted"
        assert second.total_bytes == HEADER + len(b"persisted")
    finally:
        second.close()


def test_one_process_per_directory(cache: DiskBlockCache, cache_dir: Path) -> None:
    with pytest.raises(CacheDirInUse):
        DiskBlockCache(DiskCacheConfig(str(cache_dir)))


def test_lru_eviction_keeps_the_bound(cache: DiskBlockCache, cache_dir: Path) -> None:
    for n in range(4):
        cache.put(key(n), bytes(2000))
    assert cache.get(key(0)) is not None  # 0 is now the most recent
    for n in range(4, 7):
        cache.put(key(n), bytes(2000))
    assert cache.total_bytes <= 10_000
    assert len(block_files(cache_dir)) == len(cache) == 4
    assert [cache.get(key(n)) is not None for n in range(7)] == [
        True, False, False, False, True, True, True
    ]


def test_block_larger_than_the_cache_is_not_stored(cache: DiskBlockCache) -> None:
    cache.put(key(0), bytes(20_000))
    assert len(cache) == 0


def test_scan_at_start_evicts_to_a_smaller_size_and_removes_temp_files(cache_dir: Path) -> None:
    big = DiskBlockCache(DiskCacheConfig(str(cache_dir), capacity_bytes=100_000))
    for n in range(5):
        big.put(key(n), bytes(1000))
    big.close()
    stray = block_files(cache_dir)[0].parent / "leftover.123.tmp"
    stray.write_bytes(b"partial")
    small = DiskBlockCache(DiskCacheConfig(str(cache_dir), capacity_bytes=2100))
    try:
        assert len(small) == 2
        assert len(block_files(cache_dir)) == 2
        assert not stray.exists()
    finally:
        small.close()


@pytest.mark.parametrize("damage", ["flip_payload", "truncate", "bad_magic", "empty"])
def test_corrupt_or_short_block_is_a_miss_and_deleted(cache_dir: Path, damage: str) -> None:
    cache = DiskBlockCache(DiskCacheConfig(str(cache_dir)))
    try:
        cache.put(key(0), os.urandom(500))
        (path,) = block_files(cache_dir)
        raw = bytearray(path.read_bytes())
        if damage == "flip_payload":
            raw[HEADER + 10] ^= 0xFF
        elif damage == "truncate":
            raw = raw[:-1]
        elif damage == "bad_magic":
            raw[0:8] = b"XXXXXXXX"
        else:
            raw = bytearray()
        path.write_bytes(bytes(raw))
        assert cache.get(key(0)) is None
        assert not path.exists()
        assert len(cache) == 0 and cache.total_bytes == 0
    finally:
        cache.close()


def test_block_vanished_from_disk_is_a_miss(cache: DiskBlockCache, cache_dir: Path) -> None:
    cache.put(key(0), b"abc")
    block_files(cache_dir)[0].unlink()
    assert cache.read_range(key(0), 0, 3) is None
    assert len(cache) == 0


def test_open_file_limit_is_respected(cache_dir: Path) -> None:
    cache = DiskBlockCache(DiskCacheConfig(str(cache_dir), max_open_files=2))
    try:
        blocks = {n: os.urandom(100) for n in range(6)}
        for n, data in blocks.items():
            cache.put(key(n), data)
        for _ in range(3):
            for n, data in blocks.items():
                assert cache.read_range(key(n), 10, 20) == data[10:30]
        assert len(cache._fds) <= 2
    finally:
        cache.close()


def test_concurrent_reads_writes_and_evictions(cache_dir: Path) -> None:
    cache = DiskBlockCache(DiskCacheConfig(str(cache_dir), capacity_bytes=20 * (HEADER + 256)))
    payload = {n: bytes([n % 256]) * 256 for n in range(60)}
    wrong: list[int] = []

    def worker(seed: int) -> None:
        for i in range(400):
            n = (seed * 7 + i) % 60
            cache.put(key(n), payload[n])
            got = cache.read_range(key(n), 0, 256)
            if got is not None and got != payload[n]:
                wrong.append(n)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert wrong == []
        assert cache.total_bytes <= 20 * (HEADER + 256)
        assert len(block_files(cache_dir)) == len(cache)
    finally:
        cache.close()
