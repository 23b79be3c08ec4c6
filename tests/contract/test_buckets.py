"""Contract: bucket create, head, list, delete, and their refusals, on every store."""

from __future__ import annotations

import uuid

import pytest

from mssfs.store import errors


def new_name() -> str:
    return f"mssfs-test-{uuid.uuid4().hex[:16]}"


def test_create_head_list_delete(store):
    s, _ = store
    name = new_name()
    s.create_bucket(name)
    try:
        s.head_bucket(name)
        assert name in [b.name for b in s.list_buckets()]
        assert list(s.list_objects(name).objects) == []
    finally:
        s.delete_bucket(name)
    assert name not in [b.name for b in s.list_buckets()]
    with pytest.raises(errors.NotFound):
        s.head_bucket(name)


def test_list_buckets_has_creation_time(store_factory):
    s, first = store_factory()
    _, second = store_factory()
    buckets = s.list_buckets()
    assert {first, second} <= {b.name for b in buckets}
    assert all(b.created > 0 for b in buckets if b.name in (first, second))


def test_list_buckets_is_sorted_by_name(store, expect_quirk):
    s, _ = store
    tag = uuid.uuid4().hex[:12]
    later, earlier = f"mssfs-test-z{tag}", f"mssfs-test-a{tag}"  # created in this order
    s.create_bucket(later)
    try:
        s.create_bucket(earlier)
        try:
            names = [b.name for b in s.list_buckets()]
        finally:
            s.delete_bucket(earlier)
    finally:
        s.delete_bucket(later)
    expect_quirk("buckets_in_creation_order")
    assert names == sorted(names)


def test_create_existing_bucket_is_refused(store, expect_quirk):
    s, bucket = store
    expect_quirk("recreate_own_bucket_succeeds")
    with pytest.raises(errors.BucketAlreadyExists):
        s.create_bucket(bucket)


def test_delete_non_empty_bucket_is_refused(store):
    s, bucket = store
    s.put_object(bucket, "dir/file", b"x")
    with pytest.raises(errors.BucketNotEmpty):
        s.delete_bucket(bucket)
    s.head_object(bucket, "dir/file")  # nothing was deleted


def test_missing_bucket(store):
    s, _ = store
    name = new_name()
    with pytest.raises(errors.NotFound):  # HEAD has no body: any NotFound will do
        s.head_bucket(name)
    with pytest.raises(errors.NoSuchBucket):
        s.delete_bucket(name)
    with pytest.raises(errors.NoSuchBucket):
        s.list_objects(name)
    with pytest.raises(errors.NoSuchBucket):
        s.put_object(name, "key", b"x")
    with pytest.raises(errors.NoSuchBucket):
        s.get_object(name, "key")


def test_too_short_bucket_name_is_invalid(store):
    s, _ = store
    with pytest.raises(errors.InvalidBucketName):
        s.create_bucket("ab")


@pytest.mark.parametrize(
    "name",
    ["Upper-case", "under_score", "double..dot", "192.168.1.10", "-leading", "trailing-",
     "x" * 64],
)
def test_invalid_bucket_names(store, expect_quirk, name):
    s, _ = store
    if name != "x" * 64:
        expect_quirk("lax_bucket_names")
    try:
        with pytest.raises(errors.InvalidBucketName):
            s.create_bucket(name)
    finally:
        if name in [b.name for b in s.list_buckets()]:
            s.delete_bucket(name)  # a lax server made it: leave nothing behind
