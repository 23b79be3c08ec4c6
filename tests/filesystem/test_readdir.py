"""readdir: paginated listing, the stat cache it fills, and what it skips."""

import os
import stat

import pytest

from mssfs.errors import NotADirectory, NotFound


def names(entries):
    return [e.name for e in entries]


def test_ls_l_of_10000_objects_costs_at_most_11_lists_and_no_head(env):
    for i in range(10_000):
        env.put(f"big/f{i:05d}", b"x" * (i % 7))
    env.fs.getattr("/big")
    env.store.reset_counts()
    entries = env.fs.readdir("/big")
    assert len(entries) == 10_000
    for entry in entries:
        attrs = env.fs.getattr("/big/" + entry.name)
        assert attrs.size == int(entry.name[1:]) % 7
    assert env.store.counts["ListObjectsV2"] <= 11
    assert env.store.counts["HeadObject"] == 0
    assert set(env.store.counts) <= {"ListObjectsV2"}


def test_entries_files_and_directories(env):
    env.put("a", b"1")
    env.put("b/", b"", content_type="application/x-directory")
    env.put("c/x", b"2")
    entries = {e.name: e.attrs for e in env.fs.readdir("/")}
    assert sorted(entries) == ["a", "b", "c"]
    assert entries["a"].is_file and entries["a"].size == 1 and entries["a"].etag
    assert entries["b"].is_dir and entries["c"].is_dir


def test_listing_is_cached_until_its_ttl(env):
    env.put("d/one", b"1")
    assert names(env.fs.readdir("/d")) == ["one"]
    env.put("d/two", b"2")
    env.store.reset_counts()
    assert names(env.fs.readdir("/d")) == ["one"]
    assert env.store.counts["ListObjectsV2"] == 0
    env.clock.advance(env.stat_ttl + 1)
    assert names(env.fs.readdir("/d")) == ["one", "two"]


def test_local_changes_show_at_once(env):
    env.fs.readdir("/")
    env.write_file("/new.txt", b"n")
    env.fs.mkdir("/newdir", 0o755)
    assert names(env.fs.readdir("/")) == ["new.txt", "newdir"]
    env.fs.unlink("/new.txt")
    assert names(env.fs.readdir("/")) == ["newdir"]


def test_unrepresentable_keys_are_skipped(env):
    for key in ["ok", "a//b", "/lead", "./x", "../y", "x" * 300]:
        env.put(key, b"z")
    assert names(env.fs.readdir("/")) == ["a", "ok"]
    assert names(env.fs.readdir("/a")) == []


def test_file_and_directory_with_same_name_shows_the_directory(env):
    env.put("both", b"file")
    env.put("both/child", b"c")
    entries = {e.name: e.attrs for e in env.fs.readdir("/")}
    assert list(entries) == ["both"] and entries["both"].is_dir
    assert env.fs.getattr("/both").is_dir
    assert names(env.fs.readdir("/both")) == ["child"]


def test_fast_default_shows_default_modes_without_head(env):
    env.put("f", b"x", metadata={"mode": "33216", "uid": "42"})
    (entry,) = env.fs.readdir("/")
    assert entry.attrs.mode == stat.S_IFREG | 0o644
    assert env.store.counts["HeadObject"] == 0


def test_exact_metadata_heads_each_object_once(make_env):
    env = make_env(exact_metadata=True)
    env.put("f", b"x", metadata={"mode": "33216", "uid": "42"})
    env.put("l", b"f", metadata={"mode": str(stat.S_IFLNK | 0o777)})
    env.put("g", b"y")
    entries = {e.name: e.attrs for e in env.fs.readdir("/")}
    assert entries["f"].mode == stat.S_IFREG | 0o700 and entries["f"].uid == 42
    assert entries["l"].is_symlink
    assert env.store.counts["HeadObject"] == 3
    env.clock.advance(env.stat_ttl / 2)
    env.fs.ns.cache.invalidate("/")
    env.store.reset_counts()
    env.fs.readdir("/")
    assert env.store.counts["HeadObject"] == 0  # HEAD results are reused for a TTL


def test_what_a_head_learned_survives_a_listing(env):
    env.fs.symlink("/link", "target")
    env.fs.chmod("/link", 0o777)
    env.clock.advance(env.stat_ttl + 1)
    (entry,) = env.fs.readdir("/")
    assert entry.attrs.is_symlink


def test_readdir_of_a_file_or_missing_name(env):
    env.put("file", b"x")
    with pytest.raises(NotADirectory):
        env.fs.readdir("/file")
    with pytest.raises(NotFound):
        env.fs.readdir("/missing")


def test_entries_of_open_files_carry_their_live_attributes(env):
    # readdirplus hands these to the kernel: they must agree with getattr.
    env.put("d/old", b"x")
    env.fs.readdir("/d")
    fh = env.fs.open("/d/old", os.O_WRONLY | os.O_APPEND)
    env.fs.write("/d/old", fh, 0, b"more")
    new = env.fs.create("/d/new", stat.S_IFREG | 0o600, os.O_WRONLY)
    entries = {e.name: e.attrs for e in env.fs.readdir("/d")}
    assert entries["old"] == env.fs.getattr("/d/old") and entries["old"].size == 5
    assert entries["new"] == env.fs.getattr("/d/new") and entries["new"].mode & 0o777 == 0o600
    for path, handle in (("/d/old", fh), ("/d/new", new)):
        env.fs.flush(path, handle)
        env.fs.release(path, handle)
    assert {e.name: e.attrs.size for e in env.fs.readdir("/d")} == {"new": 0, "old": 5}
