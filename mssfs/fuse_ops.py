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

``TunedFUSE`` is the binding object ``mount.serve`` runs: mfusepy's ``FUSE`` with
readdirplus, cheaper callbacks, ``keep_cache`` on open and non-``user.`` xattrs
answered in place (see there).

Locking: ``FuseOperations`` is stateless apart from the ``Filesystem`` it wraps and a
readiness callback, and libfuse calls it from many threads. ``TunedFUSE._lock`` guards
its directory snapshots, for dict operations only.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from mssfs import passthrough
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


def fill_stat(st: Any, attrs: Attributes) -> None:
    """Write ``stat_dict(attrs)`` straight into a zeroed ``c_stat`` (readdirplus fills
    thousands: four times faster than building the dict and ``set_st_attrs``)."""
    st.st_mode, st.st_size, st.st_nlink = attrs.mode, attrs.size, attrs.nlink
    st.st_uid, st.st_gid = attrs.uid, attrs.gid
    st.st_blocks, st.st_blksize = (attrs.size + 511) // 512, BLKSIZE
    for field, seconds in (("st_mtimespec", attrs.mtime),
                           ("st_atimespec", attrs.atime), ("st_ctimespec", attrs.ctime)):
        ns = int((attrs.mtime if seconds is None else seconds) * 1e9)
        spec = getattr(st, field)
        spec.tv_sec, spec.tv_nsec = divmod(ns, 10**9)


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


# libfuse3 (fuse.h, fuse_common.h): the kernel asked for attributes (readdir flag), the
# filler gets a complete stat (filler flag), and the kernel's adaptive readdirplus (a
# capability bit of fuse_conn_info.want).
FUSE_READDIR_PLUS = 1
FUSE_FILL_DIR_PLUS = 2
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14


def _write_only_direct(fi: Any) -> None:
    """A write-only handle skips the kernel's page cache (``direct_io``): without it the
    kernel copies every write into the FUSE file's pages (and keeps them) on its way to
    mssfs, which has the bytes in its own staging file anyway; nothing can read them
    through a write-only descriptor, nor map it."""
    if fi.flags & os.O_ACCMODE == os.O_WRONLY:
        fi.direct_io = 1


class TunedFUSE(mfusepy.FUSE):
    """``mfusepy.FUSE`` with cheaper callbacks, and readdirplus.

    Thread states. libfuse's worker threads are not Python threads: on each callback
    ctypes creates a Python thread state for the thread and destroys it on return,
    about half the cost of a trivial callback (getxattr: 57 µs → 30 µs per round trip
    measured here). ``_wrapper`` keeps one per worker thread alive with an extra
    ``PyGILState_Ensure``, never released. They are bounded: libfuse runs at most
    ``max_threads`` (10) workers, and ``fuse_options`` sets ``max_idle_threads`` to the
    same number, so workers do not exit and come back with new thread states.

    readdirplus. mfusepy's ``readdir_fuse_3`` passes only st_mode, so after ``ls -l`` read a
    directory the kernel LOOKUPs every name again: one ``getattr`` callback per entry
    for attributes the listing already had.

    How. With a complete stat, ``FUSE_FILL_DIR_PLUS`` and a **non-zero offset**,
    libfuse's ``fill_dir_plus`` makes the node itself (``do_lookup`` takes the stat as
    given, with the mount's ``entry_timeout``/``attr_timeout``, the same TTLs as a
    lookup's answer) and puts the attributes in the reply. Offset 0 would not do:
    libfuse before 3.17 (Debian 12 has 3.14) then drops the attributes (its PR #896).
    So each open directory handle keeps a snapshot of its listing, taken at offset 0
    (opendir, rewinddir), and each kernel request is served from it, entry ``i`` at
    offset ``i + 1``, until the filler says the buffer is full. ``init`` turns off the
    kernel's adaptive mode, which asks for attributes only in the first request of a
    directory (``ls`` reads all names before it stats any).

    Snapshots live in ``_listings`` under ``_lock`` (dict operations only); ``_pinned``
    is only added to (a set operation is atomic under the GIL).
    """

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        self._listings: dict[int, list[tuple[str, Attributes | None]]] = {}
        self._numbers = itertools.count(1)
        self._pinned: set[int] = set()
        super().__init__(operations, mountpoint, **kwargs)

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        thread = threading.get_ident()
        if thread not in self._pinned:
            self._pinned.add(thread)
            ctypes.pythonapi.PyGILState_Ensure()  # see the class docstring
        return super()._wrapper(func, *args, **kwargs)

    def init_fuse_3(self, conn: Any, config: Any) -> None:
        if conn:
            info = conn.contents
            version = (mfusepy.fuse_version_major, mfusepy.fuse_version_minor)
            # libfuse 3.17 has a 64-bit want_ext beside want, and refuses the two if
            # they disagree: start from both, as libfuse does, and set both alike.
            wide = version >= passthrough.MIN_LIBFUSE
            want = (info.want_ext & ~0xFFFFFFFF) | info.want if wide else info.want
            pt = getattr(self.operations, "fs", None)
            pt = getattr(pt, "passthrough", None)
            if isinstance(pt, passthrough.Passthrough) and pt.wanted:
                pt.kernel = passthrough.negotiate(info, mfusepy._libfuse, version,
                                                  pt.stack_depth)
                if pt.kernel is not None:
                    want |= passthrough.FUSE_CAP_PASSTHROUGH
                log.info("passthrough of wholly cached files: %s", "on" if pt.kernel else
                         f"unavailable (libfuse {version[0]}.{version[1]}; it needs libfuse "
                         "3.17 and Linux 6.9)")
            want &= ~FUSE_CAP_READDIRPLUS_AUTO
            info.want = want & 0xFFFFFFFF
            if wide:
                info.want_ext = want
        return super().init_fuse_3(conn, config)

    def opendir(self, path: bytes, fip: Any) -> int:
        fip.contents.fh = next(self._numbers)
        return 0

    def releasedir(self, path: bytes | None, fip: Any) -> int:
        with self._lock:
            self._listings.pop(fip.contents.fh, None)
        return 0

    def open(self, path: bytes, fip: Any) -> int:
        # mfusepy's open sets only fh. The answer also carries what mfusepy cannot
        # express: a passthrough backing file (see passthrough), else keep_cache (see
        # page_versions: the kernel keeps the pages it holds), and direct_io for
        # write-only handles.
        fi = fip.contents
        fi.fh = self.operations.open(path.decode(self.encoding, self.errors), fi.flags)
        backing = self.operations.backing_id(fi.fh)
        if backing:  # the kernel reads the disk cache's file itself (passthrough)
            passthrough.set_backing_id(fi, backing)
        elif self.operations.keep_cache(fi.fh):
            fi.keep_cache = 1
        _write_only_direct(fi)
        return 0

    def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        # mfusepy builds a dict of st_* fields and sets them one setattr at a time;
        # fill_stat writes the zeroed c_stat directly. tar x asks for attributes six
        # times per file (libfuse's high-level API follows create, chmod, chown and
        # utimens with a getattr of its own), so this is its most frequent callback.
        ctypes.memset(buf, 0, ctypes.sizeof(mfusepy.c_stat))
        fh = fip.contents.fh if fip else None
        attrs = self.operations.attributes(
            None if path is None else path.decode(self.encoding, self.errors), fh)
        fill_stat(buf.contents, attrs)
        return 0

    def create(self, path: bytes, mode: int, fip: Any) -> int:
        fi = fip.contents
        fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, fi.flags)
        _write_only_direct(fi)
        return 0

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        # mfusepy copies libfuse's buffer into a new bytes object (1 MiB per write: an
        # mmap, 256 page faults and a copy); the write buffer only pwrites it to the
        # staging file before returning, so a view of libfuse's buffer does.
        data = memoryview((ctypes.c_char * size).from_address(
            ctypes.cast(buf, ctypes.c_void_p).value or 0)).cast("B")
        return self.operations.write(
            None if path is None else path.decode(self.encoding, self.errors), data,
            offset, fip.contents.fh)

    def getxattr(self, path: bytes, name: bytes, value: Any, size: int, *args: Any) -> int:
        # Only user.* attributes exist (xattrs answers ENOTSUP for other namespaces),
        # and the kernel and tools ask for others all the time: security.capability
        # before every write, security.selinux and system.posix_acl_access for every
        # file ``ls -l`` shows. Answered here, they cost no decoding, no exception and
        # no path lookup; and ENOTSUP (not ENODATA) tells ``ls`` that the whole device
        # lacks them, so it stops asking for the other files (coreutils caches it).
        if not name.startswith(b"user."):
            return -errno.ENOTSUP
        return super().getxattr(path, name, value, size, *args)

    def readdir_fuse_3(self, path, buf, filler, offset: int, fip, flags: int) -> int:
        fh = fip.contents.fh
        with self._lock:
            entries = self._listings.get(fh) if offset else None
        if entries is None:
            decoded = None if path is None else path.decode(self.encoding, self.errors)
            entries = self.operations.readdir_entries(decoded)
            with self._lock:
                self._listings[fh] = entries
        plus = bool(flags & FUSE_READDIR_PLUS)
        st = mfusepy.c_stat()
        for index in range(offset, len(entries)):
            name, attrs = entries[index]
            if plus and attrs is not None:
                fill_stat(st, attrs)
                fill = FUSE_FILL_DIR_PLUS
            else:
                ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
                st.st_mode = attrs.mode if attrs is not None else stat.S_IFDIR
                fill = 0
            if filler(buf, name.encode(self.encoding, self.errors), st, index + 1, fill):
                break
        return 0


class FuseOperations(mfusepy.Operations):
    """libfuse callbacks, each a one-line delegate to ``Filesystem`` through ``__call__``."""

    use_ns = True

    def __init__(
        self,
        fs: Any,
        on_ready: Callable[[], None] | None = None,
        after_init: Callable[[], None] | None = None,
    ) -> None:
        self.fs = fs
        self._on_ready = on_ready
        # Run once, at the first request after init: by then the kernel has processed
        # libfuse's INIT reply (which sets the mount's read-ahead, see kernel_tuning).
        self._after_init = after_init
        self._after_init_lock = threading.Lock()

    def _run_after_init(self) -> None:
        with self._after_init_lock:
            hook, self._after_init = self._after_init, None
        if hook is not None:
            hook()

    def __call__(self, op: str, *args: Any) -> Any:
        if self._after_init is not None:
            self._run_after_init()
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

    def attributes(self, path: str | None, fh: int | None = None) -> Attributes:
        """``getattr`` for ``TunedFUSE``, which fills the stat itself."""
        return self("getattr", path, fh)

    def readdir(self, path: str, fh: int) -> list[Any]:
        return [".", "..", *((e.name, e.attrs.mode, 0) for e in self("readdir", path))]

    def readdir_entries(self, path: str) -> list[tuple[str, Attributes | None]]:
        """Names with their attributes for ``TunedFUSE``; "." and ".." have none (libfuse
        makes no node for them: a type is enough)."""
        return [(".", None), ("..", None), *((e.name, e.attrs) for e in self("readdir", path))]

    def readlink(self, path: str) -> str:
        return self("readlink", path)

    def statfs(self, path: str) -> dict[str, int]:
        return statvfs_dict(self("statfs", path))

    # -- files -----------------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        return self("open", path, flags)

    def keep_cache(self, fh: int) -> bool:
        return self("keep_cache", fh)

    def backing_id(self, fh: int) -> int:
        return self("backing_id", fh)

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
