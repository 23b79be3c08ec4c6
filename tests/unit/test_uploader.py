"""Uploader: part planning, single PUTs, streams with backpressure, file uploads, copies."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_write_buffer import GatedStore

from mssfs import uploader as uploader_module
from mssfs.store import errors
from mssfs.store.memory import MemoryStore
from mssfs.tail import PooledPart, TailPool
from mssfs.uploader import (
    MAX_PART_SIZE,
    FileRange,
    UploadConfig,
    Uploader,
    plan_part_size,
    stream_part_size,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
BUCKET = "bucket"


@pytest.fixture
def memory():
    store = MemoryStore()
    store.create_bucket(BUCKET)
    return store


@pytest.fixture
def make_uploader():
    made = []

    def make(store, **config):
        config.setdefault("part_size", 5 * MiB)
        config.setdefault("concurrency", 4)
        config.setdefault("max_bytes_in_flight", 20 * MiB)
        up = Uploader(store, UploadConfig(**config))
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


def body(store, key=b"k"):
    return store.get_object(BUCKET, key).data


# -- planning (pure) ----------------------------------------------------------------------


def test_plan_small_and_unknown_sizes_use_the_minimum():
    assert plan_part_size(0) == 8 * MiB
    assert plan_part_size(1 * GiB) == 8 * MiB
    assert plan_part_size(None) == 8 * MiB
    assert plan_part_size(10, min_part=1) == 5 * MiB  # S3's floor


def test_plan_grows_so_no_upload_exceeds_10000_parts():
    assert plan_part_size(10_000 * 8 * MiB) == 8 * MiB
    assert plan_part_size(10_000 * 8 * MiB + 1) == 16 * MiB
    assert plan_part_size(5 * TiB) == 1 * GiB


@given(st.integers(min_value=0, max_value=5 * TiB), st.integers(5 * MiB, 64 * MiB))
def test_plan_properties(total, min_part):
    size = plan_part_size(total, min_part=min_part)
    assert min_part <= size <= MAX_PART_SIZE
    assert -(-total // size) <= 10_000


def test_stream_part_size_grows_with_the_part_number():
    assert stream_part_size(1) == stream_part_size(1000) == 8 * MiB
    assert stream_part_size(1001) == 16 * MiB
    assert stream_part_size(2001) == 32 * MiB
    assert stream_part_size(10_000) == 4 * GiB
    sizes = [stream_part_size(n) for n in range(1, 10_001)]
    assert sizes == sorted(sizes)
    assert sum(sizes) >= 5 * TiB  # a stream never runs out of part numbers
    assert max(stream_part_size(n, min_part=64 * MiB) for n in range(1, 10_001)) == MAX_PART_SIZE
    with pytest.raises(ValueError):
        stream_part_size(10_001)


def test_config_validation():
    assert UploadConfig().single_put_threshold == UploadConfig().part_size
    with pytest.raises(ValueError):
        UploadConfig(part_size=1 * MiB)
    with pytest.raises(ValueError):
        UploadConfig(concurrency=0)
    with pytest.raises(ValueError):
        UploadConfig(part_size=8 * MiB, max_bytes_in_flight=4 * MiB)
    assert UploadConfig().byte_budget == 128 * MiB
    assert UploadConfig(part_size=512 * MiB).byte_budget == 1024 * MiB
    assert UploadConfig(max_bytes_in_flight=64 * MiB).byte_budget == 64 * MiB


# -- put and upload_file ------------------------------------------------------------------


def test_put_is_one_request(memory, make_uploader):
    up = make_uploader(memory)
    etag = up.put(BUCKET, "k", b"abc", length=3, content_type="text/plain",
                  metadata={"mode": "33188"})
    assert dict(memory.counts) == {"CreateBucket": 1, "PutObject": 1}
    info = memory.head_object(BUCKET, "k")
    assert (info.etag, info.content_type, info.metadata) == (etag, "text/plain",
                                                             {"mode": "33188"})
    assert up.stats()["bytes_uploaded"] == 3


def test_upload_file_small_is_one_put(memory, make_uploader, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    make_uploader(memory).upload_file(BUCKET, "k", str(path))
    assert memory.counts["PutObject"] == 1 and memory.counts["UploadPart"] == 0
    assert body(memory, "k") == b"x" * 1000


def test_upload_file_large_is_parallel_multipart(memory, make_uploader, tmp_path):
    data = os.urandom(12 * MiB + 3)
    path = tmp_path / "f"
    path.write_bytes(data)
    up = make_uploader(memory)
    up.upload_file(BUCKET, "k", str(path), content_type="application/x-test")
    assert memory.counts["UploadPart"] == 3 and memory.counts["CompleteMultipartUpload"] == 1
    assert body(memory, "k") == data
    assert memory.head_object(BUCKET, "k").content_type == "application/x-test"
    assert up.stats()["bytes_uploaded"] == len(data)


def test_upload_file_part_failure_aborts_and_keeps_old_object(memory, make_uploader, tmp_path):
    memory.put_object(BUCKET, "k", b"old")
    path = tmp_path / "f"
    path.write_bytes(os.urandom(11 * MiB))
    memory.fail_next("UploadPart", errors.ServiceUnavailable("boom", code="InternalError"))
    up = make_uploader(memory)
    with pytest.raises(errors.ServiceUnavailable):
        up.upload_file(BUCKET, "k", str(path))
    assert body(memory, "k") == b"old"
    assert memory.list_multipart_uploads(BUCKET) == []
    assert memory.counts["AbortMultipartUpload"] == 1
    assert memory.counts["CompleteMultipartUpload"] == 0
    assert up.stats()["failed"] == 1


# -- streams ------------------------------------------------------------------------------


def test_stream_of_bytes_and_file_ranges(memory, make_uploader, tmp_path):
    first, second = os.urandom(5 * MiB), os.urandom(1234)
    path = tmp_path / "part2"
    path.write_bytes(b"..." + second)
    up = make_uploader(memory)
    stream = up.start_stream(BUCKET, "k", metadata={"a": "1"})
    fd = os.open(path, os.O_RDONLY)
    try:
        assert stream.add_part(first) == 1
        assert stream.add_part(FileRange(fd, 3, len(second))) == 2
        stream.complete(expected_parts=2)
    finally:
        os.close(fd)
    assert body(memory, "k") == first + second
    assert memory.head_object(BUCKET, "k").metadata == {"a": "1"}


def test_stream_first_failure_is_raised_from_complete_and_upload_aborted(memory, make_uploader):
    memory.put_object(BUCKET, "k", b"old")
    failure = errors.AccessDenied("denied", code="AccessDenied")
    memory.fail_next("UploadPart", failure)
    up = make_uploader(memory, concurrency=1)
    stream = up.start_stream(BUCKET, "k")
    for _ in range(3):
        stream.add_part(b"p" * (5 * MiB))
    with pytest.raises(errors.AccessDenied) as raised:
        stream.complete()
    assert raised.value is failure
    assert memory.list_multipart_uploads(BUCKET) == []
    assert body(memory, "k") == b"old"
    # With one worker the parts after the failure are skipped, not sent.
    assert memory.counts["UploadPart"] == 1
    assert stream.failed


def test_pooled_parts_go_back_to_their_pool_sent_failed_or_skipped(memory, make_uploader):
    pool = TailPool(5 * MiB, limit=4)

    def pooled(fill: bytes) -> PooledPart:
        buf = pool.lend()
        buf[:] = fill * len(buf)
        return PooledPart(pool, buf, 5 * MiB)  # the pool's buffers may be larger

    up = make_uploader(memory, concurrency=1)
    stream = up.start_stream(BUCKET, "k")
    parts = [pooled(b"a"), pooled(b"b")]
    for part in parts:
        stream.add_part(part)
    stream.complete()
    assert body(memory, "k") == b"a" * (5 * MiB) + b"b" * (5 * MiB)
    assert pool.stats()["buffers_lent"] == 0  # released when sent, though still referenced
    memory.fail_next("UploadPart", errors.AccessDenied("denied", code="AccessDenied"))
    stream = up.start_stream(BUCKET, "k2")
    parts = [pooled(b"c"), pooled(b"d"), pooled(b"e")]  # fails, then two skipped
    for part in parts:
        stream.add_part(part)
    with pytest.raises(errors.AccessDenied):
        stream.complete()
    assert pool.stats()["buffers_lent"] == 0


def test_stream_create_failure_is_raised(memory, make_uploader):
    memory.fail_next("CreateMultipartUpload", errors.AccessDenied("no", code="AccessDenied"))
    stream = make_uploader(memory).start_stream(BUCKET, "k")
    stream.add_part(b"x" * 10)
    with pytest.raises(errors.AccessDenied):
        stream.complete()
    assert memory.counts["AbortMultipartUpload"] == 0
    assert memory.counts["UploadPart"] == 0


def test_complete_refuses_a_missing_part(memory, make_uploader):
    stream = make_uploader(memory).start_stream(BUCKET, "k")
    stream.add_part(b"a" * (5 * MiB), part_number=1)
    stream.add_part(b"c", part_number=3)
    with pytest.raises(RuntimeError, match=r"expected parts 1\.\.3"):
        stream.complete(expected_parts=3)
    assert memory.list_multipart_uploads(BUCKET) == []
    assert memory.counts["CompleteMultipartUpload"] == 0


def test_abort_is_idempotent_and_leaves_no_upload(memory, make_uploader):
    stream = make_uploader(memory).start_stream(BUCKET, "k")
    stream.add_part(b"x" * (5 * MiB))
    stream.abort()
    stream.abort()
    stream.add_part(b"y")  # ignored after abort
    assert memory.list_multipart_uploads(BUCKET) == []
    assert memory.counts["AbortMultipartUpload"] == 1
    assert memory.counts["UploadPart"] <= 1  # the first part may be skipped by the abort


@pytest.mark.allow_warnings("could not abort the multipart upload")
def test_failed_abort_is_logged_not_raised(memory, make_uploader):
    memory.fail_next("AbortMultipartUpload", errors.ServiceUnavailable("down"))
    stream = make_uploader(memory).start_stream(BUCKET, "k")
    stream.add_part(b"x")
    stream.abort()
    assert memory.counts["AbortMultipartUpload"] == 1


def test_add_part_blocks_when_the_byte_budget_is_spent(memory, make_uploader):
    gated = GatedStore(memory)
    gated.gate.clear()
    up = make_uploader(gated, concurrency=2, max_bytes_in_flight=10 * MiB)
    stream = up.start_stream(BUCKET, "k")
    added = []

    def writer():
        for _ in range(6):
            added.append(stream.add_part(b"z" * (5 * MiB)))

    thread = threading.Thread(target=writer)
    thread.start()
    for _ in range(2):  # both workers are inside UploadPart, waiting for the gate
        assert gated.entered.acquire(timeout=10)
    # The budget holds two 5 MiB parts: the writer is stuck on the third.
    assert up.stats()["bytes_admitted"] == 10 * MiB
    assert len(added) == 2
    assert thread.is_alive()
    gated.gate.set()
    thread.join(10)
    assert not thread.is_alive()
    stream.complete(expected_parts=6)
    assert len(body(memory, "k")) == 30 * MiB
    stats = up.stats()
    assert stats["max_bytes_admitted"] <= 10 * MiB
    assert gated.max_running <= 2
    assert (stats["pending"], stats["in_flight"], stats["bytes_admitted"]) == (0, 0, 0)


def test_a_part_larger_than_the_budget_still_goes(memory, make_uploader):
    up = make_uploader(memory, part_size=5 * MiB, max_bytes_in_flight=5 * MiB)
    stream = up.start_stream(BUCKET, "k")
    stream.add_part(b"a" * (7 * MiB))
    stream.add_part(b"b")
    stream.complete()
    assert len(body(memory, "k")) == 7 * MiB + 1


# -- copies and the pool ------------------------------------------------------------------


def test_copy_large_small_object_is_one_copy(memory, make_uploader):
    memory.put_object(BUCKET, "src", b"data", metadata={"m": "1"})
    make_uploader(memory).copy_large(BUCKET, "src", BUCKET, "dst", 4)
    assert memory.counts["CopyObject"] == 1
    assert memory.head_object(BUCKET, "dst").metadata == {"m": "1"}


def test_copy_large_beyond_the_single_copy_limit_uses_part_copies(memory, make_uploader,
                                                                  monkeypatch):
    monkeypatch.setattr(uploader_module, "MAX_SINGLE_COPY", 6 * MiB)
    monkeypatch.setattr(uploader_module, "COPY_PART_SIZE", 5 * MiB)
    data = os.urandom(13 * MiB)
    memory.put_object(BUCKET, "src", data, content_type="text/x", metadata={"m": "1"})
    make_uploader(memory).copy_large(BUCKET, "src", BUCKET, "dst", len(data))
    assert memory.counts["UploadPartCopy"] == 3 and memory.counts["CopyObject"] == 0
    assert body(memory, "dst") == data
    info = memory.head_object(BUCKET, "dst")
    assert (info.metadata, info.content_type) == ({"m": "1"}, "text/x")


def test_copy_large_failure_aborts(memory, make_uploader, monkeypatch):
    monkeypatch.setattr(uploader_module, "MAX_SINGLE_COPY", 6 * MiB)
    monkeypatch.setattr(uploader_module, "COPY_PART_SIZE", 5 * MiB)
    memory.put_object(BUCKET, "src", os.urandom(11 * MiB))
    memory.fail_next("UploadPartCopy", errors.ServiceUnavailable("x"))
    with pytest.raises(errors.ServiceUnavailable):
        make_uploader(memory).copy_large(BUCKET, "src", BUCKET, "dst", 11 * MiB)
    assert memory.list_multipart_uploads(BUCKET) == []
    with pytest.raises(errors.NoSuchKey):
        memory.head_object(BUCKET, "dst")


def test_submit_and_close_wait_for_jobs(memory):
    up = Uploader(memory, UploadConfig(part_size=5 * MiB))
    done = threading.Event()
    future = up.submit(done.set)
    up.close()
    assert future.done() and done.is_set()
    up.close()  # idempotent
    with pytest.raises(RuntimeError):
        up.submit(done.set)
