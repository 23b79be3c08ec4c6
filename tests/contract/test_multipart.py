"""Contract: multipart uploads — parts, part copy, complete, abort, list, ETags."""

from __future__ import annotations

import hashlib
import os

import pytest

from mssfs.store import errors
from mssfs.store.base import CompletedPart

MIB = 1024 * 1024
PART1 = os.urandom(5 * MIB)  # the smallest part S3 allows before the last
PART2 = b"tail of the object"


def digest(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def multipart_etag(*parts: bytes) -> str:
    return hashlib.md5(b"".join(digest(p) for p in parts)).hexdigest() + f"-{len(parts)}"


def test_upload_in_parts(store):
    s, bucket = store
    upload = s.create_multipart_upload(bucket, "big", content_type="text/x-big",
                                       metadata={"Mode": "33188"})
    e1 = s.upload_part(bucket, "big", upload, 1, PART1)
    e2 = s.upload_part(bucket, "big", upload, 2, PART2)
    assert (e1, e2) == (hashlib.md5(PART1).hexdigest(), hashlib.md5(PART2).hexdigest())
    etag = s.complete_multipart_upload(bucket, "big", upload,
                                       [CompletedPart(1, e1), CompletedPart(2, e2)])
    assert etag == multipart_etag(PART1, PART2)
    info = s.head_object(bucket, "big")
    assert (info.size, info.etag) == (len(PART1) + len(PART2), etag)
    assert info.content_type == "text/x-big" and dict(info.metadata) == {"mode": "33188"}
    assert s.get_object(bucket, "big", len(PART1) - 3, None).data == PART1[-3:] + PART2
    assert list(s.list_multipart_uploads(bucket)) == []


def test_single_part_upload(store):
    s, bucket = store
    upload = s.create_multipart_upload(bucket, "one")
    e1 = s.upload_part(bucket, "one", upload, 1, b"only part, may be small")
    etag = s.complete_multipart_upload(bucket, "one", upload, [CompletedPart(1, e1)])
    assert etag == multipart_etag(b"only part, may be small")
    assert s.get_object(bucket, "one").data == b"only part, may be small"


def test_part_from_file_and_reupload_of_a_part(store, tmp_path):
    s, bucket = store
    path = tmp_path / "part"
    path.write_bytes(PART1)
    upload = s.create_multipart_upload(bucket, "f")
    s.upload_part(bucket, "f", upload, 2, b"first try")
    with open(path, "rb") as body:
        e1 = s.upload_part(bucket, "f", upload, 1, body, length=len(PART1))
    e2 = s.upload_part(bucket, "f", upload, 2, PART2)  # replaces the first try
    s.complete_multipart_upload(bucket, "f", upload, [CompletedPart(1, e1), CompletedPart(2, e2)])
    assert s.get_object(bucket, "f").data == PART1 + PART2


def test_upload_part_copy(store):
    s, bucket = store
    s.put_object(bucket, "src", b"0123456789")
    upload = s.create_multipart_upload(bucket, "dst")
    e1 = s.upload_part(bucket, "dst", upload, 1, PART1)
    e2 = s.upload_part_copy(bucket, "dst", upload, 2, bucket, "src", 2, 6)
    etag = s.complete_multipart_upload(bucket, "dst", upload,
                                       [CompletedPart(1, e1), CompletedPart(2, e2)])
    assert etag.endswith("-2")
    assert s.get_object(bucket, "dst").data == PART1 + b"2345"


def test_upload_part_copy_etag_is_the_parts(store, expect_quirk):
    s, bucket = store
    s.put_object(bucket, "src", b"0123456789")
    upload = s.create_multipart_upload(bucket, "dst")
    # SeaweedFS answers with the source's ETag only when the upload declared no checksum
    # algorithm (mssfs declares CRC32 wherever the server checks it).
    if getattr(s, "upload_checksum", "md5") == "md5":
        expect_quirk("part_copy_etag_is_source_etag")
    try:
        assert s.upload_part_copy(bucket, "dst", upload, 1, bucket, "src", 2, 6) == (
            hashlib.md5(b"2345").hexdigest())
    finally:
        s.abort_multipart_upload(bucket, "dst", upload)


def test_upload_part_copy_if_match(store, expect_quirk):
    s, bucket = store
    etag = s.put_object(bucket, "src", b"0123456789")
    upload = s.create_multipart_upload(bucket, "dst")
    try:
        s.upload_part_copy(bucket, "dst", upload, 1, bucket, "src", 0, 10, if_match=etag)
        s.put_object(bucket, "src", b"changed!!!")
        expect_quirk("copy_ignores_if_match")
        with pytest.raises(errors.PreconditionFailed):
            s.upload_part_copy(bucket, "dst", upload, 1, bucket, "src", 0, 10, if_match=etag)
    finally:
        s.abort_multipart_upload(bucket, "dst", upload)


def test_small_part_before_the_last_is_refused(store):
    s, bucket = store
    upload = s.create_multipart_upload(bucket, "small")
    e1 = s.upload_part(bucket, "small", upload, 1, b"a" * 100)
    e2 = s.upload_part(bucket, "small", upload, 2, b"b" * 100)
    with pytest.raises(errors.InvalidRequest):  # EntityTooSmall
        s.complete_multipart_upload(bucket, "small", upload,
                                    [CompletedPart(1, e1), CompletedPart(2, e2)])
    s.abort_multipart_upload(bucket, "small", upload)


def test_complete_with_a_wrong_part_etag_is_refused(store):
    s, bucket = store
    upload = s.create_multipart_upload(bucket, "k")
    s.upload_part(bucket, "k", upload, 1, b"data")
    with pytest.raises(errors.InvalidRequest):  # InvalidPart
        s.complete_multipart_upload(bucket, "k", upload, [CompletedPart(1, "0" * 32)])
    s.abort_multipart_upload(bucket, "k", upload)


def test_list_and_abort_uploads(store):
    s, bucket = store
    a = s.create_multipart_upload(bucket, "x/a")
    b = s.create_multipart_upload(bucket, "y/b")
    s.upload_part(bucket, "x/a", a, 1, b"some data")
    uploads = s.list_multipart_uploads(bucket)
    assert sorted((u.key, u.upload_id) for u in uploads) == [("x/a", a), ("y/b", b)]
    assert [(u.key, u.upload_id) for u in s.list_multipart_uploads(bucket, "x/")] == [("x/a", a)]
    s.abort_multipart_upload(bucket, "x/a", a)
    assert [u.upload_id for u in s.list_multipart_uploads(bucket)] == [b]
    with pytest.raises(errors.NotFound):
        s.head_object(bucket, "x/a")
    s.abort_multipart_upload(bucket, "y/b", b)
    assert list(s.list_multipart_uploads(bucket)) == []


def test_abort_unknown_upload(store):
    s, bucket = store
    with pytest.raises(errors.NoSuchUpload):
        s.abort_multipart_upload(bucket, "k", "no-such-upload-id")


def test_upload_part_to_unknown_upload(store, expect_quirk):
    s, bucket = store
    aborted = s.create_multipart_upload(bucket, "k")
    s.abort_multipart_upload(bucket, "k", aborted)
    expect_quirk("unknown_upload_is_500")
    with pytest.raises(errors.NoSuchUpload):
        s.upload_part(bucket, "k", aborted, 1, b"late")
    with pytest.raises(errors.NoSuchUpload):
        s.upload_part(bucket, "k", "no-such-upload-id", 1, b"x")
