"""Files open for writing: building their shared buffer, and uploading it.

``Filesystem`` decides *when* to upload (``flush``/``fsync``/``release``, see there);
this module holds *how*: an ``OpenFile`` for an existing object (HEAD for its metadata,
which the rewrite keeps: user metadata, mode, owner) or for a new one (s3fs metadata
from the create mode, Content-Type from the file name), a truncate of a closed file
(open, truncate, upload at once), and ``commit``: stamp the mtime, upload through the
``WriteBuffer``, then record the new size/ETag/mtime in the stat cache, so the next
``stat`` costs no request and a listing keeps the mode.

Locking: ``OpenFile.commit_lock`` serialises the uploads of one file and is held across
the upload on purpose: a second flush must wait for the first and then find nothing
left to upload, rather than start a competing upload of the same key. The caches and
the handle table lock themselves.
"""

from __future__ import annotations

import logging
import mimetypes
from typing import TYPE_CHECKING

from mssfs import paths, posix_meta
from mssfs.attributes import Attributes
from mssfs.errors import IsADirectory, NotFound, NotPermitted, UploadFailed
from mssfs.handles import OpenFile, OpenIntent
from mssfs.store import errors as store_errors
from mssfs.store.base import ObjectInfo
from mssfs.write_buffer import WriteBuffer

if TYPE_CHECKING:
    from mssfs.filesystem import Filesystem

log = logging.getLogger(__name__)


class OpenFiles:
    def __init__(self, fs: Filesystem) -> None:
        self.fs = fs

    def new_buffer(
        self, path: str, base: ObjectInfo | None, *, truncate: bool, metadata, content_type
    ) -> WriteBuffer:
        bucket, key = self.fs.resolve(path)
        return WriteBuffer(
            self.fs.store, self.fs.uploader, self.fs.recovery, bucket, key,
            base=base, truncate=truncate, content_type=content_type,
            metadata=metadata, staging_dir=self.fs.config.staging_dir,
            memory=self.fs.small_files, tails=self.fs.tails,
        )

    @staticmethod
    def guess_type(path: str) -> str | None:
        return mimetypes.guess_type(paths.split(path)[1])[0]

    def live_attrs(self, open_file: OpenFile) -> Attributes:
        # An open file's size is the buffer's, ahead of the store.
        attrs = open_file.attrs
        size = open_file.buffer.size
        if size == attrs.size and not open_file.buffer.dirty:
            return attrs
        mtime = attrs.mtime if open_file.mtime_set else self.fs.clock()
        return Attributes(
            mode=attrs.mode, size=size, mtime=mtime, uid=attrs.uid,
            gid=attrs.gid, atime=attrs.atime, ctime=attrs.ctime, etag=attrs.etag,
        )


    def open_existing(self, path: str, intent: OpenIntent) -> OpenFile:
        cached = self.fs.ns.cache.get_stat(path)
        if cached is not None and cached.is_dir:
            raise IsADirectory(path=path)
        try:
            info = self.fs.ns.head(path)  # one HEAD: the rewrite keeps its metadata
        except store_errors.NotFound:
            self.fs.ns.changed(path)
            if self.fs.ns.stat(path).is_dir:  # NotFound when it is not a directory
                raise IsADirectory(path=path)
            raise NotFound(path=path)
        attrs = self.fs.ns.object_attrs(info)
        if attrs.is_symlink:
            raise NotPermitted("cannot write through a symlink object", path=path)
        metadata = posix_meta.to_metadata(
            attrs.mode, attrs.uid, attrs.gid, attrs.mtime, base=info.metadata
        )
        content_type = info.content_type or self.guess_type(path)
        buffer = self.new_buffer(
            path, info, truncate=intent.truncate, metadata=metadata, content_type=content_type
        )
        return OpenFile(path, buffer, metadata=metadata, content_type=content_type, attrs=attrs)

    def new_file(self, path: str, attrs: Attributes) -> OpenFile:
        metadata = posix_meta.to_metadata(attrs.mode, attrs.uid, attrs.gid, attrs.mtime)
        content_type = self.guess_type(path)
        buffer = self.new_buffer(
            path, None, truncate=True, metadata=metadata, content_type=content_type
        )
        return OpenFile(
            path, buffer, metadata=metadata, content_type=content_type,
            attrs=attrs, pending_create=True,
        )


    def truncate_closed(self, path: str, length: int) -> None:
        attrs = self.fs.ns.stat(path)
        if attrs.is_dir:
            raise IsADirectory(path=path)
        open_file = self.open_existing(path, OpenIntent(True, True, length == 0, False))
        try:
            open_file.buffer.truncate(length)
            open_file.pending_create = True  # upload even when the size did not change
            self.commit(open_file)
        finally:
            open_file.buffer.close(keep_dirty=not open_file.recovered)


    def commit(self, open_file: OpenFile) -> None:
        """Upload the file's buffer if it changed (or was never stored); update caches."""
        with open_file.commit_lock:
            if open_file.unlinked:
                return
            buffer = open_file.buffer
            if not buffer.dirty and not open_file.pending_create:
                return
            now = self.fs.clock()
            if open_file.mtime_set:  # utimens on the open file: keep what it set
                now = open_file.attrs.mtime
            else:
                open_file.metadata["mtime"] = str(int(now))
            # The close-time mtime is not worth a self-copy after a streamed upload
            # (whose metadata was fixed when it began): not ``required``. (A utimens
            # while open made its own, required, change.)
            buffer.set_metadata(
                dict(open_file.metadata), open_file.content_type, required=False
            )
            try:
                info = buffer.commit()
            except UploadFailed:
                open_file.recovered = True  # the buffer saved the bytes
                raise
            open_file.pending_create = False
            attrs = self._uploaded_attrs(open_file, info, now)
            open_file.attrs = attrs
        self.fs.ns.remember(info, attrs)
        self.fs.ns.changed(open_file.path, attrs)

    def _uploaded_attrs(self, open_file: OpenFile, info: ObjectInfo, now: float) -> Attributes:
        old = open_file.attrs
        return Attributes(
            mode=old.mode, size=info.size, mtime=now, uid=old.uid, gid=old.gid,
            atime=old.atime, ctime=old.ctime, etag=info.etag,
        )

    def close_all(self) -> None:
        """Unmount: upload what is still dirty, free buffers and readers."""
        for handle in self.fs.handles.handles():
            if handle.reader is not None:
                handle.reader.close()
        for open_file in self.fs.handles.open_files():
            try:
                if open_file.buffer.dirty or open_file.pending_create:
                    self.commit(open_file)
            except Exception:
                log.exception("upload of %s failed at unmount", open_file.path)
            finally:
                open_file.buffer.close(keep_dirty=not open_file.recovered)
