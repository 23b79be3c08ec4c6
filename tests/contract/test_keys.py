"""Contract: keys that need care on the wire (escaping, unicode, slashes, length)."""

from __future__ import annotations

import pytest

from mssfs.store import errors

# A key of exactly 1024 UTF-8 bytes, in components of at most 255 bytes (servers that map
# keys to paths, as SeaweedFS does, refuse longer components).
KEY_1024 = "/".join(["k" * 200] * 5) + "/" + "e" * 19
KEY_1025 = KEY_1024 + "x"
assert len(KEY_1024.encode()) == 1024

PLAIN_KEYS = {
    "unicode": "dir/ünïcødé/文件 😀.txt",
    "spaces": "a key with  spaces ",
    "reserved": "sym + % ? # & = ; : @ , $ ! ' ( ) * [ ] ~ ^ ` { } | \" < >",
    "percent-escape-lookalike": "file%20name%2F%",
    "tilde-dots": "~/.hidden/..dots../x",
    "1024-bytes": KEY_1024,
}
SLASH_KEYS = {"double-slash": "a//b", "leading-slash": "/lead", "trailing-double": "d//"}
BACKSLASH_KEY = "back\\slash"


def round_trip(s, bucket, key):
    data = key.encode() + b"!"
    s.put_object(bucket, key, data, metadata={"k": "v"})
    assert s.head_object(bucket, key).size == len(data)
    assert s.get_object(bucket, key).data == data
    assert s.get_object(bucket, key, 1, 3).data == data[1:3]
    assert [o.key for o in s.list_objects(bucket).objects] == [key]
    assert [o.key for o in s.list_objects(bucket, prefix=key).objects] == [key]
    copy = key + ".copy" if len(key.encode()) < 1000 else "copy"
    s.copy_object(bucket, key, bucket, copy)
    assert s.get_object(bucket, copy).data == data
    s.delete_object(bucket, key)
    s.delete_objects(bucket, [copy])
    assert list(s.list_objects(bucket).objects) == []


@pytest.mark.parametrize("key", PLAIN_KEYS.values(), ids=PLAIN_KEYS.keys())
def test_key_round_trip(store, key):
    s, bucket = store
    round_trip(s, bucket, key)


@pytest.mark.parametrize("key", SLASH_KEYS.values(), ids=SLASH_KEYS.keys())
def test_slashes_are_kept(store, expect_quirk, key):
    s, bucket = store
    expect_quirk("keys_are_paths")
    round_trip(s, bucket, key)


def test_backslash_is_not_a_separator(store, expect_quirk):
    s, bucket = store
    expect_quirk("backslash_listed_as_slash")
    round_trip(s, bucket, BACKSLASH_KEY)


def test_key_over_1024_bytes_is_refused(store, expect_quirk):
    s, bucket = store
    expect_quirk("no_key_length_limit")
    with pytest.raises(errors.KeyTooLong):
        s.put_object(bucket, KEY_1025, b"x")
