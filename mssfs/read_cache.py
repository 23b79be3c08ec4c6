"""In-memory block cache: an LRU of object data blocks, bounded in bytes.

Keys are ``(bucket, key, etag, block_number)``. The ETag is part of the key, so an
object that changed on the server can never be answered with the old bytes: the new
ETag simply misses, and the old blocks age out of the LRU (or are dropped at once by
``discard_object`` when this process itself overwrote or deleted the object).

The bound is in bytes (``cachetools.LRUCache(maxsize=capacity, getsizeof=len)``), so
the memory this cache holds never exceeds its capacity whatever the block sizes. A
block larger than the whole capacity is simply not cached.

Values are stored and returned as-is (``bytes``, never copied): callers slice them.

Locking: one ``threading.Lock`` guards the LRU and the counters; it is held only for
the dict operations, never across I/O (there is none here).
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

BlockKey = tuple[str, str, str, int]  # (bucket, key, etag, block_number)


class BlockCache:
    """A thread-safe LRU of data blocks bounded by ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._lru: LRUCache = LRUCache(maxsize=max(capacity_bytes, 1), getsizeof=len)
        self.hits = 0
        self.misses = 0

    def get(self, key: BlockKey) -> bytes | None:
        with self._lock:
            data = self._lru.get(key)
            if data is None:
                self.misses += 1
            else:
                self.hits += 1
            return data

    def contains(self, key: BlockKey) -> bool:
        """Whether ``key`` is cached, without counting a hit or touching its recency."""
        with self._lock:
            return key in self._lru

    def put(self, key: BlockKey, data: bytes) -> None:
        if self.capacity_bytes == 0 or len(data) > self.capacity_bytes:
            return
        with self._lock:
            self._lru[key] = bytes(data)

    def discard_object(self, bucket: str, key: str) -> None:
        """Drop every block of ``bucket/key``, whatever its ETag."""
        with self._lock:
            doomed = [k for k in self._lru if k[0] == bucket and k[1] == key]
            for k in doomed:
                self._lru.pop(k, None)

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return int(self._lru.currsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._lru)
