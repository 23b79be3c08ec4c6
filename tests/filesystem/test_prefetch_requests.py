"""The read path's requests, on every store kind (MemoryStore, SeaweedFS, moto):
what a random or sequential reader costs in GETs, and ETag pinning on a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from mssfs.prefetch import Prefetcher, ReadConfig
from mssfs.read_cache import BlockCache
from mssfs.store import errors

KiB = 1024
MiB = 1024 * KiB


def get_count(store: Any) -> int:
    if hasattr(store, "counts"):  # MemoryStore
        return store.counts["GetObject"]
    return store.stats.snapshot()["requests"].get("GetObject", 0)


@pytest.fixture
def prefetcher(store: tuple[Any, str]) -> Iterator[Prefetcher]:
    config = ReadConfig()
    p = Prefetcher(store[0], config, BlockCache(config.cache_bytes))
    yield p
    p.close()


def test_random_reads_cost_one_get_per_uncached_block(store, prefetcher):
    s, bucket = store
    data = os.urandom(5 * MiB + 77)
    etag = s.put_object(bucket, "random", data)
    reader = prefetcher.open_reader(bucket, "random", etag, len(data))
    before = get_count(s)
    for off in (3 * MiB + 10, 3 * MiB + 500 * KiB, 3 * MiB + 10):  # one block, thrice
        assert reader.read(off, 4 * KiB) == data[off : off + 4 * KiB]
    assert get_count(s) - before == 1
    assert reader.read(5 * MiB, 4 * KiB) == data[5 * MiB :]  # the short last block
    assert reader.read(len(data), 4 * KiB) == b""
    assert get_count(s) - before == 2


def test_sequential_read_uses_few_large_gets(store, prefetcher):
    s, bucket = store
    size = 24 * MiB + 5
    data = os.urandom(size)
    etag = s.put_object(bucket, "seq", data)
    reader = prefetcher.open_reader(bucket, "seq", etag, size)
    before = get_count(s)
    out = bytearray()
    while len(out) < size:
        out += reader.read(len(out), 128 * KiB)
    assert bytes(out) == data
    # 24 blocks of 1 MiB would be 25 GETs; the prefetcher needs about half as many.
    assert get_count(s) - before <= 12
    reader.close()
    assert prefetcher.budget.peak <= ReadConfig().max_inflight_bytes


def test_overwrite_while_open_is_precondition_failed(store, prefetcher):
    s, bucket = store
    data = os.urandom(3 * MiB)
    etag = s.put_object(bucket, "pinned", data)
    reader = prefetcher.open_reader(bucket, "pinned", etag, len(data))
    assert reader.read(0, 4 * KiB) == data[: 4 * KiB]
    s.put_object(bucket, "pinned", os.urandom(3 * MiB))
    with pytest.raises(errors.PreconditionFailed):
        reader.read(2 * MiB, 4 * KiB)
    assert reader.read(100, 10) == data[100:110]  # cached bytes of the old version
