"""MetadataCache: TTLs on a fake clock, listing-based negative answers, invalidation."""

from __future__ import annotations

import stat
import threading
from dataclasses import dataclass

import pytest

from mssfs.attributes import Attributes, DirEntry
from mssfs.metadata_cache import (
    LookupState,
    MetadataCache,
    MetadataCacheConfig,
    normalize,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def file_attrs(size: int = 1) -> Attributes:
    return Attributes(mode=stat.S_IFREG | 0o644, size=size, mtime=0.0, uid=0, gid=0)


def dir_attrs() -> Attributes:
    return Attributes(mode=stat.S_IFDIR | 0o755, size=0, mtime=0.0, uid=0, gid=0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> MetadataCache:
    return MetadataCache(MetadataCacheConfig(), timer=clock)


def test_defaults_are_documented_values() -> None:
    c = MetadataCacheConfig()
    assert (c.stat_ttl, c.negative_ttl, c.listing_ttl, c.max_entries) == (60, 5, 60, 100_000)
    with pytest.raises(ValueError):
        MetadataCacheConfig(stat_ttl=0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b", "/a/b"), ("/a//b/", "/a/b"), ("//a", "/a"), ("/", "/"), ("", "/"), ("/a/./b", "/a/b")],
)
def test_paths_are_normalised(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_stat_entry_expires_after_its_ttl(cache: MetadataCache, clock: FakeClock) -> None:
    a = file_attrs()
    cache.put_stat("/a/f", a)
    assert cache.lookup("a//f/") == (LookupState.FOUND, a)
    clock.advance(59.9)
    assert cache.get_stat("/a/f") is a
    clock.advance(0.2)
    assert cache.lookup("/a/f").state is LookupState.UNKNOWN


def test_opaque_values_are_returned_as_stored(cache: MetadataCache) -> None:
    value = ("whatever", "the namespace keeps", 3)
    cache.put_stat("/x", value)
    assert cache.get_stat("/x") is value
    with pytest.raises(ValueError):
        cache.put_stat("/y", None)


def test_negative_entry_expires_after_five_seconds(cache: MetadataCache, clock: FakeClock) -> None:
    cache.put_missing("/nope")
    assert cache.lookup("/nope").state is LookupState.MISSING
    clock.advance(5.1)
    assert cache.lookup("/nope").state is LookupState.UNKNOWN


def test_put_stat_replaces_a_negative_entry(cache: MetadataCache) -> None:
    cache.put_missing("/f")
    cache.put_stat("/f", file_attrs())
    assert cache.lookup("/f").state is LookupState.FOUND
    cache.put_missing("/f")
    assert cache.lookup("/f").state is LookupState.MISSING


def test_listing_fills_children_stats(cache: MetadataCache) -> None:
    entries = [DirEntry("f", file_attrs(3)), DirEntry("sub", dir_attrs())]
    entries.append(DirEntry(".", dir_attrs()))
    cache.put_listing("/d", entries)
    assert cache.get_stat("/d/f") == file_attrs(3)
    assert cache.get_stat("/d/sub") == dir_attrs()
    assert [e.name for e in cache.get_listing("/d/")] == ["f", "sub"]


def test_listing_uses_given_stat_values(cache: MetadataCache) -> None:
    cache.put_listing("/", [DirEntry("f", file_attrs())], stat_values={"f": "record-of-f"})
    assert cache.get_stat("/f") == "record-of-f"


def test_name_absent_from_fresh_listing_is_missing_without_request(
    cache: MetadataCache, clock: FakeClock
) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs())])
    assert cache.lookup("/d/other").state is LookupState.MISSING
    assert cache.counters()["listing_negative_hit"] == 1
    # Not below a grandchild: only the direct parent's listing counts.
    assert cache.lookup("/d/f/deeper").state is LookupState.UNKNOWN
    clock.advance(61)
    assert cache.lookup("/d/other").state is LookupState.UNKNOWN
    assert cache.get_listing("/d") is None


def test_partial_listing_fills_stats_but_never_answers_missing(cache: MetadataCache) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs())], complete=False)
    assert cache.get_stat("/d/f") is not None
    assert cache.get_listing("/d") is None
    assert cache.lookup("/d/g").state is LookupState.UNKNOWN


def test_put_stat_of_new_name_patches_parent_listing(cache: MetadataCache) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs())])
    cache.put_stat("/d/new", file_attrs(7))
    assert cache.lookup("/d/new").state is LookupState.FOUND
    assert {e.name: e.attrs.size for e in cache.get_listing("/d")} == {"f": 1, "new": 7}


@dataclass(frozen=True)
class Record:
    attrs: Attributes
    key: str


def test_put_stat_of_record_with_attrs_patches_listing(cache: MetadataCache) -> None:
    cache.put_listing("/d", [])
    cache.put_stat("/d/r", Record(file_attrs(9), "d/r"))
    assert [(e.name, e.attrs.size) for e in cache.get_listing("/d")] == [("r", 9)]


def test_put_stat_of_opaque_value_drops_parent_listing(cache: MetadataCache) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs())])
    cache.put_stat("/d/new", "opaque")
    assert cache.get_listing("/d") is None
    assert cache.lookup("/d/new").value == "opaque"


def test_patching_a_listing_keeps_its_expiry(cache: MetadataCache, clock: FakeClock) -> None:
    cache.put_listing("/d", [])
    clock.advance(50)
    cache.put_stat("/d/f", file_attrs())
    clock.advance(11)
    assert cache.get_listing("/d") is None


def test_invalidate_drops_entry_negative_and_parent_listing(cache: MetadataCache) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs()), DirEntry("g", file_attrs())])
    cache.invalidate("/d/f")
    assert cache.lookup("/d/f").state is LookupState.UNKNOWN
    assert cache.get_listing("/d") is None
    assert cache.get_stat("/d/g") is not None  # siblings keep their stat entries
    cache.put_missing("/d/x")
    cache.invalidate("/d/x")
    assert cache.lookup("/d/x").state is LookupState.UNKNOWN


def test_invalidate_tree_drops_everything_below(cache: MetadataCache) -> None:
    cache.put_listing("/", [DirEntry("d", dir_attrs()), DirEntry("dx", dir_attrs())])
    cache.put_listing("/d", [DirEntry("sub", dir_attrs())])
    cache.put_listing("/d/sub", [DirEntry("f", file_attrs())])
    cache.put_missing("/d/sub/gone")
    cache.put_stat("/dx/keep", file_attrs())
    cache.invalidate_tree("/d")
    for path in ("/d", "/d/sub", "/d/sub/f", "/d/sub/gone"):
        assert cache.lookup(path).state is LookupState.UNKNOWN, path
    assert cache.get_listing("/d/sub") is None
    assert cache.get_listing("/") is None
    assert cache.get_stat("/dx/keep") is not None  # a sibling sharing the prefix "d"
    assert cache.get_stat("/dx") is not None


def test_clear(cache: MetadataCache) -> None:
    cache.put_listing("/d", [DirEntry("f", file_attrs())])
    cache.put_missing("/n")
    cache.clear()
    assert cache.lookup("/d/f").state is LookupState.UNKNOWN
    assert cache.lookup("/n").state is LookupState.UNKNOWN
    assert cache.get_listing("/d") is None


def test_size_bound_evicts_oldest(clock: FakeClock) -> None:
    cache = MetadataCache(MetadataCacheConfig(max_entries=3), timer=clock)
    for i in range(5):
        cache.put_stat(f"/f{i}", file_attrs())
    kept = [cache.get_stat(f"/f{i}") is not None for i in range(5)]
    assert kept == [False, False, True, True, True]


def test_listing_larger_than_the_cache_keeps_only_stats(clock: FakeClock) -> None:
    cache = MetadataCache(MetadataCacheConfig(max_entries=3), timer=clock)
    cache.put_listing("/d", [DirEntry(f"f{i}", file_attrs()) for i in range(5)])
    assert cache.get_listing("/d") is None
    assert cache.lookup("/d/absent").state is LookupState.UNKNOWN


def test_hit_and_miss_counters(cache: MetadataCache) -> None:
    cache.put_stat("/f", file_attrs())
    cache.lookup("/f")
    cache.lookup("/g")
    cache.get_listing("/")
    counters = cache.counters()
    assert (counters["hits"], counters["misses"]) == (1, 2)
    assert cache.hits == 1 and cache.misses == 2


def test_concurrent_use_is_consistent(cache: MetadataCache) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(300):
                path = f"/d{n}/f{i}"
                cache.put_stat(path, file_attrs(i))
                assert cache.get_stat(path) == file_attrs(i)
                cache.invalidate(path)
                cache.put_listing(f"/d{n}", [DirEntry("f", file_attrs())])
                cache.invalidate_tree(f"/d{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert all(not t.is_alive() for t in threads)
