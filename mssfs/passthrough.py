"""FUSE passthrough: the kernel reads a wholly cached object straight from its disk-cache
file, without a request to mssfs per read.

How. Linux 6.9+ lets a FUSE server answer ``open`` with a *backing file*: the kernel
then serves ``read``, ``mmap`` and ``splice`` of that open file from the backing file
itself, at the speed of the local disk (or its page cache). mssfs does this for a
read-only open when the disk cache (``-o cache_dir``) holds every block of the version
the open revalidated (``DiskBlockCache.whole_file``: one sparse file per object version
whose bytes are the object's). Everything else is read through mssfs as before.

The kernel side (``KernelBackings``): the connection must be negotiated at ``init``
(``FUSE_CAP_PASSTHROUGH``, libfuse >= 3.17, which ``scripts/setup`` builds because
Debian 12 has 3.14); a backing file is registered with the ``FUSE_DEV_IOC_BACKING_OPEN``
ioctl on the session's ``/dev/fuse`` descriptor (root only: ``CAP_SYS_ADMIN``), which
returns an id the ``open`` answer carries; ``FUSE_DEV_IOC_BACKING_CLOSE`` drops the id
(files already opened keep their reference).

The rule ``Passthrough`` enforces: the kernel requires every open of an
inode that has a passthrough open to be passthrough too, with the same backing file; an
open that breaks it fails with EIO in the kernel, before mssfs could answer anything
useful. So, per path:

- a read-only open joins the path's backing file when there is one (it then reads the
  version the earlier opens read, even if the object changed since);
- a new backing file is set up only when mssfs serves no handle of the path (the
  kernel would refuse passthrough next to it);
- an open mssfs must serve itself (for writing, or of a file being written) waits up
  to ``wait`` seconds for the passthrough opens to be released, then fails with EBUSY
  rather than let the kernel fail it with EIO. A read-only open of a file that is not
  wholly cached is served by mssfs unless it can join a backing file.

Our ``release`` arrives after the kernel dropped the file, so our counts never say
"closed" while the kernel still has it open: the rule errs on the safe side. It can err
the other way too: the kernel sends RELEASE after close(2) has returned, so in ``cat f;
cat f`` the first cat's handle (served by mssfs while it filled the cache) may still be
counted when the second cat opens. The FLUSH that close(2) sends first marks a served
handle as closing (``closing``); an open that finds only closing handles waits up to
``settle`` seconds for their release before it gives up on passthrough (a handle still
open through a dup'd descriptor is simply not released in time).

Locking: one ``threading.Condition`` guards both path tables; it is held across setting
up a backing file (the disk cache's ``whole_file`` and one ioctl), so that two opens of
one path cannot register two backing files, nor a served open slip in beside a new
one; waiters (a writer waiting for readers, a reader for closing handles) are woken by
``release``, ``rename`` and ``forget``. With no kernel
support (``kernel`` None) every method returns at once.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mssfs.errors import FsError

log = logging.getLogger(__name__)

FUSE_CAP_PASSTHROUGH = 1 << 29
_BACKING_OPEN = 0x4010E501  # _IOW(229, 1, struct fuse_backing_map { s32 fd; u32 flags; u64 })
_BACKING_CLOSE = 0x4004E502  # _IOW(229, 2, uint32_t)
# struct fuse_file_info in libfuse 3.17: int32 backing_id follows uint32 poll_events at
# byte 32 (mfusepy declares only the first 40 bytes, poll_events as 64 bits).
_BACKING_ID_OFFSET = 36
MIN_LIBFUSE = (3, 17)


class FileBusy(FsError):
    """A file open in passthrough mode cannot be opened any other way meanwhile."""

    errno = errno.EBUSY


class Backings(Protocol):
    def open_backing(self, fd: int) -> int: ...

    def close_backing(self, backing_id: int) -> None: ...


class KernelBackings:
    """Backing-file ids on the mount's ``/dev/fuse`` connection."""

    def __init__(self, session_fd: int) -> None:
        self.session_fd = session_fd
        self._warned = False

    def open_backing(self, fd: int) -> int:
        """The id of ``fd`` as a backing file, or 0 when the kernel refuses it."""
        try:
            return fcntl.ioctl(self.session_fd, _BACKING_OPEN,
                               bytearray(struct.pack("=iIQ", fd, 0, 0)))
        except OSError as exc:  # not root, or a cache directory too deeply stacked
            if not self._warned:
                self._warned = True
                log.warning("passthrough: the kernel refused a backing file (%s); "
                            "cached files are read through mssfs", exc)
            return 0

    def close_backing(self, backing_id: int) -> None:
        try:
            fcntl.ioctl(self.session_fd, _BACKING_CLOSE, struct.pack("=I", backing_id))
        except OSError as exc:
            log.debug("passthrough: closing backing id %d: %s", backing_id, exc)


# Filesystems stacked on another one: a cache directory on them needs a stack depth of 1.
STACKED = frozenset({"overlay", "ecryptfs"})


def negotiate(conn: Any, libfuse: Any, version: tuple[int, int],
              stack_depth: int = 0) -> KernelBackings | None:
    """At ``init``, when the kernel offers passthrough on ``conn`` (a libfuse 3.17
    ``fuse_conn_info``): the backing-file registry (the caller then adds
    ``FUSE_CAP_PASSTHROUGH`` to what it wants), or None. ``stack_depth`` is that of the
    cache directory's filesystem (1 on overlayfs): the mount itself then counts one
    more, and a mount at depth 2 cannot be stacked on again (an overlayfs over mssfs),
    so it is only as deep as the cache needs."""
    if version < MIN_LIBFUSE or not conn.capable_ext & FUSE_CAP_PASSTHROUGH:
        return None
    conn.max_backing_stack_depth = stack_depth
    libfuse.fuse_get_session.restype = ctypes.c_void_p
    libfuse.fuse_get_session.argtypes = [ctypes.c_void_p]
    libfuse.fuse_session_fd.argtypes = [ctypes.c_void_p]
    session = libfuse.fuse_get_session(libfuse.fuse_get_context().contents.fuse)
    return KernelBackings(libfuse.fuse_session_fd(session))


def set_backing_id(fi: Any, backing_id: int) -> None:
    """Put ``backing_id`` in an ``open`` answer (libfuse then sets FOPEN_PASSTHROUGH)."""
    ctypes.c_int32.from_address(ctypes.addressof(fi) + _BACKING_ID_OFFSET).value = backing_id


def _decrement(table: dict[str, int], path: str) -> None:
    count = table.pop(path, 0) - 1
    if count > 0:
        table[path] = count


@dataclass
class _Backing:
    id: int
    opens: int
    unpin: Callable[[], None]


class Passthrough:
    """Per path: the backing file its passthrough opens share, and how many handles
    mssfs serves itself. Does nothing until ``kernel`` is set. Thread-safe."""

    def __init__(self, wait: float = 2.0, settle: float = 0.5) -> None:
        self.wait = wait
        self.settle = settle  # how long an open waits for served handles being closed
        self.wanted = False  # the mount has a disk cache and passthrough is not refused
        self.stack_depth = 0  # of the cache directory's filesystem (see negotiate)
        self.kernel: Backings | None = None  # set at init when the kernel agreed
        self._cond = threading.Condition()
        self._backings: dict[str, _Backing] = {}
        self._served: dict[str, int] = {}  # path → handles mssfs serves (no backing)
        self._closing: dict[str, int] = {}  # path → of those, closed by their application
        self.opens = 0  # opens answered with a backing file, for ``mssfs stats``

    def open_reader(self, path: str, whole_file: Callable[[], int | None],
                    unpin: Callable[[], None]) -> int:
        """The backing id for a read-only open of ``path``, or 0 to read through mssfs.
        ``whole_file`` gives a pinned fd of the cached object (or None); ``unpin``
        releases the pin. Every open must be released with ``release``."""
        if self.kernel is None:
            return 0
        with self._cond:
            backing = self._backings.get(path)
            if backing is not None:  # the kernel's inode reads from this file already
                backing.opens += 1
                self.opens += 1
                return backing.id
            served = self._served.get(path, 0)
            if served and served == self._closing.get(path, 0):
                self._cond.wait_for(lambda: not self._served.get(path)
                                    or path in self._backings, timeout=self.settle)
                backing = self._backings.get(path)
                if backing is not None:  # another open set one up meanwhile
                    backing.opens += 1
                    self.opens += 1
                    return backing.id
            backing_id = 0 if self._served.get(path) else self._set_up(whole_file, unpin)
            if backing_id:
                self._backings[path] = _Backing(backing_id, 1, unpin)
                self.opens += 1
            else:
                self._served[path] = self._served.get(path, 0) + 1
            return backing_id

    def open_other(self, path: str) -> None:
        """Before an open that mssfs serves itself (for writing, or of a file being
        written): wait for the path's passthrough opens to be released; FileBusy if
        they are not within ``wait`` seconds. Release it with ``release(path, 0)``."""
        if self.kernel is None:
            return
        with self._cond:
            if path in self._backings and not self._cond.wait_for(
                    lambda: path not in self._backings, timeout=self.wait):
                raise FileBusy("open in passthrough mode by another process", path=path)
            self._served[path] = self._served.get(path, 0) + 1

    def closing(self, path: str) -> None:
        """The application closed a handle of ``path`` that mssfs serves (its first
        FLUSH): its RELEASE is on its way. Call it at most once per handle, and pass
        ``closed=True`` to that handle's ``release``."""
        if self.kernel is None:
            return
        with self._cond:
            if self._served.get(path):
                self._closing[path] = self._closing.get(path, 0) + 1

    def release(self, path: str, backing_id: int, *, closed: bool = False) -> None:
        """A handle of ``path`` opened through this class was released; ``closed``: it
        had been announced by ``closing``."""
        if self.kernel is None:
            return
        with self._cond:
            if not backing_id:
                _decrement(self._served, path)
                if closed:
                    _decrement(self._closing, path)
                self._cond.notify_all()
                return
            found = self._backings.get(path)
            if found is None or found.id != backing_id:  # renamed or unlinked meanwhile
                path = next((p for p, b in self._backings.items() if b.id == backing_id), "")
                found = self._backings.get(path)
            if found is None:
                return
            found.opens -= 1
            if found.opens > 0:
                return
            del self._backings[path]
            self._cond.notify_all()
        self.kernel.close_backing(backing_id)
        found.unpin()

    def rename(self, old: str, new: str) -> None:
        """Files at or under ``old`` now have their names under ``new`` (as the
        kernel's nodes and ``HandleTable.move`` have them)."""
        def moved(table: dict[str, Any]) -> dict[str, Any]:
            return {new + p[len(old):]: table.pop(p) for p in list(table)
                    if p == old or p.startswith(old + "/")}

        with self._cond:
            for path, backing in moved(self._backings).items():
                self._displace(self._backings, path)
                self._backings[path] = backing
            for table in (self._served, self._closing):
                for path, count in moved(table).items():
                    # A handle still open on a replaced target keeps counting: erring
                    # on the side of "served" only ever declines a passthrough.
                    table[path] = table.get(path, 0) + count
            self._cond.notify_all()

    def forget(self, path: str) -> None:
        """``path`` was unlinked: its open files have no name, a new file there is
        another kernel inode."""
        with self._cond:
            self._displace(self._backings, path)
            self._cond.notify_all()

    def stats(self) -> dict[str, int | bool]:
        with self._cond:
            return {"on": self.kernel is not None, "opens": self.opens,
                    "files_open": len(self._backings)}

    # -- internals ------------------------------------------------------------------
    def _set_up(self, whole_file: Callable[[], int | None],
                unpin: Callable[[], None]) -> int:
        fd = whole_file()
        if fd is None:
            return 0
        try:
            backing_id = self.kernel.open_backing(fd) if self.kernel else 0
        finally:
            os.close(fd)
        if backing_id <= 0:
            unpin()
        return max(backing_id, 0)

    @staticmethod
    def _displace(table: dict[str, _Backing], path: str) -> None:
        """Keep a nameless backing (released later by its id) out of ``path``'s way."""
        backing = table.pop(path, None)
        if backing is not None:
            table[f"\0{backing.id}"] = backing
