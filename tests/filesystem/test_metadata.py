"""chmod, chown, utimens, symlinks and extended attributes, as stored metadata."""

import errno
import os
import stat

import pytest

from mssfs.errors import (
    Exists,
    InvalidArgument,
    NoAttribute,
    NotFound,
    NotPermitted,
    NotSupported,
    errno_for,
)
from mssfs.xattrs import XATTR_CREATE, XATTR_REPLACE


def meta(env, key):
    return env.store.head_object(env.bucket, key).metadata


def test_chmod_is_a_self_copy_with_s3fs_mode(env):
    env.put("f", b"body", metadata={"color": "red"})
    env.store.reset_counts()
    env.fs.chmod("/f", 0o600)
    assert env.store.counts["CopyObject"] == 1
    assert meta(env, "f")["mode"] == str(stat.S_IFREG | 0o600)
    assert meta(env, "f")["color"] == "red"
    assert env.body("f") == b"body"
    assert env.fs.getattr("/f").mode == stat.S_IFREG | 0o600
    env.clock.advance(env.stat_ttl + 1)
    assert env.fs.getattr("/f").mode == stat.S_IFREG | 0o600


def test_chown_minus_one_keeps_the_value(env):
    env.put("f", b"", metadata={"uid": "5", "gid": "6"})
    env.fs.chown("/f", 7, -1)
    assert (meta(env, "f")["uid"], meta(env, "f")["gid"]) == ("7", "6")
    attrs = env.fs.getattr("/f")
    assert (attrs.uid, attrs.gid) == (7, 6)


def test_utimens_sets_mtime_and_none_keeps_it(env):
    env.put("f", b"x")
    env.fs.utimens("/f", None, 1_234_567_890.0)
    assert meta(env, "f")["mtime"] == "1234567890"
    assert env.fs.getattr("/f").mtime == 1_234_567_890.0
    env.store.reset_counts()
    env.fs.utimens("/f", 5.0, None)
    assert env.store.counts["CopyObject"] == 0


def test_chmod_of_a_directory_rewrites_its_marker_with_a_put(env):
    env.fs.mkdir("/d", 0o755)
    env.store.reset_counts()
    env.fs.chmod("/d", 0o700)
    assert env.store.counts["CopyObject"] == 0 and env.store.counts["PutObject"] == 1
    assert meta(env, "d/")["mode"] == str(stat.S_IFDIR | 0o700)
    assert env.fs.getattr("/d").mode == stat.S_IFDIR | 0o700


def test_chmod_of_an_implicit_directory_gives_it_a_marker(env):
    env.put("imp/x", b"1")
    env.fs.chmod("/imp", 0o711)
    info = env.store.head_object(env.bucket, "imp/")
    assert info.content_type == "application/x-directory"
    assert info.metadata["mode"] == str(stat.S_IFDIR | 0o711)


def test_chmod_of_a_dirty_open_file_goes_into_its_upload(env):
    fh = env.fs.create("/f", 0o644, os.O_WRONLY)
    env.fs.write("/f", fh, 0, b"abc")
    env.store.reset_counts()
    env.fs.chmod("/f", 0o400)
    assert sum(env.store.counts.values()) == 0
    assert env.fs.getattr("/f").mode == stat.S_IFREG | 0o400
    env.fs.release("/f", fh)
    assert meta(env, "f")["mode"] == str(stat.S_IFREG | 0o400)
    assert env.store.counts["CopyObject"] == 0


def test_chmod_of_the_root_is_accepted_and_not_stored(env):
    env.fs.chmod("/", 0o700)
    assert sum(env.store.counts.values()) == 0


def test_chmod_of_a_missing_file(env):
    with pytest.raises(NotFound):
        env.fs.chmod("/nope", 0o600)


# -- symlinks -----------------------------------------------------------------------
def test_symlink_is_an_object_holding_the_target(env):
    env.fs.symlink("/ln", "../some/target")
    info = env.store.head_object(env.bucket, "ln")
    assert env.body("ln") == b"../some/target"
    assert int(info.metadata["mode"]) == stat.S_IFLNK | 0o777
    assert env.fs.getattr("/ln").is_symlink
    assert env.fs.readlink("/ln") == "../some/target"
    with pytest.raises(Exists):
        env.fs.symlink("/ln", "other")


def test_symlinks_written_by_other_tools(env):
    env.put("s3fs", b"t1", metadata={"mode": str(stat.S_IFLNK | 0o777)})
    env.put("yas3fs", b"t2", content_type="application/x-symlink")
    env.put("rclone", b"t3", metadata={"mode": "120777"})
    for name, target in [("s3fs", "t1"), ("yas3fs", "t2"), ("rclone", "t3")]:
        assert env.fs.getattr("/" + name).is_symlink
        assert env.fs.readlink("/" + name) == target


def test_readlink_of_a_file_is_einval(env):
    env.put("f", b"x")
    with pytest.raises(InvalidArgument):
        env.fs.readlink("/f")


# -- extended attributes ------------------------------------------------------------
def test_user_xattrs_round_trip(env):
    env.put("f", b"x", metadata={"mode": "33188", "origin": "camera"})
    assert env.fs.getxattr("/f", "user.origin") == b"camera"
    env.fs.setxattr("/f", "user.color", b"green", 0)
    assert meta(env, "f")["color"] == "green"
    assert env.fs.getxattr("/f", "user.color") == b"green"
    names = env.fs.listxattr("/f")
    assert names == [
        "user.mssfs.etag", "user.mssfs.content_type", "user.mssfs.url",
        "user.color", "user.origin",
    ]
    env.fs.removexattr("/f", "user.color")
    with pytest.raises(NoAttribute):
        env.fs.getxattr("/f", "user.color")
    with pytest.raises(NoAttribute):
        env.fs.removexattr("/f", "user.color")


def test_etag_and_content_type_attributes(env):
    etag = env.put("photo.jpg", b"jpeg", content_type="image/jpeg")
    assert env.fs.getxattr("/photo.jpg", "user.mssfs.etag") == etag.encode()
    with pytest.raises(NotPermitted) as raised:
        env.fs.setxattr("/photo.jpg", "user.mssfs.etag", b"x", 0)
    assert errno_for(raised.value) == errno.EPERM
    assert env.fs.getxattr("/photo.jpg", "user.mssfs.content_type") == b"image/jpeg"
    env.fs.setxattr("/photo.jpg", "user.mssfs.content_type", b"image/png", 0)
    assert env.store.head_object(env.bucket, "photo.jpg").content_type == "image/png"
    url = env.fs.getxattr("/photo.jpg", "user.mssfs.url").decode()
    assert "photo.jpg" in url


def test_create_and_replace_flags(env):
    env.put("f", b"x")
    with pytest.raises(NoAttribute):
        env.fs.setxattr("/f", "user.a", b"1", XATTR_REPLACE)
    env.fs.setxattr("/f", "user.a", b"1", XATTR_CREATE)
    with pytest.raises(Exists):
        env.fs.setxattr("/f", "user.a", b"2", XATTR_CREATE)
    env.fs.setxattr("/f", "user.a", b"2", XATTR_REPLACE)
    assert env.fs.getxattr("/f", "user.a") == b"2"


def test_other_namespaces(env):
    env.put("f", b"x")
    env.fs.getattr("/f")
    env.store.reset_counts()
    with pytest.raises(NotSupported) as raised:
        env.fs.getxattr("/f", "security.capability")
    assert errno_for(raised.value) == errno.ENOTSUP  # ls -l stops asking for the others
    assert sum(env.store.counts.values()) == 0  # asked on every write: must be free
    with pytest.raises(NotSupported) as raised:
        env.fs.setxattr("/f", "trusted.x", b"1", 0)
    assert errno_for(raised.value) == errno.ENOTSUP


def test_posix_names_and_bad_values_are_refused(env):
    env.put("f", b"x")
    with pytest.raises(NotPermitted):
        env.fs.setxattr("/f", "user.mode", b"777", 0)
    with pytest.raises(InvalidArgument):
        env.fs.setxattr("/f", "user.bin", b"\xff\x00", 0)
    assert env.fs.getxattr("/f", "user.mssfs.etag")
    with pytest.raises(NoAttribute):
        env.fs.getxattr("/f", "user.mode")


def test_xattrs_of_directories(env):
    env.put("imp/x", b"1")
    assert env.fs.listxattr("/imp") == []
    env.fs.setxattr("/imp", "user.tag", b"t", 0)
    assert env.fs.getxattr("/imp", "user.tag") == b"t"
    assert env.store.head_object(env.bucket, "imp/").content_type == "application/x-directory"


def test_xattr_of_a_dirty_open_file(env):
    fh = env.fs.create("/f", 0o644, os.O_WRONLY)
    env.fs.write("/f", fh, 0, b"abc")
    env.fs.setxattr("/f", "user.k", b"v", 0)
    assert env.fs.getxattr("/f", "user.k") == b"v"
    env.fs.release("/f", fh)
    assert meta(env, "f")["k"] == "v"


def test_touch_right_after_a_write_costs_no_copy(env):
    env.write_file("/new", b"x")
    env.store.reset_counts()
    env.fs.utimens("/new", env.clock(), env.clock())  # what touch does after close
    assert sum(env.store.counts.values()) == 0
    env.fs.utimens("/new", None, env.clock() + 10)
    assert env.store.counts["CopyObject"] == 1
    assert int(meta(env, "new")["mtime"]) == int(env.clock() + 10)


def test_touch_of_a_listed_file_is_stored(env):
    env.put("old", b"x", metadata={"mtime": "1000"})
    env.fs.readdir("/")  # the listing shows Last-Modified, not the stored mtime
    env.fs.utimens("/old", None, env.fs.getattr("/old").mtime)
    assert int(meta(env, "old")["mtime"]) == int(env.clock())
