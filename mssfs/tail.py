"""The append tail: a new file's sequential writes, staged without the page cache.

Why. Every byte written to the mount is kept in a staging file until its object is
stored (``write_buffer``). Written the ordinary way, that costs a copy into fresh
page-cache pages, which the kernel must allocate, account and later free: 0.37 s of
CPU per GiB on an idle machine, and a third of the mount's CPU during a 1 GiB ``dd``
(``perf``), on top of reading each part back (``pread``) to send it. On a machine where
the S3 server shares the CPU, that copy is taken from the server. Measured with this
module, alternated on one SeaweedFS, each mount run right after a boto3 upload (6
rounds, medians of a 1 GiB ``dd``): 178 against 171 MB/s (boto3's ``upload_file``: 200),
with 1.56 against 1.88 s of the mount's CPU.

How. A ``Tail`` holds the end of a staging file, bytes ``[start, start + filled)``, in a
page-aligned buffer lent by a ``TailPool`` (private anonymous memory of one part plus
1 MiB, a write that completes a part may pass its end by up to one FUSE write, rounded
up to whole 2 MiB huge pages, which it asks the kernel for: ``_new_buffer``). An
append is copied into the buffer; as soon as at least ``FLUSH_STEP`` (1 MiB) of
whole 4 KiB blocks are not yet in the file, they are written to it with ``O_DIRECT``
(a second descriptor of the staging file): the device reads them from the buffer, no
page cache is involved, and the file lags the application by less than 1 MiB + 4 KiB.
``take`` gives the buffer's first ``length`` bytes away as a ``PooledPart``, the part
the write buffer streams, once the file holds them; the bytes past the part move to
another buffer of the pool and the tail goes on. So each byte is copied once in user
space (into the buffer), written to disk by the device, and sent from the same memory.

Reads are served from the file below the buffer and from the buffer. Anything else (a
write elsewhere, a truncate, a recovery copy, an upload of the whole file) first
``drain``s the tail: the rest goes to the file (the last partial block with an ordinary
``pwrite``) and the tail ends for good, leaving an ordinary staging file.

When it is not used (the stage falls back to ordinary writes, with the same bytes):
the staging directory refuses ``O_DIRECT`` (tmpfs did before Linux 6.6); a direct
write fails with EINVAL; the pool is disabled (``-o no_direct_staging``), or disables
itself for ten minutes because the staging disk is slow (direct writes make the writer
wait for the device: under ``MIN_RATE`` over a window of ``RATE_WINDOW`` bytes,
ordinary writes are cheaper), or has no buffer left to lend (``limit``); a part larger
than the buffer (the 1,001st part of a stream and later ones, which are larger). A part
the pool cannot replace is read back from the file instead (``take`` returns None) and
the tail keeps its buffer.

What it changes for durability: nothing for files that are closed or fsynced, nor for
failed uploads (``drain`` precedes every recovery copy). A mount process that is killed
leaves staging files short of the last unflushed bytes of each file being appended to
(under 1 MiB + 4 KiB); the writers' ``close`` fails (ECONNABORTED), as for memory-staged
files (``stage``).

Locking: a ``Tail`` has no lock: its owner's (the ``FileStage``'s) guards it. ``TailPool``
has one lock for its lists and counters, never held across I/O. A ``PooledPart`` goes
back to the pool once: when the uploader releases it, or when it is collected.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable

__all__ = ["DIO_ALIGN", "FLUSH_STEP", "PooledPart", "Tail", "TailPool", "pwrite_all"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DIO_ALIGN = 4096  # offsets, lengths and addresses of direct writes (any device's block)
FLUSH_STEP = MiB  # write the aligned bytes out once this many are waiting
MIN_RATE = 400e6  # bytes/s: slower direct writes cost the writer more than a copy
RATE_WINDOW = 256 * MiB  # direct bytes per rate check
SLOW_RETRY = 600.0  # seconds before a disk found slow is tried again
O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux and most Unixes; not macOS
HUGE_PAGE = 2 * MiB


class TailPool:
    """Lends page-aligned buffers of ``size`` bytes, at most ``limit`` at once."""

    def __init__(self, size: int, limit: int, *, keep: int = 2, enabled: bool = True,
                 min_rate: float = MIN_RATE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Whole huge pages (2 MiB), so every page of a buffer can be one.
        self.size = -(-size // HUGE_PAGE) * HUGE_PAGE
        self.limit, self.keep, self.min_rate = limit, keep, min_rate
        self._clock = clock
        self._enabled = enabled
        self._why_off = "" if enabled else "turned off (no_direct_staging)"
        self._retry_at: float | None = None  # when a slow disk gets another chance
        self._free: list[mmap.mmap] = []
        self._lent = 0
        self._lock = threading.Lock()
        self._direct = [0, 0.0]  # bytes and seconds of all direct writes
        self._window = [0, 0.0]  # the same since the last rate check

    @property
    def enabled(self) -> bool:
        with self._lock:
            return self._on()

    def lend(self) -> mmap.mmap | None:
        """A buffer, or None: disabled, or ``limit`` already lent."""
        with self._lock:
            if not self._on() or self._lent >= self.limit:
                return None
            self._lent += 1
            if self._free:
                return self._free.pop()
        try:
            return _new_buffer(self.size)
        except OSError:
            with self._lock:
                self._lent -= 1
            return None

    def give_back(self, buf: mmap.mmap) -> None:
        """Return a lent buffer. Once nothing is lent, keep only ``keep`` mapped: the
        rest would stay resident for nothing (a new one costs page faults, 0.23 to
        0.30 s of CPU per GiB of buffers in huge pages, so a busy pool reuses them).
        A pool turned off keeps none: the parts that follow are read from the staging
        file into memory of their own, which would come on top of idle buffers."""
        with self._lock:
            self._lent -= 1
            self._free.append(buf)
            keep = self.keep if self._on() else 0
            extra: list[mmap.mmap] = []
            if (self._lent == 0 or keep == 0) and len(self._free) > keep:
                extra = self._free[:len(self._free) - keep]
                del self._free[:len(extra)]
        for old in extra:
            with contextlib.suppress(BufferError):  # a view still alive: GC frees it
                old.close()

    def direct_written(self, nbytes: int, seconds: float) -> None:
        """Account a direct write. Over each ``RATE_WINDOW`` of them, a rate under
        ``min_rate`` turns direct staging off for ``SLOW_RETRY`` seconds: a slow disk
        would make every writer wait for it, where an ordinary write only copies."""
        with self._lock:
            for total in (self._direct, self._window):
                total[0] += nbytes
                total[1] += seconds
            if self._window[0] < RATE_WINDOW:
                return
            rate = self._window[0] / max(self._window[1], 1e-9)
            self._window = [0, 0.0]
            if rate >= self.min_rate:
                return
        self.disable(f"the staging disk took direct writes at {rate / 1e6:.0f} MB/s, "
                     f"under {self.min_rate / 1e6:.0f}", retry_after=SLOW_RETRY)

    def disable(self, why: str, *, retry_after: float | None = None) -> None:
        """Lend nothing from now on (for ``retry_after`` seconds, if given), and unmap
        the idle buffers; lent ones are unmapped as they come back."""
        with self._lock:
            if not self._on():
                return
            self._enabled, self._why_off = False, why
            self._retry_at = None if retry_after is None else self._clock() + retry_after
            idle, self._free = self._free, []
        for old in idle:
            with contextlib.suppress(BufferError):
                old.close()
        again = "" if retry_after is None else f" (for {retry_after:.0f} s)"
        log.info("staging new files with ordinary writes%s: %s", again, why)

    def stats(self) -> dict[str, object]:
        with self._lock:
            nbytes, seconds = self._direct
            return {"direct": self._on(), "direct_off_because": self._why_off,
                    "direct_bytes": nbytes,
                    "direct_mb_s": round(nbytes / seconds / 1e6) if seconds else None,
                    "buffers_lent": self._lent,
                    "buffers_mapped": self._lent + len(self._free)}

    def _on(self) -> bool:
        """Under the lock: enabled, or disabled for a while that has passed."""
        if not self._enabled and self._retry_at is not None and self._clock() >= self._retry_at:
            self._enabled, self._why_off, self._retry_at = True, "", None
            log.info("staging new files with O_DIRECT again")
        return self._enabled


class PooledPart:
    """The first ``length`` bytes of a pooled buffer, as a part to upload (read-only
    ``view``). The buffer goes back to the pool on ``release`` (the uploader calls it
    when the part is done) or, as a safety net, when the part is collected."""

    __slots__ = ("_buf", "_pool", "view")

    def __init__(self, pool: TailPool, buf: mmap.mmap, length: int) -> None:
        self._pool, self._buf = pool, buf
        self.view = memoryview(buf)[:length].toreadonly()

    def __len__(self) -> int:
        return len(self.view)

    def release(self) -> None:
        buf, self._buf = self._buf, None
        if buf is not None:
            self.view = memoryview(b"")  # the buffer is someone else's from now on
            self._pool.give_back(buf)

    def __del__(self) -> None:
        self.release()


class Tail:
    """The end of one staging file, in a pooled buffer; see the module docstring."""

    def __init__(self, pool: TailPool, buf: mmap.mmap, fd: int, dfd: int) -> None:
        self._pool, self._buf, self._fd, self._dfd = pool, buf, fd, dfd
        self.start = 0  # file offset of the buffer's first byte (a multiple of DIO_ALIGN)
        self.filled = 0  # bytes in the buffer
        self.flushed = 0  # of them, already in the file (a multiple of DIO_ALIGN)
        self._direct = True  # False once the file system refused a direct write

    @classmethod
    def open(cls, pool: TailPool | None, path: str, fd: int) -> Tail | None:
        """A tail for the new, empty staging file ``path`` (open as ``fd``), or None."""
        if pool is None or not pool.enabled or not O_DIRECT:
            return None
        try:
            dfd = os.open(path, os.O_WRONLY | O_DIRECT | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # tmpfs, and others without direct I/O
                pool.disable(f"the staging directory refuses O_DIRECT ({exc.strerror})")
            return None
        buf = pool.lend()
        if buf is None:
            os.close(dfd)
            return None
        return cls(pool, buf, fd, dfd)

    @property
    def end(self) -> int:
        return self.start + self.filled

    @property
    def ended(self) -> bool:
        return self._buf is None

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of the file (below ``start`` from the file, which holds them all, the
        rest from memory), without ending the tail."""
        end = min(offset + size, self.end)
        head = b""
        if offset < min(end, self.start):
            head = os.pread(self._fd, min(end, self.start) - offset, offset)
            offset += len(head)
        if offset >= end:
            return head
        return head + self._buf[offset - self.start:end - self.start]

    def append(self, data: bytes | memoryview, offset: int) -> bool:
        """Take a write at the end of the file; False if it is not one, or does not fit
        (the caller drains the tail and writes the ordinary way)."""
        n = len(data)
        if offset != self.end or self.filled + n > len(self._buf):
            return False
        self._buf[self.filled:self.filled + n] = data
        self.filled += n
        aligned = self.filled // DIO_ALIGN * DIO_ALIGN
        if aligned - self.flushed >= FLUSH_STEP:
            try:
                self._flush(aligned)
            except BaseException:
                self.filled -= n  # the write failed: its bytes are not the file's
                raise
        return True

    def take(self, offset: int, length: int) -> PooledPart | None:
        """The part ``[offset, offset + length)`` from memory, once the file holds it;
        None when it must be read from the file (the tail may then have ended)."""
        if offset != self.start or length > self.filled:
            self.drain()
            return None
        if length == self.filled:  # the last part: the tail ends with it
            self._write_out()
            buf = self._end()
            return PooledPart(self._pool, buf, length)
        if length % DIO_ALIGN or not self._pool.enabled:
            self.drain()
            return None
        if self.flushed < length:
            self._flush(length)
        rest = self.filled - length
        new = self._pool.lend()
        if new is None:  # the part is read back from the file; keep this buffer
            self._buf.move(0, length, rest)
            part = None
        else:
            new[0:rest] = self._buf[length:self.filled]
            part, self._buf = PooledPart(self._pool, self._buf, length), new
        self.start += length
        self.filled = rest
        self.flushed = max(0, self.flushed - length)
        return part

    def drain(self) -> None:
        """Write every byte to the file and end the tail. If a write fails, the tail is
        unchanged (its bytes are still only here) and the error is raised."""
        self._write_out()
        self._pool.give_back(self._end())

    def cut(self, length: int) -> None:
        """The file is ``length`` bytes long now (after a failed write): forget buffered
        bytes past it, or drain and let the caller truncate the file."""
        if length >= self.start + self.flushed:
            self.filled = min(self.filled, max(0, length - self.start))
        else:
            self.drain()

    def close(self) -> None:
        """End the tail without writing (the staging file is being removed)."""
        self._pool.give_back(self._end())

    # -- internals --------------------------------------------------------------
    def _write_out(self) -> None:
        """Everything to the file: whole blocks direct, the last partial one ordinarily;
        then cut whatever a failed attempt left past the end."""
        self._flush(self.filled // DIO_ALIGN * DIO_ALIGN)
        if self.filled > self.flushed:
            pwrite_all(self._fd, memoryview(self._buf)[self.flushed:self.filled],
                        self.start + self.flushed)
        if os.fstat(self._fd).st_size > self.end:
            os.ftruncate(self._fd, self.end)
        self.flushed = self.filled

    def _flush(self, upto: int) -> None:
        """Bytes ``[flushed, upto)`` of the buffer to the file, direct."""
        if upto <= self.flushed:
            return
        view = memoryview(self._buf)[self.flushed:upto]
        began = time.perf_counter()
        try:
            if not self._direct:
                raise OSError(errno.EINVAL, "direct writes refused earlier")
            pwrite_all(self._dfd, view, self.start + self.flushed)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # Aligned, yet refused: this file system takes no direct writes after all
            # (or a short write left an unaligned offset). Ordinary writes from here on.
            if self._direct:
                self._direct = False
                self._pool.disable(f"a direct write failed ({exc.strerror})")
            pwrite_all(self._fd, view, self.start + self.flushed)
        else:
            self._pool.direct_written(len(view), time.perf_counter() - began)
        self.flushed = upto

    def _end(self) -> mmap.mmap:
        buf, self._buf = self._buf, None
        os.close(self._dfd)
        self._dfd = -1
        return buf


def _new_buffer(size: int) -> mmap.mmap:
    """Private anonymous memory in huge pages where the kernel has them to give
    (``MADV_HUGEPAGE``: transparent huge pages are often on for such requests only).
    Measured per GiB of 9 MiB buffers, with 1 MiB copies and direct writes: 1.1 s of
    CPU to fault in Python's default shared mapping, 0.65 s a private one, 0.23 to 0.30
    s in huge pages; and direct writes from a buffer in use cost 0.20 against 0.29 s (the
    kernel pins one huge page where it pinned 512 small ones)."""
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(AttributeError, OSError):  # no THP: small pages do
        buf.madvise(mmap.MADV_HUGEPAGE)
    return buf


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """``os.pwrite`` until all of ``view`` is written."""
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
