"""On-disk block cache (``-o cache_dir=DIR,cache_size=SIZE``), for workloads that re-read
large objects at random.

Layout: one file per block, ``DIR/<2 hex>/<sha256>.blk``. The hash is of the block key
``(bucket, key, etag, block_number)``: the ETag is part of the name, so a changed object
never serves stale bytes (its old blocks are simply never asked for again and age out).
Each file is a 16-byte header (magic ``MSSFSBK1``, payload length, CRC32 of the payload)
followed by the payload. Files are created 0600 in directories 0700, written to a
temporary name and renamed into place, so a reader sees a whole block or none.

Index: in memory, an ``OrderedDict`` of file name → file size in least-recently-used
order, and the total size. At start the directory is scanned (oldest mtime first) so
blocks are reused across remounts; leftover temporary files are deleted. A ``put``
that takes the total over ``capacity_bytes`` evicts least-recently-used blocks.

Reads are cheap, because warm random 4 KiB reads must be fast: the block's file
descriptor is kept open in a small LRU of fds and the bytes come from one
``os.pread``. A block's header and file size are checked when its fd is opened; the
CRC is checked by ``get`` (a whole-block read, which is rare on the hot path). A short
or corrupt block is treated as a miss and deleted.

One process per directory: an exclusive ``flock`` on ``DIR/.lock`` refuses a second
mount on the same cache (two indexes would evict each other's files blindly).

Locking: one ``threading.Lock`` guards the index, the fd LRU and the counters. It is
held across the ``pread`` of a cached block (a local page-cache read of at most one
block) so that an fd cannot be closed by an eviction while in use; never across a
network call. Writing a new block file happens outside the lock.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from mssfs.read_cache import BlockKey

log = logging.getLogger(__name__)

_MAGIC = b"MSSFSBK1"
_HEADER = struct.Struct(">8sII")  # magic, payload length, crc32
_SUFFIX = ".blk"


@dataclass(frozen=True)
class DiskCacheConfig:
    directory: str  # created 0700 if missing
    capacity_bytes: int = 4 * 1024**3  # cache_size: blocks beyond are evicted (LRU)
    max_open_files: int = 256  # cached fds for fast preads

    def __post_init__(self) -> None:
        if self.capacity_bytes < 0 or self.max_open_files < 1:
            raise ValueError("cache_size must be >= 0 and max_open_files >= 1")


class CacheDirInUse(RuntimeError):
    """Another process holds this cache directory."""


@functools.lru_cache(maxsize=8192)  # hot blocks skip the hashing on every read
def _file_name(key: BlockKey) -> str:
    # repr() of a tuple of str/int is unambiguous, whatever characters a key holds.
    digest = hashlib.sha256(repr(key).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{digest[:2]}/{digest}{_SUFFIX}"


class DiskBlockCache:
    """LRU of block files in a directory, bounded by ``capacity_bytes``. Thread-safe."""

    def __init__(self, config: DiskCacheConfig) -> None:
        self.config = config
        self.root = os.path.abspath(config.directory)
        self._lock = threading.Lock()
        self._index: OrderedDict[str, int] = OrderedDict()
        self._fds: OrderedDict[str, tuple[int, int]] = OrderedDict()  # name → (fd, length)
        self.total_bytes = 0
        self.hits = 0
        self.misses = 0
        self._warned = False  # about write failures: once, not per block
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        self._lock_fd = self._take_dir_lock()
        self._scan()

    # -- public -------------------------------------------------------------------
    def get(self, key: BlockKey) -> bytes | None:
        """The whole block, CRC-checked, or None."""
        name = _file_name(key)
        with self._lock:
            found = self._open(name)
            if found is None:
                return self._miss()
            fd, length = found
            data = os.pread(fd, length + _HEADER.size, 0)
            header, payload = data[: _HEADER.size], data[_HEADER.size :]
            if len(payload) != length or _HEADER.unpack(header)[2] != zlib.crc32(payload):
                self._drop(name)
                return self._miss()
            self.hits += 1
            return payload

    def read_range(self, key: BlockKey, start: int, length: int) -> bytes | None:
        """Bytes [start, start + length) of the block, or None if it is not cached or
        shorter than that."""
        name = _file_name(key)
        with self._lock:
            found = self._open(name)
            if found is None or start + length > found[1]:
                return self._miss()
            data = os.pread(found[0], length, _HEADER.size + start)
            if len(data) != length:  # truncated behind our back
                self._drop(name)
                return self._miss()
            self.hits += 1
            return data

    def put(self, key: BlockKey, data: bytes) -> None:
        name = _file_name(key)
        size = _HEADER.size + len(data)
        if size > self.config.capacity_bytes:
            return
        with self._lock:
            if name in self._index:
                self._index.move_to_end(name)
                return
        try:
            self._write_file(name, data)
        except OSError as exc:  # a full or broken disk costs cache hits, not reads
            if not self._warned:
                self._warned = True
                log.warning("disk cache: cannot write blocks in %s: %s", self.root, exc)
            return
        with self._lock:
            self.total_bytes += size - self._index.pop(name, 0)
            self._index[name] = size
            self._evict()

    def close(self) -> None:
        with self._lock:
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    # -- internals ------------------------------------------------------------------
    def _take_dir_lock(self) -> int:
        fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CacheDirInUse(f"cache directory {self.root} is used by another process")
        return fd

    def _scan(self) -> None:
        found: list[tuple[float, str, int]] = []
        for sub in os.scandir(self.root):
            if not sub.is_dir(follow_symlinks=False) or len(sub.name) != 2:
                continue
            for entry in os.scandir(sub.path):
                if not entry.name.endswith(_SUFFIX):  # a temporary file from a crash
                    self._unlink(f"{sub.name}/{entry.name}")
                    continue
                st = entry.stat(follow_symlinks=False)
                found.append((st.st_mtime, f"{sub.name}/{entry.name}", st.st_size))
        for _, name, size in sorted(found):
            self._index[name] = size
            self.total_bytes += size
        with self._lock:
            self._evict()

    def _write_file(self, name: str, data: bytes) -> None:
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _HEADER.pack(_MAGIC, len(data), zlib.crc32(data)) + data)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _open(self, name: str) -> tuple[int, int] | None:
        """The cached (fd, payload length) of block ``name``, opening and checking it if
        needed. Lock held."""
        if name not in self._index:
            return None
        self._index.move_to_end(name)
        found = self._fds.get(name)
        if found is not None:
            self._fds.move_to_end(name)
            return found
        try:
            fd = os.open(os.path.join(self.root, name), os.O_RDONLY)
        except OSError:
            self._drop(name)
            return None
        header = os.pread(fd, _HEADER.size, 0)
        magic, length = (_HEADER.unpack(header)[:2] if len(header) == _HEADER.size
                         else (b"", -1))
        if magic != _MAGIC or os.fstat(fd).st_size != _HEADER.size + length:
            os.close(fd)
            self._drop(name)
            return None
        self._fds[name] = (fd, length)
        while len(self._fds) > self.config.max_open_files:
            os.close(self._fds.popitem(last=False)[1][0])
        return fd, length

    def _drop(self, name: str) -> None:
        """Forget and delete a block (corrupt, vanished, or evicted). Lock held."""
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd[0])
        self.total_bytes -= self._index.pop(name, 0)
        self._unlink(name)

    def _evict(self) -> None:
        while self.total_bytes > self.config.capacity_bytes and self._index:
            self._drop(next(iter(self._index)))

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.root, name))
        except FileNotFoundError:
            pass

    def _miss(self) -> None:
        self.misses += 1
        return None
