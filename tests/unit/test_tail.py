"""The append tail: a new file's appends staged with O_DIRECT from pooled buffers.

These tests drive a ``FileStage`` the way the write buffer does (appends, parts taken
once a write has passed their end, reads, other writes) on a real staging directory,
and check after every step what a killed mount would leave (the staging file) and what
the upload would send (the parts). The write buffer's behaviour with a tail is
test_write_buffer's (its ``env`` runs every test with a pool too).
"""

from __future__ import annotations

import errno
import gc
import os
import random
import sys
import threading
import time

import pytest

from mssfs import tail
from mssfs.recovery import RecoveryFolder
from mssfs.stage import Budget, FileStage
from mssfs.store.memory import MemoryStore
from mssfs.tail import DIO_ALIGN, PooledPart, TailPool
from mssfs.uploader import FileRange, UploadConfig, Uploader
from mssfs.write_buffer import WriteBuffer

KiB = 1024
PART = 64 * KiB  # a multiple of DIO_ALIGN, like every part size the mount uses
STEP = 8 * KiB


@pytest.fixture(autouse=True)
def small_flush_step(monkeypatch):
    """Flush every 8 KiB instead of every MiB, so small files exercise it."""
    monkeypatch.setattr(tail, "FLUSH_STEP", STEP)


@pytest.fixture
def pool():
    pool = TailPool(PART + 16 * KiB, limit=8)
    yield pool
    gc.collect()
    assert pool.stats()["buffers_lent"] == 0  # every buffer came back


@pytest.fixture
def stages(tmp_path, pool):
    made = []

    def make(tails=pool):
        stage = FileStage(str(tmp_path), "bucket", "key", whole=True, tails=tails)
        made.append(stage)
        return stage

    yield make
    for stage in made:
        stage.close()


def on_disk(stage: FileStage) -> bytes:
    with open(stage.path, "rb") as f:
        return f.read()


def body_bytes(body) -> bytes:
    return body.read() if isinstance(body, FileRange) else bytes(body.view)


def test_appends_go_direct_and_parts_are_sent_from_memory(stages, pool):
    stage = stages()
    rng = random.Random(1)
    data = bytearray()
    sent = 0
    parts = []
    while len(data) < 5 * PART + 1234:
        piece = rng.randbytes(rng.randint(1, 12 * KiB))
        stage.pwrite(piece, len(data))
        data += piece
        # What a killed mount leaves: a prefix, short by less than a step and a block.
        kept = on_disk(stage)
        assert data.startswith(kept) and len(data) - len(kept) < STEP + DIO_ALIGN
        if len(data) - sent > PART:  # the write buffer's rule: a write went past it
            body = stage.part(sent, PART)
            assert isinstance(body, PooledPart)
            parts.append(body_bytes(body))
            body.release()
            sent += PART
    assert b"".join(parts) == data[:sent]
    assert stage.pread(len(data), 0) == data  # reads do not end the tail
    last = stage.part(sent, len(data) - sent)  # the last part, not block-aligned
    assert isinstance(last, PooledPart) and body_bytes(last) == data[sent:]
    last.release()
    assert on_disk(stage) == data  # all of it, and not a byte more
    assert pool.stats()["direct_bytes"] >= 5 * PART  # the disk did take O_DIRECT
    stage.pwrite(b"more", len(data))  # the tail ended with the last part
    assert on_disk(stage) == data + b"more"


def test_a_write_elsewhere_drains_the_tail(stages):
    stage = stages()
    data = bytearray(os.urandom(3 * STEP + 100))
    stage.pwrite(data, 0)
    stage.pwrite(b"X" * 10, 5)
    data[5:15] = b"X" * 10
    assert on_disk(stage) == data
    stage.pwrite(b"end", len(data))
    body = stage.part(0, len(data) + 3)
    assert isinstance(body, FileRange) and body.read() == data + b"end"


def test_truncate_and_recovery_find_every_byte_in_the_file(stages, tmp_path):
    stage = stages()
    data = os.urandom(2 * STEP + 77)
    stage.pwrite(data, 0)
    stage.truncate(len(data) + 10)
    assert on_disk(stage) == data + bytes(10)

    class Recovery:
        def save(self, bucket, key, source):
            return os.pread(source, 1 << 20, 0)

    other = stages()
    other.pwrite(data, 0)
    assert other.save(Recovery(), "bucket", "key") == data


def test_reads_span_the_file_and_the_tail(stages):
    stage = stages()
    data = os.urandom(PART + 12 * KiB)  # fits the buffer: part + 16 KiB
    for start in range(0, len(data), 4000):
        stage.pwrite(data[start:start + 4000], start)
    stage.part(0, PART).release()  # the first PART bytes are now only in the file
    for offset, size in [(0, 10), (PART - 5, 10), (PART + 3, 100), (100, len(data))]:
        assert stage.pread(size, offset) == data[offset:offset + size]
    assert stage.read_all(len(data)) == data


def test_with_no_buffer_to_spare_the_part_is_read_back_from_the_file(tmp_path):
    pool = TailPool(PART + 16 * KiB, limit=1)
    stage = FileStage(str(tmp_path), "bucket", "key", whole=True, tails=pool)
    data = os.urandom(3 * PART + 5000)
    sent = 0
    for start in range(0, len(data), 8 * KiB):
        stage.pwrite(data[start:start + 8 * KiB], start)
        if start + 8 * KiB - sent > PART:
            body = stage.part(sent, PART)
            assert isinstance(body, FileRange) and body.read() == data[sent:sent + PART]
            assert stage._tail is not None  # the tail goes on in its own buffer
            sent += PART
    assert sent == 3 * PART and pool.stats()["buffers_lent"] == 1
    assert stage.read_all(len(data)) == data
    stage.close()
    assert pool.stats()["buffers_lent"] == 0


def test_a_file_system_without_o_direct_turns_the_pool_off(stages, pool, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    stage = stages()
    monkeypatch.setattr(os, "open", real_open)
    data = os.urandom(3 * STEP)
    stage.pwrite(data, 0)
    assert on_disk(stage) == data  # ordinary writes, at once
    assert not pool.enabled and "O_DIRECT" in pool.stats()["direct_off_because"]
    assert stages()._tail is None  # later files do not try again


def test_a_refused_direct_write_is_made_the_ordinary_way(stages, pool, monkeypatch):
    stage = stages()
    real_pwrite = os.pwrite

    def refuse_direct(fd, data, offset):
        if fd == stage._tail._dfd:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refuse_direct)
    data = os.urandom(PART + STEP + 100)
    for start in range(0, len(data), STEP):
        stage.pwrite(data[start:start + STEP], start)
    assert not pool.enabled
    assert on_disk(stage) == data[:PART + STEP]  # flushed all the same
    body = stage.part(0, PART)  # the pool is off: the tail ends, the file has it all
    assert isinstance(body, FileRange) and body.read() == data[:PART]
    assert on_disk(stage) == data


def test_a_full_disk_fails_the_write_and_keeps_the_earlier_bytes(stages, monkeypatch):
    stage = stages()
    first = os.urandom(STEP - 100)
    stage.pwrite(first, 0)  # under a step: not flushed yet, only in memory
    real_pwrite = os.pwrite

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError) as raised:
        stage.pwrite(os.urandom(STEP), len(first))  # would flush: the disk is full
    assert raised.value.errno == errno.ENOSPC
    stage.trim(len(first))  # what the write buffer does after a failed write
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert stage.pread(len(first) + STEP, 0) == first  # the failed write is not there
    more = os.urandom(2 * STEP)
    stage.pwrite(more, len(first))
    stage.drain()
    assert on_disk(stage) == first + more


def test_a_slow_disk_turns_direct_staging_off_for_a_while(tmp_path, monkeypatch):
    monkeypatch.setattr(tail, "RATE_WINDOW", 4 * STEP)
    now = [1000.0]
    pool = TailPool(PART + 16 * KiB, limit=8, min_rate=1e18,  # no disk is that fast
                    clock=lambda: now[0])
    stage = FileStage(str(tmp_path), "bucket", "key", whole=True, tails=pool)
    data = os.urandom(PART + STEP + 100)
    for start in range(0, len(data), STEP):
        stage.pwrite(data[start:start + STEP], start)
    assert not pool.enabled and "MB/s" in pool.stats()["direct_off_because"]
    body = stage.part(0, PART)  # this file's tail ends at its next part
    assert isinstance(body, FileRange) and body.read() == data[:PART]
    assert on_disk(stage) == data
    stage.close()
    assert pool.lend() is None
    now[0] += tail.SLOW_RETRY  # ten minutes later, the disk gets another chance
    assert pool.enabled and pool.stats()["direct_off_because"] == ""
    assert pool.stats()["direct_mb_s"] > 0


def test_the_pool_lends_at_most_its_limit_and_unmaps_idle_buffers():
    pool = TailPool(10_000, limit=3, keep=1)
    assert pool.size % DIO_ALIGN == 0 and pool.size >= 10_000
    bufs = [pool.lend() for _ in range(3)]
    assert None not in bufs and pool.lend() is None
    pool.give_back(bufs.pop())
    assert pool.stats()["buffers_mapped"] == 3  # still lending: kept for reuse
    reused = pool.lend()
    assert reused is not None
    for buf in [*bufs, reused]:
        pool.give_back(buf)
    assert pool.stats() == {"direct": True, "direct_off_because": "", "direct_bytes": 0,
                            "direct_mb_s": None, "buffers_lent": 0, "buffers_mapped": 1}


def test_a_pool_turned_off_unmaps_what_comes_back_at_once():
    """Found by the benchmark: after the slow-disk switch, parts in flight still held
    pooled buffers, and each one that came back stayed mapped until none was lent,
    while the file's next parts were read from the staging file into memory of their
    own: 281 MiB of peak RSS writing 4 GiB instead of 225."""
    pool = TailPool(10_000, limit=4, keep=1)
    bufs = [pool.lend() for _ in range(4)]
    pool.disable("the staging disk took direct writes at 1 MB/s, under 400")
    pool.give_back(bufs.pop())
    pool.give_back(bufs.pop())
    assert pool.stats()["buffers_mapped"] == 2  # only those still lent
    for buf in bufs:
        pool.give_back(buf)
    assert pool.stats()["buffers_mapped"] == 0


def test_a_part_dropped_without_release_still_returns_its_buffer():
    pool = TailPool(PART, limit=2)
    part = PooledPart(pool, pool.lend(), 100)
    assert part.view.readonly and len(part) == 100
    del part
    gc.collect()
    assert pool.stats()["buffers_lent"] == 0


def test_a_disabled_pool_lends_nothing(tmp_path):
    pool = TailPool(PART, limit=2, enabled=False)
    stage = FileStage(str(tmp_path), "bucket", "key", whole=True, tails=pool)
    assert stage._tail is None and pool.lend() is None
    assert "no_direct_staging" in pool.stats()["direct_off_because"]
    stage.close()


def test_a_streamed_new_file_is_sent_from_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(tail, "FLUSH_STEP", 1 << 20)
    part = 5 << 20
    store = MemoryStore()
    store.create_bucket("bucket")
    uploader = Uploader(store, UploadConfig(part_size=part, concurrency=2))
    pool = TailPool(part + (1 << 20), limit=8)
    buf = WriteBuffer(store, uploader, RecoveryFolder(str(tmp_path / "recovery")), "bucket",
                      "key", base=None, truncate=False, content_type=None, metadata={},
                      staging_dir=str(tmp_path), memory=Budget(), tails=pool)

    def read_back(self):
        raise AssertionError("a part was read back from the staging file")

    monkeypatch.setattr(FileRange, "read", read_back)
    data = os.urandom(23 * (1 << 20) + 777)
    for start in range(0, len(data), 1 << 20):
        buf.write(start, data[start:start + (1 << 20)])
    buf.commit()
    buf.close()
    uploader.close()
    assert store.get_object("bucket", "key").data == data
    assert store.counts["UploadPart"] == 5
    assert pool.stats()["direct_bytes"] >= 20 << 20
    gc.collect()
    assert pool.stats()["buffers_lent"] == 0


def check_reads(stage, data, lock, done, wrong, seed):
    """Read random ranges until ``done``; note every wrong answer or failure."""
    rng = random.Random(seed)
    while not done.is_set():
        offset = rng.randrange(len(data))
        try:
            with lock:
                got = stage.pread(4 * KiB, offset)
        except Exception as exc:
            wrong.append((offset, repr(exc)))
            return
        if got != data[offset:offset + 4 * KiB]:
            wrong.append(offset)


def test_reads_stay_right_while_a_commit_takes_the_last_part(stages):
    # The write buffer reads under its lock while a commit, holding no lock (it only
    # blocks writers), takes the last part or drains the tail: the stage keeps the two
    # apart. A tiny switch interval makes the threads interleave inside them.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for attempt in range(60):
            stage = stages()
            data = os.urandom(2 * PART + 999)
            buffer_lock = threading.Lock()  # the write buffer's
            sent = 0
            for start in range(0, len(data), 4 * KiB):
                with buffer_lock:
                    stage.pwrite(data[start:start + 4 * KiB], start)
                    if min(start + 4 * KiB, len(data)) - sent > PART:  # streamed
                        stage.part(sent, PART).release()
                        sent += PART
            wrong, done = [], threading.Event()
            thread = threading.Thread(target=check_reads,
                                      args=(stage, data, buffer_lock, done, wrong, attempt))
            thread.start()
            try:
                time.sleep(0.001)
                if attempt % 2:
                    stage.drain()  # an upload of the whole file
                else:
                    stage.part(sent, len(data) - sent).release()  # the last part
                time.sleep(0.001)
            finally:
                done.set()
                thread.join()
            assert wrong == []
    finally:
        sys.setswitchinterval(interval)
