"""Fault injection: failed uploads keep the bytes; failed requests map to the right errno."""

import errno
import os
import pathlib

import pytest

from mssfs.errors import UploadFailed, errno_for
from mssfs.store import errors as store_errors


def recovered(env) -> list[bytes]:
    """The contents of every file in the recovery folder."""
    return [p.read_bytes() for p in pathlib.Path(env.recovery_dir).iterdir()]


@pytest.mark.allow_warnings(r"bytes are kept in")
@pytest.mark.parametrize("size", [100, 20 * 1024 * 1024])
def test_every_upload_failing(env, size):
    env.put("doc.txt", b"the old version")
    data = os.urandom(size)
    env.store.fail_when(
        lambda op, bucket, key: store_errors.ServiceUnavailable("down")
        if op in ("PutObject", "UploadPart", "CompleteMultipartUpload", "CopyObject")
        else None
    )
    fh = env.fs.open("/doc.txt", os.O_WRONLY | os.O_TRUNC)
    env.fs.write("/doc.txt", fh, 0, data)
    with pytest.raises(UploadFailed) as raised:
        env.fs.flush("/doc.txt", fh)
    assert errno_for(raised.value) == errno.EIO
    env.fs.release("/doc.txt", fh)
    env.store.clear_faults()
    assert env.body("doc.txt") == b"the old version"
    assert data in recovered(env)
    assert env.store.list_multipart_uploads(env.bucket) == []


@pytest.mark.allow_warnings(r"bytes are kept in")
def test_failed_upload_of_a_new_file_leaves_no_object(env):
    env.store.fail_next("PutObject", store_errors.ServiceUnavailable("down"))
    fh = env.fs.create("/new.txt", 0o644, os.O_WRONLY)
    env.fs.write("/new.txt", fh, 0, b"precious")
    with pytest.raises(UploadFailed):
        env.fs.flush("/new.txt", fh)
    env.fs.release("/new.txt", fh)
    assert env.store.list_objects(env.bucket).objects == []
    assert recovered(env) == [b"precious"]  # kept once, not again at release


@pytest.mark.parametrize(
    ("op", "exc", "expected"),
    [
        ("HeadObject", store_errors.AccessDenied("no"), errno.EACCES),
        ("HeadObject", store_errors.ServiceUnavailable("down"), errno.EIO),
        ("HeadObject", store_errors.RequestTimeout("slow"), errno.EIO),
        ("HeadObject", store_errors.NoSuchBucket("gone"), errno.ENOENT),
        ("ListObjectsV2", store_errors.ServiceUnavailable("down"), errno.EIO),
    ],
)
def test_failing_lookup_requests(env, op, exc, expected):
    env.store.fail_next(op, exc)
    with pytest.raises(Exception) as raised:
        env.fs.getattr("/some-name")
    assert errno_for(raised.value) == expected


def test_failing_list_in_readdir(env):
    env.put("d/x", b"1")
    env.fs.getattr("/d")
    env.store.fail_next("ListObjectsV2", store_errors.AccessDenied("no"))
    with pytest.raises(store_errors.AccessDenied) as raised:
        env.fs.readdir("/d")
    assert errno_for(raised.value) == errno.EACCES
    assert [e.name for e in env.fs.readdir("/d")] == ["x"]  # the failure was not cached


def test_failing_get(env):
    env.put("f", b"data")
    fh = env.fs.open("/f", os.O_RDONLY)
    env.store.fail_next("GetObject", store_errors.ServiceUnavailable("down"))
    with pytest.raises(Exception) as raised:
        env.fs.read("/f", fh, 0, 4)
    assert errno_for(raised.value) == errno.EIO
    assert env.fs.read("/f", fh, 0, 4) == b"data"
    env.fs.release("/f", fh)


def test_failing_delete_keeps_the_name(env):
    env.put("f", b"x")
    env.store.fail_next("DeleteObject", store_errors.AccessDenied("no"))
    with pytest.raises(store_errors.AccessDenied):
        env.fs.unlink("/f")
    assert env.fs.getattr("/f").size == 1
