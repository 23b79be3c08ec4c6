"""Which opens the filesystem hands to the kernel as passthrough (a backing file from the
disk cache), on the in-memory store with a real disk cache and a fake kernel."""

from __future__ import annotations

import os

import pytest

from mssfs.disk_cache import DiskBlockCache, DiskCacheConfig
from mssfs.errors import errno_for
from mssfs.passthrough import FileBusy

MiB = 1 << 20


class FakeKernel:
    def __init__(self) -> None:
        self.next_id = 0
        self.open: dict[int, bytes] = {}

    def open_backing(self, fd: int) -> int:
        self.next_id += 1
        self.open[self.next_id] = os.pread(fd, 1 << 30, 0)  # what the kernel would read
        return self.next_id

    def close_backing(self, backing_id: int) -> None:
        del self.open[backing_id]


@pytest.fixture
def pt_env(env, tmp_path):
    disk = DiskBlockCache(DiskCacheConfig(str(tmp_path / "cache"),
                                          block_size=env.fs.prefetcher.config.block_size))
    env.fs.prefetcher.disk_cache = disk
    env.fs.passthrough.kernel = kernel = FakeKernel()
    env.fs.passthrough.wait = 0.2
    yield env, kernel
    disk.close()


def test_a_wholly_cached_object_is_opened_with_its_cache_file(pt_env):
    env, kernel = pt_env
    data = os.urandom(3 * MiB + 5)
    env.put("f", data)
    fh = env.fs.open("/f", os.O_RDONLY)
    assert env.fs.backing_id(fh) == 0  # not cached yet: mssfs serves it and fills the cache
    assert env.fs.read("/f", fh, 0, len(data)) == data
    env.fs.release("/f", fh)
    gets = env.store.counts.get("get_object", 0)
    fh = env.fs.open("/f", os.O_RDONLY)
    backing = env.fs.backing_id(fh)
    assert backing > 0 and kernel.open[backing] == data
    assert env.store.counts.get("get_object", 0) == gets
    env.fs.release("/f", fh)
    assert kernel.open == {}


def test_a_file_open_for_writing_is_never_passthrough_and_a_writer_waits(pt_env):
    env, kernel = pt_env
    data = os.urandom(MiB)
    env.put("f", data)
    assert env.read_file("/f") == data
    reader = env.fs.open("/f", os.O_RDONLY)
    assert env.fs.backing_id(reader) > 0
    with pytest.raises(FileBusy) as caught:
        env.fs.open("/f", os.O_WRONLY | os.O_APPEND)
    assert errno_for(caught.value) == 16  # EBUSY
    env.fs.release("/f", reader)
    writer = env.fs.open("/f", os.O_WRONLY | os.O_APPEND)
    second = env.fs.open("/f", os.O_RDONLY)
    assert env.fs.backing_id(second) == 0  # reads of a dirty file go through its buffer
    env.fs.write("/f", writer, len(data), b"more")
    assert env.fs.read("/f", second, len(data), 10) == b"more"
    env.fs.release("/f", second)
    env.fs.flush("/f", writer)
    env.fs.release("/f", writer)
    assert env.body("f") == data + b"more" and kernel.open == {}


def test_a_changed_object_is_not_served_from_the_old_versions_file(pt_env):
    env, _kernel = pt_env
    env.put("f", b"old" * 1000)
    assert env.read_file("/f") == b"old" * 1000
    env.put("f", b"new" * 1000)
    env.clock.advance(env.stat_ttl + 1)
    fh = env.fs.open("/f", os.O_RDONLY)
    assert env.fs.backing_id(fh) == 0
    assert env.fs.read("/f", fh, 0, 10) == b"newnewnewn"
    env.fs.release("/f", fh)
