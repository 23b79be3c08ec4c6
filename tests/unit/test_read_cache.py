"""BlockCache: byte-bounded LRU keyed by (bucket, key, etag, block)."""

from __future__ import annotations

import threading

from mssfs.read_cache import BlockCache


def test_get_put_and_counters() -> None:
    cache = BlockCache(1000)
    assert cache.get(("b", "k", "e1", 0)) is None
    cache.put(("b", "k", "e1", 0), b"abc")
    assert cache.get(("b", "k", "e1", 0)) == b"abc"
    assert (cache.hits, cache.misses) == (1, 1)


def test_etag_is_part_of_the_key() -> None:
    cache = BlockCache(1000)
    cache.put(("b", "k", "old", 0), b"old bytes")
    assert cache.get(("b", "k", "new", 0)) is None


def test_bounded_in_bytes_least_recently_used_goes_first() -> None:
    cache = BlockCache(100)
    cache.put(("b", "k", "e", 0), b"a" * 40)
    cache.put(("b", "k", "e", 1), b"b" * 40)
    assert cache.get(("b", "k", "e", 0)) is not None  # 0 is now the most recent
    cache.put(("b", "k", "e", 2), b"c" * 40)
    assert cache.size_bytes <= 100
    assert cache.contains(("b", "k", "e", 0))
    assert not cache.contains(("b", "k", "e", 1))
    assert cache.contains(("b", "k", "e", 2))


def test_block_larger_than_capacity_is_not_cached() -> None:
    cache = BlockCache(10)
    cache.put(("b", "k", "e", 0), b"x" * 11)
    assert len(cache) == 0
    zero = BlockCache(0)
    zero.put(("b", "k", "e", 0), b"x")
    assert zero.get(("b", "k", "e", 0)) is None


def test_memoryview_is_copied_not_retained() -> None:
    cache = BlockCache(100)
    big = bytearray(b"0123456789")
    cache.put(("b", "k", "e", 0), memoryview(big)[2:5])
    big[2:5] = b"xxx"
    assert cache.get(("b", "k", "e", 0)) == b"234"


def test_discard_object_drops_all_its_blocks_only() -> None:
    cache = BlockCache(1000)
    for n in range(3):
        cache.put(("b", "k", "e1", n), b"x")
    cache.put(("b", "k", "e2", 0), b"x")
    cache.put(("b", "other", "e1", 0), b"y")
    cache.put(("b2", "k", "e1", 0), b"z")
    cache.discard_object("b", "k")
    assert len(cache) == 2
    assert cache.get(("b", "other", "e1", 0)) == b"y"
    assert cache.get(("b2", "k", "e1", 0)) == b"z"


def test_concurrent_puts_keep_the_bound() -> None:
    cache = BlockCache(10_000)

    def worker(n: int) -> None:
        for i in range(500):
            cache.put(("b", f"k{n}", "e", i), bytes(100))
            cache.get(("b", f"k{n}", "e", i // 2))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert cache.size_bytes <= 10_000
    assert len(cache) == 100
