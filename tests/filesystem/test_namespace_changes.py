"""mkdir, rmdir, unlink, rename, link: what each does to the store and to POSIX."""

import errno
import os
import stat

import pytest

from mssfs.errors import (
    DirectoryNotEmpty,
    Exists,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotPermitted,
    errno_for,
)
from mssfs.renames import RENAME_EXCHANGE, RENAME_NOREPLACE


def keys(env, prefix=""):
    return [o.key for o in env.store.list_objects(env.bucket, prefix).objects]


# -- mkdir / rmdir ------------------------------------------------------------------
def test_mkdir_writes_a_marker_with_mode(env):
    env.fs.mkdir("/d", 0o750)
    info = env.store.head_object(env.bucket, "d/")
    assert info.content_type == "application/x-directory"
    assert info.metadata["mode"] == str(stat.S_IFDIR | 0o750)
    assert env.fs.getattr("/d").mode == stat.S_IFDIR | 0o750
    env.clock.advance(env.stat_ttl + 1)
    assert env.fs.getattr("/d").mode == stat.S_IFDIR | 0o750  # not the default 0755


def test_mkdir_errors(env):
    env.put("f", b"")
    env.fs.mkdir("/d", 0o755)
    with pytest.raises(Exists):
        env.fs.mkdir("/d", 0o755)
    with pytest.raises(Exists):
        env.fs.mkdir("/f", 0o755)
    with pytest.raises(NotFound):
        env.fs.mkdir("/missing/d", 0o755)
    with pytest.raises(NotADirectory):
        env.fs.mkdir("/f/d", 0o755)


def test_rmdir_removes_the_marker(env):
    env.fs.mkdir("/d", 0o755)
    env.fs.rmdir("/d")
    assert keys(env) == []
    with pytest.raises(NotFound):
        env.fs.getattr("/d")


def test_rmdir_of_a_non_empty_directory(env):
    env.fs.mkdir("/d", 0o755)
    env.put("d/sub/deep", b"x")
    with pytest.raises(DirectoryNotEmpty) as raised:
        env.fs.rmdir("/d")
    assert errno_for(raised.value) == errno.ENOTEMPTY
    assert "d/" in keys(env)


def test_rmdir_of_a_directory_with_a_file_being_created(env):
    env.fs.mkdir("/d", 0o755)
    fh = env.fs.create("/d/new", 0o644, os.O_WRONLY)
    with pytest.raises(DirectoryNotEmpty):
        env.fs.rmdir("/d")
    env.fs.release("/d/new", fh)
    assert keys(env) == ["d/", "d/new"]


def test_rmdir_errors(env):
    env.put("f", b"")
    with pytest.raises(NotADirectory):
        env.fs.rmdir("/f")
    with pytest.raises(NotFound):
        env.fs.rmdir("/nothing")
    with pytest.raises(NotPermitted):
        env.fs.rmdir("/")


# -- unlink -------------------------------------------------------------------------
def test_unlink_deletes_the_object(env):
    env.put("f", b"x")
    env.store.reset_counts()
    env.fs.unlink("/f")
    assert env.store.counts["DeleteObject"] == 1
    assert keys(env) == []
    with pytest.raises(NotFound):
        env.fs.getattr("/f")


def test_unlink_errors(env):
    env.fs.mkdir("/d", 0o755)
    with pytest.raises(IsADirectory):
        env.fs.unlink("/d")
    with pytest.raises(NotFound):
        env.fs.unlink("/nope")


def test_an_open_file_keeps_reading_after_unlink(env):
    env.put("f", b"still here")
    fh = env.fs.open("/f", os.O_RDONLY)
    assert env.fs.read("/f", fh, 0, 5) == b"still"
    env.fs.unlink("/f")
    assert env.fs.read("/f", fh, 0, 100) == b"still here"  # from its pinned block
    env.fs.release("/f", fh)


def test_link_is_eperm(env):
    env.put("f", b"x")
    with pytest.raises(NotPermitted) as raised:
        env.fs.link("/g", "/f")
    assert errno_for(raised.value) == errno.EPERM


# -- rename of files ----------------------------------------------------------------
def test_rename_file_is_copy_then_delete(env):
    env.put("a", b"data", metadata={"color": "blue"})
    env.store.reset_counts()
    env.fs.rename("/a", "/b")
    assert env.store.counts["CopyObject"] == 1 and env.store.counts["DeleteObject"] == 1
    assert keys(env) == ["b"]
    assert env.store.head_object(env.bucket, "b").metadata["color"] == "blue"
    with pytest.raises(NotFound):
        env.fs.getattr("/a")
    assert env.fs.getattr("/b").size == 4


def test_rename_file_over_a_file_replaces_it(env):
    env.put("a", b"new")
    env.put("b", b"old")
    env.fs.rename("/a", "/b")
    assert keys(env) == ["b"] and env.body("b") == b"new"


def test_rename_noreplace_and_exchange(env):
    env.put("a", b"1")
    env.put("b", b"2")
    with pytest.raises(Exists):
        env.fs.rename("/a", "/b", RENAME_NOREPLACE)
    with pytest.raises(InvalidArgument):
        env.fs.rename("/a", "/b", RENAME_EXCHANGE)
    assert env.body("a") == b"1" and env.body("b") == b"2"


def test_rename_file_over_a_directory_is_eisdir(env):
    env.put("a", b"1")
    env.fs.mkdir("/d", 0o755)
    with pytest.raises(IsADirectory):
        env.fs.rename("/a", "/d")


def test_rename_of_a_dirty_open_file_uploads_first_and_follows(env):
    fh = env.fs.create("/draft", 0o644, os.O_RDWR)
    env.fs.write("/draft", fh, 0, b"written before")
    env.fs.rename("/draft", "/final")
    assert env.body("final") == b"written before"
    env.fs.write("/final", fh, 14, b" and after")
    env.fs.flush("/final", fh)
    env.fs.release("/final", fh)
    assert env.body("final") == b"written before and after"
    assert keys(env) == ["final"]


def test_rename_keeps_a_reader_working(env):
    env.put("a", b"content")
    fh = env.fs.open("/a", os.O_RDONLY)
    env.fs.rename("/a", "/b")
    assert env.fs.read("/b", fh, 0, 100) == b"content"
    env.fs.release("/b", fh)


# -- rename of directories ----------------------------------------------------------
def test_rename_directory_moves_every_key(env):
    env.fs.mkdir("/src", 0o700)
    for i in range(25):
        env.put(f"src/f{i}", b"%d" % i)
    env.put("src/sub/deep", b"deep")
    env.put("src/sub/", b"", content_type="application/x-directory")
    env.fs.readdir("/src")
    env.store.reset_counts()
    env.fs.rename("/src", "/dst")
    assert env.store.counts["DeleteObjects"] == 1
    assert env.store.counts["CopyObject"] == 26  # markers are PUT, not copied
    assert keys(env, "src") == []
    assert len(keys(env, "dst/")) == 28
    assert env.body("dst/f7") == b"7"
    info = env.store.head_object(env.bucket, "dst/")
    assert info.metadata["mode"] == str(stat.S_IFDIR | 0o700)
    assert sorted(e.name for e in env.fs.readdir("/dst"))[:3] == ["f0", "f1", "f10"]
    with pytest.raises(NotFound):
        env.fs.getattr("/src")
    assert env.read_file("/dst/sub/deep") == b"deep"


def test_rename_directory_over_an_empty_directory(env):
    env.put("a/x", b"1")
    env.fs.mkdir("/b", 0o755)
    env.fs.rename("/a", "/b")
    assert keys(env) == ["b/", "b/x"]


def test_rename_directory_target_rules(env):
    env.put("a/x", b"1")
    env.put("full/y", b"2")
    env.put("file", b"3")
    with pytest.raises(DirectoryNotEmpty):
        env.fs.rename("/a", "/full")
    with pytest.raises(NotADirectory):
        env.fs.rename("/a", "/file")
    with pytest.raises(InvalidArgument):
        env.fs.rename("/a", "/a/inside")
    assert keys(env) == ["a/x", "file", "full/y"]


def test_rename_directory_with_open_dirty_file(env):
    env.put("dir/keep", b"k")
    fh = env.fs.create("/dir/open", 0o644, os.O_WRONLY)
    env.fs.write("/dir/open", fh, 0, b"dirty")
    env.fs.rename("/dir", "/moved")
    env.fs.write("/moved/open", fh, 5, b"+more")
    env.fs.release("/moved/open", fh)
    assert env.body("moved/open") == b"dirty+more"
    assert keys(env) == ["moved/keep", "moved/open"]


def test_a_failed_copy_deletes_nothing(env):
    from mssfs.store.errors import ServiceUnavailable

    for i in range(5):
        env.put(f"d/{i}", b"x")
    def fault(op, bucket, key):
        if op == "CopyObject" and key.endswith("/3"):
            return ServiceUnavailable("down")
        return None

    env.store.fail_when(fault)
    with pytest.raises(ServiceUnavailable):
        env.fs.rename("/d", "/e")
    env.store.clear_faults()
    assert keys(env, "d/") == [f"d/{i}" for i in range(5)]
    assert env.fs.readdir("/d")


def test_readers_under_a_renamed_directory_keep_working(env):
    env.put("d/f", b"inside")
    fh = env.fs.open("/d/f", os.O_RDONLY)
    env.fs.rename("/d", "/e")
    assert env.fs.read("/e/f", fh, 0, 100) == b"inside"
    env.fs.release("/e/f", fh)


def test_rename_beyond_the_single_copy_limit_uses_part_copies(env, monkeypatch):
    from mssfs import renames, uploader

    monkeypatch.setattr(renames, "SINGLE_COPY_LIMIT", 1024 * 1024)
    monkeypatch.setattr(uploader, "MAX_SINGLE_COPY", 1024 * 1024)
    monkeypatch.setattr(uploader, "COPY_PART_SIZE", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024)
    env.put("big", data, metadata={"color": "red"}, content_type="video/mp4")
    env.store.reset_counts()
    env.fs.rename("/big", "/moved")
    assert env.store.counts["UploadPartCopy"] >= 2
    assert env.store.counts["CopyObject"] == 0
    assert env.body("moved") == data
    info = env.store.head_object(env.bucket, "moved")
    assert info.metadata["color"] == "red" and info.content_type == "video/mp4"
    assert keys(env) == ["moved"]
    env.put("dir/huge", data)
    env.fs.rename("/dir", "/dir2")  # outside the pool: copy_large waits for its parts
    assert env.body("dir2/huge") == data


def test_names_in_a_new_directory_cost_no_lookup(env):
    env.fs.mkdir("/new", 0o755)
    env.store.reset_counts()
    with pytest.raises(NotFound):
        env.fs.getattr("/new/file")
    env.write_file("/new/file", b"x")
    assert set(env.store.counts) == {"PutObject"}
    assert [e.name for e in env.fs.readdir("/new")] == ["file"]


def test_moved_names_are_known_after_a_directory_rename(env):
    env.put("d/a", b"1")
    env.put("d/sub/b", b"22")
    env.fs.rename("/d", "/e")
    env.store.reset_counts()
    assert env.fs.getattr("/e/a").size == 1
    assert env.fs.getattr("/e/sub/b").size == 2
    assert sum(env.store.counts.values()) == 0
