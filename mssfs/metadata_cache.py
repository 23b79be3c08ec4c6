"""Metadata cache: stat entries, negative lookups and directory listings, each with a TTL.

Three ``cachetools.TTLCache`` maps share one injected clock (``timer``), so tests drive
expiry with a fake clock instead of sleeping:

- ``stat``: normalised absolute path (``"/a/b"``) → an opaque value chosen by the
  namespace (an ``Attributes``, or a record that carries one as ``.attrs`` plus
  whatever else it needs, such as the object key or whether a marker exists).
- ``negative``: path → ``True`` for a name known not to exist.
- ``listing``: directory path → ``{name: DirEntry}`` of a complete listing. Its size is
  counted in entries (a listing of N children weighs N + 1), so one bound holds the
  memory of many small directories and of a few huge ones alike.

Answers (``lookup``): a fresh stat entry is FOUND; a fresh negative entry is MISSING;
a name absent from its parent's fresh complete listing is MISSING too, without any
request (geesefs ``LookUpCached``): after ``ls`` of a directory, ``stat`` of a name
that is not there costs nothing. Anything else is UNKNOWN and the namespace asks the
store, then records the answer with ``put_stat`` or ``put_missing``.

Local changes update the cache at once, so this process never sees its own writes
late: ``put_stat`` after a write or create (it also patches or drops the parent's
listing, which would otherwise answer MISSING for a new name), ``invalidate`` after
unlink/rmdir/rename of one name, ``invalidate_tree`` for a directory rename or delete.

Default TTLs (``MetadataCacheConfig``): stat and listing 60 s, as goofys/geesefs
(``--stat-cache-ttl 1m``) and gcsfuse (``ttl-secs 60``); s3fs's 900 s makes changes by
other clients invisible for too long, mountpoint's near-zero default costs a HEAD per
``stat``. A minute keeps ``ls -l``/``find`` cheap while close-to-open revalidation on
``open()`` (done by the namespace) bounds what a reader of file data can miss.
Negative entries live 5 s (gcsfuse's ``negative-ttl-secs``): a file created elsewhere
shows up quickly, and build tools that probe many absent names stay cheap.

Locking: one ``threading.Lock`` guards the three caches and the counters. Every
method takes it for a few dict operations only; nothing here does I/O.
"""

from __future__ import annotations

import enum
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cachetools import TTLCache

from mssfs.attributes import Attributes, DirEntry


@dataclass(frozen=True)
class MetadataCacheConfig:
    """TTLs in seconds and the bound on cached entries (see the module docstring)."""

    stat_ttl: float = 60.0  # stat entries (HEAD or listing results)
    negative_ttl: float = 5.0  # names known not to exist
    listing_ttl: float = 60.0  # complete directory listings
    max_entries: int = 100_000  # per cache; a listing counts one per child

    def __post_init__(self) -> None:
        if min(self.stat_ttl, self.negative_ttl, self.listing_ttl) <= 0:
            raise ValueError("metadata cache TTLs must be positive")
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")


class LookupState(enum.Enum):
    FOUND = "found"
    MISSING = "missing"
    UNKNOWN = "unknown"


class Lookup(NamedTuple):
    state: LookupState
    value: object = None  # the cached stat value when FOUND


_UNKNOWN = Lookup(LookupState.UNKNOWN)
_MISSING = Lookup(LookupState.MISSING)


def normalize(path: str) -> str:
    """``"a//b/"``, ``"/a/./b"`` → ``"/a/b"``; the root is ``"/"``."""
    p = posixpath.normpath("/" + path)
    if p.startswith("//"):  # POSIX normpath keeps a leading double slash
        p = "/" + p.lstrip("/")
    return p


def _split(path: str) -> tuple[str, str]:
    parent, name = posixpath.split(path)
    return parent, name


def _attrs_of(value: object) -> Attributes | None:
    if isinstance(value, Attributes):
        return value
    attrs = getattr(value, "attrs", None)
    return attrs if isinstance(attrs, Attributes) else None


def _listing_size(listing: Mapping[str, DirEntry]) -> int:
    return len(listing) + 1


class MetadataCache:
    """TTL caches of stat results, negative lookups and directory listings."""

    def __init__(
        self,
        config: MetadataCacheConfig | None = None,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or MetadataCacheConfig()
        c = self.config
        self._lock = threading.Lock()
        self._stat: TTLCache = TTLCache(c.max_entries, c.stat_ttl, timer=timer)
        self._negative: TTLCache = TTLCache(c.max_entries, c.negative_ttl, timer=timer)
        self._listing: TTLCache = TTLCache(
            c.max_entries, c.listing_ttl, timer=timer, getsizeof=_listing_size
        )
        self.hits = 0
        self.misses = 0
        self._counts = {"stat_hit": 0, "negative_hit": 0, "listing_negative_hit": 0,
                        "lookup_miss": 0, "listing_hit": 0, "listing_miss": 0}

    # -- queries ------------------------------------------------------------------
    def lookup(self, path: str) -> Lookup:
        """FOUND with the cached value, MISSING (negative entry or absent from the
        parent's fresh listing), or UNKNOWN: the caller must ask the store."""
        path = normalize(path)
        with self._lock:
            value = self._stat.get(path)
            if value is not None:
                return self._count(Lookup(LookupState.FOUND, value), "stat_hit")
            if self._negative.get(path):
                return self._count(_MISSING, "negative_hit")
            if path != "/":
                parent, name = _split(path)
                listing = self._listing.get(parent)
                if listing is not None and name not in listing:
                    return self._count(_MISSING, "listing_negative_hit")
            return self._count(_UNKNOWN, "lookup_miss")

    def get_stat(self, path: str) -> object | None:
        """The cached stat value of ``path``, or None (no negative answers here)."""
        found = self.lookup(path)
        return found.value if found.state is LookupState.FOUND else None

    def get_listing(self, path: str) -> list[DirEntry] | None:
        """The fresh complete listing of directory ``path`` in stored order, or None."""
        path = normalize(path)
        with self._lock:
            listing = self._listing.get(path)
            if listing is None:
                self._counts["listing_miss"] += 1
                self.misses += 1
                return None
            self._counts["listing_hit"] += 1
            self.hits += 1
            return list(listing.values())

    def counters(self) -> dict[str, int]:
        """Hit/miss counts by kind, plus the totals ``hits`` and ``misses``."""
        with self._lock:
            return {**self._counts, "hits": self.hits, "misses": self.misses}

    # -- updates ------------------------------------------------------------------
    def put_stat(self, path: str, value: object) -> None:
        """Record what ``path`` is (after a HEAD, a create or a local write)."""
        if value is None:
            raise ValueError("a stat value cannot be None; use put_missing")
        path = normalize(path)
        with self._lock:
            self._stat[path] = value
            self._negative.pop(path, None)
            if path != "/":
                self._patch_parent_listing(path, _attrs_of(value))

    def put_missing(self, path: str) -> None:
        """Record that ``path`` does not exist (after a 404, or locally after unlink)."""
        path = normalize(path)
        with self._lock:
            self._stat.pop(path, None)
            self._negative[path] = True

    def put_listing(
        self,
        path: str,
        entries: Iterable[DirEntry],
        *,
        stat_values: Mapping[str, object] | None = None,
        complete: bool = True,
    ) -> None:
        """Record the listing of directory ``path`` and the stat entries of its children.

        A child's stat value is ``stat_values[name]`` when given, else its ``attrs``.
        ``complete=False`` (a partial listing, e.g. one page) fills only the children's
        stat entries: it must not answer MISSING for names on other pages.
        """
        path = normalize(path)
        listing = {e.name: e for e in entries if e.name not in (".", "..")}
        prefix = path.rstrip("/") + "/"
        with self._lock:
            for name, entry in listing.items():
                child = prefix + name
                value = stat_values.get(name) if stat_values else None
                self._stat[child] = value if value is not None else entry.attrs
                self._negative.pop(child, None)
            if complete:
                try:
                    self._listing[path] = listing
                except ValueError:  # larger than the whole cache: keep the stats only
                    self._listing.pop(path, None)

    def invalidate(self, path: str) -> None:
        """Forget ``path``: its stat and negative entries, its own listing and its
        parent's listing (which named it, or did not)."""
        path = normalize(path)
        with self._lock:
            self._stat.pop(path, None)
            self._negative.pop(path, None)
            self._listing.pop(path, None)
            if path != "/":
                self._listing.pop(_split(path)[0], None)

    def invalidate_tree(self, path: str) -> None:
        """Forget directory ``path``, everything under it, and its parent's listing."""
        path = normalize(path)
        prefix = path.rstrip("/") + "/"
        with self._lock:
            for cache in (self._stat, self._negative, self._listing):
                doomed = [k for k in list(cache.keys()) if k == path or k.startswith(prefix)]
                for k in doomed:
                    cache.pop(k, None)
            if path != "/":
                self._listing.pop(_split(path)[0], None)

    def clear(self) -> None:
        with self._lock:
            self._stat.clear()
            self._negative.clear()
            self._listing.clear()

    # -- internals (lock held) ----------------------------------------------------
    def _count(self, found: Lookup, kind: str) -> Lookup:
        self._counts[kind] += 1
        if found.state is LookupState.UNKNOWN:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def _patch_parent_listing(self, path: str, attrs: Attributes | None) -> None:
        # The parent's listing must keep agreeing with the stat cache: a new name absent
        # from it would be answered MISSING. Patch it in place when we know the
        # attributes; otherwise drop it and let the next readdir list again.
        parent, name = _split(path)
        listing = self._listing.get(parent)
        if listing is None:
            return
        if attrs is None:
            self._listing.pop(parent, None)
            return
        # In place, so the listing keeps its expiry: re-inserting would restart its TTL
        # and a directory written to steadily would never see other clients' changes.
        # (Its weight in the cache is not recounted: a few added names are noise.)
        listing[name] = DirEntry(name, attrs)
