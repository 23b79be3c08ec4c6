"""The mount process's life: foreground mode, signals, uploads finished on the way out, logs."""

import os
import signal
import subprocess
import sys

import pytest
from fuse_mounts import Mount, force_unmount, is_mounted, pid_alive, poll

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_foreground_mount_stops_cleanly_on_a_signal(mounter, bucket, s3, tmp_path, signum):
    path = tmp_path / "mnt"
    path.mkdir()
    log = tmp_path / "log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mssfs", "mount", bucket, str(path), "-f", "--log-file", str(log)],
        env=mounter.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mount = Mount(path, log, proc.pid, bucket)
    try:
        poll(lambda: is_mounted(path) or proc.poll() is not None, timeout=60)
        assert is_mounted(path), proc.communicate(timeout=10)
        (path / f"{signum.name}.txt").write_bytes(b"written before the signal")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert b"Traceback" not in err and not is_mounted(path)
        assert s3.get_object(bucket, f"{signum.name}.txt").data == b"written before the signal"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        force_unmount(mount)


def test_sigterm_uploads_a_file_still_open(mounter, bucket, s3):
    mount = mounter.mount(bucket, options="")
    data = os.urandom(20 * MiB + 5)
    handle = open(mount / "open-at-exit.bin", "wb")  # noqa: SIM115 (kept open on purpose)
    try:
        handle.write(data)
        handle.flush()  # in the kernel now, not yet closed
        os.kill(mount.pid, signal.SIGTERM)
        poll(lambda: not pid_alive(mount.pid), timeout=120)
    finally:
        try:
            handle.close()
        except OSError:
            pass  # the mount is gone: ENOTCONN is the expected answer
    assert not is_mounted(mount.path)
    assert s3.get_object(bucket, "open-at-exit.bin").data == data
    assert "Traceback" not in mount.log.read_text()


def test_debug_logs_requests_and_never_the_secret(mounter, bucket, seaweed):
    mount = mounter.mount(bucket, "--debug", options="")
    (mount / "dbg.txt").write_text("debug me")
    assert (mount / "dbg.txt").read_text() == "debug me"
    os.listdir(mount.path)
    mounter.umount(mount)
    text = mount.log.read_text()
    assert "PutObject" in text or "PUT" in text
    assert "ListObjects" in text or "GET" in text
    assert seaweed.secret_key not in text
    assert "Traceback" not in text


def test_umount_while_a_file_is_open_is_busy_then_works(mounter, bucket):
    mount = mounter.mount(bucket, options="")
    handle = open(mount / "busy.txt", "w")  # noqa: SIM115 (kept open on purpose)
    try:
        done = mounter.run("umount", str(mount.path))
        assert done.returncode == 1 and "is busy" in done.stderr
        assert is_mounted(mount.path)
    finally:
        handle.close()
    mounter.umount(mount)


def test_read_only_mount_refuses_changes(mounter, bucket, s3):
    s3.put_object(bucket, "ro.txt", b"keep")
    mount = mounter.mount(bucket, options="ro")
    assert (mount / "ro.txt").read_bytes() == b"keep"
    for change in (lambda: (mount / "ro.txt").write_bytes(b"x"),
                   lambda: os.mkdir(mount / "d"),
                   lambda: os.unlink(mount / "ro.txt")):
        with pytest.raises(OSError) as caught:
            change()
        assert caught.value.errno == 30  # EROFS
    mounter.umount(mount)
    assert s3.get_object(bucket, "ro.txt").data == b"keep"


def test_dead_mount_is_reported_then_cleared_by_umount(mounter, bucket):
    mount = mounter.mount(bucket, options="")
    os.kill(mount.pid, signal.SIGKILL)
    poll(lambda: not pid_alive(mount.pid), timeout=30)
    done = mounter.run("mount", bucket, str(mount.path))
    assert done.returncode == 1
    assert "fusermount3 -u" in done.stderr and done.stderr.count("\n") == 1
    mounter.umount(mount)
    again = mounter.mount(bucket, options="")
    assert os.listdir(again.path) is not None
    mounter.umount(again)
