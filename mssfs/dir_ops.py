"""Creating and removing names: mkdir, rmdir, unlink, symlink, and buckets.

- ``mkdir`` writes the marker ``dir/`` (``Content-Type: application/x-directory``) with
  the s3fs mode/uid/gid/mtime metadata. In account mode ``mkdir /NAME`` is CreateBucket
  (an invalid name is EINVAL before any request).
- ``rmdir`` answers ENOTEMPTY when any key remains under the prefix (one LIST of at
  most two keys), then deletes the marker (an implicit directory has none: it
  disappears with its last key). In account mode ``rmdir /NAME`` is DeleteBucket and
  the store's BucketNotEmpty becomes ENOTEMPTY.
- ``unlink`` is DeleteObject. An open file keeps working: readers read their pinned
  blocks (from the cache; a block fetched after the delete fails cleanly), and a writer's
  later data is dropped at its last close, as POSIX drops an unlinked file's data.
- ``symlink`` stores the target as the body, mode ``S_IFLNK|0777`` (s3fs) and
  ``Content-Type: application/x-symlink`` (yas3fs).

No lock: every operation is a few store calls and cache updates, each thread-safe.
"""

from __future__ import annotations

import dataclasses
import stat
from typing import TYPE_CHECKING

from mssfs import paths, posix_meta
from mssfs.errors import DirectoryNotEmpty, Exists, IsADirectory, NotPermitted
from mssfs.store.base import ObjectInfo

if TYPE_CHECKING:
    from mssfs.attributes import Attributes
    from mssfs.filesystem import Filesystem


class DirOps:
    def __init__(self, fs: Filesystem) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.store = fs.store

    def _check_new(self, path: str) -> tuple[str, str]:
        """A name about to be created: writable mount, valid name, parent dir, absent."""
        self.fs.check_writable(path)
        bucket, key = self.fs.resolve(path)
        parent, _ = paths.split(path)
        self.ns.require_dir(parent)
        if self.ns.exists(path) or self.fs.handles.open_file(path) is not None:
            raise Exists(path=path)
        return bucket, key

    def mkdir(self, path: str, mode: int) -> None:
        if path == "/":
            raise Exists(path=path)
        if self.fs.root.is_bucket_path(path):
            self._create_bucket(path)
            return
        bucket, key = self._check_new(path)
        attrs = self.fs.new_attrs(stat.S_IFDIR | (mode & 0o7777))
        self.put_marker(bucket, key, attrs)
        self.ns.changed(path, attrs)
        # A new directory is empty: lookups of names in it (cp -r, tar) cost nothing.
        self.ns.cache.put_listing(path, [])

    def put_marker(self, bucket: str, key: str, attrs: Attributes, base=None) -> None:
        """Write (or rewrite: SeaweedFS cannot self-copy ``dir/``) a directory marker."""
        metadata = posix_meta.to_metadata(
            attrs.mode, attrs.uid, attrs.gid, attrs.mtime, base=base
        )
        etag = self.store.put_object(
            bucket, key + "/", b"", content_type=posix_meta.DIR_CONTENT_TYPE, metadata=metadata
        )
        # A listing shows markers without metadata: remember what this one says.
        self.ns.remember(ObjectInfo(key + "/", 0, etag, attrs.mtime), attrs)

    def _create_bucket(self, path: str) -> None:
        self.fs.check_writable(path)
        name = paths.split_parts(path)[0]
        paths.check_bucket_name(name)
        self.store.create_bucket(name)
        self.ns.changed(path, self.ns.dir_attrs(self.fs.clock()))
        self.ns.cache.put_listing(path, [])

    def rmdir(self, path: str) -> None:
        self.fs.check_writable(path)
        if path == "/":
            raise NotPermitted("cannot remove the mount root", path=path)
        if self.fs.root.is_bucket_path(path):
            self.store.delete_bucket(paths.split_parts(path)[0])
            self.ns.removed_tree(path)
            return
        self.ns.require_dir(path)
        bucket, key = self.fs.resolve(path)
        pending = any(f.path.startswith(path + "/") for f in self.fs.handles.open_files())
        if pending or not self.ns.is_empty_dir(path):  # a file being created counts
            raise DirectoryNotEmpty(path=path)
        self.store.delete_object(bucket, key + "/")
        self.ns.removed_tree(path)
        self.ns.cache.put_missing(path)

    def unlink(self, path: str) -> None:
        self.fs.check_writable(path)
        attrs = self.fs.getattr(path)
        if attrs.is_dir:
            raise IsADirectory(path=path)
        bucket, key = self.fs.resolve(path)
        open_file = self.fs.handles.forget(path)
        self.fs.passthrough.forget(path)
        if open_file is None or not open_file.pending_create:
            self.store.delete_object(bucket, key)
        self.ns.changed(path)
        self.ns.cache.put_missing(path)

    def symlink(self, path: str, target: str) -> None:
        if self.fs.root.account_mode and paths.split(path)[0] == "/":
            raise NotPermitted("files cannot live outside a bucket", path=path)
        bucket, key = self._check_new(path)
        body = target.encode()
        attrs = self.fs.new_attrs(stat.S_IFLNK | 0o777, len(body))
        metadata = posix_meta.to_metadata(attrs.mode, attrs.uid, attrs.gid, attrs.mtime)
        etag = self.store.put_object(
            bucket, key, body, content_type=posix_meta.SYMLINK_CONTENT_TYPE, metadata=metadata
        )
        attrs = dataclasses.replace(attrs, etag=etag)
        self.ns.remember(ObjectInfo(key, len(body), etag, attrs.mtime), attrs)
        self.ns.changed(path, attrs)

