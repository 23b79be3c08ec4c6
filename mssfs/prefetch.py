"""The read path of open files: block reads for random access, a growing prefetch window
for sequential access, both pinned to the ETag the handle opened with.

``Prefetcher`` is shared by the mount: it owns the thread pool for ranged GETs and the
in-flight byte budget. ``Prefetcher.open_reader`` gives each open file an
``ObjectReader``; ``ObjectReader.read(offset, size)`` returns the bytes (short at EOF).

How a read is served:

- Every GET carries ``if_match=etag`` (and the answer's ETag is checked too), so if
  the object is overwritten while a handle is open the read fails with
  ``PreconditionFailed`` (→ ESTALE) instead of mixing bytes of two versions.
- Random reads fetch only what they need, in blocks of ``block_size`` (1 MiB), from the
  in-memory ``BlockCache``, else the optional ``DiskBlockCache``, else one ranged GET
  covering the missing blocks; fetched blocks go into both caches.
- A read that starts where the previous one ended is sequential. The kernel sends its
  read-ahead as several requests at once and libfuse's threads serve them in any
  order, so a read up to ``max_backward_seek`` behind the furthest one (the mount
  passes twice its kernel read-ahead) still belongs to the stream, and once a stream
  runs a read up to ``max_forward_seek`` ahead does too; before, the gap may be no
  longer than the read. Sequential reads get a prefetch window
  that starts at ``initial_window`` and doubles on each sequential read up to
  ``max_window``, as mountpoint-s3's prefetcher does. The window is fetched as "parts"
  (ranged GETs of up to ``part_size``, block-aligned) on the pool, in parallel, so one
  ``cat`` runs like a parallel downloader. A read outside the tolerance is a seek: the
  reader drops its parts and starts over with block reads. A read behind the stream
  drops nothing: it is served from its part, or by a block read.
- Memory is bounded: each part reserves its size from the ``_Budget`` shared by all
  readers before it is submitted. When the budget is used up a reader simply schedules
  fewer parts (its window shrinks) and reads what is not prefetched with block reads:
  it never waits for another reader and never exceeds the budget. A part's reservation
  is returned once every byte of it was read, or the stream is ``max_backward_seek``
  past it (or it was dropped and its GET finished). Releasing parts as soon as the
  stream passed them made a late, reordered read fetch its bytes a second time: 10% of
  a 1 GiB ``dd`` with the kernel's 1 MiB read-ahead, 200% with 8 MiB.
  Consumed parts of objects no larger than half the block cache are kept in the block
  cache (a re-read then costs nothing); parts of larger objects are dropped, so a
  streaming read of a huge object does not churn the cache for nothing. With a disk
  cache, every fetched part is also written there block by block (as s3fs's
  ``use_cache`` does), and a part whose blocks are all on disk is read from there.
- A failed part is not fatal: the read that needs it falls back to a block read, and
  only that error (the store client has already retried transient ones) surfaces.

Locking: each ``ObjectReader`` has one lock guarding its window state and part list;
it is held to plan a read (sequential detection, scheduling parts, releasing consumed
ones) and never while waiting for a GET. ``_Budget`` has its own lock; the only
nesting is reader lock → budget lock and reader lock → cache lock, never the reverse.
Threads: the pool belongs to ``Prefetcher``; ``close()`` cancels queued GETs and waits
for running ones (each bounded by the store's timeouts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from mssfs.read_cache import BlockCache, BlockKey
from mssfs.store import errors as store_errors
from mssfs.store.base import ObjectStore

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class ReadConfig:
    """Read-path settings. Memory bound of the mount's read path:
    ``cache_bytes + max_inflight_bytes`` (plus the blocks of reads being served)."""

    block_size: int = 1 * MiB  # unit of random reads and of both caches
    part_size: int = 8 * MiB  # largest prefetch GET (a multiple of block_size)
    initial_window: int = 2 * MiB  # first prefetch window of a sequential reader
    max_window: int = 64 * MiB  # per reader
    max_inflight_bytes: int = 128 * MiB  # prefetched, not yet consumed: all readers
    max_concurrency: int = 10  # GETs in parallel (the pool size)
    cache_bytes: int = 64 * MiB  # capacity of the in-memory BlockCache (built by mount)
    # Still sequential when this far behind: the kernel may have two read-ahead windows
    # in flight, served in any order (the mount passes twice its read-ahead).
    max_backward_seek: int = 2 * MiB
    max_forward_seek: int = 16 * MiB  # still sequential when this far ahead

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError("block_size must be positive")
        if self.part_size % self.block_size or self.part_size < self.block_size:
            # Parts are whole blocks (so they can enter the caches): round down.
            parts = max(1, self.part_size // self.block_size)
            object.__setattr__(self, "part_size", parts * self.block_size)
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if min(self.initial_window, self.max_window, self.max_inflight_bytes) < 0:
            raise ValueError("read windows and budgets must be >= 0")


class BlockSource(Protocol):
    """What the reader needs of a second-level cache (``DiskBlockCache``)."""

    def get(self, key: BlockKey) -> bytes | None: ...

    def read_range(self, key: BlockKey, start: int, length: int) -> bytes | None: ...

    def put(self, key: BlockKey, data: bytes) -> None: ...


class _Budget:
    """Bytes reserved by prefetch parts, shared by all readers; never exceeds ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._lock = threading.Lock()

    def try_acquire(self, n: int) -> bool:
        with self._lock:
            if self.in_use + n > self.limit:
                return False
            self.in_use += n
            self.peak = max(self.peak, self.in_use)
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.in_use -= n


class _Part:
    __slots__ = ("consumed", "end", "future", "start")

    def __init__(self, start: int, end: int, future: Future) -> None:
        self.start = start
        self.end = end
        self.future = future
        self.consumed = 0  # bytes of it handed to reads (under the reader's lock)


class Prefetcher:
    """Owner of the GET pool and the prefetch budget; a factory of ``ObjectReader``."""

    def __init__(
        self,
        store: ObjectStore,
        config: ReadConfig,
        cache: BlockCache,
        disk_cache: BlockSource | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.cache = cache
        self.disk_cache = disk_cache
        self.budget = _Budget(config.max_inflight_bytes)
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix="mssfs-prefetch"
        )
        self._closed = False
        self._lock = threading.Lock()  # guards _closed against a racing submit

    def open_reader(self, bucket: str, key: str, etag: str, size: int) -> ObjectReader:
        return ObjectReader(self, bucket, key, etag, size)

    def fetch(self, bucket: str, key: str, etag: str, start: int, end: int) -> bytes:
        """GET [start, end) pinned to ``etag`` (unless it is empty: unknown); exactly
        ``end - start`` bytes or an error."""
        result = self.store.get_object(bucket, key, start, end, if_match=etag or None)
        if etag and result.etag and result.etag != etag:  # a server that ignored If-Match
            raise store_errors.PreconditionFailed(
                "object changed while open", code="PreconditionFailed", bucket=bucket, key=key
            )
        if len(result.data) != end - start:
            raise store_errors.IncompleteBody(
                f"asked {end - start} bytes, got {len(result.data)}", bucket=bucket, key=key
            )
        return result.data

    def submit(self, fn: Callable[..., bytes], *args: object) -> Future | None:
        """Run ``fn`` on the pool; None once closed (the caller reads on demand)."""
        with self._lock:
            if self._closed:
                return None
            return self._pool.submit(fn, *args)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


class ObjectReader:
    """Reads of one open handle, pinned to one ETag. Thread-safe."""

    def __init__(self, prefetcher: Prefetcher, bucket: str, key: str, etag: str, size: int):
        self._p = prefetcher
        self._cfg = prefetcher.config
        self.bucket, self.key, self.etag, self.size = bucket, key, etag, size
        self._lock = threading.Lock()
        self._parts: list[_Part] = []  # sorted, non-overlapping
        self._ahead_end = 0  # end of the furthest scheduled part
        self._next_offset: int | None = None  # where a sequential read would start
        self._window = 0
        self._streak = 0  # sequential reads in a row
        self._closed = False
        # Without an ETag nothing is pinned, and blocks of two versions would share
        # cache keys: such a reader bypasses both caches.
        self._cacheable = bool(etag)
        # Keep consumed parts in memory only when the object fits the cache easily.
        self._cache_parts = self._cacheable and 0 < size <= prefetcher.cache.capacity_bytes // 2

    # -- public -------------------------------------------------------------------
    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        with self._lock:
            if self._closed:
                raise ValueError("read from a closed ObjectReader")
            self._track(offset, end)
            plan = self._plan(offset, end)
        chunks = [self._segment(part, a, b) for part, a, b in plan]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_parts(self._parts)
            self._parts = []

    @property
    def window(self) -> int:
        return self._window

    # -- planning (reader lock held) ------------------------------------------------
    def _track(self, offset: int, end: int) -> None:
        prev = self._next_offset
        cfg = self._cfg
        ahead = bool(self._parts) and self._parts[0].start <= offset < self._ahead_end
        # A forward jump keeps a stream that already runs. Before one runs, the gap may
        # be no longer than the read itself: the kernel's read-ahead sends several
        # requests at once and libfuse's threads may serve the second before the first,
        # while a random reader's small reads would have to be almost contiguous.
        forward = cfg.max_forward_seek if self._streak else end - offset
        near = prev is not None and (
            prev - cfg.max_backward_seek <= offset <= prev + forward or ahead
        )
        if near and end > prev:  # the stream moves on: grow the window
            self._streak += 1
            if self._streak == 1:
                self._window = cfg.initial_window
            else:
                self._window = min(self._window * 2, cfg.max_window)
            self._next_offset = end
        elif not near:
            if prev is not None:  # a real seek: forget the stream
                self._drop_parts(self._parts)
                self._parts, self._ahead_end = [], 0
            self._streak, self._window = 0, 0
            self._next_offset = end
        # else: behind the stream (a reordered or repeated read): served from its part
        # or by a block read, with no growth and without dropping anything.
        self._release_consumed(self._next_offset - cfg.max_backward_seek)
        if self._window:
            self._schedule(offset)

    def _schedule(self, offset: int) -> None:
        cfg, bsz = self._cfg, self._cfg.block_size
        target = min(self.size, offset + self._window)
        start = max(self._ahead_end, offset - offset % bsz)
        while (start < target and self._cacheable
               and self._p.cache.contains(self._block_key(start // bsz))):
            start += bsz  # already in memory: no need to prefetch it
        # Issue full parts: a trickle of tiny GETs as the window slides would waste
        # requests. A short part is fine when it ends the object or the read needs it.
        min_part = min(cfg.part_size, max(bsz, self._window // 2))
        while start < target:
            n = min(cfg.part_size, target - start)
            n = min(-(-n // bsz) * bsz, self.size - start)
            if n < min_part and start + n < self.size and start > offset:
                break
            if not self._p.budget.try_acquire(n):
                break  # budget used up: the window shrinks
            future = self._p.submit(self._fetch_part, start, start + n)
            if future is None:
                self._p.budget.release(n)
                break
            self._parts.append(_Part(start, start + n, future))
            start += n
        self._ahead_end = max(self._ahead_end, start)

    def _plan(self, offset: int, end: int) -> list[tuple[_Part | None, int, int]]:
        """Split [offset, end) into pieces served by a part, or by block reads (None),
        and count the bytes each part hands out (see ``_release_consumed``)."""
        plan: list[tuple[_Part | None, int, int]] = []
        pos = offset
        for part in self._parts:
            if part.end <= pos:
                continue
            if part.start >= end:
                break
            if part.start > pos:
                plan.append((None, pos, part.start))
                pos = part.start
            stop = min(end, part.end)
            plan.append((part, pos, stop))
            part.consumed += stop - pos
            pos = stop
        if pos < end:
            plan.append((None, pos, end))
        return plan

    def _release_consumed(self, before: int) -> None:
        """Let go of the parts that every byte of was read, and of those that end
        before ``before``: far enough behind the stream that no reordered read of the
        kernel's can still want them. A part some of whose bytes were not read yet is
        kept until then, else the late read would fetch it a second time."""
        done = [p for p in self._parts
                if p.end <= before or (p.consumed >= p.end - p.start and p.future.done())]
        if not done:
            return
        if self._cache_parts:
            for part in done:
                self._cache_part(part)
        self._drop_parts(done)
        self._parts = [p for p in self._parts if p not in done]

    def _drop_parts(self, parts: list[_Part]) -> None:
        budget = self._p.budget
        for part in parts:
            n = part.end - part.start
            if part.future.cancel() or part.future.done():
                budget.release(n)
            else:  # still downloading: its memory is in use until it ends
                part.future.add_done_callback(lambda _f, n=n: budget.release(n))

    def _cache_part(self, part: _Part) -> None:
        fut = part.future
        if not fut.done() or fut.cancelled() or fut.exception() is not None:
            return
        data, bsz = fut.result(), self._cfg.block_size
        for pos in range(0, len(data), bsz):
            self._p.cache.put(self._block_key((part.start + pos) // bsz), data[pos : pos + bsz])

    # -- fetching (no reader lock) --------------------------------------------------
    def _segment(self, part: _Part | None, a: int, b: int) -> bytes:
        if part is not None:
            try:
                data = part.future.result()
                return data[a - part.start : b - part.start]
            except Exception as exc:  # fall back to a block read; its error is the one
                log.debug("prefetch of %s/%s [%d, %d) failed: %r",
                          self.bucket, self.key, part.start, part.end, exc)
                with self._lock:
                    if part in self._parts:
                        self._parts.remove(part)
                        self._drop_parts([part])
        return self._read_blocks(a, b)

    def _read_blocks(self, a: int, b: int) -> bytes:
        bsz = self._cfg.block_size
        blocks = range(a // bsz, (b - 1) // bsz + 1)
        pieces: list[bytes | None] = []
        for n in blocks:
            lo, hi = max(a, n * bsz) - n * bsz, min(b, (n + 1) * bsz) - n * bsz
            pieces.append(self._cached_slice(n, lo, hi))
        missing = [n for n, piece in zip(blocks, pieces, strict=True) if piece is None]
        if missing:
            fetched = self._fetch_blocks(missing[0], missing[-1])
            for i, n in enumerate(blocks):
                if pieces[i] is None:
                    lo, hi = max(a, n * bsz) - n * bsz, min(b, (n + 1) * bsz) - n * bsz
                    pieces[i] = fetched[n][lo:hi]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)  # type: ignore[return-value, arg-type]

    def _cached_slice(self, n: int, lo: int, hi: int) -> bytes | None:
        if not self._cacheable:
            return None
        key = self._block_key(n)
        block = self._p.cache.get(key)
        if block is not None and len(block) >= hi:
            return block[lo:hi]
        disk = self._p.disk_cache
        if disk is not None:
            return disk.read_range(key, lo, hi - lo)
        return None

    def _fetch_blocks(self, first: int, last: int) -> dict[int, bytes]:
        bsz = self._cfg.block_size
        start, end = first * bsz, min((last + 1) * bsz, self.size)
        data = self._p.fetch(self.bucket, self.key, self.etag, start, end)
        blocks = {}
        for n in range(first, last + 1):
            block = data[(n - first) * bsz : (n - first + 1) * bsz]
            blocks[n] = block
            if not self._cacheable:
                continue
            self._p.cache.put(self._block_key(n), block)
            if self._p.disk_cache is not None:
                self._p.disk_cache.put(self._block_key(n), block)
        return blocks

    def _fetch_part(self, start: int, end: int) -> bytes:
        """Pool task: one prefetch part, from the disk cache when it holds all of it."""
        bsz = self._cfg.block_size
        disk = self._p.disk_cache if self._cacheable else None
        blocks = range(start // bsz, -(-end // bsz))
        if disk is not None:
            cached = [disk.get(self._block_key(n)) for n in blocks]
            if all(c is not None for c in cached):
                data = b"".join(cached)  # type: ignore[arg-type]
                if len(data) == end - start:
                    return data
        data = self._p.fetch(self.bucket, self.key, self.etag, start, end)
        if disk is not None:
            for n in blocks:
                off = n * bsz - start
                disk.put(self._block_key(n), data[off : off + bsz])
        return data

    def _block_key(self, n: int) -> BlockKey:
        return (self.bucket, self.key, self.etag, n)
