"""Writes: one buffer per file, the upload points, and what the store ends up with."""

import os
import stat

import pytest

from mssfs.errors import IsADirectory, NotFound, NotPermitted, ReadOnly


def test_create_write_close_stores_the_object_with_s3fs_metadata(env):
    env.write_file("/notes.txt", b"hello", mode=0o640)
    info = env.store.head_object(env.bucket, "notes.txt")
    assert env.body("notes.txt") == b"hello"
    assert info.content_type == "text/plain"
    assert info.metadata["mode"] == str(stat.S_IFREG | 0o640)
    assert info.metadata["uid"] == str(os.getuid())
    assert int(info.metadata["mtime"]) == int(env.clock())


def test_upload_updates_the_stat_cache(env):
    env.write_file("/f", b"12345")
    env.store.reset_counts()
    attrs = env.fs.getattr("/f")
    assert attrs.size == 5
    assert attrs.etag == env.store.head_object(env.bucket, "f").etag
    assert attrs.mode == stat.S_IFREG | 0o644
    env.store.reset_counts()
    env.fs.getattr("/f")
    assert sum(env.store.counts.values()) == 0


def test_empty_file_closed_without_writes_becomes_an_object(env):
    fh = env.fs.create("/empty", 0o644, os.O_WRONLY)
    assert env.fs.getattr("/empty").size == 0  # visible before any upload
    env.fs.flush("/empty", fh)
    env.fs.release("/empty", fh)
    assert env.body("empty") == b""


def test_shell_redirection_uploads_once(env):
    # echo hi > f: create, dup2 onto stdout and close the original (a flush), write,
    # close (a flush), release.
    fh = env.fs.create("/f", 0o644, os.O_WRONLY | os.O_TRUNC)
    env.fs.flush("/f", fh)
    assert env.store.counts["PutObject"] == 0
    env.fs.write("/f", fh, 0, b"hi\n")
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.store.counts["PutObject"] == 1
    assert env.body("f") == b"hi\n"
    env.store.reset_counts()
    fh = env.fs.open("/f", os.O_WRONLY | os.O_TRUNC)  # echo bye > f
    env.fs.flush("/f", fh)
    env.fs.write("/f", fh, 0, b"bye\n")
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.store.counts["PutObject"] == 1
    assert env.body("f") == b"bye\n"


def test_upload_on_first_flush_of_a_handle_that_wrote(env):
    fh = env.fs.create("/f", 0o644, os.O_WRONLY)
    env.fs.write("/f", fh, 0, b"abc")
    env.store.reset_counts()
    env.fs.flush("/f", fh)
    assert env.store.counts["PutObject"] == 1
    env.fs.flush("/f", fh)  # a dup'd descriptor closed: nothing new to upload
    env.fs.release("/f", fh)
    assert env.store.counts["PutObject"] == 1
    assert env.body("f") == b"abc"


def test_flush_of_a_handle_that_did_not_write_uploads_nothing(env):
    env.put("f", b"old")
    writer = env.fs.open("/f", os.O_WRONLY)
    reader = env.fs.open("/f", os.O_RDWR)
    env.fs.write("/f", writer, 0, b"new")
    env.store.reset_counts()
    env.fs.flush("/f", reader)
    assert env.store.counts["PutObject"] == 0
    assert env.body("f") == b"old"
    env.fs.flush("/f", writer)
    assert env.body("f") == b"new"
    for fh in (reader, writer):
        env.fs.release("/f", fh)


def test_handles_of_one_file_share_the_buffer(env):
    a = env.fs.create("/f", 0o644, os.O_RDWR)
    b = env.fs.open("/f", os.O_RDWR)
    env.fs.write("/f", a, 0, b"hello ")
    env.fs.write("/f", b, 6, b"world")
    assert env.fs.read("/f", a, 0, 100) == b"hello world"
    assert env.fs.getattr("/f").size == 11
    env.fs.flush("/f", a)
    env.fs.release("/f", a)
    env.fs.flush("/f", b)
    env.fs.release("/f", b)
    assert env.body("f") == b"hello world"


def test_release_is_the_fallback_upload(env):
    fh = env.fs.create("/f", 0o644, os.O_WRONLY)
    env.fs.write("/f", fh, 0, b"no flush")
    env.fs.release("/f", fh)
    assert env.body("f") == b"no flush"


def test_fsync_uploads_at_once(env):
    fh = env.fs.create("/f", 0o644, os.O_WRONLY)
    env.fs.write("/f", fh, 0, b"synced")
    env.fs.fsync("/f", fh, False)
    assert env.body("f") == b"synced"
    env.fs.write("/f", fh, 6, b"!")
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.body("f") == b"synced!"


def test_o_trunc_empties_the_object_even_without_writes(env):
    env.put("f", b"content")
    fh = env.fs.open("/f", os.O_WRONLY | os.O_TRUNC)
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.body("f") == b""


def test_o_append_writes_at_the_end(env):
    env.put("log", b"line1\n")
    fh = env.fs.open("/log", os.O_WRONLY | os.O_APPEND)
    env.fs.write("/log", fh, 0, b"line2\n")
    env.fs.flush("/log", fh)
    env.fs.release("/log", fh)
    assert env.body("log") == b"line1\nline2\n"


def test_overwrite_in_the_middle_keeps_the_rest(env):
    env.put("f", b"0123456789")
    fh = env.fs.open("/f", os.O_RDWR)
    env.fs.write("/f", fh, 3, b"abc")
    assert env.fs.read("/f", fh, 0, 100) == b"012abc6789"
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.body("f") == b"012abc6789"


def test_rewrite_keeps_user_metadata_and_mode(env):
    env.put("f", b"old", metadata={"mode": "33216", "color": "red"})
    fh = env.fs.open("/f", os.O_WRONLY | os.O_TRUNC)
    env.fs.write("/f", fh, 0, b"new")
    env.fs.release("/f", fh)
    info = env.store.head_object(env.bucket, "f")
    assert info.metadata["color"] == "red" and info.metadata["mode"] == "33216"


def test_truncate_by_path_and_by_handle(env):
    env.put("f", b"0123456789")
    env.fs.truncate("/f", 4)
    assert env.body("f") == b"0123"
    assert env.fs.getattr("/f").size == 4
    env.fs.truncate("/f", 6)
    assert env.body("f") == b"0123\0\0"
    fh = env.fs.open("/f", os.O_RDWR)
    env.fs.truncate("/f", 2, fh)
    env.fs.flush("/f", fh)
    env.fs.release("/f", fh)
    assert env.body("f") == b"01"


def test_write_errors(env):
    env.put("d/x", b"1")
    with pytest.raises(IsADirectory):
        env.fs.open("/d", os.O_WRONLY)
    with pytest.raises(NotFound):
        env.fs.open("/missing", os.O_WRONLY)
    with pytest.raises(NotFound):
        env.fs.create("/nodir/f", 0o644, os.O_WRONLY)
    with pytest.raises(IsADirectory):
        env.fs.truncate("/d", 0)
    env.fs.symlink("/link", "d/x")
    with pytest.raises(NotPermitted):
        env.fs.open("/link", os.O_WRONLY)


def test_unlinked_open_file_is_not_resurrected(env):
    fh = env.fs.create("/tmpfile", 0o600, os.O_RDWR)
    env.fs.write("/tmpfile", fh, 0, b"scratch")
    env.fs.unlink("/tmpfile")
    env.fs.flush("/tmpfile", fh)
    env.fs.release("/tmpfile", fh)
    assert env.store.list_objects(env.bucket).objects == []
    assert not os.path.isdir(env.recovery_dir) or os.listdir(env.recovery_dir) == []


def test_close_uploads_what_is_pending(env):
    fh = env.fs.create("/pending", 0o644, os.O_WRONLY)
    env.fs.write("/pending", fh, 0, b"at unmount")
    env.fs.close()
    assert env.body("pending") == b"at unmount"


def test_read_only_mount_refuses_every_change(make_env):
    env = make_env(read_only=True)
    env.put("f", b"x")
    env.put("d/", b"")
    env.store.reset_counts()
    fs = env.fs
    changes = [
        lambda: fs.create("/n", 0o644, os.O_WRONLY),
        lambda: fs.open("/f", os.O_WRONLY),
        lambda: fs.open("/f", os.O_RDWR | os.O_TRUNC),
        lambda: fs.truncate("/f", 0),
        lambda: fs.mkdir("/m", 0o755),
        lambda: fs.rmdir("/d"),
        lambda: fs.unlink("/f"),
        lambda: fs.rename("/f", "/g"),
        lambda: fs.symlink("/s", "f"),
        lambda: fs.chmod("/f", 0o600),
        lambda: fs.chown("/f", 1, 1),
        lambda: fs.utimens("/f", None, 5.0),
        lambda: fs.setxattr("/f", "user.a", b"b", 0),
        lambda: fs.removexattr("/f", "user.a"),
    ]
    for change in changes:
        with pytest.raises(ReadOnly):
            change()
    assert env.read_file("/f") == b"x"
    assert set(env.store.counts) <= {"HeadObject", "GetObject", "ListObjectsV2"}


def test_a_created_file_is_listed_before_its_upload(env):
    env.fs.mkdir("/d", 0o755)
    fh = env.fs.create("/d/new", 0o644, os.O_WRONLY)
    env.fs.write("/d/new", fh, 0, b"1234")
    env.clock.advance(env.stat_ttl + 1)  # the cached listing has expired: list again
    entries = {e.name: e.attrs for e in env.fs.readdir("/d")}
    assert entries["new"].size == 4
    env.fs.release("/d/new", fh)
    assert env.body("d/new") == b"1234"


def test_fstat_of_an_unlinked_open_file(env):
    fh = env.fs.create("/t", 0o600, os.O_RDWR)
    env.fs.write("/t", fh, 0, b"abc")
    env.fs.unlink("/t")
    with pytest.raises(NotFound):
        env.fs.getattr("/t")
    assert env.fs.getattr("/t", fh).size == 3
    env.fs.release("/t", fh)


def test_concurrent_writers_and_readers(env):
    import threading

    errors = []

    def own_file(i):
        try:
            data = bytes([i]) * (1000 + i)
            env.write_file(f"/c{i}", data)
            assert env.read_file(f"/c{i}") == data
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    shared = env.fs.create("/shared", 0o644, os.O_RDWR)
    handles = [env.fs.open("/shared", os.O_WRONLY) for _ in range(4)]

    def shared_part(i):
        try:
            env.fs.write("/shared", handles[i], i * 100, bytes([65 + i]) * 100)
            env.fs.flush("/shared", handles[i])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=own_file, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=shared_part, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for fh in [*handles, shared]:
        env.fs.release("/shared", fh)
    assert env.body("shared") == b"A" * 100 + b"B" * 100 + b"C" * 100 + b"D" * 100
    assert sorted(e.name for e in env.fs.readdir("/")) == sorted(
        [f"c{i}" for i in range(8)] + ["shared"]
    )


def test_a_streamed_upload_costs_no_self_copy(env):
    chunk = os.urandom(1024 * 1024)
    fh = env.fs.create("/big.bin", 0o644, os.O_WRONLY)
    for i in range(20):
        env.fs.write("/big.bin", fh, i * len(chunk), chunk)
    env.fs.flush("/big.bin", fh)
    env.fs.release("/big.bin", fh)
    assert env.store.counts["UploadPart"] >= 2
    assert env.store.counts["CopyObject"] == 0
    assert env.body("big.bin") == chunk * 20
    assert env.fs.getattr("/big.bin").size == 20 * len(chunk)


def test_chmod_during_a_streamed_upload_is_stored(env):
    chunk = os.urandom(1024 * 1024)
    fh = env.fs.create("/big.bin", 0o644, os.O_WRONLY)
    for i in range(20):
        env.fs.write("/big.bin", fh, i * len(chunk), chunk)
    env.fs.chmod("/big.bin", 0o600)
    env.fs.release("/big.bin", fh)
    info = env.store.head_object(env.bucket, "big.bin")
    assert info.metadata["mode"] == str(stat.S_IFREG | 0o600)
    assert env.body("big.bin") == chunk * 20
