"""On-disk block cache (``-o cache_dir=DIR,cache_size=SIZE``), for workloads that re-read
large objects at random.

Layout: one sparse file per object version, ``DIR/<2 hex>/<sha256>.obj``, hashed from
``(bucket, key, etag)``; block ``n`` of the object lives at offset ``n * block_size``, as
in the object. The ETag is part of the name, so a changed object never serves stale
bytes (its old file is simply never asked for again and ages out). A file whose every
block is present is a byte-exact copy of the object: ``whole_file`` hands it out, and
the mount gives it to the kernel as a FUSE passthrough backing file (``passthrough``),
so reads of it never reach Python.

Beside each data file, ``<sha256>.idx`` is its journal (``cache_journal``): the blocks
the file holds with their CRC32s, appended as they come and go, and a *seal* once they
were checked and are on disk. At start every journal is replayed (one of another block
size, or without its data file, is deleted with its file) and compacted when it holds
more dead records than live ones. Files are 0600 in directories 0700.

Index: an ``OrderedDict`` of ``(file name, block)`` → length in least-recently-used
order, and the total. A ``put`` that takes the total over ``capacity_bytes`` evicts the
least recently used blocks: their range is punched out of the data file
(``FALLOC_FL_PUNCH_HOLE``) and a removal record appended. A file that is pinned (handed
out by ``whole_file`` and still in use) is never punched: evicting any of its blocks
unlinks the whole file instead, and the kernel's open file keeps the bytes readable
until it is closed.

Checks: ``get`` (whole blocks, the sequential path) checks the block's CRC32; the hot
``read_range`` checks only the length. ``whole_file`` checks every block's CRC before
handing out a file written by an earlier mount and not sealed (its bytes may not have
reached the disk before a crash; blocks written by this process are known), and
``close`` seals the files it handed out, so each file is checked at most once. A
corrupt block is a miss and is removed.

One process per directory: an exclusive ``flock`` on ``DIR/.lock`` refuses a second
mount on the same cache (two indexes would evict each other's blocks blindly).

Locking: one ``threading.Lock`` guards the index, the files' block maps, the fd LRU and
the counters. It is held across the ``pread`` of a cached block (a local page-cache
read of at most one block) so that an fd cannot be closed by an eviction while in use,
and across journal appends and hole punches; never across a network call. A block's bytes
are written outside it (two writers of one block write the same bytes), and written
again under it if a hole was punched or a file dropped meanwhile (``_removals``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import functools
import hashlib
import logging
import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from mssfs import cache_journal as journal
from mssfs.cache_journal import CachedFile
from mssfs.read_cache import BlockKey

log = logging.getLogger(__name__)

_DATA, _JOURNAL = ".obj", ".idx"

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


@dataclass(frozen=True)
class DiskCacheConfig:
    directory: str  # created 0700 if missing
    capacity_bytes: int = 4 * 1024**3  # cache_size: blocks beyond are evicted (LRU)
    max_open_files: int = 256  # cached fds for fast preads
    block_size: int = 1024**2  # the read path's block size: block n is at n * block_size

    def __post_init__(self) -> None:
        if self.capacity_bytes < 0 or self.max_open_files < 1 or self.block_size < 1:
            raise ValueError("cache_size must be >= 0, max_open_files and block_size >= 1")


class CacheDirInUse(RuntimeError):
    """Another process holds this cache directory."""


@functools.lru_cache(maxsize=8192)  # hot objects skip the hashing on every read
def _file_name(bucket: str, key: str, etag: str) -> str:
    # repr() of a tuple of str is unambiguous, whatever characters a key holds.
    digest = hashlib.sha256(repr((bucket, key, etag)).encode("utf-8", "surrogatepass"))
    hexdigest = digest.hexdigest()
    return f"{hexdigest[:2]}/{hexdigest}"


class DiskBlockCache:
    """LRU of blocks in per-object sparse files, bounded by ``capacity_bytes``.
    Thread-safe."""

    def __init__(self, config: DiskCacheConfig) -> None:
        self.config = config
        self.root = os.path.abspath(config.directory)
        self._lock = threading.Lock()
        self._index: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._files: dict[str, CachedFile] = {}
        self._fds: OrderedDict[str, int] = OrderedDict()  # name → read-only fd
        self.total_bytes = 0
        self._removals = 0  # holes punched and files dropped: see put
        self._to_seal: set[str] = set()  # checked by whole_file, sealed at close
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
        name, n = _file_name(*key[:3]), key[3]
        with self._lock:
            entry = self._lookup(name, n)
            if entry is None:
                return self._miss()
            length, crc = entry
            data = self._pread(name, length, n * self.config.block_size)
            if data is None or zlib.crc32(data) != crc:
                self._remove_block(name, n)
                return self._miss()
            self.hits += 1
            return data

    def read_range(self, key: BlockKey, start: int, length: int) -> bytes | None:
        """Bytes [start, start + length) of the block, or None if it is not cached or
        shorter than that."""
        name, n = _file_name(*key[:3]), key[3]
        with self._lock:
            entry = self._lookup(name, n)
            if entry is None or start + length > entry[0]:
                return self._miss()
            data = self._pread(name, length, n * self.config.block_size + start)
            if data is None:  # truncated or removed behind our back
                self._remove_block(name, n)
                return self._miss()
            self.hits += 1
            return data

    def put(self, key: BlockKey, data: bytes) -> None:
        name, n = _file_name(*key[:3]), key[3]
        if not data or len(data) > min(self.config.capacity_bytes, self.config.block_size):
            return
        with self._lock:
            if (name, n) in self._index:
                self._index.move_to_end((name, n))
                return
            removals = self._removals
        crc = zlib.crc32(data)
        try:
            self._write_block(name, n, data)
        except OSError as exc:  # a full or broken disk costs cache hits, not reads
            self._warn(exc)
            return
        with self._lock:
            if (name, n) in self._index:
                return
            file = self._files.setdefault(name, CachedFile())
            try:
                if self._removals != removals:
                    # A hole punched or a file unlinked while the bytes were written
                    # may have taken them: write them again, now that nothing can.
                    self._write_block(name, n, data)
                self._append(name, file, n, len(data), crc)
            except OSError as exc:
                self._warn(exc)
                return
            file.blocks[n] = (len(data), crc)
            self._index[(name, n)] = len(data)
            self.total_bytes += len(data)
            self._evict()

    def whole_file(self, bucket: str, key: str, etag: str, size: int) -> int | None:
        """A read-only fd of a local byte-exact copy of the object when every block of
        it is cached, pinned until ``unpin`` (its blocks are not punched out while the
        kernel reads them). The caller closes the fd."""
        name = _file_name(bucket, key, etag)
        with self._lock:
            file = self._files.get(name)
            if file is None or size <= 0 or not self._complete(file, size):
                return None
            for n in range(len(file.blocks)):  # the whole object is in use
                self._index.move_to_end((name, n))
            try:
                fd = os.open(os.path.join(self.root, name + _DATA), os.O_RDONLY)
            except OSError:
                self._drop_file(name)
                return None
            file.pins += 1
            blocks = None if file.verified else dict(file.blocks)
        good = blocks is None or self._verify(fd, blocks, self.config.block_size)
        with self._lock:
            if good:
                file.verified = True
                if not file.sealed:
                    self._to_seal.add(name)
                return fd
            file.pins -= 1
            self._drop_file(name)
        os.close(fd)
        return None

    def unpin(self, bucket: str, key: str, etag: str) -> None:
        with self._lock:
            file = self._files.get(_file_name(bucket, key, etag))
            if file is not None and file.pins > 0:
                file.pins -= 1

    def close(self) -> None:
        with self._lock:
            self._seal()
            for fd in self._fds.values():
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
        found: list[tuple[float, str]] = []
        for sub in os.scandir(self.root):
            if not sub.is_dir(follow_symlinks=False) or len(sub.name) != 2:
                continue
            for entry in os.scandir(sub.path):
                stem, ext = os.path.splitext(entry.name)
                name = f"{sub.name}/{stem}"
                if ext == _JOURNAL:
                    found.append((entry.stat(follow_symlinks=False).st_mtime, name))
                elif ext != _DATA or not os.path.exists(
                        os.path.join(self.root, name + _JOURNAL)):
                    self._unlink(f"{sub.name}/{entry.name}")  # a stray, or from a crash
        for _, name in sorted(found):  # oldest journal first: least recently used
            file = self._replay(name)
            if file is None:
                self._unlink(name + _DATA)
                self._unlink(name + _JOURNAL)
                continue
            self._files[name] = file
            for n, (length, _crc) in sorted(file.blocks.items()):
                self._index[(name, n)] = length
                self.total_bytes += length
            if file.records > 2 * len(file.blocks) + 16:
                try:
                    journal.rewrite(os.path.join(self.root, name + _JOURNAL), file,
                                    self.config.block_size)
                except OSError as exc:
                    self._warn(exc)
        with self._lock:
            self._evict()

    def _replay(self, name: str) -> CachedFile | None:
        try:
            data_size = os.path.getsize(os.path.join(self.root, name + _DATA))
        except OSError:
            return None
        return journal.replay(os.path.join(self.root, name + _JOURNAL),
                              self.config.block_size, data_size)

    def _seal(self) -> None:
        """At close: mark the files ``whole_file`` checked as such in their journals,
        once their bytes are on disk, so the next mount hands them out unread. Lock
        held."""
        for name in self._to_seal:
            file = self._files.get(name)
            if file is None or not file.verified:
                continue
            try:
                fd = os.open(os.path.join(self.root, name + _DATA), os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                self._append(name, file, journal.SEAL, 0, 0)
                file.sealed = True
            except OSError as exc:
                self._warn(exc)
        self._to_seal.clear()

    def _write_block(self, name: str, n: int, data: bytes) -> None:
        path = os.path.join(self.root, name + _DATA)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, n * self.config.block_size)
        finally:
            os.close(fd)

    def _append(self, name: str, file: CachedFile, n: int, length: int, crc: int) -> None:
        """One journal record. Lock held."""
        journal.append(os.path.join(self.root, name + _JOURNAL), file, self.config.block_size,
                       n, length, crc)

    def _lookup(self, name: str, n: int) -> tuple[int, int] | None:
        """(length, crc) of a cached block, marked recently used. Lock held."""
        file = self._files.get(name)
        entry = file.blocks.get(n) if file is not None else None
        if entry is not None:
            self._index.move_to_end((name, n))
        return entry

    def _pread(self, name: str, length: int, offset: int) -> bytes | None:
        """``length`` bytes of a data file, through the fd LRU; None if short. Lock held."""
        fd = self._fds.get(name)
        if fd is None:
            try:
                fd = os.open(os.path.join(self.root, name + _DATA), os.O_RDONLY)
            except OSError:
                return None
            self._fds[name] = fd
            while len(self._fds) > self.config.max_open_files:
                os.close(self._fds.popitem(last=False)[1])
        else:
            self._fds.move_to_end(name)
        data = os.pread(fd, length, offset)
        return data if len(data) == length else None

    def _complete(self, file: CachedFile, size: int) -> bool:
        bsz = self.config.block_size
        count = -(-size // bsz)
        if len(file.blocks) != count:
            return False
        last = size - (count - 1) * bsz
        return all(file.blocks.get(n, (-1,))[0] == (bsz if n < count - 1 else last)
                   for n in range(count))

    @staticmethod
    def _verify(fd: int, blocks: dict[int, tuple[int, int]], bsz: int) -> bool:
        """Whether every block matches its CRC (no lock: the file is pinned)."""
        for n, (length, crc) in sorted(blocks.items()):
            data = os.pread(fd, length, n * bsz)
            if len(data) != length or zlib.crc32(data) != crc:
                log.warning("disk cache: block %d of a cached object is corrupt; "
                            "the object's file is dropped", n)
                return False
        return True

    def _remove_block(self, name: str, n: int) -> None:
        """Forget block ``n`` of ``name`` and free its bytes (corrupt, vanished or
        evicted). Lock held."""
        file = self._files.get(name)
        if file is None or n not in file.blocks:
            self.total_bytes -= self._index.pop((name, n), 0)  # never loop in _evict
            return
        if file.pins or len(file.blocks) == 1:
            self._drop_file(name)  # in use by the kernel: unlink, never punch
            return
        length, _crc = file.blocks.pop(n)
        self.total_bytes -= self._index.pop((name, n), 0)
        self._removals += 1
        try:
            self._append(name, file, n, journal.REMOVED, 0)
            fd = os.open(os.path.join(self.root, name + _DATA), os.O_WRONLY)
            try:
                bsz = self.config.block_size
                if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
                                   n * bsz, length) != 0:
                    raise OSError(ctypes.get_errno(), "fallocate(PUNCH_HOLE)")
            finally:
                os.close(fd)
        except OSError as exc:  # no hole punching here: give up the whole file
            self._warn(exc)
            self._drop_file(name)

    def _drop_file(self, name: str) -> None:
        """Forget and delete an object's data file and journal. Lock held."""
        self._removals += 1
        file = self._files.pop(name, None)
        if file is not None:
            for n in file.blocks:
                self.total_bytes -= self._index.pop((name, n), 0)
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        self._unlink(name + _DATA)
        self._unlink(name + _JOURNAL)

    def _evict(self) -> None:
        while self.total_bytes > self.config.capacity_bytes and self._index:
            self._remove_block(*next(iter(self._index)))

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.root, name))
        except FileNotFoundError:
            pass

    def _warn(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("disk cache: cannot write blocks in %s: %s", self.root, exc)

    def _miss(self) -> None:
        self.misses += 1
        return None
