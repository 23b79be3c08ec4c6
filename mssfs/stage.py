"""Where a write buffer keeps its bytes: a staging file, or memory for a small new file.

``FileStage`` is the staging file of ``staging.create`` (mode 0600, locked, named after
its object in extended attributes): positional writes and reads, ``ftruncate``, and the
parts that streamed and multipart uploads send (``part``: a range of the file). A new
file's appends go through a ``tail.Tail`` when the mount gives a ``TailPool``: written
to the file with ``O_DIRECT`` from a pooled buffer, and streamed parts are sent from
that buffer (see ``tail``); every other operation drains the tail first.

``MemoryStage`` is a ``bytearray``, for a new (or truncated) file while it is small. Most
files that tools such as ``cp -r``, ``tar x`` or ``rsync`` write are small, and for them
the staging file was most of mssfs's own work per file: ``mkstemp``, ``flock``, three
``setxattr``, a ``pwrite``, a ``pread``, then ``close`` and ``unlink`` (under cProfile
0.12 ms in ``create`` and 0.05 ms in ``release`` per file; with this and the transport's
change, the mount's CPU per 4 KiB file fell from 1.48 to 0.96 ms). A memory stage
holds at most ``Budget.file_limit`` bytes, and all of them together at most
``Budget.total``: the write that would pass either limit first moves the bytes to a
staging file (``WriteBuffer._spill``), so memory stays bounded however many files are
open, and anything that needs a file descriptor finds one.

What it changes for durability: nothing for a file whose ``close`` or ``fsync`` has
returned (it is stored), nor for a failed upload (the bytes go to the recovery folder
from memory as they would from the file). A mount process that is *killed* loses the
memory-staged bytes of files still open, where a staging file would have been salvaged
by the next mount (``staging.salvage``); those files' ``close`` had not returned success,
and returns an error (ECONNABORTED), so the writer still holds what it wrote.

Locking: the owning ``WriteBuffer``'s lock guards a stage, except a ``FileStage``'s
tail, which has the stage's own lock too (see ``FileStage``). ``Budget`` has its own
lock, held for its counter only.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

from mssfs import staging
from mssfs.staging import Recovery
from mssfs.tail import PooledPart, Tail, TailPool, pwrite_all
from mssfs.uploader import FileRange

__all__ = ["Budget", "FileStage", "MemoryStage", "Stage"]


class Budget:
    """How many bytes memory stages may hold: per file and all together."""

    def __init__(self, file_limit: int = 1024 * 1024, total: int = 64 * 1024 * 1024) -> None:
        self.file_limit = file_limit
        self.total = total
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    def take(self, n: int) -> bool:
        """Reserve ``n`` more bytes; False (nothing reserved) when they do not fit."""
        with self._lock:
            if self._used + n > self.total:
                return False
            self._used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self._used -= n


class Stage(Protocol):
    fd: int | None
    path: str

    def fits(self, end: int) -> bool: ...
    def pwrite(self, data: bytes | memoryview, offset: int) -> None: ...
    def pread(self, size: int, offset: int) -> bytes: ...
    def truncate(self, length: int) -> None: ...
    def trim(self, length: int) -> None: ...
    def part(self, offset: int, length: int) -> FileRange | PooledPart: ...
    def drain(self) -> None: ...
    def read_all(self, size: int) -> bytes: ...
    def save(self, recovery: Recovery, bucket: str, key: str) -> str: ...
    def close(self) -> None: ...


class FileStage:
    """The staging file (see ``staging``), with a tail for a new file's appends.

    Its own lock guards the tail: the write buffer reads under its lock while a commit,
    which holds no lock (it only keeps writers out), takes the last part or drains the
    tail. Taken after the write buffer's lock, never before it."""

    def __init__(self, staging_dir: str, bucket: str, key: str, *, whole: bool,
                 tails: TailPool | None = None) -> None:
        self.fd: int | None
        self.fd, self.path = staging.create(staging_dir, bucket, key, whole=whole)
        self._lock = threading.Lock()
        # Only a new file is appended to from its start; an existing one is fetched
        # and written in place.
        self._tail = Tail.open(tails, self.path, self.fd) if whole else None

    @property
    def _fd(self) -> int:
        assert self.fd is not None, "the staging file is closed"
        return self.fd

    def fits(self, end: int) -> bool:
        return True

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        with self._lock:
            if self._tail is not None:
                if self._tail.append(data, offset):
                    return
                self._drain()
        pwrite_all(self._fd, memoryview(data), offset)

    def pread(self, size: int, offset: int) -> bytes:
        with self._lock:
            if self._tail is not None:
                return self._tail.read(offset, size)
        return os.pread(self._fd, size, offset)

    def truncate(self, length: int) -> None:
        self.drain()
        os.ftruncate(self._fd, length)

    def trim(self, length: int) -> None:
        """After a failed write: cut what landed past ``length``."""
        with self._lock:
            if self._tail is not None:
                self._tail.cut(length)
                if not self._tail.ended:  # the file has no byte past the tail's flushed
                    return
                self._tail = None
        if os.fstat(self._fd).st_size > length:
            os.ftruncate(self._fd, length)

    def part(self, offset: int, length: int) -> FileRange | PooledPart:
        """Bytes ``[offset, offset + length)`` to upload: from the tail's memory when
        they are its first bytes, else a range of the file."""
        with self._lock:
            if self._tail is not None:
                body = self._tail.take(offset, length)
                if self._tail.ended:
                    self._tail = None
                if body is not None:
                    return body
        return FileRange(self._fd, offset, length)

    def drain(self) -> None:
        """Make the file hold every byte (the tail ends)."""
        with self._lock:
            self._drain()

    def read_all(self, size: int) -> bytes:
        with self._lock:
            if self._tail is not None:
                return self._tail.read(0, size)
        return FileRange(self._fd, 0, size).read()

    def save(self, recovery: Recovery, bucket: str, key: str) -> str:
        self.drain()
        return recovery.save(bucket, key, self._fd)

    def close(self) -> None:
        with self._lock:
            tail, self._tail = self._tail, None
        if tail is not None:
            tail.close()
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
            os.unlink(self.path)

    def _drain(self) -> None:
        if self._tail is not None:
            self._tail.drain()
            self._tail = None


class MemoryStage:
    """A small new file's bytes in memory, counted against a ``Budget``."""

    fd = None
    path = ""  # no file: recovery and upload messages name the object instead

    def __init__(self, budget: Budget, limit: int) -> None:
        self._budget = budget
        self._limit = min(limit, budget.file_limit)
        self._data = bytearray()
        self._reserved = 0  # taken from the budget; never less than len(self._data)

    def fits(self, end: int) -> bool:
        """Whether the stage can grow to ``end`` bytes; if so, the growth is reserved."""
        if end <= self._reserved:
            return True
        if end > self._limit or not self._budget.take(end - self._reserved):
            return False
        self._reserved = end
        return True

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        # fits(offset + len(data)) reserved the growth; a hole reads as zeros.
        if offset > len(self._data):
            self._data.extend(bytes(offset - len(self._data)))
        self._data[offset:offset + len(data)] = data

    def pread(self, size: int, offset: int) -> bytes:
        return bytes(self._data[offset:offset + size])

    def truncate(self, length: int) -> None:
        # Growing: fits(length) reserved it. Shrinking gives the rest back.
        if length < len(self._data):
            del self._data[length:]
        else:
            self._data.extend(bytes(length - len(self._data)))
        if length < self._reserved:
            self._budget.give(self._reserved - length)
            self._reserved = length

    def trim(self, length: int) -> None:
        self.truncate(min(length, len(self._data)))

    def part(self, offset: int, length: int) -> FileRange | PooledPart:
        raise AssertionError("a part of a memory stage: it never holds more than one")

    def drain(self) -> None:
        pass  # no file

    def read_all(self, size: int) -> bytes:
        return bytes(self._data[:size])

    def save(self, recovery: Recovery, bucket: str, key: str) -> str:
        return recovery.save(bucket, key, bytes(self._data))

    def close(self) -> None:
        self._budget.give(self._reserved)
        self._reserved = 0
        self._data = bytearray()
