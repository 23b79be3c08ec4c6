"""WriteBuffer on MemoryStore: streaming, staging, read-your-writes, request counts."""

from __future__ import annotations

import gc
import os
import stat
import threading
import time

import pytest

from mssfs.recovery import RecoveryFolder
from mssfs.stage import Budget
from mssfs.store.memory import MemoryStore
from mssfs.tail import TailPool
from mssfs.uploader import UploadConfig, Uploader
from mssfs.write_buffer import WriteBuffer

MiB = 1024 * 1024
BUCKET = "bucket"
PART = 5 * MiB


class GatedStore:
    """MemoryStore whose chosen operation waits for ``gate``; counts concurrent parts."""

    def __init__(self, inner: MemoryStore, gated: str = "upload_part") -> None:
        self.inner = inner
        self.gated = gated
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name != self.gated:
            return attr

        def gated(*args, **kwargs):
            with self._lock:
                self.running += 1
                self.max_running = max(self.max_running, self.running)
            self.entered.release()
            try:
                assert self.gate.wait(30), "gate never opened"
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        return gated


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def memory():
    store = MemoryStore()
    store.create_bucket(BUCKET)
    return store


def make_env(tmp_path, budget, tails=None):
    """``env.buffer(store, key, ...)`` → WriteBuffer, staged in files, or in memory (up
    to ``budget``) for new files, appends through ``tails``; everything closed
    afterwards."""

    class Env:
        staging = tmp_path / "staging"
        recovery = RecoveryFolder(str(tmp_path / "recovery"))
        uploaders: list = []
        buffers: list = []

        def uploader(self, store, **config):
            config.setdefault("part_size", PART)
            config.setdefault("concurrency", 4)
            config.setdefault("max_bytes_in_flight", 4 * PART)
            up = Uploader(store, UploadConfig(**config))
            self.uploaders.append(up)
            return up

        def buffer(self, store, key="k", *, truncate=False, uploader=None, metadata=None,
                   content_type=None, existing=True):
            base = None
            if existing:
                try:
                    base = store.head_object(BUCKET, key)
                except Exception:
                    base = None
            buf = WriteBuffer(store, uploader or self.uploader(store), self.recovery, BUCKET,
                              key, base=base, truncate=truncate, content_type=content_type,
                              metadata=metadata or {}, staging_dir=str(self.staging),
                              memory=budget, tails=tails)
            self.buffers.append(buf)
            return buf

    Env.staging.mkdir()
    e = Env()
    yield e
    for buf in e.buffers:
        buf.close(keep_dirty=False)
    for up in e.uploaders:
        up.close()
    if budget is not None:
        assert budget.used == 0  # every memory stage gave its bytes back
    if tails is not None:
        gc.collect()  # parts of aborted streams may be waiting for the collector
        assert tails.stats()["buffers_lent"] == 0  # every pooled buffer came back


@pytest.fixture(params=["file", "memory", "direct"])
def env(request, tmp_path):
    """Every test of a buffer runs three times: staged in a file; with new files staged
    in memory (1 MiB each, 4 MiB in all: larger ones move to a staging file); and as the
    mount does it, with larger new files appended through pooled buffers (``tail``)."""
    budget = Budget(file_limit=MiB, total=4 * MiB) if request.param != "file" else None
    tails = TailPool(PART + MiB, limit=8) if request.param == "direct" else None
    yield from make_env(tmp_path, budget, tails)


@pytest.fixture
def file_env(tmp_path):
    yield from make_env(tmp_path, None)


def content(store, key="k"):
    return store.get_object(BUCKET, key).data


# -- small files ----------------------------------------------------------------------------


def test_small_new_file_is_one_put_and_nothing_else(memory, env):
    buf = env.buffer(memory, content_type="text/plain", metadata={"mode": "33188"})
    memory.reset_counts()
    buf.write(0, b"hello ")
    buf.write(6, b"world")
    assert buf.read(0, 100) == b"hello world"
    info = buf.commit()
    assert dict(memory.counts) == {"PutObject": 1}
    assert content(memory) == b"hello world"
    assert (info.size, info.etag) == (11, memory.head_object(BUCKET, "k").etag)
    head = memory.head_object(BUCKET, "k")
    assert (head.content_type, head.metadata) == ("text/plain", {"mode": "33188"})
    assert buf.dirty == 0


def test_new_file_without_writes_still_creates_the_object(memory, env):
    buf = env.buffer(memory)
    assert buf.dirty
    buf.commit()
    assert content(memory) == b""


def test_unchanged_buffer_commits_nothing(memory, env):
    memory.put_object(BUCKET, "k", b"data")
    buf = env.buffer(memory)
    memory.reset_counts()
    info = buf.commit()
    assert info.etag == memory.head_object(BUCKET, "k").etag
    assert buf.commit() == info
    assert sum(memory.counts.values()) == 1  # only the HEAD above


def test_staging_file_is_private(memory, file_env):
    buf = file_env.buffer(memory)
    assert stat.S_IMODE(os.stat(buf.staging_path).st_mode) == 0o600
    buf.close(keep_dirty=False)
    assert not os.path.exists(buf.staging_path)


# -- streaming ----------------------------------------------------------------------------


def test_sequential_write_streams_parts_before_commit(memory, env):
    data = os.urandom(23 * MiB)
    buf = env.buffer(memory)
    for off in range(0, len(data), MiB):
        buf.write(off, data[off:off + MiB])
    # Four full parts were handed over while writing; they upload in the background.
    wait_for(lambda: memory.counts["UploadPart"] == 4)
    assert memory.counts["CreateMultipartUpload"] == 1
    assert memory.counts["CompleteMultipartUpload"] == 0
    buf.commit()
    assert memory.counts["UploadPart"] == 5  # the 3 MiB tail
    assert memory.counts["PutObject"] == 0 and memory.counts["GetObject"] == 0
    assert content(memory) == data


def test_up_to_one_part_is_a_single_put(memory, env):
    data = os.urandom(PART)
    buf = env.buffer(memory)
    buf.write(0, data[:PART - 1])
    buf.commit()
    buf2 = env.buffer(memory, "k2")
    buf2.write(0, data)
    buf2.commit()
    assert memory.counts["PutObject"] == 2 and memory.counts["UploadPart"] == 0
    assert content(memory, "k2") == data


def test_streaming_memory_is_bounded(memory, env):
    gated = GatedStore(memory)
    up = env.uploader(gated, concurrency=2, max_bytes_in_flight=2 * PART)
    buf = env.buffer(gated, uploader=up)
    chunk = os.urandom(MiB)
    for off in range(0, 40 * MiB, MiB):
        buf.write(off, chunk)
    buf.commit()
    assert content(memory) == chunk * 40
    stats = up.stats()
    assert stats["max_bytes_admitted"] <= 2 * PART  # at most two part buffers alive
    assert gated.max_running <= 2
    assert memory.counts["UploadPart"] == 8


def test_writer_waits_for_the_network_backpressure(memory, env):
    gated = GatedStore(memory)
    gated.gate.clear()
    up = env.uploader(gated, concurrency=1, max_bytes_in_flight=PART)
    buf = env.buffer(gated, uploader=up)
    progress = []

    def writer():
        for off in range(0, 3 * PART, MiB):
            buf.write(off, b"w" * MiB)
            progress.append(off)

    thread = threading.Thread(target=writer)
    thread.start()
    assert gated.entered.acquire(timeout=10)  # part 1 is being sent, and held
    wait_for(lambda: len(progress) >= 2 * PART // MiB)
    # The write past part 2 cannot hand it over while part 1 is in flight.
    assert thread.is_alive() and len(progress) == 2 * PART // MiB
    gated.gate.set()
    thread.join(10)
    buf.commit()
    assert content(memory) == b"w" * (3 * PART)


def test_preallocated_file_still_streams(memory, env):
    buf = env.buffer(memory)
    buf.truncate(12 * MiB)  # e.g. a downloader reserving the space first
    data = os.urandom(12 * MiB)
    for off in range(0, len(data), MiB):
        buf.write(off, data[off:off + MiB])
    wait_for(lambda: memory.counts["UploadPart"] == 2)
    buf.commit()
    assert content(memory) == data


def test_overwrite_of_a_sent_part_falls_back_to_the_staged_file(memory, env):
    data = bytearray(os.urandom(12 * MiB))
    buf = env.buffer(memory)
    for off in range(0, len(data), MiB):
        buf.write(off, data[off:off + MiB])
    buf.write(100, b"PATCH")  # a header rewritten at the end, as tar or zip do
    data[100:105] = b"PATCH"
    assert memory.list_multipart_uploads(BUCKET) == []  # the stream was aborted
    assert memory.counts["AbortMultipartUpload"] == 1
    buf.commit()
    assert content(memory) == data
    assert memory.list_multipart_uploads(BUCKET) == []


def test_truncate_below_a_sent_part_falls_back(memory, env):
    data = os.urandom(11 * MiB)
    buf = env.buffer(memory)
    buf.write(0, data)
    buf.truncate(3 * MiB)
    buf.commit()
    assert content(memory) == data[:3 * MiB]
    assert memory.list_multipart_uploads(BUCKET) == []


def test_metadata_set_during_a_stream_is_applied(memory, env):
    data = os.urandom(11 * MiB)
    buf = env.buffer(memory, metadata={"mtime": "1"})
    buf.write(0, data)
    buf.set_metadata({"mtime": "2"}, content_type="application/x-tar")  # cp -p: futimens
    buf.commit()
    head = memory.head_object(BUCKET, "k")
    assert (head.metadata, head.content_type) == ({"mtime": "2"}, "application/x-tar")
    assert content(memory) == data


def test_a_soft_metadata_change_does_not_cost_a_copy(memory, env):
    data = os.urandom(11 * MiB)
    buf = env.buffer(memory, metadata={"mtime": "1"})
    buf.write(0, data)
    buf.set_metadata({"mtime": "2"}, required=False)  # an mtime stamped at close
    info = buf.commit()
    assert memory.counts["CopyObject"] == 0
    assert memory.head_object(BUCKET, "k").metadata == {"mtime": "1"} == info.metadata
    small = env.buffer(memory, "small", metadata={"mtime": "1"})
    small.write(0, b"x")
    small.set_metadata({"mtime": "2"}, required=False)  # free here: it rides on the PUT
    assert small.commit().metadata == {"mtime": "2"}
    assert memory.head_object(BUCKET, "small").metadata == {"mtime": "2"}
    assert not small.dirty
    small.set_metadata({"mtime": "3"}, required=False)
    assert not small.dirty  # alone, a soft change uploads nothing


# -- staged: existing objects -------------------------------------------------------------


def test_overwrite_in_the_middle_of_an_existing_object(memory, env):
    data = bytearray(os.urandom(12 * MiB))
    memory.put_object(BUCKET, "k", bytes(data))
    buf = env.buffer(memory)
    buf.write(6 * MiB, b"XYZ")
    data[6 * MiB:6 * MiB + 3] = b"XYZ"
    assert buf.read(6 * MiB - 1, 5) == bytes(data[6 * MiB - 1:6 * MiB + 4])
    buf.commit()
    assert content(memory) == data


def test_append_to_an_existing_object(memory, env):
    memory.put_object(BUCKET, "k", b"hello")
    buf = env.buffer(memory)
    memory.reset_counts()
    buf.write(buf.size, b" world")
    buf.commit()
    assert content(memory) == b"hello world"
    assert memory.counts["GetObject"] == 2  # one fill, one for the assertion


def test_small_change_to_a_large_object_copies_the_untouched_parts(memory, env):
    data = bytearray(os.urandom(23 * MiB))
    memory.put_object(BUCKET, "k", bytes(data))
    buf = env.buffer(memory)
    memory.reset_counts()
    buf.write(7 * MiB, b"mid")  # in part 2 of [0,5) [5,10) [10,15) [15,20) [20,23)
    buf.write(len(data), b"appended")  # in part 5
    data[7 * MiB:7 * MiB + 3] = b"mid"
    data += b"appended"
    buf.commit()
    assert memory.counts["UploadPartCopy"] == 3 and memory.counts["UploadPart"] == 2
    assert memory.counts["GetObject"] == 2  # only the two changed parts were fetched
    assert content(memory) == data
    # The copied ranges were never downloaded, yet the buffer still reads them right.
    assert buf.read(12 * MiB, 10) == bytes(data[12 * MiB:12 * MiB + 10])
    buf.write(0, b"again")
    data[0:5] = b"again"
    buf.commit()
    assert content(memory) == data


def test_truncate_shrink_and_grow(memory, env):
    memory.put_object(BUCKET, "k", b"0123456789")
    buf = env.buffer(memory)
    buf.truncate(4)
    assert buf.read(0, 100) == b"0123"
    buf.truncate(8)
    assert buf.size == 8
    assert buf.read(0, 100) == b"0123\0\0\0\0"  # grown with zeros, not the old bytes
    buf.commit()
    assert content(memory) == b"0123\0\0\0\0"


def test_truncate_on_open_empties_the_object(memory, env):
    memory.put_object(BUCKET, "k", b"old content")
    buf = env.buffer(memory, truncate=True)
    assert buf.size == 0 and buf.read(0, 10) == b""
    buf.commit()
    assert content(memory) == b""


def test_sparse_write_fills_the_hole_with_zeros(memory, env):
    buf = env.buffer(memory)
    buf.write(10, b"x")
    buf.commit()
    assert content(memory) == b"\0" * 10 + b"x"


def test_reads_fetch_only_the_blocks_they_need(memory, env):
    data = bytearray(os.urandom(3 * MiB))
    memory.put_object(BUCKET, "k", bytes(data))
    buf = env.buffer(memory)
    memory.reset_counts()
    buf.write(MiB + 10, b"abc")
    data[MiB + 10:MiB + 13] = b"abc"
    assert buf.read(MiB, 100) == bytes(data[MiB:MiB + 100])
    assert buf.read(MiB + 50, 100) == bytes(data[MiB + 50:MiB + 150])
    assert memory.counts["GetObject"] == 1  # one ranged GET of block 1, then cached
    assert buf.read(3 * MiB - 2, 10) == bytes(data[-2:])
    assert memory.counts["GetObject"] == 2


def test_metadata_only_change_is_a_self_copy(memory, env):
    memory.put_object(BUCKET, "k", b"data", metadata={"mode": "33188"})
    buf = env.buffer(memory, metadata={"mode": "33188"})
    memory.reset_counts()
    buf.set_metadata({"mode": "33261"})
    assert buf.dirty
    buf.commit()
    assert dict(memory.counts) == {"CopyObject": 1}
    assert memory.head_object(BUCKET, "k").metadata == {"mode": "33261"}
    assert content(memory) == b"data"


def test_write_after_commit_goes_into_the_next_commit(memory, env):
    buf = env.buffer(memory)
    buf.write(0, b"one")
    first = buf.commit()
    buf.write(3, b"two")
    second = buf.commit()
    assert content(memory) == b"onetwo"
    assert first.etag != second.etag and second.size == 6


def test_a_full_disk_fails_the_write_and_keeps_the_buffer_sound(memory, env, monkeypatch):
    import errno

    data = os.urandom(12 * MiB)
    buf = env.buffer(memory)
    buf.write(0, data)  # two parts streamed
    real_pwrite = os.pwrite

    def full_disk(fd, view, offset):
        real_pwrite(fd, bytes(view[:1000]), offset)  # a partial write, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(OSError) as raised:
        buf.write(len(data), b"y" * 5000)
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert raised.value.errno == errno.ENOSPC
    assert buf.size == len(data) and os.path.getsize(buf.staging_path) == len(data)
    assert memory.list_multipart_uploads(BUCKET) == []  # streaming was given up
    buf.commit()
    assert content(memory) == data


# -- concurrency --------------------------------------------------------------------------


def test_writes_during_a_commit_wait_for_it(memory, env):
    gated = GatedStore(memory, gated="put_object")
    buf = env.buffer(gated)
    buf.write(0, b"before")
    gated.gate.clear()
    committer = threading.Thread(target=buf.commit)
    committer.start()
    assert gated.entered.acquire(timeout=10)  # the PUT is in progress
    writer = threading.Thread(target=buf.write, args=(6, b"after"))
    writer.start()
    assert buf.read(0, 100) == b"before"  # reads go on during the commit
    gated.gate.set()
    committer.join(10)
    writer.join(10)
    assert content(memory) == b"before"  # the commit took exactly what came before it
    assert buf.dirty
    buf.commit()
    assert content(memory) == b"beforeafter"


def test_concurrent_writers_on_disjoint_ranges(memory, env):
    data = os.urandom(16 * MiB)
    buf = env.buffer(memory)
    step = 256 * 1024

    def writer(k):
        for off in range(k * step, len(data), 4 * step):
            buf.write(off, data[off:off + step])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    buf.commit()
    assert content(memory) == data


@pytest.mark.allow_warnings("bytes are kept in")
def test_close_of_a_dirty_buffer_keeps_the_bytes(memory, env):
    buf = env.buffer(memory)
    buf.write(0, b"unsaved")
    buf.close()
    [kept] = env.recovery.list()
    with open(kept.path, "rb") as f:
        assert f.read() == b"unsaved"
    with pytest.raises(ValueError):
        buf.write(0, b"x")


def test_close_discarding_leaves_nothing(memory, env):
    buf = env.buffer(memory)
    buf.write(0, os.urandom(11 * MiB))  # a stream is in progress
    buf.close(keep_dirty=False)
    assert env.recovery.list() == []
    assert memory.list_multipart_uploads(BUCKET) == []
    assert os.listdir(env.staging) == []
