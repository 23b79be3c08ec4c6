"""Contract: server-side copy with the COPY and REPLACE metadata directives."""

from __future__ import annotations

import hashlib

import pytest

from mssfs.store import errors


@pytest.fixture
def source(store):
    s, bucket = store
    etag = s.put_object(bucket, "src", b"source bytes", content_type="text/x-src",
                        metadata={"mode": "33188", "color": "blue"})
    return s, bucket, etag


def test_copy_keeps_metadata(source):
    s, bucket, etag = source
    assert s.copy_object(bucket, "src", bucket, "dst") == etag
    info = s.head_object(bucket, "dst")
    assert info.etag == etag and info.content_type == "text/x-src"
    assert dict(info.metadata) == {"mode": "33188", "color": "blue"}
    assert s.get_object(bucket, "dst").data == b"source bytes"


def test_copy_replaces_metadata(source):
    s, bucket, etag = source
    new = s.copy_object(bucket, "src", bucket, "dst", metadata={"Mode": "33261"},
                        content_type="text/x-dst")
    assert new == etag == hashlib.md5(b"source bytes").hexdigest()
    info = s.head_object(bucket, "dst")
    assert info.content_type == "text/x-dst"
    assert dict(info.metadata) == {"mode": "33261"}
    assert dict(s.head_object(bucket, "src").metadata) == {"mode": "33188", "color": "blue"}


def test_replace_metadata_in_place(source):
    s, bucket, _ = source
    s.copy_object(bucket, "src", bucket, "src", metadata={"mode": "33261"},
                  content_type="text/x-src")
    info = s.head_object(bucket, "src")
    assert dict(info.metadata) == {"mode": "33261"}
    assert s.get_object(bucket, "src").data == b"source bytes"


def test_copy_between_buckets(store_factory):
    s, first = store_factory()
    _, second = store_factory()
    s.put_object(first, "a", b"payload")
    s.copy_object(first, "a", second, "b/c")
    assert s.get_object(second, "b/c").data == b"payload"


def test_copy_overwrites_destination(source):
    s, bucket, _ = source
    s.put_object(bucket, "dst", b"old")
    s.copy_object(bucket, "src", bucket, "dst")
    assert s.get_object(bucket, "dst").data == b"source bytes"


def test_copy_of_missing_source(store):
    s, bucket = store
    with pytest.raises(errors.NoSuchKey):
        s.copy_object(bucket, "missing", bucket, "dst")


def test_copy_if_match(source, expect_quirk):
    s, bucket, etag = source
    s.copy_object(bucket, "src", bucket, "ok", if_match=etag)
    assert s.get_object(bucket, "ok").data == b"source bytes"
    expect_quirk("copy_ignores_if_match")
    with pytest.raises(errors.PreconditionFailed):
        s.copy_object(bucket, "src", bucket, "dst", if_match=hashlib.md5(b"x").hexdigest())
