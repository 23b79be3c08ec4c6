"""transfer: parallel upload_file/download_file, driven on MemoryStore."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from pathlib import Path

import pytest

from mssfs.store import errors
from mssfs.store.memory import MemoryStore
from mssfs.store.transfer import MiB, download_file, plan_parts, upload_file

BUCKET = "transfer-test"


@pytest.fixture
def store() -> MemoryStore:
    st = MemoryStore()
    st.create_bucket(BUCKET)
    st.reset_counts()
    return st


def write_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_plan_parts_covers_the_file_in_at_most_10000_parts() -> None:
    assert plan_parts(0, 8) == []
    assert plan_parts(20, 8) == [(0, 8), (8, 16), (16, 20)]
    huge = plan_parts(10_000 * 8 * MiB + 1, 8 * MiB)
    assert len(huge) <= 10_000
    assert huge[0][0] == 0 and huge[-1][1] == 10_000 * 8 * MiB + 1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(huge))


def test_a_file_of_one_part_is_a_single_put(store, tmp_path) -> None:
    data = write_file(tmp_path / "f", 5 * MiB)
    etag = upload_file(store, BUCKET, "k", tmp_path / "f", part_size=5 * MiB,
                       content_type="text/plain", metadata={"mode": "33188"})
    assert etag == hashlib.md5(data).hexdigest()
    assert store.counts == {"PutObject": 1}
    info = store.head_object(BUCKET, "k")
    assert (info.content_type, dict(info.metadata)) == ("text/plain", {"mode": "33188"})


def test_a_larger_file_goes_up_in_parallel_parts(store, tmp_path) -> None:
    data = write_file(tmp_path / "f", 12 * MiB + 5)
    etag = upload_file(store, BUCKET, "k", tmp_path / "f", part_size=5 * MiB, concurrency=3,
                       metadata={"a": "b"})
    assert etag.endswith("-3")
    assert store.counts == {"CreateMultipartUpload": 1, "UploadPart": 3,
                            "CompleteMultipartUpload": 1}
    assert store.get_object(BUCKET, "k").data == data
    assert dict(store.head_object(BUCKET, "k").metadata) == {"a": "b"}


def test_a_failed_part_aborts_the_upload(store, tmp_path) -> None:
    write_file(tmp_path / "f", 16 * MiB)
    store.fail_next("UploadPart", errors.AccessDenied("no", code="AccessDenied"))
    with pytest.raises(errors.AccessDenied):
        upload_file(store, BUCKET, "k", tmp_path / "f", part_size=5 * MiB, concurrency=2)
    assert store.counts["AbortMultipartUpload"] == 1
    assert store.counts["CompleteMultipartUpload"] == 0
    assert store.list_multipart_uploads(BUCKET) == []
    with pytest.raises(errors.NoSuchKey):
        store.head_object(BUCKET, "k")


class InFlight(MemoryStore):
    """Counts concurrent upload_part/get_object calls."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.most = 0
        self.guard = threading.Lock()

    def _enter(self) -> None:
        with self.guard:
            self.active += 1
            self.most = max(self.most, self.active)

    def _leave(self) -> None:
        with self.guard:
            self.active -= 1

    def upload_part(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._enter()
        try:
            return super().upload_part(*args, **kwargs)
        finally:
            self._leave()

    def get_object(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._enter()
        try:
            return super().get_object(*args, **kwargs)
        finally:
            self._leave()


def test_concurrency_is_bounded(tmp_path) -> None:
    st = InFlight()
    st.create_bucket(BUCKET)
    data = write_file(tmp_path / "f", 30 * MiB)
    upload_file(st, BUCKET, "k", tmp_path / "f", part_size=5 * MiB, concurrency=2)
    download_file(st, BUCKET, "k", tmp_path / "out", part_size=1 * MiB, concurrency=2)
    assert 1 <= st.most <= 2
    assert (tmp_path / "out").read_bytes() == data


def test_download_round_trip_with_ranged_gets(store, tmp_path) -> None:
    data = os.urandom(10 * MiB + 7)
    store.put_object(BUCKET, "k", data)
    store.reset_counts()
    info = download_file(store, BUCKET, "k", tmp_path / "out", part_size=2 * MiB, concurrency=4)
    assert info.size == len(data)
    assert (tmp_path / "out").read_bytes() == data
    assert store.counts == {"HeadObject": 1, "GetObject": 6}
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("size", [0, 1, 2 * MiB])
def test_download_of_a_small_or_empty_object_is_one_get(store, tmp_path, size) -> None:
    data = os.urandom(size)
    store.put_object(BUCKET, "k", data)
    store.reset_counts()
    download_file(store, BUCKET, "k", tmp_path / "out", part_size=2 * MiB)
    assert (tmp_path / "out").read_bytes() == data
    assert store.counts == {"HeadObject": 1, "GetObject": 1}


class ChangesUnderfoot(MemoryStore):
    """Overwrites the object after the first ranged GET."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.guard = threading.Lock()

    def get_object(self, bucket, key, start=0, end=None, *, if_match=None):  # type: ignore[no-untyped-def]
        result = super().get_object(bucket, key, start, end, if_match=if_match)
        with self.guard:
            self.gets += 1
            first = self.gets == 1
        if first:
            self.put_object(bucket, key, b"new" * MiB)
        return result


def test_an_object_changed_during_download_fails_cleanly(tmp_path) -> None:
    st = ChangesUnderfoot()
    st.create_bucket(BUCKET)
    st.put_object(BUCKET, "k", os.urandom(8 * MiB))
    (tmp_path / "out").write_bytes(b"old contents")
    with pytest.raises(errors.PreconditionFailed):
        download_file(st, BUCKET, "k", tmp_path / "out", part_size=1 * MiB, concurrency=1)
    assert (tmp_path / "out").read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["out"]


def test_download_of_a_missing_key_leaves_nothing(store, tmp_path) -> None:
    with pytest.raises(errors.NoSuchKey):
        download_file(store, BUCKET, "missing", tmp_path / "out")
    assert os.listdir(tmp_path) == []


class StreamingStore(MemoryStore):
    """A store with ``get_object_into`` (as ``HttpStore`` has): the first GET of each
    range delivers half its chunks and then restarts from offset 0, like a retry."""

    def __init__(self, *, short_by: int = 0) -> None:
        super().__init__()
        self.short_by = short_by
        self.streamed: list[tuple[int, int]] = []
        self.guard = threading.Lock()

    def get_object_into(self, bucket, key, sink, start=0, end=None, *, if_match=None,  # type: ignore[no-untyped-def]
                        chunk_size=MiB):
        got = self.get_object(bucket, key, start, end, if_match=if_match)
        data = got.data[:len(got.data) - self.short_by]
        pieces = [(pos, data[pos:pos + chunk_size]) for pos in range(0, len(data), chunk_size)]
        for pos, chunk in pieces[: len(pieces) // 2] + pieces:  # a "retry" rewrites
            sink(pos, chunk)
        with self.guard:
            self.streamed.append((start, len(data)))
        return got


def test_download_streams_ranges_into_the_file_when_the_store_can(tmp_path) -> None:
    st = StreamingStore()
    st.create_bucket(BUCKET)
    data = os.urandom(10 * MiB + 7)
    st.put_object(BUCKET, "k", data)
    download_file(st, BUCKET, "k", tmp_path / "out", part_size=4 * MiB, concurrency=3)
    assert (tmp_path / "out").read_bytes() == data
    assert sorted(st.streamed) == [(0, 4 * MiB), (4 * MiB, 4 * MiB), (8 * MiB, 2 * MiB + 7)]


def test_a_streamed_range_that_comes_up_short_fails_and_leaves_nothing(tmp_path) -> None:
    st = StreamingStore(short_by=1)
    st.create_bucket(BUCKET)
    st.put_object(BUCKET, "k", os.urandom(5 * MiB))
    with pytest.raises(errors.IncompleteBody):
        download_file(st, BUCKET, "k", tmp_path / "out", part_size=2 * MiB)
    assert os.listdir(tmp_path) == []
