"""Bad input through a real mount (issue 5 §5): a correct errno or a clear one-line
message, never a traceback, and nothing stored is damaged.

The refusals of ``mssfs mount`` itself (wrong secret, unknown key, missing bucket,
refused or non-S3 endpoint, mountpoint problems, a credentials file readable by others)
are in ``test_mount_failures``; this module adds the endpoint that never answers and
everything that reaches a mounted filesystem. Keys with ``//`` or a leading ``/`` are
normalised by SeaweedFS, so they are covered on ``MemoryStore`` in
``tests/filesystem/test_odd_keys.py`` and ``test_readdir.py``. At the end, no mount log
of this module holds a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import uuid

import pytest
from fuse_mounts import FAST_TTLS, is_mounted, poll

NAMES = ["with space", "new\nline", "ünïcødé-名前", "100%", "a+b", "what?", "#hash",
         "a%2Fb", "~tilde", "semi;colon", "'quote\"", "tab\tname"]


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


@pytest.fixture(scope="module")
def mnt(mounter, bucket):
    return mounter.mount(bucket)


@pytest.fixture
def work(mnt, request):
    path = mnt.path / f"t-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    return path


def errno_of(call, *args) -> str:
    try:
        call(*args)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


# -- the mount command --------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_an_endpoint_that_never_answers_is_refused_in_bounded_time(mounter, bucket, tmp_path):
    """A socket that accepts connections (the kernel's backlog) and never replies."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = mounter.run("mount", bucket, str(mountpoint), "--endpoint", endpoint,
                           timeout=100)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mssfs: "), done.stderr
    assert endpoint in lines[0] and "Traceback" not in done.stderr
    assert not is_mounted(mountpoint)


# -- names --------------------------------------------------------------------------------


def test_bucket_names_s3_refuses_are_einval_in_account_mode(mounter, s3):
    mnt = mounter.mount(None, options=FAST_TTLS)
    for bad in ["UpperCase", "ab", "-dash-first", "under_score", "a" * 64, "1.2.3.4",
                "dot..dot"]:
        assert errno_of(os.mkdir, mnt / bad) == "EINVAL", bad
    good = f"mssfs-e2e-{uuid.uuid4().hex[:10]}"
    os.mkdir(mnt / good)
    try:
        s3.head_bucket(good)
        assert not [b for b in s3.list_buckets() if b.name.lower() != b.name]
    finally:
        os.rmdir(mnt / good)
    mounter.umount(mnt)


def test_a_name_over_255_bytes_is_enametoolong(work):
    for name in ["x" * 256, "é" * 128]:  # 256 bytes: ASCII, and two-byte characters
        assert errno_of(lambda p: open(p, "wb").close(), work / name) == "ENAMETOOLONG"
        assert errno_of(os.mkdir, work / name) == "ENAMETOOLONG"
    ok = work / ("y" * 255)
    ok.write_bytes(b"fits")
    assert ok.read_bytes() == b"fits"


def test_a_key_over_1024_bytes_is_enametoolong(mnt, work, s3, bucket):
    path = work
    outcome = "ok"
    for level in range(8):  # each level adds 201 bytes to the key
        path = path / (chr(ord("a") + level) * 200)
        outcome = errno_of(os.mkdir, path)
        if outcome != "ok":
            break
    assert outcome == "ENAMETOOLONG"
    key = str(path.relative_to(mnt.path))
    assert len(key.encode()) > 1024
    parent = path.parent
    # At the limit a file fits, one byte over it does not. The limit is 1,023 bytes for
    # any name (paths.check_path keeps room for a directory marker's trailing slash).
    room = 1023 - len(str(parent.relative_to(mnt.path)).encode()) - 1
    assert 0 < room <= 255
    (parent / ("f" * room)).write_bytes(b"at the limit")
    assert errno_of(lambda p: open(p, "wb").close(), parent / ("f" * (room + 1))) == (
        "ENAMETOOLONG")
    assert s3.get_object(bucket, str((parent / ("f" * room)).relative_to(mnt.path))).data == (
        b"at the limit")


@pytest.mark.parametrize("name", NAMES, ids=[n.encode().hex()[:16] for n in NAMES])
def test_odd_characters_in_names_round_trip(mnt, work, s3, bucket, name):
    data = f"content of {name!r}".encode()
    (work / name).write_bytes(data)
    key = f"{work.name}/{name}"
    assert s3.get_object(bucket, key).data == data  # the key is the name, byte for byte
    assert name in os.listdir(work)
    assert (work / name).read_bytes() == data
    os.mkdir(work / (name + ".d"))
    os.rename(work / name, work / (name + ".d") / name)
    assert s3.get_object(bucket, f"{key}.d/{name}").data == data
    os.unlink(work / (name + ".d") / name)
    os.rmdir(work / (name + ".d"))
    assert os.listdir(work) == []


def test_names_made_out_of_band_with_odd_characters_are_listed(work, s3, bucket):
    for name in NAMES:
        s3.put_object(bucket, f"{work.name}/{name}", name.encode())
    assert poll(lambda: sorted(os.listdir(work)) == sorted(NAMES), timeout=10)
    for name in NAMES:
        assert (work / name).read_bytes() == name.encode()


# -- out-of-band shapes -------------------------------------------------------------------


def test_a_file_and_a_directory_with_the_same_name(work, s3, bucket):
    base = work.name
    s3.put_object(bucket, f"{base}/both", b"the file")
    s3.put_object(bucket, f"{base}/both/child", b"the child")
    poll(lambda: "both" in os.listdir(work), timeout=10)
    assert os.listdir(work) == ["both"]  # one entry: the directory wins
    assert (work / "both").is_dir()
    assert (work / "both" / "child").read_bytes() == b"the child"
    (work / "both" / "new").write_bytes(b"new")
    # Nothing stored was damaged: the hidden file is still there, unchanged.
    assert s3.get_object(bucket, f"{base}/both").data == b"the file"
    assert s3.get_object(bucket, f"{base}/both/child").data == b"the child"


@pytest.mark.parametrize("metadata", [
    {"mode": "garbage", "uid": "-1", "gid": "abc", "mtime": "not-a-time"},
    {"mode": "99999999999999999999", "uid": "1e9", "gid": "0x10", "mtime": "1e400"},
    {"mode": "0o777", "uid": "4294967296", "gid": "-5", "mtime": "-1"},
    {"mode": "040755", "uid": "0", "gid": "0", "mtime": "nan"},  # a directory mode on a file
], ids=["words", "huge", "out-of-range", "dir-mode"])
def test_garbage_metadata_headers_fall_back_to_defaults(work, s3, bucket, metadata):
    key = f"{work.name}/odd"
    s3.put_object(bucket, key, b"readable", metadata=metadata)
    poll(lambda: "odd" in os.listdir(work), timeout=10)
    st = os.stat(work / "odd")
    assert st.st_size == 8 and (work / "odd").is_file()
    assert (work / "odd").read_bytes() == b"readable"
    assert s3.head_object(bucket, key).metadata == metadata  # untouched by reading


def test_no_traceback_in_the_mount_logs(mounter, mnt):
    """Last in this module: everything above failed cleanly, without a traceback."""
    for mount in mounter.mounts:
        text = mount.log.read_text(errors="replace") if mount.log.exists() else ""
        assert "Traceback" not in text, f"{mount.log}:\n{text[-3000:]}"
