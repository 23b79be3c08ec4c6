"""What the metadata-heavy workloads cost in S3 requests, per file, on ``MemoryStore``.

Each test replays the callbacks a tool sends through the mount (measured with strace
and a callback counter on a real mount) and asserts the requests they cost: ``cp -r``
and ``tar x`` of small files are one PUT each, ``touch``/``chmod`` after close one copy,
``ls -l`` a LIST per 1,000 names and no HEAD, ``mv`` of a known file a copy and a delete.
"""

import os
import stat

import pytest

from mssfs.errors import NotFound
from mssfs.posix_meta import parse

# cp -r: LOOKUP (getattr ENOENT), CREATE (+ libfuse's getattr), WRITE, FLUSH, RELEASE.
# tar x: the same, several writes, then futimens/fchown/fchmod on the open descriptor
# (each followed by libfuse's getattr) before close.


def cp_file(fs, path, data, *, fd_metadata=None):
    parent = path.rsplit("/", 1)[0] or "/"
    with pytest.raises(NotFound):  # the kernel's LOOKUP of the new name
        fs.getattr(path)
    fs.getattr(parent)
    fh = fs.create(path, stat.S_IFREG | 0o600, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fs.getattr(path, fh)
    for offset in range(0, len(data), 10240):
        fs.write(path, fh, offset, data[offset : offset + 10240])
    if fd_metadata is not None:
        fd_metadata(path, fh)
    fs.flush(path, fh)
    fs.release(path, fh)


def tar_set_stat(fs, mtime):
    def set_stat(path, fh):
        fs.utimens(path, None, mtime)
        fs.getattr(path, fh)
        fs.chown(path, 0, 0)
        fs.getattr(path, fh)
        fs.chmod(path, 0o644)
        fs.getattr(path, fh)

    return set_stat


def test_cp_r_into_a_new_directory_is_one_put_per_file(env):
    env.fs.mkdir("/t", 0o755)
    env.store.reset_counts()
    for i in range(50):
        cp_file(env.fs, f"/t/f{i:03d}", os.urandom(4096))
    assert dict(env.store.counts) == {"PutObject": 50}


def test_cp_r_into_a_listed_directory_is_one_put_per_file(env):
    env.put("t/old", b"x")
    env.fs.readdir("/t")
    env.store.reset_counts()
    for i in range(20):
        cp_file(env.fs, f"/t/f{i:03d}", b"y" * 100)
    assert dict(env.store.counts) == {"PutObject": 20}


def test_tar_x_file_is_one_put_carrying_mode_and_mtime(env):
    env.fs.mkdir("/x", 0o755)
    env.store.reset_counts()
    for i in range(20):
        cp_file(env.fs, f"/x/m{i}.py", os.urandom(25000),
                fd_metadata=tar_set_stat(env.fs, 1700000000.0 + i))
    assert dict(env.store.counts) == {"PutObject": 20}
    meta = parse(env.store.head_object(env.bucket, "x/m7.py").metadata)
    assert meta.mtime == 1700000007 and meta.mode & 0o7777 == 0o644
    assert (meta.uid, meta.gid) == (0, 0)


def test_touch_and_chmod_after_close_are_one_copy_each(env):
    env.write_file("/f", b"data")
    env.store.reset_counts()
    env.fs.utimens("/f", None, 1600000000.0)
    env.fs.chmod("/f", 0o600)
    assert dict(env.store.counts) == {"CopyObject": 2}  # no HEAD: this mount wrote it
    meta = parse(env.store.head_object(env.bucket, "f").metadata)
    assert meta.mtime == 1600000000 and meta.mode & 0o7777 == 0o600
    assert env.body("f") == b"data"


def test_a_file_changed_elsewhere_is_headed_again_not_clobbered(env):
    env.write_file("/f", b"mine")
    env.fs.getattr("/f")
    env.put("f", b"theirs", metadata={"color": "blue"})  # the cache still says "mine"
    env.store.reset_counts()
    env.fs.chmod("/f", 0o600)
    assert env.store.counts["HeadObject"] == 1 and env.store.counts["CopyObject"] == 2
    assert env.body("f") == b"theirs"
    head = env.store.head_object(env.bucket, "f")
    assert head.metadata["color"] == "blue" and parse(head.metadata).mode & 0o777 == 0o600


def test_ls_l_is_a_list_per_thousand_names_and_no_head(env):
    for i in range(2500):
        env.put(f"d/f{i:05d}", b"x")
    env.fs.getattr("/d")
    env.store.reset_counts()
    for entry in env.fs.readdir("/d"):
        env.fs.getattr("/d/" + entry.name)
    assert dict(env.store.counts) == {"ListObjectsV2": 3}


def test_mv_of_a_known_file_is_a_copy_and_a_delete(env):
    env.put("a", b"x" * 1000)
    env.fs.readdir("/")  # the mount knows a, and that b is absent
    env.store.reset_counts()
    env.fs.getattr("/a")
    with pytest.raises(NotFound):
        env.fs.getattr("/b")
    env.fs.rename("/a", "/b")
    assert dict(env.store.counts) == {"CopyObject": 1, "DeleteObject": 1}
    env.fs.getattr("/b")
    assert dict(env.store.counts) == {"CopyObject": 1, "DeleteObject": 1}


def test_a_change_to_what_is_already_stored_costs_no_copy(env):
    env.write_file("/f", b"data", mode=0o644)
    env.fs.mkdir("/d", 0o755)
    attrs = env.fs.getattr("/f")
    env.store.reset_counts()
    env.fs.chown("/f", attrs.uid, attrs.gid)  # cp -a, rsync -a: the owner it has
    env.fs.chmod("/f", 0o644)
    assert dict(env.store.counts) == {}
    env.fs.chmod("/d", 0o755)
    assert dict(env.store.counts) == {"HeadObject": 1}  # a marker is HEADed, not rewritten


def test_a_moved_file_keeps_its_known_metadata(env):
    env.write_file("/a", b"data")
    env.fs.rename("/a", "/b")
    env.store.reset_counts()
    env.fs.chmod("/b", 0o600)
    assert dict(env.store.counts) == {"CopyObject": 1}
    assert env.fs.getattr("/b").mode & 0o777 == 0o600


def test_known_metadata_is_trusted_no_longer_than_a_stat_entry(env):
    # Another client's metadata-only change (a self-copy) keeps the ETag: after the
    # stat TTL the mount asks again instead of rewriting from what it remembers.
    env.write_file("/f", b"data")
    env.store.copy_object(env.bucket, "f", env.bucket, "f",
                          metadata={**env.store.head_object(env.bucket, "f").metadata,
                                    "color": "blue"})
    env.clock.advance(env.stat_ttl + 1)
    env.fs.readdir("/")  # a listing refreshes the stat entry without a HEAD
    env.store.reset_counts()
    env.fs.chmod("/f", 0o600)
    assert env.store.counts["HeadObject"] == 1
    assert env.store.head_object(env.bucket, "f").metadata["color"] == "blue"
