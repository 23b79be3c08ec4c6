"""rename: server-side copies, then deletes. Not atomic.

A file: CopyObject (``Uploader.copy_large``, parallel UploadPartCopy, beyond 5 GiB), then
DeleteObject. A dirty open file is uploaded first, so the copy carries what was written;
its handles follow it to the new name (the shared buffer is re-opened on the new key,
read handles re-pinned to the copy's ETag).

A directory: every key under the prefix is copied, ``FsConfig.rename_concurrency`` at a
time on the uploader's pool, then the sources are deleted with DeleteObjects in batches
of 1,000. Directory markers are rewritten with a PUT rather than copied (SeaweedFS
answers 404 to a CopyObject of a key ending in ``/``). Objects over 5 GiB are copied
after the others, in the calling thread (``copy_large`` waits for pool jobs of its own,
so it must not run inside one).

Not atomic: another client can see both trees while the copies run. If a copy fails,
nothing is deleted: the source tree stays whole and the copies made so far remain at
the destination; the error is raised (EIO). A failed batch delete leaves the named
source keys in place and raises as well.

Replacing a target follows POSIX: a file over a file, a directory over an empty
directory; a non-empty directory is ENOTEMPTY, a directory over a file ENOTDIR, a file
over a directory EISDIR. ``RENAME_NOREPLACE`` is honoured; ``RENAME_EXCHANGE`` is EINVAL.
Buckets (account mode) cannot be renamed (EPERM).

No lock: the work is store calls; caches and the handle table lock themselves.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from mssfs import paths
from mssfs.errors import (
    DirectoryNotEmpty,
    Exists,
    FsError,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotPermitted,
)
from mssfs.store.base import ObjectInfo

if TYPE_CHECKING:
    from mssfs.attributes import Attributes
    from mssfs.filesystem import Filesystem

log = logging.getLogger(__name__)

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
SINGLE_COPY_LIMIT = 5 * 1024**3
_DELETE_BATCH = 1000


class Renamer:
    def __init__(self, fs: Filesystem) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.store = fs.store

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        self.fs.check_writable(old)
        if flags & RENAME_EXCHANGE:
            raise InvalidArgument("RENAME_EXCHANGE is not supported", path=old)
        if old == new:
            return
        root = self.fs.root
        if "/" in (old, new) or root.is_bucket_path(old) or root.is_bucket_path(new):
            raise NotPermitted("buckets and the mount root cannot be renamed", path=old)
        if new.startswith(old + "/"):
            raise InvalidArgument("cannot move a directory into itself", path=new)
        self.fs.resolve(new)
        source = self.fs.getattr(old)
        self.ns.require_dir(paths.split(new)[0])
        target = self._target(new, flags)
        if source.is_dir:
            self._check_dir_target(new, target)
            self._rename_dir(old, new)
        else:
            if target is not None and target.is_dir:
                raise IsADirectory(path=new)
            self._rename_file(old, new, source)

    def _target(self, new: str, flags: int) -> Attributes | None:
        try:
            target = self.fs.getattr(new)
        except NotFound:
            return None
        if flags & RENAME_NOREPLACE:
            raise Exists(path=new)
        return target

    def _check_dir_target(self, new: str, target: Attributes | None) -> None:
        if target is None:
            return
        if not target.is_dir:
            raise NotADirectory(path=new)
        if not self.ns.is_empty_dir(new):
            raise DirectoryNotEmpty(path=new)

    # -- files ------------------------------------------------------------------
    def _rename_file(self, old: str, new: str, attrs: Attributes) -> None:
        open_file = self.fs.handles.open_file(old)
        if open_file is not None:
            self.fs.files.commit(open_file)
            attrs = open_file.attrs
        src_bucket, src_key = self.fs.resolve(old)
        bucket, key = self.fs.resolve(new)
        etag = self._copy(src_bucket, src_key, bucket, key, attrs.size)
        self.store.delete_object(src_bucket, src_key)
        source = ObjectInfo(src_key, attrs.size, attrs.etag or "", attrs.mtime)
        moved = self.ns.carry_over(source, key, etag) or dataclasses.replace(attrs, etag=etag)
        dropped = self.fs.handles.forget(new)  # an open file at the target loses its name
        if dropped is not None:
            log.debug("rename over open file %s: its later writes are dropped", new)
        self._follow(old, new)
        self.ns.changed(old)
        self.ns.cache.put_missing(old)
        self.ns.changed(new, moved)

    def _copy(self, src_bucket: str, src_key: str, bucket: str, key: str, size: int) -> str:
        # CopyObject up to 5 GiB, parallel UploadPartCopy beyond; the metadata is kept.
        return self.fs.uploader.copy_large(src_bucket, src_key, bucket, key, size)

    def _follow(self, old: str, new: str) -> None:
        """Open handles at or under ``old`` now use the objects under ``new``."""
        self.fs.handles.move(old, new)
        self.fs.passthrough.rename(old, new)
        for open_file in self.fs.handles.open_files():
            if open_file.path == new or open_file.path.startswith(new + "/"):
                self._reopen(open_file)
        for handle in self.fs.handles.handles():
            moved = handle.path == new or handle.path.startswith(new + "/")
            if handle.reader is not None and moved:
                handle.reader.close()
                handle.reader = None  # re-created on the next read, on the new key

    def _reopen(self, open_file) -> None:
        # The buffer was just committed (clean), so swapping it loses nothing.
        key = self.fs.resolve(open_file.path)[1]
        attrs = open_file.attrs
        base = ObjectInfo(
            key, attrs.size, attrs.etag or "", attrs.mtime,
            content_type=open_file.content_type, metadata=dict(open_file.metadata),
        )
        with open_file.commit_lock:
            old_buffer = open_file.buffer
            open_file.buffer = self.fs.files.new_buffer(
                open_file.path, base, truncate=False,
                metadata=dict(open_file.metadata), content_type=open_file.content_type,
            )
        old_buffer.close()

    # -- directories ------------------------------------------------------------
    def _rename_dir(self, old: str, new: str) -> None:
        for open_file in self.fs.handles.open_files():
            if open_file.path.startswith(old + "/"):
                self.fs.files.commit(open_file)
        src_bucket, src_key = self.fs.resolve(old)
        bucket, key = self.fs.resolve(new)
        src_prefix, prefix = paths.dir_prefix(src_key), paths.dir_prefix(key)
        objects = self._list_all(src_bucket, src_prefix)
        small = [o for o in objects if o.size <= SINGLE_COPY_LIMIT]
        large = [o for o in objects if o.size > SINGLE_COPY_LIMIT]
        copies = self._copy_parallel(src_bucket, bucket, small, src_prefix, prefix)
        for info in large:
            new_key = prefix + info.key[len(src_prefix) :]
            etag = self._copy(src_bucket, info.key, bucket, new_key, info.size)
            copies.append(ObjectInfo(new_key, info.size, etag, info.last_modified))
            self.ns.carry_over(info, new_key, etag)
        self._delete_all(src_bucket, [o.key for o in objects])
        self.ns.removed_tree(old)
        self.ns.removed_tree(new)
        self.ns.cache.put_missing(old)
        # The copies are known without asking: a stat of a moved name costs nothing.
        for copy in copies:
            path = self.fs.root.path_for_key(bucket, copy.key)
            self.ns.cache.put_stat(path, self.ns.object_attrs(copy))
        self._follow(old, new)

    def _list_all(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        objects: list[ObjectInfo] = []
        token = None
        while True:
            page = self.store.list_objects(bucket, prefix, continuation_token=token)
            objects.extend(page.objects)
            token = page.next_token
            if token is None:
                return objects

    def _copy_parallel(self, src_bucket, bucket, objects, src_prefix, prefix) -> list:
        """Copy ``objects`` under ``prefix``, a window at a time; the copies' infos."""
        copies: list[ObjectInfo] = []
        window = self.fs.config.rename_concurrency
        for start in range(0, len(objects), window):
            futures = [
                self.fs.uploader.submit(
                    self._copy_one, src_bucket, info, bucket, prefix + info.key[len(src_prefix) :]
                )
                for info in objects[start : start + window]
            ]
            errors = [f.exception() for f in futures]
            failed = [e for e in errors if e is not None]
            if failed:
                raise failed[0]
            for info, future in zip(objects[start : start + window], futures, strict=True):
                new_key = prefix + info.key[len(src_prefix) :]
                copies.append(ObjectInfo(new_key, info.size, future.result(), info.last_modified))
                self.ns.carry_over(info, new_key, future.result())
        return copies

    def _copy_one(self, src_bucket: str, info: ObjectInfo, bucket: str, key: str) -> str:
        if not info.key.endswith("/"):
            return self.store.copy_object(src_bucket, info.key, bucket, key)
        marker = self.store.head_object(src_bucket, info.key)  # PUT, not copy: see docstring
        return self.store.put_object(
            bucket, key, b"", content_type=marker.content_type, metadata=dict(marker.metadata)
        )

    def _delete_all(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            failures = self.store.delete_objects(bucket, keys[start : start + _DELETE_BATCH])
            if failures:
                names = ", ".join(f.key for f in failures[:5])
                raise FsError(f"rename left source keys behind: {names}")
