"""chmod, chown, utimens and extended attributes: all stored as S3 user metadata.

Persisting: S3 cannot change an object's metadata in place, so a file or symlink is
rewritten by a self-copy with directive REPLACE (``If-Match`` the ETag just read, so a
concurrent overwrite is not resurrected; ``copy_large`` beyond 5 GiB), without a HEAD
when this mount uploaded or HEADed that version (``Namespace.known_object``), and not at
all when the change leaves the stored metadata as it is (``chown`` to the owner it
has: ``cp -a``, ``rsync -a``). A directory marker is rewritten with a PUT (SeaweedFS
answers 404 to a copy of a key ending in ``/``); an implicit directory gets a marker.
A file open with unsaved data (or created and not yet uploaded) takes the new metadata
into its next upload instead, with no request now. The mount root and buckets have
nowhere to keep metadata: changes there are accepted and not stored.

POSIX attributes are written in s3fs's dialect (``posix_meta.to_metadata``); atime is
not stored.

Extended attributes (the ``user.`` namespace only):

- ``user.mssfs.etag``: the object's ETag, read-only (setting it is EPERM);
- ``user.mssfs.content_type``: the Content-Type, writable;
- ``user.mssfs.url``: a presigned GET URL valid ``FsConfig.presign_expires`` seconds;
- ``user.<name>``: user metadata ``x-amz-meta-<name>`` for every name that is not one
  of the POSIX ones (``mode``, ``uid``...). Names are lower-cased, as S3 does.

Other namespaces (``security.``, ``system.``, ``trusted.``) are ENOTSUP, answered
without a request: the kernel asks for ``security.capability`` on every write, and
``ls -l`` for ``security.selinux`` and ``system.posix_acl_access`` of every file until
it is told ENOTSUP (``fuse_ops`` answers these reads before they reach Python layers).

No lock: the ``OpenFile.commit_lock`` of an open file orders a metadata change against
its uploads; the rest are store calls.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mssfs import posix_meta
from mssfs.errors import Exists, InvalidArgument, NoAttribute, NotPermitted, NotSupported
from mssfs.renames import SINGLE_COPY_LIMIT
from mssfs.store import errors as store_errors
from mssfs.store.base import ObjectInfo

if TYPE_CHECKING:
    from mssfs.attributes import Attributes
    from mssfs.filesystem import Filesystem

XATTR_CREATE = 1
XATTR_REPLACE = 2
ETAG_XATTR = "user.mssfs.etag"
CONTENT_TYPE_XATTR = "user.mssfs.content_type"
URL_XATTR = "user.mssfs.url"
_RESERVED = "user.mssfs."

# (metadata, content_type, current attributes) → (metadata, content_type)
Mutation = Callable[[dict, "str | None", "Attributes"], "tuple[dict, str | None]"]


def _posix(mode=None, uid=None, gid=None, mtime=None) -> Mutation:
    def mutate(metadata: dict, content_type: str | None, attrs: Attributes):
        new = posix_meta.to_metadata(
            attrs.mode if mode is None else stat.S_IFMT(attrs.mode) | (mode & 0o7777),
            attrs.uid if uid is None or uid == -1 else uid,
            attrs.gid if gid is None or gid == -1 else gid,
            attrs.mtime if mtime is None else mtime,
            base=metadata,
        )
        return new, content_type

    return mutate


class MetadataOps:
    def __init__(self, fs: Filesystem) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.store = fs.store

    # -- POSIX attributes -------------------------------------------------------
    def chmod(self, path: str, mode: int) -> None:
        self._apply(path, _posix(mode=mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._apply(path, _posix(uid=uid, gid=gid))

    def utimens(self, path: str, atime: float | None, mtime: float | None) -> None:
        self.fs.check_writable(path)
        attrs = self.fs.getattr(path)
        if mtime is None:
            return  # atime is not stored
        # mtime is stored in whole seconds: ``touch`` right after a write (touch, cp -p,
        # tar, rsync) would rewrite the object to store the same value. Skip that copy
        # when the attributes are known exactly (not a listing's Last-Modified).
        if int(mtime) == int(attrs.mtime) and self.ns.known_exactly(path, attrs):
            return
        open_file = self.fs.handles.open_file(path)
        if open_file is not None:
            open_file.mtime_set = True  # its upload keeps this mtime (until a write)
        self._apply(path, _posix(mtime=mtime))

    # -- the one way metadata changes -------------------------------------------
    def _apply(self, path: str, mutate: Mutation) -> None:
        self.fs.check_writable(path)
        attrs = self.fs.getattr(path)
        if path == "/" or self.fs.root.is_bucket_path(path):
            return  # nowhere to store it (see the module docstring)
        open_file = self.fs.handles.open_file(path)
        if open_file is not None and self._apply_open(open_file, mutate):
            return
        if attrs.is_dir:
            self._rewrite_marker(path, mutate)
        else:
            self._rewrite_object(path, mutate, attrs)

    def _apply_open(self, open_file, mutate: Mutation) -> bool:
        """Record the change in an open file; True if its next upload will carry it."""
        with open_file.commit_lock:
            metadata, content_type = mutate(
                dict(open_file.metadata), open_file.content_type, open_file.attrs
            )
            if metadata == open_file.metadata and content_type == open_file.content_type:
                return True  # nothing changes (tar's fchown to the owner it has)
            open_file.metadata, open_file.content_type = metadata, content_type
            open_file.attrs = self._attrs(open_file.attrs, metadata)
            pending = open_file.pending_create or open_file.buffer.dirty
            if pending:  # else the self-copy below stores it; commit passes it on too
                open_file.buffer.set_metadata(dict(metadata), content_type)
        # No stat cache update while pending: an open file's attributes come from the
        # open file (getattr, readdir), and its upload records them in the cache.
        return pending

    def _attrs(self, old: Attributes, metadata: Mapping[str, str]) -> Attributes:
        meta = posix_meta.parse(metadata)
        kind = stat.S_IFMT(old.mode)
        return type(old)(
            mode=kind | (meta.mode & 0o7777) if meta.mode is not None else old.mode,
            size=old.size, mtime=meta.mtime or old.mtime,
            uid=old.uid if meta.uid is None else meta.uid,
            gid=old.gid if meta.gid is None else meta.gid,
            nlink=old.nlink, etag=old.etag,
        )

    def _rewrite_object(self, path: str, mutate: Mutation, attrs: Attributes) -> None:
        # The metadata of a version this mount just uploaded or HEADed is known: no
        # HEAD (touch, chmod after close cost one copy). The copy is If-Match that
        # version, so a change made elsewhere meanwhile fails it: then ask and redo.
        known = self.ns.known_object(path, attrs)
        try:
            self._copy_with(path, mutate, known or self.ns.head(path))
        except store_errors.PreconditionFailed:
            if known is None:
                raise
            self._copy_with(path, mutate, self.ns.head(path))

    def _copy_with(self, path: str, mutate: Mutation, info: ObjectInfo) -> None:
        bucket, key = self.fs.resolve(path)
        metadata, content_type = mutate(
            dict(info.metadata), info.content_type, self.ns.object_attrs(info)
        )
        if metadata == dict(info.metadata) and content_type == info.content_type:
            return  # no change (chown to the owner it has, cp -a, rsync): no copy
        if info.size > SINGLE_COPY_LIMIT:
            etag = self.fs.uploader.copy_large(
                bucket, key, bucket, key, info.size, metadata=metadata, content_type=content_type
            )
        else:
            etag = self.store.copy_object(
                bucket, key, bucket, key,
                metadata=metadata, content_type=content_type, if_match=info.etag,
            )
        new = ObjectInfo(
            key, info.size, etag, time.time(), content_type=content_type, metadata=metadata
        )
        self.ns.changed(path, self.ns.object_attrs(new))

    def _rewrite_marker(self, path: str, mutate: Mutation) -> None:
        bucket, key = self.fs.resolve(path)
        try:
            info = self.store.head_object(bucket, key + "/")
        except store_errors.NotFound:  # an implicit directory: give it a marker
            info = ObjectInfo(key + "/", 0, "", 0.0)
        attrs = self.ns.object_attrs(info)
        metadata, _ = mutate(dict(info.metadata), None, attrs)
        if info.etag and metadata == dict(info.metadata):
            return  # the marker already says so (tar's chown of each directory)
        new = self._attrs(attrs, metadata)
        self.fs.dir_ops.put_marker(bucket, key, new, base=metadata)
        self.ns.changed(path, new)

    # -- extended attributes ----------------------------------------------------
    def _object(self, path: str) -> ObjectInfo | None:
        """The object behind ``path`` with its metadata (None for an implicit dir)."""
        attrs = self.fs.getattr(path)
        open_file = self.fs.handles.open_file(path)
        if open_file is not None and (open_file.pending_create or open_file.buffer.dirty):
            return ObjectInfo(
                "", attrs.size, attrs.etag or "", attrs.mtime,
                content_type=open_file.content_type, metadata=dict(open_file.metadata),
            )
        if path == "/" or self.fs.root.is_bucket_path(path):
            return None
        bucket, key = self.fs.resolve(path)
        try:
            return self.store.head_object(bucket, key + "/" if attrs.is_dir else key)
        except store_errors.NotFound:
            if attrs.is_dir:
                return None
            raise

    def getxattr(self, path: str, name: str) -> bytes:
        if not name.startswith("user."):
            self.fs.getattr(path)
            raise NotSupported(f"only user.* attributes are supported, not {name}", path=path)
        info = self._object(path)
        if info is None:
            raise NoAttribute(path=path)
        value = self._value(path, info, name)
        if value is None:
            raise NoAttribute(path=path)
        return value.encode()

    def _value(self, path: str, info: ObjectInfo, name: str) -> str | None:
        if name == ETAG_XATTR:
            return info.etag or None
        if name == CONTENT_TYPE_XATTR:
            return info.content_type
        if name == URL_XATTR:
            if info.key.endswith("/") or not info.key:
                return None
            bucket, key = self.fs.resolve(path)
            return self.store.presign_url(bucket, key, expires=self.fs.config.presign_expires)
        meta_name = name[len("user.") :].lower()
        if meta_name in posix_meta.POSIX_KEYS:
            return None
        return info.metadata.get(meta_name)

    def listxattr(self, path: str) -> list[str]:
        info = self._object(path)
        if info is None:
            return []
        names = [ETAG_XATTR] if info.etag else []
        if info.content_type:
            names.append(CONTENT_TYPE_XATTR)
        if info.key and not info.key.endswith("/"):
            names.append(URL_XATTR)
        user = sorted(k for k in info.metadata if k not in posix_meta.POSIX_KEYS)
        return names + ["user." + k for k in user]

    def setxattr(self, path: str, name: str, value: bytes, flags: int) -> None:
        meta_name = self._user_name(path, name)
        if name == CONTENT_TYPE_XATTR:
            text = self._text(path, value)
            self._apply(path, lambda md, ct, attrs: (md, text))
            return
        text = self._text(path, value)

        def mutate(metadata: dict, content_type: str | None, attrs: Attributes):
            if flags & XATTR_CREATE and meta_name in metadata:
                raise Exists(path=path)
            if flags & XATTR_REPLACE and meta_name not in metadata:
                raise NoAttribute(path=path)
            return {**metadata, meta_name: text}, content_type

        self._apply(path, mutate)

    def removexattr(self, path: str, name: str) -> None:
        meta_name = self._user_name(path, name)

        def mutate(metadata: dict, content_type: str | None, attrs: Attributes):
            if meta_name not in metadata:
                raise NoAttribute(path=path)
            return {k: v for k, v in metadata.items() if k != meta_name}, content_type

        self._apply(path, mutate)

    def _user_name(self, path: str, name: str) -> str:
        """The metadata name behind a settable xattr; refuse the others."""
        self.fs.check_writable(path)
        if not name.startswith("user."):
            raise NotSupported(f"only user.* attributes are supported, not {name}", path=path)
        if name == CONTENT_TYPE_XATTR:
            return ""
        if name.startswith(_RESERVED):
            raise NotPermitted(f"{name} is read-only", path=path)
        meta_name = name[len("user.") :].lower()
        if not meta_name or meta_name in posix_meta.POSIX_KEYS:
            raise NotPermitted(f"{name} is a POSIX attribute: use chmod/chown/touch", path=path)
        return meta_name

    @staticmethod
    def _text(path: str, value: bytes) -> str:
        # S3 metadata travels in HTTP headers: printable ASCII only.
        try:
            text = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidArgument("xattr values must be printable ASCII", path=path)
        if not text.isprintable():
            raise InvalidArgument("xattr values must be printable ASCII", path=path)
        return text
