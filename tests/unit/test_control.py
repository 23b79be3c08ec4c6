"""The control channel on a whole composition over MemoryStore (no kernel): stats,
upload state, presigned URLs by parameterised attribute names."""

import errno
import json
import os
from urllib.parse import parse_qs, urlsplit

import pytest

from mssfs.config import MountConfig, Source, UploadOptions
from mssfs.control import STATE_XATTR, STATS_XATTR, ControlFilesystem, url_xattr
from mssfs.errors import errno_for
from mssfs.mount import build


@pytest.fixture
def mounted(tmp_path):
    config = MountConfig(Source("bucket"), str(tmp_path), memory=True, upload=UploadOptions(
        staging_dir=str(tmp_path), recovery_dir=str(tmp_path / "recovery")))
    parts = build(config)
    fs = ControlFilesystem(parts.filesystem, parts.stats.snapshot)
    try:
        yield parts, fs
    finally:
        parts.filesystem.close()
        parts.close()


def write_file(fs, path, data, *, close=True):
    fh = fs.create(path, 0o644, os.O_WRONLY)
    fs.write(path, fh, 0, data)
    if close:
        fs.flush(path, fh)
        fs.release(path, fh)
    return fh


def failure(call):
    with pytest.raises(Exception) as caught:
        call()
    return errno_for(caught.value)


def test_stats_on_the_root_are_json_with_every_section(mounted):
    _, fs = mounted
    write_file(fs, "/a.txt", b"12345")
    snap = json.loads(fs.getxattr("/", STATS_XATTR))
    assert snap["requests"]["PutObject"] >= 1
    assert snap["bytes_sent"] >= 5
    assert snap["mount"]["source"] == "bucket" and snap["mount"]["endpoint"] == "memory"
    assert set(snap["cache"]) == {"metadata", "block", "disk"} and snap["cache"]["disk"] is None
    assert snap["uploads"]["files_dirty"] == 0 and snap["recovery"]["count"] == 0
    assert snap["memory"]["rss_bytes"] > 0
    assert failure(lambda: fs.getxattr("/a.txt", STATS_XATTR)) == errno.ENODATA


def test_state_follows_the_open_file(mounted):
    _, fs = mounted
    fh = write_file(fs, "/s.txt", b"data", close=False)
    assert fs.getxattr("/s.txt", STATE_XATTR) == b"dirty"
    stats = json.loads(fs.getxattr("/", STATS_XATTR))["uploads"]
    assert (stats["files_dirty"], stats["bytes_dirty"]) == (1, 4)
    fs.flush("/s.txt", fh)
    assert fs.getxattr("/s.txt", STATE_XATTR) == b"clean"
    fs.release("/s.txt", fh)
    assert fs.getxattr("/s.txt", STATE_XATTR) == b"clean"
    assert failure(lambda: fs.getxattr("/missing", STATE_XATTR)) == errno.ENOENT
    fs.mkdir("/d", 0o755)
    assert failure(lambda: fs.getxattr("/d", STATE_XATTR)) == errno.ENODATA


def test_url_names_carry_method_and_expiry(mounted):
    _, fs = mounted
    write_file(fs, "/u.txt", b"u")
    # MemoryStore's URLs: memory://BUCKET/KEY?method=M&expires=DEADLINE (its clock + s).
    url = urlsplit(fs.getxattr("/u.txt", url_xattr("GET", 120)).decode())
    query = parse_qs(url.query)
    assert (url.netloc, url.path, query["method"]) == ("bucket", "/u.txt", ["GET"])
    put = urlsplit(fs.getxattr("/", url_xattr("PUT", 60) + "/new.txt").decode())
    assert (put.path, parse_qs(put.query)["method"]) == ("/new.txt", ["PUT"])
    assert int(query["expires"][0]) - int(parse_qs(put.query)["expires"][0]) in (59, 60, 61)
    assert url_xattr("put", 60) not in fs.listxattr("/u.txt")


@pytest.mark.parametrize("name", ["user.mssfs.url.get.0", "user.mssfs.url.get.604801",
                                  "user.mssfs.url.post.60", "user.mssfs.url.get.x"])
def test_bad_url_names_are_einval(mounted, name):
    _, fs = mounted
    write_file(fs, "/b.txt", b"b")
    assert failure(lambda: fs.getxattr("/b.txt", name)) == errno.EINVAL


def test_no_get_url_for_a_missing_file_or_a_directory(mounted):
    _, fs = mounted
    fs.mkdir("/dir", 0o755)
    assert failure(lambda: fs.getxattr("/", url_xattr("GET", 60) + "/nope")) == errno.ENODATA
    assert failure(lambda: fs.getxattr("/dir", url_xattr("GET", 60))) == errno.ENODATA
    assert failure(lambda: fs.getxattr("/", url_xattr("PUT", 60) + "/dir")) == errno.ENODATA
    assert failure(lambda: fs.getxattr("/", url_xattr("PUT", 60) + "/..")) == errno.EINVAL


def test_other_calls_reach_the_filesystem(mounted):
    parts, fs = mounted
    write_file(fs, "/o.txt", b"other")
    assert fs.getattr("/o.txt").size == 5
    assert fs.getxattr("/o.txt", "user.mssfs.etag") == parts.filesystem.getxattr(
        "/o.txt", "user.mssfs.etag")


@pytest.mark.allow_warnings(r"upload of s3://bucket/f.txt failed")
def test_state_is_failed_after_a_failed_upload_even_once_closed(mounted):
    from mssfs.errors import UploadFailed
    from mssfs.store import errors as store_errors

    parts, fs = mounted
    write_file(fs, "/f.txt", b"first")
    fh = fs.open("/f.txt", os.O_WRONLY)
    fs.write("/f.txt", fh, 0, b"second")
    parts.store.fail_next("PutObject", store_errors.ServiceUnavailable("down"))
    with pytest.raises(UploadFailed):
        fs.flush("/f.txt", fh)
    assert fs.getxattr("/f.txt", STATE_XATTR) == b"failed"
    fs.release("/f.txt", fh)
    assert fs.getxattr("/f.txt", STATE_XATTR) == b"failed"
    snap = json.loads(fs.getxattr("/", STATS_XATTR))
    assert snap["recovery"]["count"] == 1 and snap["recovery"]["files"][0]["key"] == "f.txt"
    write_file(fs, "/f.txt", b"third")  # a later successful upload: clean again
    assert fs.getxattr("/f.txt", STATE_XATTR) == b"clean"
