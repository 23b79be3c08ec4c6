"""``mssfs url``, ``mssfs stats``, ``user.mssfs.state`` and ``mssfs mpu`` on a real mount.

One mount is shared by the module's tests (the e2e tier stays fast); each test uses its
own file names. URLs are fetched with plain ``curl``, as a user would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuse_mounts import poll

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


@pytest.fixture(scope="module")
def mount(mounter, bucket):
    return mounter.mount(bucket)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", *args],
                          capture_output=True, timeout=60, check=False)


def split(done: subprocess.CompletedProcess) -> tuple[bytes, str]:
    body, _, status = done.stdout.rpartition(b"\n")
    return body, status.decode()


def stats(mounter, mount) -> dict:
    done = mounter.run("stats", str(mount.path), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_url_get_with_curl_returns_the_bytes(mounter, mount):
    data = os.urandom(100_000)
    (mount / "shared.bin").write_bytes(data)
    done = mounter.run("url", str(mount / "shared.bin"), "--expires", "600")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith("http") and "X-Amz-Signature=" in url
    body, status = split(curl(url))
    assert status == "200" and body == data


def test_url_put_with_curl_stores_the_bytes(mounter, mount, bucket, s3, tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(b"uploaded with curl\n")
    done = mounter.run("url", str(mount / "via-put.txt"), "--method", "PUT")
    assert done.returncode == 0, done.stderr
    _, status = split(curl("-T", str(payload), done.stdout.strip()))
    assert status == "200"
    assert s3.get_object(bucket, "via-put.txt").data == b"uploaded with curl\n"
    assert poll(lambda: (mount / "via-put.txt").exists(), timeout=10)


def test_url_is_refused_after_expiry(mounter, mount):
    (mount / "short.txt").write_text("brief")
    done = mounter.run("url", str(mount / "short.txt"), "--expires", "1")
    url = done.stdout.strip()
    poll(lambda: split(curl(url))[1] == "403", timeout=30, interval=0.5)


def test_url_attribute_default_and_bad_requests(mounter, mount):
    (mount / "attr.txt").write_text("attr")
    url = os.getxattr(mount / "attr.txt", "user.mssfs.url").decode()
    assert split(curl(url)) == (b"attr", "200")
    assert "user.mssfs.url.get.60" not in os.listxattr(mount / "attr.txt")
    done = mounter.run("url", str(mount / "attr.txt"), "--expires", "999999")
    assert done.returncode == 1 and "7 days" in done.stderr
    done = mounter.run("url", str(mount / "missing.txt"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    done = mounter.run("url", "/tmp")
    assert done.returncode == 1 and "not a file on an mssfs mount" in done.stderr


def test_state_goes_dirty_then_clean_around_write_and_close(mount):
    path = mount / "state.txt"
    path.write_text("first")
    assert os.getxattr(path, "user.mssfs.state") == b"clean"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b" and more")
        assert os.getxattr(path, "user.mssfs.state") == b"dirty"
    finally:
        os.close(fd)
    assert os.getxattr(path, "user.mssfs.state") == b"clean"
    assert path.read_text() == "first and more"


def test_stats_counters_move_after_a_known_workload(mounter, mount):
    before = stats(mounter, mount)
    (mount / "a-dir").mkdir()  # an empty marker: its answer carries no CRC32
    data = os.urandom(3 * MiB)
    (mount / "counted.bin").write_bytes(data)
    assert (mount / "counted.bin").read_bytes() == data
    after = stats(mounter, mount)
    sent = after["bytes_sent"] - before["bytes_sent"]
    received = after["bytes_received"] - before["bytes_received"]
    assert sent >= len(data) and received >= len(data)
    puts = sum(after["requests"].get(op, 0) - before["requests"].get(op, 0)
               for op in ("PutObject", "UploadPart"))
    assert puts >= 1
    assert after["requests"].get("GetObject", 0) > before["requests"].get("GetObject", 0)
    assert after["uploads"]["bytes_uploaded"] - before["uploads"]["bytes_uploaded"] >= len(data)
    assert after["memory"]["rss_bytes"] > 0
    assert after["mount"]["mountpoint"] == str(mount.path)
    assert {"metadata", "block", "disk"} <= set(after["cache"])
    assert after["recovery"]["count"] == 0
    # SeaweedFS repeats the CRC32 of what it received: the default stays on CRC32.
    assert after["uploads"]["checksum"] == "crc32"
    text = mounter.run("stats", str(mount.path))
    assert text.returncode == 0 and "requests" in text.stdout and "PutObject" in text.stdout
    assert "checked by CRC32" in text.stdout


def test_mpu_list_and_abort_orphaned_uploads(mounter, mount, bucket, s3):
    upload_id = s3.create_multipart_upload(bucket, "orphan.bin")
    done = mounter.run("mpu", "list", bucket)
    assert done.returncode == 0 and "orphan.bin" in done.stdout and upload_id in done.stdout
    done = mounter.run("mpu", "list", str(mount.path), "--older-than", "1h")
    assert done.returncode == 0 and "orphan.bin" not in done.stdout
    done = mounter.run("mpu", "abort", str(mount.path))
    assert done.returncode == 1 and "--yes" in done.stderr
    done = mounter.run("mpu", "abort", str(mount.path), "--yes")
    assert done.returncode == 0, done.stderr
    assert "aborted 1 of 1" in done.stderr
    assert s3.list_multipart_uploads(bucket) == []


def test_mount_aborts_uploads_older_than_the_threshold(mounter, new_bucket, s3):
    bucket = new_bucket()
    s3.create_multipart_upload(bucket, "stale.bin")
    mount = mounter.mount(bucket, options="abort_uploads_older_than=0s")
    assert s3.list_multipart_uploads(bucket) == []
    assert "aborted 1 multipart uploads" in mount.log.read_text()
    mounter.umount(mount)


def test_the_mount_process_environment_holds_no_secret(mount, seaweed):
    environ = Path(f"/proc/{mount.pid}/environ").read_bytes()
    assert b"MSS_ACCESS_KEY_ID=" + seaweed.access_key.encode() in environ  # not a secret
    assert seaweed.secret_key.encode() not in environ


def test_umount_waits_for_a_running_upload_and_shows_what_is_left(mounter, new_bucket, s3,
                                                                   seaweed):
    """Every PUT stalls at the proxy until the test lifts the stall: the upload of a
    closed file is running when ``mssfs umount`` starts, so it must wait and say why."""
    import threading

    from mssfs.faultproxy import FaultPlan, FaultProxy

    bucket = new_bucket()
    data = os.urandom(MiB)
    stall = FaultPlan(stall_rate=1.0, stall_seconds=0.5, methods=frozenset({"PUT"}))
    with FaultProxy(seaweed.endpoint, stall) as proxy:
        mount = mounter.mount(bucket, "--endpoint", proxy.endpoint,
                              options="retries=100,timeout=5s")
        closed = []
        writer = threading.Thread(
            target=lambda: closed.append((mount / "slow.bin").write_bytes(data)))
        writer.start()
        try:
            poll(lambda: stats(mounter, mount)["uploads"]["files_uploading"] == 1, timeout=30)
            assert os.getxattr(mount / "slow.bin", "user.mssfs.state") == b"uploading"
            umount = subprocess.Popen(
                [sys.executable, "-m", "mssfs", "umount", str(mount.path)], env=mounter.env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first = umount.stderr.readline()
            assert "uploading before unmount: 1 files, 1.0 MiB left" in first
            proxy.set_plan(FaultPlan())  # the server is reachable again
            _, rest = umount.communicate(timeout=120)
        finally:
            proxy.set_plan(FaultPlan())
            writer.join(timeout=120)
        assert umount.returncode == 0, rest
        assert "uploads finished" in rest
    assert closed == [len(data)]
    assert s3.get_object(bucket, "slow.bin").data == data


def test_a_reread_of_an_unchanged_file_comes_from_the_page_cache(mounter, mount, s3, bucket):
    # Larger than the mount's block cache (64 MiB): only the kernel can serve a re-read.
    data = os.urandom(80 * MiB)
    s3.put_object(bucket, "reread.bin", data)
    path = mount / "reread.bin"
    poll(lambda: path.exists())
    assert path.read_bytes() == data
    before = stats(mounter, mount)
    assert path.read_bytes() == data  # same ETag at open: the pages are kept
    after = stats(mounter, mount)
    assert after["bytes_received"] == before["bytes_received"]
    assert after["requests"].get("GetObject", 0) == before["requests"].get("GetObject", 0)
    # Another client overwrites it: once the stat TTL has passed, open sees the new
    # ETag and the kernel drops the old pages (never stale bytes).
    changed = os.urandom(80 * MiB)
    s3.put_object(bucket, "reread.bin", changed)
    poll(lambda: path.read_bytes() == changed)
