"""The directory tree over flat keys: stat, listings and lookups, with their caches.

A directory is a common prefix ``a/b/`` (an *implicit* directory) or a marker object
``a/b/`` (what ``mkdir``, s3fs-fuse and the S3 console write). ``list_dir`` pages
through ListObjectsV2 with delimiter ``/`` and fills the metadata cache from the pages,
so ``ls -l`` of N objects costs about N/1000 LIST requests and, by default, **no HEAD
per object**.

What the fast default shows, and what it cannot
    A listing carries key, size, ETag and Last-Modified, not user metadata. So an
    object seen only through a listing shows its size, mtime = Last-Modified, and the
    mount's default mode/uid/gid (``FsConfig.file_mode``/``dir_mode``/``uid``/``gid``).
    It cannot show modes, owners or mtimes stored in ``x-amz-meta-*`` by another client,
    and a symlink written by another client looks like a small regular file. Attributes
    this mount has learned from a HEAD (a lookup, an open, its own writes, chmod...) are
    remembered per object version (key, ETag, size) in ``_versions``, so a later
    listing does not forget them. ``FsConfig.exact_metadata`` makes every listing HEAD
    the objects it has not seen yet, in parallel on the uploader's pool, and cached.

Lookups of a name not in the cache: a fresh listing of the parent (or a negative entry)
answers "missing" with no request; otherwise HEAD ``key`` and, when it is absent, LIST
``key/`` with max-keys 1. Sequential on purpose: running them concurrently would need
a pool, and the only pools belong to the uploader and the prefetcher, where a lookup
could wait behind a large upload's parts (``ls`` stalling during ``cp``); a file, the
common case, costs one HEAD either way. Found nothing → a negative entry. (The opt-in
exact-metadata listing does use the uploader's pool for its HEADs.)

A file and a directory with the same name (``a`` and ``a/x``, made out of band): the
directory wins in listings and the file is hidden (logged once at INFO); it stays in
the store untouched and reachable by other tools. A direct lookup with no fresh listing
of the parent HEADs first and may show the file until the parent is listed.

Keys that cannot be names (``//`` inside, a leading ``/``, ``.``/``..``, over 255
bytes) are skipped in listings and logged once at DEBUG; they never raise.

Locking: the metadata cache has its own lock; ``_versions`` has ``_lock``, held only
around dict operations, never across a store call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from cachetools import LRUCache

from mssfs import paths, posix_meta
from mssfs.attributes import Attributes, DirEntry
from mssfs.errors import NotADirectory, NotFound
from mssfs.metadata_cache import LookupState
from mssfs.paths import MountRoot
from mssfs.store import errors as store_errors
from mssfs.store.base import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

Submit = Callable[..., Future]


@dataclass(frozen=True)
class FsConfig:
    """POSIX-layer settings; the mount composes this into its own config."""

    read_only: bool = False
    # Owner and modes of objects that carry no POSIX metadata (the umask applies).
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    umask: int = 0o022
    file_mode: int = 0o644
    dir_mode: int = 0o755
    # HEAD every listed object for its POSIX metadata (parallel, cached); off: no HEAD.
    exact_metadata: bool = False
    # Where write buffers stage files that are not simple sequential writes.
    staging_dir: str = field(default_factory=tempfile.gettempdir)
    # A new file's appends are staged with O_DIRECT from pooled buffers (see tail).
    direct_staging: bool = True
    # Server-side copies in flight during a directory rename.
    rename_concurrency: int = 16
    # Expiry of the presigned URL in the ``user.mssfs.url`` attribute, seconds.
    presign_expires: int = 3600
    # Object versions whose HEAD attributes are remembered (see module docstring).
    max_remembered: int = 100_000

    def __post_init__(self) -> None:
        if self.rename_concurrency < 1:
            raise ValueError("rename_concurrency must be at least 1")
        if not 1 <= self.presign_expires <= 7 * 24 * 3600:
            raise ValueError("presign_expires must be 1 s to 7 days")


class Namespace:
    """stat / list / lookup on mount paths; the only reader of the metadata cache."""

    def __init__(
        self,
        store: ObjectStore,
        root: MountRoot,
        config: FsConfig,
        cache,
        *,
        submit: Submit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.root = root
        self.config = config
        self.cache = cache
        self._submit = submit
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._versions: LRUCache = LRUCache(maxsize=config.max_remembered)
        self._logged: set[str] = set()

    # -- attributes -------------------------------------------------------------
    def default_mode(self, kind: int) -> int:
        perms = self.config.dir_mode if kind == stat.S_IFDIR else self.config.file_mode
        return kind | (perms & ~self.config.umask & 0o7777)

    def dir_attrs(self, mtime: float | None = None, meta=None) -> Attributes:
        meta = meta or posix_meta.PosixMeta()
        mode = stat.S_IFDIR | (meta.mode & 0o7777) if meta.mode is not None else None
        return Attributes(
            mode=mode or self.default_mode(stat.S_IFDIR),
            size=0,
            mtime=meta.mtime or mtime or self._started,
            uid=self.config.uid if meta.uid is None else meta.uid,
            gid=self.config.gid if meta.gid is None else meta.gid,
            nlink=2,
        )

    def object_attrs(self, info: ObjectInfo) -> Attributes:
        """Attributes of a file/symlink/marker from a HEAD (metadata) or a listing."""
        remembered = self._remembered(info) if not info.metadata else None
        if remembered is not None:
            return remembered
        if info.key.endswith("/"):
            meta = posix_meta.parse(info.metadata, info.content_type)
            return self.dir_attrs(info.last_modified, meta)
        meta = posix_meta.parse(info.metadata, info.content_type)
        if meta.symlink:
            mode = stat.S_IFLNK | 0o777
        elif meta.mode is not None and stat.S_IFMT(meta.mode) in (0, stat.S_IFREG):
            mode = stat.S_IFREG | (meta.mode & 0o7777)
        else:
            mode = self.default_mode(stat.S_IFREG)
        attrs = Attributes(
            mode=mode,
            size=info.size,
            mtime=meta.mtime or info.last_modified,
            uid=self.config.uid if meta.uid is None else meta.uid,
            gid=self.config.gid if meta.gid is None else meta.gid,
            atime=meta.atime,
            ctime=meta.ctime,
            etag=info.etag,
        )
        if info.metadata or info.content_type:
            self.remember(info, attrs)
        return attrs

    def remember(self, info: ObjectInfo, attrs: Attributes) -> None:
        """Keep the full attributes of this object version (key, ETag, size), and its
        metadata when ``info`` carries it (a HEAD's or an upload's, not a listing's)."""
        full = info if info.metadata or info.content_type else None
        with self._lock:
            self._versions[(info.key, info.etag, info.size)] = (attrs, self._clock(), full)

    def carry_over(self, src: ObjectInfo, key: str, etag: str) -> Attributes | None:
        """A copy of ``src`` now lives at ``key``: it keeps what was known of ``src``."""
        attrs = self._remembered(src)
        if attrs is None:
            return None
        known = self.known_object(src, attrs)
        attrs = dataclasses.replace(attrs, etag=etag) if attrs.etag else attrs
        copy = ObjectInfo(key, src.size, etag, 0.0)
        self.remember(dataclasses.replace(known, key=key, etag=etag) if known else copy, attrs)
        return attrs

    def known_object(self, key_or_info: str | ObjectInfo, attrs: Attributes) -> ObjectInfo | None:
        """The object of this version (``attrs``' ETag and size) with its metadata, as
        this mount uploaded or HEADed it within the stat TTL; None when unknown (HEAD
        it). A path or an ``ObjectInfo`` names the key. Trusted no longer than a stat
        entry: a metadata-only change elsewhere (a self-copy) keeps the ETag, so the
        If-Match of whoever relies on it would not catch that."""
        if attrs.etag is None:
            return None
        if isinstance(key_or_info, ObjectInfo):
            key = key_or_info.key
        else:
            key = self.root.resolve(key_or_info)[1]
        with self._lock:
            found = self._versions.get((key, attrs.etag, attrs.size))
        if found is None or self._clock() - found[1] > self._stat_ttl():
            return None
        return found[2]

    def _stat_ttl(self) -> float:
        return getattr(getattr(self.cache, "config", None), "stat_ttl", 60.0)

    def known_exactly(self, path: str, attrs: Attributes) -> bool:
        """Are ``attrs`` what the object's metadata says (learned from a HEAD or a write
        of this version), rather than a listing's defaults?"""
        if attrs.etag is None:
            return False
        key = self.root.resolve(path)[1]
        return self._remembered(ObjectInfo(key, attrs.size, attrs.etag, 0.0)) == attrs

    def _remembered(self, info: ObjectInfo, max_age: float | None = None) -> Attributes | None:
        with self._lock:
            found = self._versions.get((info.key, info.etag, info.size))
        if found is None or (max_age is not None and self._clock() - found[1] > max_age):
            return None
        return found[0]

    # -- lookups ----------------------------------------------------------------
    def stat(self, path: str) -> Attributes:
        """Attributes of ``path`` (cached when fresh); ``NotFound`` when absent."""
        path = paths.normalize(path)
        if path == "/":
            return self.dir_attrs()
        found = self.cache.lookup(path)
        if found.state is LookupState.FOUND:
            return found.value
        if found.state is LookupState.MISSING:
            raise NotFound(path=path)
        attrs = self._lookup(path)
        if attrs is None:
            self.cache.put_missing(path)
            raise NotFound(path=path)
        self.cache.put_stat(path, attrs)
        return attrs

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NotFound:
            return False
        return True

    def _lookup(self, path: str) -> Attributes | None:
        bucket, key = self.root.resolve(path)
        paths.check_path(path, key)
        if self.root.is_bucket_path(path):
            try:
                self.store.head_bucket(bucket)
            except store_errors.NoSuchBucket:
                return None
            return self.dir_attrs()
        try:
            return self.object_attrs(self.store.head_object(bucket, key))
        except store_errors.NotFound:
            pass
        page = self.store.list_objects(bucket, key + "/", "/", max_keys=1)
        if not page.objects and not page.prefixes:
            return None
        marker = page.objects[0] if page.objects else None
        if marker is not None and marker.key == key + "/":
            if self.config.exact_metadata:
                marker = self.store.head_object(bucket, marker.key)
            return self.object_attrs(marker)
        return self.dir_attrs()

    def head(self, path: str) -> ObjectInfo:
        """HEAD the object behind ``path`` (with its metadata); store errors pass through."""
        bucket, key = self.root.resolve(path)
        info = self.store.head_object(bucket, key)
        self.object_attrs(info)  # remember what it says
        return info

    def require_dir(self, path: str) -> Attributes:
        attrs = self.stat(path)
        if not attrs.is_dir:
            raise NotADirectory(path=path)
        return attrs

    # -- listings ---------------------------------------------------------------
    def list_dir(self, path: str) -> list[DirEntry]:
        """The entries of a directory (cached when fresh), sorted by name."""
        path = paths.normalize(path)
        cached = self.cache.get_listing(path)
        if cached is not None:
            return cached
        if path != "/":
            self.require_dir(path)
        if self.root.account_mode and path == "/":
            buckets = self.store.list_buckets()
            entries = [DirEntry(b.name, self.dir_attrs(b.created)) for b in buckets]
        else:
            entries = self._list_prefix(path)
        entries.sort(key=lambda e: e.name)
        self.cache.put_listing(path, entries)
        return entries

    def _list_prefix(self, path: str) -> list[DirEntry]:
        bucket, key = self.root.resolve(path)
        prefix = paths.dir_prefix(key)
        files: dict[str, ObjectInfo] = {}
        dirs: dict[str, Attributes] = {}
        token: str | None = None
        while True:
            page = self.store.list_objects(bucket, prefix, "/", continuation_token=token)
            for info in page.objects:
                name = info.key[len(prefix) :]
                if name and self._representable(name, info.key):
                    files[name] = info
            for common in page.prefixes:
                name = common[len(prefix) : -1]
                if self._representable(name, common):
                    dirs[name] = self.dir_attrs()
            token = page.next_token
            if token is None:
                break
        if self.config.exact_metadata:
            files = self._head_all(bucket, files)
        return self._merge(path, files, dirs)

    def _merge(
        self, path: str, files: dict[str, ObjectInfo], dirs: dict[str, Attributes]
    ) -> list[DirEntry]:
        entries = []
        for name, info in files.items():
            if name in dirs:
                message = f"hiding file {info.key!r}: a directory has the same name"
                self._log_once(message, logging.INFO)
                continue
            entries.append(DirEntry(name, self._listed_attrs(paths.join(path, name), info)))
        for name, attrs in dirs.items():
            # A listing has no marker metadata: keep what a lookup or chmod learned.
            cached = self.cache.get_stat(paths.join(path, name))
            keep = cached is not None and cached.is_dir
            entries.append(DirEntry(name, cached if keep else attrs))
        return entries

    def _listed_attrs(self, path: str, info: ObjectInfo) -> Attributes:
        # An entry this mount already knows in more detail (same version) keeps it.
        cached = self.cache.get_stat(path)
        if cached is not None and cached.etag == info.etag and cached.size == info.size:
            return cached
        return self.object_attrs(info)

    def _head_all(self, bucket: str, files: dict[str, ObjectInfo]) -> dict[str, ObjectInfo]:
        # A HEAD is as good as a stat entry for as long: re-HEAD versions older than that.
        max_age = self._stat_ttl()
        todo = {n: i for n, i in files.items() if self._remembered(i, max_age) is None}
        if self._submit is None:
            heads = {n: self._head_quiet(bucket, i) for n, i in todo.items()}
        else:
            futures = {n: self._submit(self._head_quiet, bucket, i) for n, i in todo.items()}
            heads = {n: f.result() for n, f in futures.items()}
        return {**files, **{n: i for n, i in heads.items() if i is not None}}

    def _head_quiet(self, bucket: str, info: ObjectInfo) -> ObjectInfo | None:
        try:
            return self.store.head_object(bucket, info.key)
        except store_errors.NotFound:
            return None  # deleted since the listing: keep the listing's view

    def _representable(self, name: str, key: str) -> bool:
        if paths.representable(name) and not key.startswith("/"):
            return True
        self._log_once(f"skipping key {key!r}: it cannot be shown as a file name", logging.DEBUG)
        return False

    def _log_once(self, message: str, level: int) -> None:
        with self._lock:
            if message in self._logged:
                return
            self._logged.add(message)
        log.log(level, message)

    def is_empty_dir(self, path: str) -> bool:
        """True when no key lives under the directory (its own marker aside)."""
        bucket, key = self.root.resolve(path)
        prefix = paths.dir_prefix(key)
        page = self.store.list_objects(bucket, prefix, "", max_keys=2)
        return all(o.key == prefix for o in page.objects) and not page.prefixes

    # -- cache upkeep after local changes ---------------------------------------
    def changed(self, path: str, attrs: Attributes | None = None) -> None:
        """A local change at ``path``: record the new attributes (which also patches the
        parent's cached listing), or, without them, drop every view of the name."""
        path = paths.normalize(path)
        if attrs is None:
            self.cache.invalidate(path)
        else:
            self.cache.put_stat(path, attrs)

    def removed_tree(self, path: str) -> None:
        path = paths.normalize(path)
        self.cache.invalidate_tree(path)
        self.cache.invalidate(path)
