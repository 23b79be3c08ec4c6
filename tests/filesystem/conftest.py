"""Fixtures of the filesystem tier: a ``Filesystem`` on a ``MemoryStore``, no FUSE.

``env`` builds the whole stack the mount builds (metadata cache on the fake clock,
block cache and prefetcher, uploader, recovery folder) around one bucket, and closes
every owner of threads afterwards. ``env.fs`` is the ``Filesystem``; ``env.store`` the
``MemoryStore`` with its request counters and fault injection; ``env.clock`` the fake
clock that drives both the store's Last-Modified and the cache TTLs.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mssfs.filesystem import Filesystem
from mssfs.metadata_cache import MetadataCache, MetadataCacheConfig
from mssfs.namespace import FsConfig
from mssfs.paths import MountRoot
from mssfs.prefetch import Prefetcher, ReadConfig
from mssfs.read_cache import BlockCache
from mssfs.recovery import RecoveryFolder
from mssfs.store.memory import MemoryStore
from mssfs.uploader import UploadConfig, Uploader

BUCKET = "bucket"
STAT_TTL = 60.0
NEGATIVE_TTL = 5.0


@dataclass
class Env:
    fs: Filesystem
    store: MemoryStore
    clock: Any
    recovery_dir: str
    bucket: str = BUCKET
    stat_ttl: float = STAT_TTL
    negative_ttl: float = NEGATIVE_TTL

    def put(self, key: str, data: bytes = b"", **kwargs: Any) -> str:
        """An object written out of band (by another client)."""
        return self.store.put_object(self.bucket, key, data, **kwargs)

    def body(self, key: str) -> bytes:
        return self.store.get_object(self.bucket, key).data

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        fh = self.fs.create(path, mode, os.O_WRONLY)
        if data:
            self.fs.write(path, fh, 0, data)
        self.fs.flush(path, fh)
        self.fs.release(path, fh)

    def read_file(self, path: str) -> bytes:
        fh = self.fs.open(path, os.O_RDONLY)
        try:
            return self.fs.read(path, fh, 0, 1 << 30)
        finally:
            self.fs.release(path, fh)


def build_env(
    workdir: pathlib.Path, clock: Any, closers: list, root: MountRoot | None = None, **config: Any
) -> Env:
    """The whole stack in ``workdir``; appends what must be closed to ``closers``."""
    store = MemoryStore(clock=clock)
    root = root or MountRoot(BUCKET)
    if root.bucket:
        store.create_bucket(root.bucket)
    cache = MetadataCache(
        MetadataCacheConfig(stat_ttl=STAT_TTL, negative_ttl=NEGATIVE_TTL, listing_ttl=STAT_TTL),
        timer=clock,
    )
    prefetcher = Prefetcher(store, ReadConfig(), BlockCache(64 << 20))
    uploader = Uploader(store, UploadConfig())
    recovery_dir = str(workdir / f"recovery{len(closers)}")
    staging = workdir / f"staging{len(closers)}"
    staging.mkdir()
    fs = Filesystem(
        store, root, FsConfig(staging_dir=str(staging), **config),
        metadata=cache, prefetcher=prefetcher, uploader=uploader,
        recovery=RecoveryFolder(recovery_dir), clock=clock,
    )
    closers.extend([fs.close, uploader.close, prefetcher.close])
    store.reset_counts()
    return Env(fs, store, clock, recovery_dir, root.bucket or "")


@pytest.fixture
def make_env(tmp_path, fake_clock) -> Iterator[Callable[..., Env]]:
    closers: list[Callable[[], None]] = []

    def make(root: MountRoot | None = None, **config: Any) -> Env:
        return build_env(tmp_path, fake_clock, closers, root, **config)

    yield make
    for close in closers:
        close()


@pytest.fixture
def env_builder() -> Callable[..., Env]:
    """``build_env`` itself, for tests that manage their own environments."""
    return build_env


@pytest.fixture
def env(make_env) -> Env:
    return make_env()
