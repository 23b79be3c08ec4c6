"""The FUSE translation layer: the only module that imports the binding (mfusepy).

How it works. ``FuseOperations`` is a thin wrapper so that all behaviour lives in
``Filesystem`` and is tested without a kernel (mountpoint-s3's ``fuse.rs``). Each libfuse
callback is a one-line delegate ``self(name, ...)``; ``__call__`` is the one place where
an exception meets an errno: ``errors.errno_for`` picks it, and the callback raises
``FuseOSError``. An exception ``errno_for`` does not know is a bug: it is logged once,
at ERROR with its traceback, and answered EIO (mfusepy would answer EINVAL). Expected
answers (ENOENT on a lookup, ENODATA on getxattr) are logged at DEBUG only.

mfusepy 3 no longer calls an ``Operations.__call__`` by itself; the callbacks call it.
Times are in nanoseconds (``use_ns``), converted here to float seconds for ``Filesystem``.

Importing the binding loads libfuse: ``cli.select_fuse_library`` sets
``FUSE_LIBRARY_PATH`` to libfuse3 (unless the user set it) before this module is first
imported, so the choice is explicit rather than an accident of what the machine has
installed (mfusepy alone prefers libfuse2; DESIGN.md §8).

No locks here: the object is stateless apart from the ``Filesystem`` it wraps and a
readiness callback, and libfuse calls it from many threads.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from mssfs.attributes import Attributes, StatFs
from mssfs.errors import errno_for

log = logging.getLogger(__name__)

# Answers that are part of normal operation: logged at DEBUG, never above.
EXPECTED = {
    "getattr": {errno.ENOENT},
    "getxattr": {errno.ENODATA, errno.ENOTSUP},
    "listxattr": {errno.ENOTSUP},
    "readlink": {errno.EINVAL},
    "mkdir": {errno.EEXIST},
    "create": {errno.EEXIST},
    "link": {errno.EPERM},
    "rmdir": {errno.ENOTEMPTY},
}

# st_blksize: the preferred I/O size reported to tools such as cp and dd. 1 MiB is the
# largest request libfuse3 passes, so a tool that honours it writes in one FUSE request
# per call; smaller values multiply the Python callbacks per MiB (DESIGN.md §8).
BLKSIZE = 1 << 20


import mfusepy  # noqa: E402  (cli chose the library first: see the module docstring)


def stat_dict(attrs: Attributes) -> dict[str, int]:
    """``Attributes`` → the ``st_*`` dict mfusepy wants (times in ns, since use_ns)."""
    mtime = int(attrs.mtime * 1e9)
    return {
        "st_mode": attrs.mode,
        "st_size": attrs.size,
        "st_nlink": attrs.nlink,
        "st_uid": attrs.uid,
        "st_gid": attrs.gid,
        "st_mtime": mtime,
        "st_atime": mtime if attrs.atime is None else int(attrs.atime * 1e9),
        "st_ctime": mtime if attrs.ctime is None else int(attrs.ctime * 1e9),
        # st_blocks counts 512-byte units actually allocated; objects have no holes, so
        # it is the size rounded up. du and ls -s read it; 0 would make every file look sparse.
        "st_blocks": (attrs.size + 511) // 512,
        "st_blksize": BLKSIZE,
    }


def statvfs_dict(info: StatFs) -> dict[str, int]:
    return {
        "f_bsize": info.block_size,
        "f_frsize": info.block_size,
        "f_blocks": info.blocks,
        "f_bfree": info.blocks_free,
        "f_bavail": info.blocks_free,
        "f_files": info.files,
        "f_ffree": info.files_free,
        "f_favail": info.files_free,
        "f_namemax": info.name_max,
    }


# utimensat(2)'s special nanosecond values. libfuse3 passes them through in tv_nsec
# (leaving tv_sec unset), so they show up in mfusepy's sec * 1e9 + nsec.
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


_NOW_REST = UTIME_NOW % 10**9
_OMIT_REST = UTIME_OMIT % 10**9


def utime_seconds(ns: int | None, now: Callable[[], float] = time.time) -> float | None:
    """A utimens time in ns → float seconds; UTIME_NOW → now, UTIME_OMIT → None (keep).

    Since tv_sec may be anything next to a special tv_nsec, only the remainder is
    looked at; a real time with exactly that nanosecond part is taken for the special
    value (one chance in 10^9, and then off by the same second at most).
    """
    if ns is None:
        return now()
    rest = ns % 10**9
    if rest == _NOW_REST:
        return now()
    if rest == _OMIT_REST:
        return None
    return ns / 1e9


class FuseOperations(mfusepy.Operations):
    """libfuse callbacks, each a one-line delegate to ``Filesystem`` through ``__call__``."""

    use_ns = True

    def __init__(self, fs: Any, on_ready: Callable[[], None] | None = None) -> None:
        self.fs = fs
        self._on_ready = on_ready

    def __call__(self, op: str, *args: Any) -> Any:
        try:
            return getattr(self.fs, op)(*args)
        except Exception as exc:
            number = errno_for(exc)
            if number is None:
                log.error("%s %r failed unexpectedly; answering EIO", op, args[:1], exc_info=True)
                number = errno.EIO
            elif number in EXPECTED.get(op, ()):
                log.debug("%s %r: %s", op, args[:1], os.strerror(number))
            else:
                log.info("%s %r: %s (%s)", op, args[:1], os.strerror(number), exc)
            raise mfusepy.FuseOSError(number) from None

    # -- lifecycle -----------------------------------------------------------------
    def init(self, path: str) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def destroy(self, path: str) -> None:
        self("close")

    # -- attributes and directories ------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return stat_dict(self("getattr", path, fh))

    def readdir(self, path: str, fh: int) -> list[Any]:
        return [".", "..", *((e.name, e.attrs.mode, 0) for e in self("readdir", path))]

    def readlink(self, path: str) -> str:
        return self("readlink", path)

    def statfs(self, path: str) -> dict[str, int]:
        return statvfs_dict(self("statfs", path))

    # -- files -----------------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        return self("open", path, flags)

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        return self("create", path, mode, flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self("read", path, fh, offset, size)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self("write", path, fh, offset, data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        return self("truncate", path, length, fh)

    def flush(self, path: str, fh: int) -> None:
        return self("flush", path, fh)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        return self("fsync", path, fh, bool(datasync))

    def release(self, path: str, fh: int) -> None:
        return self("release", path, fh)

    # -- namespace -------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> None:
        return self("mkdir", path, mode)

    def rmdir(self, path: str) -> None:
        return self("rmdir", path)

    def unlink(self, path: str) -> None:
        return self("unlink", path)

    def rename(self, old: str, new: str) -> None:
        return self("rename", old, new)

    def symlink(self, target: str, source: str) -> None:
        # mfusepy passes (the new link's path, what it points at), as ln -s SOURCE TARGET.
        return self("symlink", target, source)

    def link(self, target: str, source: str) -> None:
        return self("link", target, source)

    # -- metadata --------------------------------------------------------------------
    def chmod(self, path: str, mode: int) -> None:
        return self("chmod", path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        return self("chown", path, uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        return self("utimens", path, *(utime_seconds(t) for t in (times or (None, None))))

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self("getxattr", path, name)

    def listxattr(self, path: str) -> list[str]:
        return self("listxattr", path)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> None:
        return self("setxattr", path, name, value, options)

    def removexattr(self, path: str, name: str) -> None:
        return self("removexattr", path, name)
