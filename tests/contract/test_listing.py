"""Contract: ListObjectsV2 — order, prefix, delimiter, pages, start_after — on every store."""

from __future__ import annotations

import hashlib

import pytest

from mssfs.store import errors

# Byte order of UTF-8 differs from UTF-16 order for "ﬁ" (U+FB01) against "😀" (U+1F600),
# and from case-insensitive order for "B" against "a".
KEYS = ["B", "a", "a-b", "a/b", "a/c/d", "a/c/e", "a0", "z", "é", "ﬁ", "😀", "dir/", "dir/x"]


def utf8_sorted(keys):
    return sorted(keys, key=lambda k: k.encode())


@pytest.fixture
def filled(store):
    s, bucket = store
    for key in KEYS:
        s.put_object(bucket, key, key.encode())
    return s, bucket


def all_pages(s, bucket, **kwargs):
    """Every page of a listing: (object keys, prefixes, number of pages)."""
    keys, prefixes, pages, token = [], [], 0, None
    while True:
        page = s.list_objects(bucket, continuation_token=token, **kwargs)
        pages += 1
        keys += [o.key for o in page.objects]
        prefixes += list(page.prefixes)
        token = page.next_token
        assert page.truncated == (token is not None)
        if token is None:
            return keys, prefixes, pages
        assert pages < 100, "listing does not end"


def test_flat_listing_in_utf8_byte_order(filled, expect_quirk):
    s, bucket = filled
    page = s.list_objects(bucket)
    expect_quirk("flat_listing_in_tree_order")
    assert [o.key for o in page.objects] == utf8_sorted(KEYS)
    assert list(page.prefixes) == [] and not page.truncated


def test_listing_carries_size_and_etag(filled):
    s, bucket = filled
    by_key = {o.key: o for o in s.list_objects(bucket).objects}
    info = by_key["a/c/d"]
    assert info.size == len(b"a/c/d")
    assert info.etag == hashlib.md5(b"a/c/d").hexdigest()
    assert info.last_modified > 0


def test_prefix(filled):
    s, bucket = filled
    assert [o.key for o in s.list_objects(bucket, "a/").objects] == ["a/b", "a/c/d", "a/c/e"]
    assert list(s.list_objects(bucket, "nothing-here").objects) == []


def test_delimiter_gives_common_prefixes(filled):
    s, bucket = filled
    page = s.list_objects(bucket, delimiter="/")
    top = [k for k in KEYS if "/" not in k]
    assert [o.key for o in page.objects] == utf8_sorted(top)
    assert list(page.prefixes) == ["a/", "dir/"]
    page = s.list_objects(bucket, "a/", "/")
    assert [o.key for o in page.objects] == ["a/b"]
    assert list(page.prefixes) == ["a/c/"]


def test_directory_marker_is_listed_under_its_own_prefix(filled):
    s, bucket = filled
    page = s.list_objects(bucket, "dir/", "/")
    assert [o.key for o in page.objects] == ["dir/", "dir/x"]
    assert list(page.prefixes) == []


@pytest.mark.parametrize("max_keys", [1, 2, 5])
def test_pages_cover_everything_once(filled, quirks, max_keys):
    s, bucket = filled
    keys, prefixes, pages = all_pages(s, bucket, max_keys=max_keys)
    if "flat_listing_in_tree_order" in quirks:
        keys = utf8_sorted(keys)  # the order is tested above; here: each key once
    assert keys == utf8_sorted(KEYS) and prefixes == []
    assert pages >= len(KEYS) // max_keys


@pytest.mark.parametrize("max_keys", [1, 2, 3])
def test_pages_with_delimiter(filled, max_keys):
    s, bucket = filled
    keys, prefixes, _ = all_pages(s, bucket, delimiter="/", max_keys=max_keys)
    assert keys == utf8_sorted(k for k in KEYS if "/" not in k)
    assert prefixes == ["a/", "dir/"]


def test_page_size_is_respected(filled):
    s, bucket = filled
    page = s.list_objects(bucket, max_keys=3)
    assert len(page.objects) == 3 and page.truncated


def test_start_after(filled):
    s, bucket = filled
    keys, _, _ = all_pages(s, bucket, start_after="a0")
    assert keys == [k for k in utf8_sorted(KEYS) if k.encode() > b"a0"]
    keys, _, _ = all_pages(s, bucket, start_after="a0", max_keys=2)
    assert keys == [k for k in utf8_sorted(KEYS) if k.encode() > b"a0"]


def test_empty_bucket(store):
    s, bucket = store
    page = s.list_objects(bucket, delimiter="/")
    assert not page.objects and not page.prefixes and page.next_token is None


def test_listing_has_no_user_metadata(store):
    s, bucket = store
    s.put_object(bucket, "k", b"x", metadata={"mode": "644"})
    (info,) = s.list_objects(bucket).objects
    assert dict(info.metadata) == {}


def test_listing_missing_bucket(store):
    s, bucket = store
    with pytest.raises(errors.NoSuchBucket):
        s.list_objects(bucket + "-missing")
