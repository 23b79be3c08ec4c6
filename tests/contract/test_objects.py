"""Contract: put, head, get (ranges, If-Match), metadata, delete, on every store."""

from __future__ import annotations

import hashlib
import io

import pytest

from mssfs.store import errors

DATA = bytes(range(256)) * 40  # 10240 bytes, every byte value


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_put_get_head_round_trip(store):
    s, bucket = store
    etag = s.put_object(bucket, "file.bin", DATA)
    assert etag == md5(DATA)
    got = s.get_object(bucket, "file.bin")
    assert got.data == DATA and got.etag == etag and got.size == len(DATA)
    info = s.head_object(bucket, "file.bin")
    assert (info.key, info.size, info.etag) == ("file.bin", len(DATA), etag)
    assert info.last_modified > 0


def test_put_from_file_with_and_without_length(store, tmp_path):
    s, bucket = store
    path = tmp_path / "body"
    path.write_bytes(DATA)
    with open(path, "rb") as body:
        body.seek(100)
        s.put_object(bucket, "part", body, length=1000)
    assert s.get_object(bucket, "part").data == DATA[100:1100]
    with open(path, "rb") as body:
        s.put_object(bucket, "whole", body)
    assert s.get_object(bucket, "whole").data == DATA


def test_put_from_bytearray_and_memoryview(store):
    s, bucket = store
    s.put_object(bucket, "ba", bytearray(b"abc"))
    s.put_object(bucket, "mv", memoryview(b"xabcx")[1:4])
    assert s.get_object(bucket, "ba").data == b"abc"
    assert s.get_object(bucket, "mv").data == b"abc"


def test_empty_object(store):
    s, bucket = store
    assert s.put_object(bucket, "empty", b"") == md5(b"")
    assert s.head_object(bucket, "empty").size == 0
    got = s.get_object(bucket, "empty")
    assert got.data == b"" and got.size == 0


def test_range_on_empty_object_is_empty(store):
    # The protocol: InvalidRange only for a non-empty object (servers answer 416 here).
    s, bucket = store
    s.put_object(bucket, "empty", io.BytesIO(b""))
    got = s.get_object(bucket, "empty", 0, 10)
    assert got.data == b"" and got.size == 0


def test_overwrite_changes_etag(store):
    s, bucket = store
    first = s.put_object(bucket, "k", b"one")
    second = s.put_object(bucket, "k", b"two")
    assert first != second
    assert s.get_object(bucket, "k").data == b"two"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 1, DATA[:1]),
        (2, 5, DATA[2:5]),
        (3000, None, DATA[3000:]),
        (0, None, DATA),
        (10000, 20000, DATA[10000:]),  # clipped at the end
        (len(DATA) - 1, None, DATA[-1:]),
    ],
)
def test_ranges(store, start, end, expected):
    s, bucket = store
    s.put_object(bucket, "r", DATA)
    got = s.get_object(bucket, "r", start, end)
    assert got.data == expected
    assert got.size == len(DATA)  # the whole object's size, not the range's
    assert got.etag == md5(DATA)


@pytest.mark.parametrize("start", [len(DATA), len(DATA) + 1, 10**9])
def test_range_past_the_end_is_invalid(store, start):
    s, bucket = store
    s.put_object(bucket, "r", DATA)
    with pytest.raises(errors.InvalidRange):
        s.get_object(bucket, "r", start)


def test_if_match(store):
    s, bucket = store
    etag = s.put_object(bucket, "k", b"version one")
    assert s.get_object(bucket, "k", if_match=etag).data == b"version one"
    assert s.get_object(bucket, "k", 0, 7, if_match=etag).data == b"version"
    s.put_object(bucket, "k", b"version two")
    with pytest.raises(errors.PreconditionFailed):
        s.get_object(bucket, "k", if_match=etag)
    with pytest.raises(errors.PreconditionFailed):
        s.get_object(bucket, "k", 0, 7, if_match=etag)


def test_content_type_and_metadata_round_trip(store):
    s, bucket = store
    meta = {"Mode": "33188", "uid": "1000", "mtime": "1700000000.5", "x-note": "hello world"}
    s.put_object(bucket, "m", b"x", content_type="text/x-mssfs", metadata=meta)
    info = s.head_object(bucket, "m")
    expected = {k.lower(): v for k, v in meta.items()}
    assert info.content_type == "text/x-mssfs"
    assert dict(info.metadata) == expected
    got = s.get_object(bucket, "m")
    assert got.content_type == "text/x-mssfs" and dict(got.metadata) == expected


def test_missing_key(store):
    s, bucket = store
    with pytest.raises(errors.NotFound):  # HEAD has no body: NoSuchKey or NotFound
        s.head_object(bucket, "missing")
    with pytest.raises(errors.NoSuchKey):
        s.get_object(bucket, "missing")
    with pytest.raises(errors.NoSuchKey):
        s.get_object(bucket, "missing", 5, 10)


def test_delete_is_idempotent(store):
    s, bucket = store
    s.put_object(bucket, "gone", b"x")
    s.delete_object(bucket, "gone")
    with pytest.raises(errors.NotFound):
        s.head_object(bucket, "gone")
    s.delete_object(bucket, "gone")
    s.delete_object(bucket, "never-existed")


def test_delete_objects(store):
    s, bucket = store
    keys = [f"batch/{i:03d}" for i in range(25)]
    for key in keys:
        s.put_object(bucket, key, b"x")
    s.put_object(bucket, "keep", b"x")
    failures = s.delete_objects(bucket, [*keys, "batch/missing"])
    assert list(failures) == []
    assert [o.key for o in s.list_objects(bucket).objects] == ["keep"]


def test_directory_marker_object(store):
    s, bucket = store
    s.put_object(bucket, "dir/", b"")
    assert s.head_object(bucket, "dir/").size == 0
    assert [o.key for o in s.list_objects(bucket, "dir/", "/").objects] == ["dir/"]


def test_directory_marker_keeps_metadata(store, expect_quirk):
    s, bucket = store
    s.put_object(bucket, "dir/", b"", metadata={"mode": "16877"})
    expect_quirk("marker_drops_metadata")
    assert dict(s.head_object(bucket, "dir/").metadata) == {"mode": "16877"}
