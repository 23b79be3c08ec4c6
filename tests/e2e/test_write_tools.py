"""Writing through a real mount with ordinary tools; every result checked in the store."""

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fuse_mounts import poll

MiB = 1024 * 1024


def sh(*argv, cwd=None, timeout=300):
    done = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=cwd, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr.decode(errors='replace')}"
    return done.stdout


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


@pytest.fixture(scope="module")
def mnt(mounter, bucket):
    return mounter.mount(bucket, options="")


@pytest.fixture
def work(mnt, request):
    """A fresh directory on the mount, named after the test."""
    path = mnt.path / request.node.name.replace("[", "-").replace("]", "")
    path.mkdir()
    return path


def key_of(mnt, path: Path) -> str:
    return str(path.relative_to(mnt.path))


def stored(s3, bucket, key) -> bytes:
    return s3.get_object(bucket, key).data


def test_echo_and_append(mnt, work, s3, bucket):
    sh("sh", "-c", "echo one > f && echo two >> f && echo three >> f", cwd=work)
    assert (work / "f").read_bytes() == b"one\ntwo\nthree\n"
    assert stored(s3, bucket, key_of(mnt, work / "f")) == b"one\ntwo\nthree\n"
    sh("sh", "-c", "echo replaced > f", cwd=work)
    assert stored(s3, bucket, key_of(mnt, work / "f")) == b"replaced\n"


@pytest.mark.parametrize("size", [10 * MiB, 200 * MiB], ids=["10MiB", "200MiB"])
def test_cp_large_random_file(mnt, work, s3, bucket, tmp_path, size):
    source = tmp_path / "src"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(size // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            out.write(chunk)
    sh("cp", str(source), str(work / "big"))
    assert (work / "big").stat().st_size == size
    got = stored(s3, bucket, key_of(mnt, work / "big"))
    assert len(got) == size and hashlib.sha256(got).hexdigest() == digest.hexdigest()
    sh("cmp", str(source), str(work / "big"))


def test_dd_notrunc_in_the_middle(mnt, work, s3, bucket):
    base = random.Random(1).randbytes(3 * MiB)
    (work / "f").write_bytes(base)
    patch = b"\xab" * 8192
    subprocess.run(["dd", "of=f", "bs=4096", "seek=100", "conv=notrunc", "status=none"],
                   input=patch, cwd=work, check=True, timeout=60)
    expected = base[: 100 * 4096] + patch + base[100 * 4096 + len(patch):]
    assert (work / "f").read_bytes() == expected
    assert stored(s3, bucket, key_of(mnt, work / "f")) == expected


def test_truncate_grow_and_shrink(mnt, work, s3, bucket):
    (work / "f").write_bytes(b"0123456789")
    sh("truncate", "-s", "100000", "f", cwd=work)
    assert stored(s3, bucket, key_of(mnt, work / "f")) == b"0123456789" + bytes(99990)
    sh("truncate", "-s", "4", "f", cwd=work)
    assert (work / "f").read_bytes() == b"0123"
    assert stored(s3, bucket, key_of(mnt, work / "f")) == b"0123"


def test_mkdir_p_rmdir_rm_r(mnt, work, s3, bucket):
    sh("mkdir", "-p", "a/b/c", cwd=work)
    assert (work / "a/b/c").is_dir()
    sh("rmdir", "a/b/c", cwd=work)
    assert not (work / "a/b/c").exists() and (work / "a/b").is_dir()
    for i in range(5):
        (work / "a/b" / f"f{i}").write_bytes(b"x" * i)
    with pytest.raises(OSError):
        os.rmdir(work / "a")
    sh("rm", "-r", "a", cwd=work)
    assert not (work / "a").exists()
    prefix = key_of(mnt, work) + "/a"
    assert not s3.list_objects(bucket, prefix).objects


def test_mv_file_and_directory_of_50_files(mnt, work, s3, bucket):
    (work / "f").write_bytes(b"moving")
    sh("mv", "f", "g", cwd=work)
    assert not (work / "f").exists() and (work / "g").read_bytes() == b"moving"
    assert stored(s3, bucket, key_of(mnt, work / "g")) == b"moving"
    (work / "d").mkdir()
    for i in range(50):
        (work / "d" / f"n{i:02}").write_bytes(f"file {i}".encode())
    sh("mv", "d", "e", cwd=work)
    assert not (work / "d").exists()
    assert sorted(os.listdir(work / "e")) == [f"n{i:02}" for i in range(50)]
    for i in (0, 25, 49):
        assert stored(s3, bucket, key_of(mnt, work / "e" / f"n{i:02}")) == f"file {i}".encode()
    assert not s3.list_objects(bucket, key_of(mnt, work / "d") + "/").objects


def make_tree(root: Path, files: int = 40) -> None:
    rng = random.Random(3)
    for i in range(files):
        path = root / f"dir{i % 5}" / f"sub{i % 3}" / f"file{i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(0, 200_000)))
    os.chmod(root / "dir0" / "sub0" / "file0.dat", 0o600)


def test_rsync_twice_changes_nothing(work, tmp_path):
    make_tree(tmp_path / "tree")
    sh("rsync", "-a", f"{tmp_path / 'tree'}/", f"{work / 'tree'}/")
    sh("diff", "-r", str(tmp_path / "tree"), str(work / "tree"))
    changes = sh("rsync", "-a", "--itemize-changes", f"{tmp_path / 'tree'}/", f"{work / 'tree'}/")
    assert changes.decode().strip() == ""


@pytest.fixture(scope="module")
def stdlib_tarball(tmp_path_factory):
    """A real source tarball: a few hundred files of this Python's standard library."""
    lib = Path(os.__file__).parent
    names = ["email", "json", "asyncio", "concurrent", "xml", "urllib", "http", "logging",
             "importlib", "unittest", "encodings", "multiprocessing", "sqlite3", "test/support"]
    path = tmp_path_factory.mktemp("tar") / "stdlib.tar.gz"
    sh("tar", "-czf", str(path), "--exclude=__pycache__", "-C", str(lib), *names)
    return path, names


def test_tar_x_then_diff(work, tmp_path, stdlib_tarball):
    tarball, _ = stdlib_tarball
    listed = sh("tar", "-tzf", str(tarball)).decode().split()
    assert len([n for n in listed if not n.endswith("/")]) > 200
    sh("tar", "-xzf", str(tarball), cwd=work)
    (tmp_path / "ref").mkdir()
    sh("tar", "-xzf", str(tarball), cwd=tmp_path / "ref")
    sh("diff", "-r", str(tmp_path / "ref"), str(work))


def test_git_init_add_commit_log(work):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(work)}
    (work / "README").write_text("hello\n")

    def git(*args):
        # No background gc/maintenance: a detached git would keep the mount busy.
        done = subprocess.run(["git", "-c", "gc.auto=0", "-c", "maintenance.auto=false", *args],
                              cwd=work, env=env, capture_output=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    git("init", "-q")
    git("add", "README")
    git("commit", "-q", "-m", "first")
    (work / "README").write_text("hello again\n")
    git("commit", "-q", "-am", "second")
    assert git("log", "--format=%s").split() == ["second", "first"]
    assert git("status", "--porcelain") == ""
    git("fsck", "--no-progress")


def test_parallel_writers(mnt, work, s3, bucket):
    payloads = {f"w{i}": random.Random(i).randbytes(300_000 + i * 1000) for i in range(8)}
    errors = []

    def write(name, data):
        try:
            with open(work / name, "wb") as out:
                for start in range(0, len(data), 64 * 1024):
                    out.write(data[start: start + 64 * 1024])
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=item) for item in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for name, data in payloads.items():
        assert stored(s3, bucket, key_of(mnt, work / name)) == data


def test_symlink(work):
    (work / "target.txt").write_text("pointed at")
    os.symlink("target.txt", work / "link")
    assert os.readlink(work / "link") == "target.txt"
    assert (work / "link").read_text() == "pointed at"
    assert (work / "link").is_symlink()


def test_hard_link_is_refused_and_the_mount_still_works(work):
    (work / "f").write_text("x")
    with pytest.raises(OSError) as caught:
        os.link(work / "f", work / "g")
    assert caught.value.errno in (1, 95)  # EPERM (or ENOTSUP)
    (work / "h").write_text("still fine")
    assert (work / "h").read_text() == "still fine"
    assert sorted(os.listdir(work)) == ["f", "h"]


def test_chmod_and_mtime_survive_a_remount(mounter, mnt, work, bucket):
    (work / "f").write_text("meta")
    os.chmod(work / "f", 0o640)
    os.utime(work / "f", (1_600_000_000, 1_600_000_000))
    again = mounter.mount(bucket, options="")
    info = os.stat(again / key_of(mnt, work / "f"))
    assert (info.st_mode & 0o777, int(info.st_mtime)) == (0o640, 1_600_000_000)
    mounter.umount(again)


def test_sqlite_database_across_a_remount(mounter, bucket, s3):
    first = mounter.mount(bucket, options="")
    path = first / "db.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute("create table t (n integer primary key, v text)")
    for batch in range(5):
        with db:
            db.executemany("insert into t values (?, ?)",
                           [(batch * 100 + i, f"row {batch * 100 + i}") for i in range(100)])
    db.close()
    mounter.umount(first)
    assert len(stored(s3, bucket, "db.sqlite")) > 0
    second = mounter.mount(bucket, options="")
    db = sqlite3.connect(second / "db.sqlite")
    try:
        assert db.execute("select count(*), sum(n) from t").fetchone() == (500, sum(range(500)))
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    mounter.umount(second)


def test_umount_waits_for_pending_uploads(mounter, bucket, s3, tmp_path):
    mount = mounter.mount(bucket, options="")
    data = os.urandom(30 * MiB)
    (tmp_path / "src").write_bytes(data)
    sh(sys.executable, "-c", "import shutil,sys; shutil.copyfile(sys.argv[1], sys.argv[2])",
       str(tmp_path / "src"), str(mount / "pending.bin"))
    mounter.umount(mount)
    poll(lambda: stored(s3, bucket, "pending.bin") == data, timeout=5)


def test_chmod_and_utime_after_close_before_release(mnt, work, s3, bucket):
    """What rsync does: close, then chmod and utime, while the kernel may not yet have
    sent RELEASE (it is asynchronous). A dup'd descriptor holds the handle open, which
    makes that window deterministic: the first close flushes (uploads), the attribute
    changes arrive, and only the last close releases the handle."""
    path = work / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    held = os.dup(fd)
    try:
        os.write(fd, b"data")
        os.close(fd)
        os.chmod(path, 0o600)
        os.utime(path, (1_500_000_000, 1_500_000_000))
    finally:
        os.close(held)
    info = poll(lambda: s3.head_object(bucket, key_of(mnt, path)), timeout=5)
    assert (info.metadata.get("mode"), info.metadata.get("mtime", "").split(".")[0]) == (
        str(0o100600), "1500000000")
    stat = os.stat(path)
    assert (stat.st_mode & 0o777, int(stat.st_mtime)) == (0o600, 1_500_000_000)


def test_writes_checked_by_crc32_land_byte_exact(mounter, new_bucket, s3):
    """-o upload_checksum=crc32: a streamed multipart write, then an append (the
    unchanged parts copied server-side, the last one sent), each verified by the server
    against a CRC32 instead of an MD5."""
    bucket = new_bucket()
    mount = mounter.mount(bucket, "-o", "upload_checksum=crc32", options="")
    data = os.urandom(20 * MiB + 123)
    path = mount.path / "big.bin"
    path.write_bytes(data)
    assert stored(s3, bucket, "big.bin") == data
    assert s3.head_object(bucket, "big.bin").etag.endswith("-3")  # 8 + 8 + 4 MiB parts
    with open(path, "ab") as f:
        f.write(b"appended")
    assert stored(s3, bucket, "big.bin") == data + b"appended"
    assert list(s3.list_multipart_uploads(bucket)) == []
    done = mounter.run("stats", str(mount.path), "--json")
    assert done.returncode == 0, done.stderr
    requests = json.loads(done.stdout)["requests"]
    assert requests.get("UploadPartCopy", 0) >= 2  # the append copied the untouched parts


def test_a_reader_open_during_a_write_sees_the_written_bytes(work, s3, bucket, mnt):
    # Write-only handles bypass the kernel's page cache (direct_io); the pages another
    # descriptor cached must not hide what was written.
    path = work / "shared.bin"
    path.write_bytes(b"a" * 8192)
    reader = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(reader, 8192, 0) == b"a" * 8192  # now in the page cache
        writer = os.open(path, os.O_WRONLY)
        try:
            assert os.pwrite(writer, b"b" * 4096, 0) == 4096
            assert os.pread(reader, 8192, 0) == b"b" * 4096 + b"a" * 4096
        finally:
            os.close(writer)
        assert os.pread(reader, 8192, 0) == b"b" * 4096 + b"a" * 4096
    finally:
        os.close(reader)
    assert stored(s3, bucket, key_of(mnt, path)) == b"b" * 4096 + b"a" * 4096


def test_an_open_file_removed_with_rm_reads_to_the_end_and_leaves_no_key(work, s3, bucket,
                                                                         mnt):
    # libfuse hides a removed open file (a rename to .fuse_hidden..., so a server-side
    # copy) and deletes it at the last close.
    data = os.urandom(3 * 1024 * 1024)
    path = work / "doomed.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert f.read(10) == data[:10]
        sh("rm", str(path))
        assert not path.exists()
        assert f.read() == data[10:]
    prefix = key_of(mnt, work) + "/"  # the directory's marker is all that is left
    poll(lambda: [o.key for o in s3.list_objects(bucket, prefix=prefix).objects] == [prefix])
