"""Crash safety (issue 5 §3): a killed mount never leaves a partial object behind.

SIGKILL during a large streamed write: the object keeps its previous bytes (a multipart
upload is invisible until completed), and the orphaned upload is listed and aborted by
``mssfs mpu list|abort``. SIGTERM while an application still holds a written file open:
the mount uploads it before it exits. The writers are subprocesses, so a dead mount
cannot wedge the test process; every mount is undone by ``force_unmount``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from fuse_mounts import force_unmount, is_mounted, pid_alive, poll

from mssfs.store.errors import NotFound

MiB = 1024 * 1024

# Writes random data in 1 MiB pieces until killed or failing (the mount died).
ENDLESS_WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
piece = os.urandom(1 << 20)
try:
    for _ in range(2000):
        os.write(fd, piece)
except OSError as exc:
    print(exc.errno, flush=True)
"""

# Writes N seeded bytes, says so, and keeps the file open until stdin closes.
HOLDING_WRITER = """
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
data = random.Random(5).randbytes(int(sys.argv[2]))
for pos in range(0, len(data), 1 << 20):
    os.write(fd, data[pos:pos + (1 << 20)])
print("written", flush=True)
sys.stdin.read()
"""

# Writes 1000 bytes to a new file, says so, and closes it when told: the errno of close.
SMALL_WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"x" * 1000)
print("written", flush=True)
sys.stdin.readline()
try:
    os.close(fd)
    print("closed", flush=True)
except OSError as exc:
    print(exc.errno, flush=True)
"""


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=60)


@pytest.mark.timeout(300)
def test_sigkill_during_a_large_write_leaves_the_previous_object(mounter, s3, bucket,
                                                                 tmp_path):
    old = os.urandom(3 * MiB + 5)
    s3.put_object(bucket, "big", old)
    old_etag = s3.head_object(bucket, "big").etag
    # The killed mount cannot delete its staging file: keep it in this test's directory.
    staging = tmp_path / "staging"
    mnt = mounter.mount(bucket, options=f"staging_dir={staging}")
    writer = subprocess.Popen([sys.executable, "-c", ENDLESS_WRITER, str(mnt / "big")],
                              stdout=subprocess.PIPE, text=True)
    try:
        # The streamed upload has begun and sent parts: kill the mount mid-way.
        poll(lambda: [u for u in s3.list_multipart_uploads(bucket) if u.key == "big"],
             timeout=120)
        os.kill(mnt.pid, signal.SIGKILL)
        poll(lambda: not pid_alive(mnt.pid), timeout=30)
        writer.wait(timeout=60)
    finally:
        stop(writer)
        force_unmount(mnt)
    assert not is_mounted(mnt.path)

    got = s3.get_object(bucket, "big")
    assert got.data == old and got.etag == old_etag  # never a partial object
    # What the writer wrote is still on local disk, in the staging file.
    (left,) = staging.iterdir()
    staged = left.read_bytes()
    assert len(staged) > 0

    # The next mount moves it into the recovery folder (a staging file younger than a
    # few seconds might be a live mount's: age it, as a later restart would find it).
    past = time.time() - 60
    os.utime(left, (past, past))
    recovery = tmp_path / "recovery"
    again = mounter.mount(bucket, options=f"staging_dir={staging},recovery_dir={recovery}")
    mounter.umount(again)
    assert list(staging.iterdir()) == []
    (kept,) = recovery.iterdir()
    assert kept.read_bytes() == staged and "big" in kept.name

    orphans = [u for u in s3.list_multipart_uploads(bucket) if u.key == "big"]
    assert len(orphans) == 1
    listed = mounter.run("mpu", "list", bucket)
    assert listed.returncode == 0, listed.stderr
    assert "big" in listed.stdout and orphans[0].upload_id in listed.stdout
    aborted = mounter.run("mpu", "abort", "--yes", bucket)
    assert aborted.returncode == 0, aborted.stderr
    assert s3.list_multipart_uploads(bucket) == []
    assert s3.get_object(bucket, "big").data == old


@pytest.mark.timeout(300)
def test_sigterm_uploads_a_file_still_open_before_exiting(mounter, s3, bucket):
    s3.put_object(bucket, "held", b"previous")
    size = 20 * MiB + 123  # three parts of 8 MiB: a streamed multipart upload
    expected = random.Random(5).randbytes(size)
    mnt = mounter.mount(bucket, options="")
    writer = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(mnt / "held"),
                               str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        os.kill(mnt.pid, signal.SIGTERM)
        poll(lambda: not pid_alive(mnt.pid), timeout=120)
    finally:
        stop(writer)
        force_unmount(mnt)
    got = s3.get_object(bucket, "held").data
    assert len(got) == size and got == expected
    assert s3.list_multipart_uploads(bucket) == []


@pytest.mark.timeout(300)
def test_sigkill_with_a_large_new_file_open_keeps_all_but_its_last_mib(mounter, bucket,
                                                                      tmp_path):
    # Appends to a new file reach its staging file with O_DIRECT from a buffer (tail.py),
    # at least every MiB: a killed mount leaves all but the last unflushed bytes there.
    staging = tmp_path / "staging"
    size = 20 * MiB + 12345  # two parts streamed, the third still being written
    expected = random.Random(5).randbytes(size)
    mnt = mounter.mount(bucket, options=f"staging_dir={staging}")
    writer = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(mnt / "large"),
                               str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        stats = json.loads(mounter.run("stats", "--json", str(mnt.path)).stdout)
        assert stats["staging"]["direct"] and stats["staging"]["direct_bytes"] > 0
        os.kill(mnt.pid, signal.SIGKILL)
        poll(lambda: not pid_alive(mnt.pid), timeout=30)
    finally:
        stop(writer)
        force_unmount(mnt)
    (left,) = staging.iterdir()
    staged = left.read_bytes()
    assert expected.startswith(staged) and size - len(staged) < MiB + 4096


@pytest.mark.timeout(300)
def test_sigkill_with_a_small_new_file_open_fails_its_close(mounter, s3, bucket, tmp_path):
    # A small new file is staged in memory (stage.py): the killed mount loses it, and the
    # writer learns it from close, with its bytes still in hand.
    staging = tmp_path / "staging"
    staging.mkdir()
    mnt = mounter.mount(bucket, options=f"staging_dir={staging}")
    writer = subprocess.Popen([sys.executable, "-c", SMALL_WRITER, str(mnt / "small")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        assert list(staging.iterdir()) == []  # in memory, not in a staging file
        os.kill(mnt.pid, signal.SIGKILL)
        poll(lambda: not pid_alive(mnt.pid), timeout=30)
        writer.stdin.write("close\n")
        writer.stdin.flush()
        # The kernel answers requests of an aborted connection with ECONNABORTED
        # (older kernels: ENOTCONN).
        assert int(writer.stdout.readline()) in (errno.ECONNABORTED, errno.ENOTCONN)
    finally:
        stop(writer)
        force_unmount(mnt)
    with pytest.raises(NotFound):
        s3.head_object(bucket, "small")
