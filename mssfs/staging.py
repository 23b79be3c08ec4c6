"""The local copy of one write buffer's bytes: in memory while small, then a file.

``Staging`` is what ``WriteBuffer`` writes into and uploads from. It starts in memory
(a ``bytearray``) when the shared ``MemoryBudget`` grants it ``memory_limit`` bytes,
and moves to a *staging file* (mode 0600 in ``directory``, created by ``mkstemp``)
the first time it needs one: a write or truncate past ``memory_limit``, or a caller
that needs a file descriptor or a path (a streamed part, a multipart upload from the
file, the recovery folder). Most files that ``cp``, ``tar`` or an editor write are
small and go up as one PUT straight from memory, without creating, writing and
unlinking a file (about 120 µs each, measured: a tenth of what ``tar x`` spends per
file). Either way the bytes stay here until the buffer is closed, so a failed upload
can still hand them to the recovery folder.

Memory is bounded twice: each in-memory copy by ``memory_limit``, and all of them
together by the budget (a copy that cannot get its reservation starts as a file).
The reservation is returned when the copy moves to a file or is closed.

Locking: none. ``WriteBuffer`` calls every method under its own lock. The budget has
its own lock, held for counter updates only.
"""

from __future__ import annotations

import os
import tempfile
import threading


class MemoryBudget:
    """Bytes of in-memory staging that all write buffers may hold together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._lock = threading.Lock()

    def try_acquire(self, n: int) -> bool:
        with self._lock:
            if self.in_use + n > self.limit:
                return False
            self.in_use += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.in_use -= n


class Staging:
    """A file's bytes, in memory up to ``memory_limit``, else in a staging file."""

    def __init__(self, directory: str, memory_limit: int = 0,
                 budget: MemoryBudget | None = None) -> None:
        self._directory = directory
        self._limit = memory_limit
        self._budget = budget
        self._mem: bytearray | None = None
        if memory_limit > 0 and (budget is None or budget.try_acquire(memory_limit)):
            self._mem = bytearray()
        self._fd = -1
        self.path: str | None = None  # the staging file, once there is one
        if self._mem is None:
            self._spill()

    @property
    def in_memory(self) -> bool:
        return self._mem is not None

    def __len__(self) -> int:
        if self._mem is not None:
            return len(self._mem)
        return os.fstat(self._fd).st_size

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``; a hole before it reads as zeros."""
        end = offset + len(data)
        mem = self._mem
        if mem is not None and end <= self._limit:
            if offset > len(mem):
                mem.extend(bytes(offset - len(mem)))
            mem[offset:end] = data
            return
        fd = self.fileno()
        view, pos = memoryview(data), offset
        while view:
            done = os.pwrite(fd, view, pos)
            view, pos = view[done:], pos + done

    def pread(self, size: int, offset: int) -> bytes:
        if self._mem is not None:
            return bytes(self._mem[offset : offset + size])
        return os.pread(self._fd, size, offset)

    def truncate(self, length: int) -> None:
        mem = self._mem
        if mem is not None and length <= self._limit:
            if length < len(mem):
                del mem[length:]
            else:
                mem.extend(bytes(length - len(mem)))
            return
        os.ftruncate(self.fileno(), length)

    def fileno(self) -> int:
        """The staging file's descriptor (creating the file, with the bytes so far)."""
        if self._fd < 0:
            self._spill()
        return self._fd

    def file_path(self) -> str:
        self.fileno()
        assert self.path is not None
        return self.path

    def contents(self, size: int) -> bytes:
        """The first ``size`` bytes (the whole file, for a single PUT)."""
        return self.pread(size, 0)

    def recovery_source(self) -> bytes | int:
        """What ``RecoveryFolder.save`` copies: the bytes, or the file descriptor."""
        return bytes(self._mem) if self._mem is not None else self._fd

    def close(self) -> None:
        """Forget the bytes: free the memory, or close and delete the file."""
        self._drop_memory()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
            if self.path is not None:
                os.unlink(self.path)

    def _spill(self) -> None:
        os.makedirs(self._directory, mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="mssfs-", dir=self._directory)
        mem = self._mem
        try:
            if mem:
                view, pos = memoryview(mem), 0
                while pos < len(mem):
                    pos += os.pwrite(fd, view[pos:], pos)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        self._fd, self.path = fd, path
        self._drop_memory()

    def _drop_memory(self) -> None:
        if self._mem is not None:
            self._mem = None
            if self._budget is not None:
                self._budget.release(self._limit)
