"""Keys that cannot be names (``a//b``, ``/lead``), made out of band, are never damaged by
what the mount does around them. SeaweedFS normalises such keys, so this runs on
``MemoryStore``; ``test_readdir`` already checks that listings skip them."""

import errno

import pytest

from mssfs.errors import FsError


def keys(env):
    return sorted(o.key for o in env.store.list_objects(env.bucket).objects)


def test_a_directory_rename_carries_odd_keys_intact(env):
    env.put("a//b", b"double")
    env.put("a/ok", b"ok")
    env.put("/lead", b"lead")
    env.fs.rename("/a", "/c")
    assert keys(env) == ["/lead", "c//b", "c/ok"]
    assert env.body("c//b") == b"double" and env.body("/lead") == b"lead"


def test_rmdir_of_a_directory_holding_only_odd_keys_is_enotempty(env):
    env.put("e//x", b"hidden")
    with pytest.raises(FsError) as info:
        env.fs.rmdir("/e")
    assert info.value.errno == errno.ENOTEMPTY
    assert env.body("e//x") == b"hidden"


def test_writing_beside_odd_keys_leaves_them_alone(env):
    env.put("/lead", b"lead")
    env.put("d//x", b"x")
    env.write_file("/lead", b"a file named lead")
    env.write_file("/d/x", b"a file named d/x")
    assert env.body("/lead") == b"lead" and env.body("d//x") == b"x"
    assert env.read_file("/lead") == b"a file named lead"
    assert env.read_file("/d/x") == b"a file named d/x"
