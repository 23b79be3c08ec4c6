"""Lookups: getattr of names, what each costs, and how out-of-band changes show up."""

import stat

import pytest

from mssfs.errors import NameTooLong, NotFound
from mssfs.paths import MountRoot


def requests(env):
    return sum(env.store.counts.values())


def test_root_is_a_directory_without_requests(env):
    attrs = env.fs.getattr("/")
    assert attrs.is_dir
    assert requests(env) == 0


def test_file_lookup_heads_once_then_serves_from_cache(env):
    env.put("a.txt", b"hello")
    env.store.reset_counts()
    attrs = env.fs.getattr("/a.txt")
    assert attrs.is_file and attrs.size == 5
    assert attrs.mode == stat.S_IFREG | 0o644  # the default, umask 022
    assert env.store.counts["HeadObject"] == 1 and requests(env) == 1
    env.fs.getattr("/a.txt")
    assert requests(env) == 1


def test_file_attributes_from_s3fs_metadata(env):
    env.put("f", b"x", metadata={"mode": "33216", "uid": "42", "gid": "43", "mtime": "1000"})
    attrs = env.fs.getattr("/f")
    assert attrs.mode == stat.S_IFREG | 0o700
    assert (attrs.uid, attrs.gid, attrs.mtime) == (42, 43, 1000.0)


def test_missing_name_costs_head_and_list_then_nothing(env):
    with pytest.raises(NotFound):
        env.fs.getattr("/nope")
    assert env.store.counts["HeadObject"] == 1
    assert env.store.counts["ListObjectsV2"] == 1
    env.store.reset_counts()
    with pytest.raises(NotFound):
        env.fs.getattr("/nope")
    assert requests(env) == 0


def test_missing_name_in_freshly_listed_directory_costs_nothing(env):
    env.put("d/a", b"1")
    env.fs.readdir("/d")
    env.store.reset_counts()
    with pytest.raises(NotFound):
        env.fs.getattr("/d/missing")
    assert requests(env) == 0


def test_implicit_directory(env):
    env.put("dir/sub/file", b"x")
    attrs = env.fs.getattr("/dir")
    assert attrs.is_dir and attrs.mode == stat.S_IFDIR | 0o755
    assert env.fs.getattr("/dir/sub").is_dir


def test_marker_directory(env):
    env.put("m/", b"", content_type="application/x-directory")
    assert env.fs.getattr("/m").is_dir


def test_out_of_band_creation_visible_after_negative_ttl(env):
    with pytest.raises(NotFound):
        env.fs.getattr("/later")
    env.put("later", b"abc")
    with pytest.raises(NotFound):
        env.fs.getattr("/later")
    env.clock.advance(env.negative_ttl + 1)
    assert env.fs.getattr("/later").size == 3


def test_out_of_band_delete_and_change_visible_after_stat_ttl(env):
    env.put("gone", b"abc")
    env.put("grows", b"abc")
    assert env.fs.getattr("/gone").size == 3
    assert env.fs.getattr("/grows").size == 3
    env.store.delete_object(env.bucket, "gone")
    env.put("grows", b"abcdef")
    assert env.fs.getattr("/gone").size == 3  # still cached
    env.clock.advance(env.stat_ttl + 1)
    with pytest.raises(NotFound):
        env.fs.getattr("/gone")
    assert env.fs.getattr("/grows").size == 6


def test_name_too_long(env):
    with pytest.raises(NameTooLong):
        env.fs.getattr("/" + "n" * 256)
    deep = "/".join(["d" * 250] * 5)
    with pytest.raises(NameTooLong):
        env.fs.getattr("/" + deep)
    assert requests(env) == 0


def test_prefix_mount_sees_only_its_subtree(make_env):
    env = make_env(MountRoot("bucket", "base/"))
    env.put("base/in.txt", b"in")
    env.put("out.txt", b"out")
    assert env.fs.getattr("/in.txt").size == 2
    with pytest.raises(NotFound):
        env.fs.getattr("/out.txt")
    assert [e.name for e in env.fs.readdir("/")] == ["in.txt"]
    env.write_file("/new", b"n")
    assert env.body("base/new") == b"n"


def test_statfs_answers_large_fixed_numbers_without_requests(env):
    info = env.fs.statfs("/")
    assert info.block_size * info.blocks >= 2**50
    assert info.blocks_free == info.blocks and info.files_free > 0
    assert info.name_max == 255
    assert requests(env) == 0


def test_getattr_with_an_unknown_handle_number_uses_the_path(env):
    env.put("f", b"abc")
    assert env.fs.getattr("/f", 0).size == 3
    assert env.fs.getattr("/f", 9999).size == 3
