"""``Filesystem``: the POSIX behaviour of the mount, on paths, without FUSE.

``fuse_ops.FuseOperations`` delegates every callback here, one line each; tests drive
this class directly on ``MemoryStore``. Methods return ``Attributes``/``DirEntry``/
``StatFs`` values or raise ``FsError`` subclasses and typed store errors; the errno is
chosen once, in ``errors.errno_for``.

The mechanisms live in their own modules, composed here:

- ``namespace.Namespace``: stat, listings, lookups and the metadata cache;
- ``handles.HandleTable``: handle numbers and the one ``WriteBuffer`` per open path;
- ``open_files.OpenFiles``: building those buffers and uploading them (``commit``);
- ``dir_ops.DirOps``: mkdir, rmdir, unlink, symlink, buckets in account mode;
- ``renames.Renamer``: rename of files and directories;
- ``xattrs.MetadataOps``: chmod, chown, utimens and extended attributes.

This module holds the file I/O (open/create/read/write/truncate) and decides when to
upload (``flush``, ``fsync``, ``release``).

Reads: a read-only handle holds an ``ObjectReader`` pinned to the ETag seen at open
(close-to-open: ``open`` revalidates a stat entry older than the stat TTL with a HEAD;
a fresh one costs nothing). A path with a dirty write buffer is read through the buffer.

Writes: every write handle of a path shares one ``OpenFile``/``WriteBuffer``. The upload
points are described at ``flush``. A successful upload records the new size, ETag and
mtime in the stat cache at once.

Locking: this module has no lock of its own. ``HandleTable`` and the caches lock
themselves; ``OpenFile.commit_lock`` (see ``open_files``) serialises the uploads of one
file.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable
from typing import Any

from mssfs import paths
from mssfs.attributes import Attributes, DirEntry, StatFs
from mssfs.dir_ops import DirOps
from mssfs.errors import (
    BadFileHandle,
    InvalidArgument,
    IsADirectory,
    NotPermitted,
    ReadOnly,
)
from mssfs.handles import Handle, HandleTable, OpenFile, OpenIntent, open_intent
from mssfs.namespace import FsConfig, Namespace
from mssfs.open_files import OpenFiles
from mssfs.page_versions import PageVersions
from mssfs.passthrough import Passthrough
from mssfs.paths import MountRoot
from mssfs.renames import Renamer
from mssfs.stage import Budget
from mssfs.store.base import ObjectStore
from mssfs.tail import TailPool
from mssfs.xattrs import MetadataOps

__all__ = ["Filesystem", "FsConfig", "MountRoot"]

log = logging.getLogger(__name__)

# statfs: object stores have no capacity to report; answer a fixed 1 PiB as goofys does.
_BLOCK = 4096
_BLOCKS = 2**50 // _BLOCK
_FILES = 2**32


class Filesystem:
    """POSIX operations on mount paths; see the module docstring."""

    def __init__(
        self,
        store: ObjectStore,
        root: MountRoot,
        config: FsConfig,
        *,
        metadata: Any,
        prefetcher: Any,
        uploader: Any,
        recovery: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.root = root
        self.config = config
        self.prefetcher = prefetcher
        self.uploader = uploader
        self.recovery = recovery
        self.page_versions = PageVersions(config.max_remembered)
        self.passthrough = Passthrough()  # enabled by the mount's init when possible
        self.clock = clock
        self.ns = Namespace(store, root, config, metadata, submit=uploader.submit, clock=clock)
        self.handles = HandleTable()
        # Small new files are staged in memory, up to 1 MiB each and 64 MiB in all.
        self.small_files = Budget()
        # Larger new files are appended to their staging files through pooled buffers
        # of one part plus one FUSE write (10 MiB by default): as many as the uploader
        # admits parts in flight, plus two (a writer's tail, a part waiting for
        # admission). Measured peak RSS writing 4 GiB with the defaults: 224 MiB.
        part = uploader.config.part_size
        self.tails = TailPool(part + 1024 * 1024, uploader.config.byte_budget // part + 2,
                              enabled=config.direct_staging)
        self.files = OpenFiles(self)
        self.dir_ops = DirOps(self)
        self._renamer = Renamer(self)
        self._meta = MetadataOps(self)

    # -- small shared helpers (also used by dir_ops, renames, xattrs) -----------
    def check_writable(self, path: str = "") -> None:
        if self.config.read_only:
            raise ReadOnly("read-only mount", path=path)

    def resolve(self, path: str) -> tuple[str | None, str]:
        bucket, key = self.root.resolve(path)
        paths.check_path(path, key)
        return bucket, key

    # -- lookups ----------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> Attributes:
        path = paths.normalize(path)
        open_file = self.handles.open_file(path)
        if open_file is None and fh:  # fstat of an unlinked file still works
            handle = self.handles.find(fh)
            open_file = handle.open_file if handle is not None else None
        if open_file is not None:
            return self.files.live_attrs(open_file)
        return self.ns.stat(path)

    def readdir(self, path: str) -> list[DirEntry]:
        path = paths.normalize(path)
        entries = self.ns.list_dir(path)
        # Open files are ahead of the store: one created here and not uploaded yet is
        # not in its listing, one being written has a newer size. readdirplus gives
        # these attributes to the kernel, so they must be the live ones, as getattr's.
        live = {
            paths.split(f.path)[1]: f
            for f in self.handles.open_files()
            if paths.split(f.path)[0] == path
        }
        if not live:
            return entries
        listed = [DirEntry(e.name, self.files.live_attrs(live[e.name]))
                  if e.name in live else e for e in entries]
        known = {e.name for e in entries}
        pending = [DirEntry(name, self.files.live_attrs(f)) for name, f in live.items()
                   if f.pending_create and name not in known]
        return sorted(listed + pending, key=lambda e: e.name) if pending else listed

    def readlink(self, path: str) -> str:
        attrs = self.ns.stat(path)
        if not attrs.is_symlink:
            raise InvalidArgument("not a symbolic link", path=path)
        bucket, key = self.resolve(path)
        return self.store.get_object(bucket, key, if_match=attrs.etag).data.decode()

    def statfs(self, path: str) -> StatFs:
        return StatFs(
            block_size=_BLOCK, blocks=_BLOCKS, blocks_free=_BLOCKS,
            files=_FILES, files_free=_FILES, name_max=paths.MAX_COMPONENT_BYTES,
        )

    # -- open / create ----------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        path = paths.normalize(path)
        intent = open_intent(flags)
        if intent.write or intent.truncate:
            return self._open_for_write(path, intent)
        attrs = self.getattr(path)
        if attrs.is_dir:
            raise IsADirectory(path=path)
        reader = None
        keep = False
        backing = 0
        if self.handles.open_file(path) is None:
            bucket, key = self.resolve(path)
            backing = self._open_passthrough(path, bucket, key, attrs)
            if not backing:
                reader = self.prefetcher.open_reader(bucket, key, attrs.etag or "", attrs.size)
                keep = self.page_versions.opened_for_read(path, attrs.etag)
        else:  # being written through the mount: what the kernel holds is not stored yet
            self.page_versions.forget(path)
            self.passthrough.open_other(path)
        handle = self.handles.add(path, intent, reader=reader)
        handle.keep_cache = keep
        handle.backing = backing
        return handle.fh

    def _open_passthrough(self, path: str, bucket: str | None, key: str,
                          attrs: Attributes) -> int:
        """The kernel's backing-file id when it can read the object from the disk
        cache itself (see ``passthrough``), else 0 (and the open is served by mssfs)."""
        disk = self.prefetcher.disk_cache
        etag = attrs.etag
        if disk is None or bucket is None or not etag:
            return self.passthrough.open_reader(path, lambda: None, lambda: None)
        return self.passthrough.open_reader(
            path, lambda: disk.whole_file(bucket, key, etag, attrs.size),
            lambda: disk.unpin(bucket, key, etag))

    def backing_id(self, fh: int) -> int:
        """The passthrough backing-file id of a handle (0: reads come to mssfs)."""
        return self.handles.get(fh).backing

    def keep_cache(self, fh: int) -> bool:
        """Whether the kernel may keep the pages it holds for this handle's file (the
        ETag is the one they were read under: see ``page_versions``)."""
        return self.handles.get(fh).keep_cache

    def _open_for_write(self, path: str, intent: OpenIntent) -> int:
        self.check_writable(path)
        self.page_versions.forget(path)
        if path == "/" or self.root.is_bucket_path(path):
            raise IsADirectory(path=path)
        open_file = self._attach(path, lambda: self.files.open_existing(path, intent))
        if intent.truncate and open_file.buffer.size:
            open_file.buffer.truncate(0)
        handle = self.handles.add(path, intent, open_file=open_file)
        handle.must_upload = intent.truncate
        return handle.fh

    def _attach(self, path: str, build: Callable[[], OpenFile]) -> OpenFile:
        """A write handle's ``OpenFile``, once no passthrough reader holds the path."""
        self.passthrough.open_other(path)
        try:
            return self.handles.attach(path, build)
        except BaseException:
            self.passthrough.release(path, 0)
            raise

    def create(self, path: str, mode: int, flags: int) -> int:
        path = paths.normalize(path)
        self.check_writable(path)
        parent, _ = paths.split(path)
        if self.root.account_mode and parent == "/":
            raise NotPermitted("files cannot live outside a bucket", path=path)
        self.resolve(path)
        self.ns.require_dir(parent)
        attrs = self.new_attrs(stat.S_IFREG | (mode & 0o7777))
        self.page_versions.forget(path)
        open_file = self._attach(path, lambda: self.files.new_file(path, attrs))
        if open_file.buffer.size:
            open_file.buffer.truncate(0)
        handle = self.handles.add(path, open_intent(flags), open_file=open_file)
        handle.must_upload = True  # an empty file closed without writes becomes an object
        # No stat cache entry yet: getattr and readdir answer from the open file, and
        # its upload records the stored attributes.
        return handle.fh

    def new_attrs(self, mode: int, size: int = 0) -> Attributes:
        return Attributes(
            mode=mode, size=size, mtime=self.clock(), uid=self.config.uid, gid=self.config.gid
        )

    # -- data -------------------------------------------------------------------
    def read(self, path: str, fh: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(fh)
        if not handle.intent.read:
            raise BadFileHandle("handle not open for reading", path=path)
        open_file = handle.open_file or self.handles.open_file(handle.path)
        if open_file is not None and (handle.open_file is not None or open_file.buffer.dirty):
            return open_file.buffer.read(offset, size)
        if handle.reader is None:  # opened while a writer had the file: now clean
            handle.reader = self._reader_for(handle.path)
        return handle.reader.read(offset, size)

    def _reader_for(self, path: str):
        attrs = self.ns.stat(path)
        bucket, key = self.resolve(path)
        return self.prefetcher.open_reader(bucket, key, attrs.etag or "", attrs.size)

    def write(self, path: str, fh: int, offset: int, data: bytes) -> int:
        handle = self._write_handle(fh, path)
        buffer = handle.open_file.buffer
        if handle.intent.append:
            offset = buffer.size  # O_APPEND: every write lands at the end
        written = buffer.write(offset, data)
        handle.wrote = True
        handle.open_file.recovered = handle.open_file.mtime_set = False
        return written

    def _write_handle(self, fh: int, path: str) -> Handle:
        handle = self.handles.get(fh)
        if handle.open_file is None:
            raise BadFileHandle("handle not open for writing", path=path)
        return handle

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        path = paths.normalize(path)
        self.check_writable(path)
        if length < 0:
            raise InvalidArgument("negative length", path=path)
        if fh is not None:
            handle = self._write_handle(fh, path)
            handle.open_file.buffer.truncate(length)
            handle.wrote = True
            handle.open_file.mtime_set = False
            return
        open_file = self.handles.open_file(path)
        if open_file is not None:
            open_file.buffer.truncate(length)
            self.files.commit(open_file)  # a truncate by path is durable at once
            return
        self.files.truncate_closed(path, length)

    # -- upload points ----------------------------------------------------------
    def flush(self, path: str, fh: int) -> None:
        """Upload on the first flush of a handle that wrote, so close(2) reports it.

        The kernel sends a flush for every close(2) of every file descriptor that
        shares this handle (dup, fork: shells and ``touch`` close copies they never
        wrote through). Uploading on each of them would PUT a half-written file while
        the real writer is still going; uploading only in ``release`` would hide the
        outcome, because release runs after close(2) has returned. So, like
        mountpoint-s3's ``fs.rs::flush``, only a handle that wrote since its last
        upload uploads, on its first flush, and the error reaches close(2). Later
        writes set ``wrote`` again and the next flush uploads again.

        A handle that was created (or opened with O_TRUNC) but has written nothing
        does not upload on flush either: ``echo hi > f`` makes the shell dup the new
        descriptor onto stdout and close the original before writing, and uploading
        then would PUT an empty object just before the real one. Such a handle
        uploads in ``release`` (mountpoint-s3 defers empty files the same way).
        """
        handle = self.handles.get(fh)
        if not handle.backing and not handle.closed:
            # Its RELEASE comes after close(2) returns: an open of the same file
            # meanwhile may wait for it rather than give up on passthrough.
            handle.closed = True
            self.passthrough.closing(handle.path)
        if handle.wrote and handle.open_file is not None:
            self._upload(handle)

    def fsync(self, path: str, fh: int, datasync: bool) -> None:
        handle = self.handles.get(fh)
        if handle.open_file is not None:
            self._upload(handle)

    def release(self, path: str, fh: int) -> None:
        """Free the handle; upload here only if no flush did (the fallback)."""
        handle = self.handles.remove(fh)
        self.passthrough.release(handle.path, handle.backing, closed=handle.closed)
        if handle.reader is not None:
            handle.reader.close()
        open_file = handle.open_file
        if open_file is None:
            return
        try:
            if handle.wrote or handle.must_upload:
                self._upload(handle)
        finally:
            if self.handles.detach(open_file):
                # Unsaved bytes of a named file go to the recovery folder (unless a
                # failed upload just put them there); an unlinked file's bytes are
                # dropped, as POSIX drops them at the last close.
                keep = not (open_file.unlinked or open_file.recovered)
                open_file.buffer.close(keep_dirty=keep)

    def _upload(self, handle: Handle) -> None:
        handle.wrote = handle.must_upload = False  # first: a failure is reported once
        self.files.commit(handle.open_file)

    def close(self) -> None:
        """Unmount: upload what is still dirty, free buffers and readers."""
        self.files.close_all()

    # -- namespace changes and metadata: see dir_ops, renames, xattrs -----------
    def mkdir(self, path: str, mode: int) -> None:
        self.dir_ops.mkdir(paths.normalize(path), mode)

    def rmdir(self, path: str) -> None:
        self.dir_ops.rmdir(paths.normalize(path))

    def unlink(self, path: str) -> None:
        self.dir_ops.unlink(paths.normalize(path))

    def symlink(self, path: str, target: str) -> None:
        self.dir_ops.symlink(paths.normalize(path), target)

    def link(self, path: str, target: str) -> None:
        raise NotPermitted("hard links are not supported on object storage", path=path)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        self._renamer.rename(paths.normalize(old), paths.normalize(new), flags)

    def chmod(self, path: str, mode: int) -> None:
        self._meta.chmod(paths.normalize(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._meta.chown(paths.normalize(path), uid, gid)

    def utimens(self, path: str, atime: float | None, mtime: float | None) -> None:
        self._meta.utimens(paths.normalize(path), atime, mtime)

    def getxattr(self, path: str, name: str) -> bytes:
        return self._meta.getxattr(paths.normalize(path), name)

    def listxattr(self, path: str) -> list[str]:
        return self._meta.listxattr(paths.normalize(path))

    def setxattr(self, path: str, name: str, value: bytes, flags: int) -> None:
        self._meta.setxattr(paths.normalize(path), name, value, flags)

    def removexattr(self, path: str, name: str) -> None:
        self._meta.removexattr(paths.normalize(path), name)
