"""The on-disk cache through a real mount: kept across remounts, and wholly cached
objects read by the kernel itself from the cache's files (FUSE passthrough).

Passthrough needs libfuse 3.17 (``scripts/setup`` builds it), Linux 6.9 and root;
``test_passthrough_is_on_where_the_machine_allows_it`` fails, rather than skips, when
``scripts/setup`` built that libfuse and the mount still could not turn it on.
"""

import errno
import json
import mmap
import os
import random
import threading
import time
from pathlib import Path

import pytest
from fuse_mounts import poll

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


def stats(mounter, mount) -> dict:
    done = mounter.run("stats", str(mount.path), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def gets(snap: dict) -> int:
    return snap["requests"].get("GetObject", 0)


def random_reads(path: Path, data: bytes, count: int = 300) -> None:
    rng = random.Random(3)
    with open(path, "rb", buffering=0) as f:
        for _ in range(count):
            offset = rng.randrange(0, len(data) - 4096)
            assert os.pread(f.fileno(), 4096, offset) == data[offset:offset + 4096]


def cached_mount(mounter, bucket, cache: Path, *extra: str):
    return mounter.mount(bucket, options=f"stat_ttl=1s,dir_ttl=1s,cache_dir={cache},"
                                         f"cache_size=256M{''.join(',' + e for e in extra)}")


def test_passthrough_is_on_where_the_machine_allows_it(mounter, bucket, tmp_path):
    mount = cached_mount(mounter, bucket, tmp_path / "cache")
    bundled = os.environ.get("FUSE_LIBRARY_PATH", "").endswith("mssfs-libfuse/libfuse3.so.4")
    kernel = tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (6, 9)
    expected = bundled and kernel and os.geteuid() == 0
    assert stats(mounter, mount)["passthrough"]["on"] is expected


def test_a_wholly_cached_object_is_read_by_the_kernel_from_the_cache(
        mounter, bucket, s3, tmp_path):
    data = os.urandom(9 * MiB + 12345)  # a short last block
    s3.put_object(bucket, "whole.bin", data)
    cache = tmp_path / "cache"
    mount = cached_mount(mounter, bucket, cache)
    if not stats(mounter, mount)["passthrough"]["on"]:
        pytest.fail("passthrough is off: see test_passthrough_is_on_where_the_machine_allows_it")
    path = mount / "whole.bin"
    assert path.read_bytes() == data  # fills the disk cache, served by mssfs
    before = stats(mounter, mount)
    assert before["passthrough"]["opens"] == 0
    random_reads(path, data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert mapped[len(data) - 5000:] == data[-5000:]
    after = stats(mounter, mount)
    assert after["passthrough"]["opens"] == 2
    # Neither the store nor mssfs's own read path saw those reads.
    assert gets(after) == gets(before)
    assert after["cache"]["disk"]["hits"] == before["cache"]["disk"]["hits"]
    assert after["passthrough"]["files_open"] == 0

    # A new mount on the same cache: its first open checks the file's blocks and hands
    # it to the kernel; not one GET.
    mounter.umount(mount)
    again = cached_mount(mounter, bucket, cache)
    path = again / "whole.bin"
    random_reads(path, data)
    snap = stats(mounter, again)
    assert snap["passthrough"]["opens"] == 1 and gets(snap) == 0

    # Changed by another client: once the stat TTL has passed, open revalidates, finds a
    # new ETag (not in the cache), and mssfs serves the new bytes.
    changed = os.urandom(2 * MiB)
    s3.put_object(bucket, "whole.bin", changed)
    poll(lambda: path.read_bytes() == changed)


def test_a_writer_waits_for_passthrough_readers_then_gets_ebusy(
        mounter, bucket, s3, tmp_path):
    data = os.urandom(3 * MiB)
    s3.put_object(bucket, "busy.bin", data)
    mount = cached_mount(mounter, bucket, tmp_path / "cache")
    path = mount / "busy.bin"
    assert path.read_bytes() == data  # now wholly cached
    reader = open(path, "rb")  # noqa: SIM115 (closed by a timer below)
    try:
        assert stats(mounter, mount)["passthrough"]["files_open"] == 1
        started = time.monotonic()
        with pytest.raises(OSError) as caught, open(path, "ab"):
            pass
        assert caught.value.errno == errno.EBUSY
        assert time.monotonic() - started >= 1.5  # it waited for the reader first
        assert reader.read() == data  # the reader is unharmed
        # A reader that closes while the writer waits lets the writer in.
        threading.Timer(0.5, reader.close).start()
        with open(path, "ab") as writer:
            writer.write(b"tail")
    finally:
        reader.close()
    assert s3.get_object(bucket, "busy.bin").data == data + b"tail"
    assert path.read_bytes() == data + b"tail"


def test_no_passthrough_reads_the_cache_through_mssfs(mounter, bucket, s3, tmp_path):
    data = os.urandom(2 * MiB)
    s3.put_object(bucket, "served.bin", data)
    cache = tmp_path / "cache"
    mount = cached_mount(mounter, bucket, cache, "no_passthrough")
    assert (mount / "served.bin").read_bytes() == data
    mounter.umount(mount)
    again = cached_mount(mounter, bucket, cache, "no_passthrough")  # empty memory caches
    random_reads(again / "served.bin", data, count=50)
    snap = stats(mounter, again)
    assert snap["passthrough"] == {"on": False, "opens": 0, "files_open": 0}
    assert snap["cache"]["disk"]["hits"] > 0 and gets(snap) == 0
