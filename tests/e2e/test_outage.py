"""Outages (issue 5 §4): the S3 server stops answering for 20 s in the middle of I/O.

The outage is real: the session's SeaweedFS process (``weed`` itself, not the
``timeout`` wrapper that devserver starts it under) is frozen with SIGSTOP, so its
sockets still accept connections (the kernel's backlog) but nothing answers, exactly
like a hung server; SIGCONT ends it (and a ``finally`` always sends it, so a failing
test never leaves the server frozen for the tests after it).

- Within the retry budget (``-o timeout=5s``, the default ``retry_time`` of 60 s): a
  write and a read that were in flight when the server froze finish, byte-exact, once
  it returns; their attempts time out meanwhile and are retried.
- Beyond it (``-o retry_time=6s``): the write's ``close`` and the read fail with EIO
  in bounded time
  (a subprocess with a timeout is the hang detector), the written bytes are in the
  recovery folder, and the mount works again once the server is back.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from fuse_mounts import FAST_TTLS

MiB = 1024 * 1024
OUTAGE = 20.0

# Writes half of N seeded bytes, says "half", waits for a line, writes the rest, closes.
WRITER = """
import errno, os, random, sys
data = random.Random(11).randbytes(int(sys.argv[2]))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
half = len(data) // 2
for pos in range(0, half, 1 << 20):
    os.write(fd, data[pos:min(pos + (1 << 20), half)])
print("half", flush=True)
sys.stdin.readline()
try:
    for pos in range(half, len(data), 1 << 20):
        os.write(fd, data[pos:pos + (1 << 20)])
    os.close(fd)
    print("ok", flush=True)
except OSError as exc:
    print(errno.errorcode[exc.errno], flush=True)
"""

READER = """
import errno, hashlib, sys
try:
    with open(sys.argv[1], "rb") as handle:
        print(hashlib.sha256(handle.read()).hexdigest(), flush=True)
except OSError as exc:
    print(errno.errorcode[exc.errno], flush=True)
"""

# The short-budget case: create+write+close one file, then read another; report errnos.
FAILING_IO = """
import errno, json, sys
result = {}
try:
    with open(sys.argv[1], "wb") as handle:
        handle.write(b"precious bytes, kept when the upload fails")
    result["write"] = "ok"
except OSError as exc:
    result["write"] = errno.errorcode[exc.errno]
try:
    with open(sys.argv[2], "rb") as handle:
        handle.read()
    result["read"] = "ok"
except OSError as exc:
    result["read"] = errno.errorcode[exc.errno]
print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


@contextmanager
def frozen(seaweed):
    """The S3 server stopped (SIGSTOP) for the duration of the block."""
    pid = server_pid(seaweed)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def server_pid(seaweed) -> int:
    """The ``weed`` process itself (devserver runs it under ``timeout``, its parent)."""
    pid = seaweed.pid
    assert pid, "the outage tests need the local SeaweedFS (a process to stop)"
    while True:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if os.path.basename(handle.read().split(b"\0")[0]) == b"weed":
                return pid
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = handle.read().split()
        assert len(children) == 1, f"cannot find the weed process under {pid}"
        pid = int(children[0])


def python(script: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], text=True,
                            stdout=subprocess.PIPE, **popen)


def finish(process: subprocess.Popen, timeout: float = 180) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    return out.strip()


@pytest.mark.timeout(400)
def test_io_in_flight_rides_out_an_outage_shorter_than_the_budget(mounter, seaweed, s3, bucket):
    before = os.urandom(24 * MiB)
    s3.put_object(bucket, "before.bin", before)
    size = 40 * MiB + 7
    mnt = mounter.mount(bucket, options=FAST_TTLS + ",timeout=5s")
    writer = python(WRITER, str(mnt / "during.bin"), str(size), stdin=subprocess.PIPE)
    reader = None
    try:
        assert writer.stdout.readline().strip() == "half"
        with frozen(seaweed):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            reader = python(READER, str(mnt / "before.bin"))
            time.sleep(OUTAGE)  # the outage itself: the server is frozen this long
        assert finish(writer).splitlines()[-1] == "ok"
        assert finish(reader) == hashlib.sha256(before).hexdigest()
    finally:
        for process in (writer, reader):
            if process is not None and process.poll() is None:
                process.kill()
    expected = random.Random(11).randbytes(size)
    assert s3.get_object(bucket, "during.bin").data == expected
    assert (mnt / "during.bin").read_bytes() == expected
    assert s3.list_multipart_uploads(bucket) == []
    # The frozen server made attempts time out, and they were retried.
    stats = mounter.run("stats", "--json", str(mnt.path))
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["retries"] > 0, stats.stdout
    # Still a working mount.
    (mnt / "after.txt").write_bytes(b"after the outage")
    assert s3.get_object(bucket, "after.txt").data == b"after the outage"
    mounter.umount(mnt)


@pytest.mark.timeout(400)
@pytest.mark.allow_warnings
def test_an_outage_longer_than_the_budget_fails_with_eio_and_loses_nothing(
        mounter, seaweed, s3, bucket):
    cold = os.urandom(5 * MiB)
    s3.put_object(bucket, "cold.bin", cold)
    # Default cache times: the listing below answers the lookups during the outage, so
    # what fails is the upload and the read themselves.
    # retry_time alone bounds the failure: each attempt's timeouts are capped by what is
    # left of the budget.
    mnt = mounter.mount(bucket, options="retry_time=6s")
    assert "cold.bin" in os.listdir(mnt.path)
    started = time.monotonic()
    with frozen(seaweed):
        try:
            done = subprocess.run(
                [sys.executable, "-c", FAILING_IO, str(mnt / "lost.txt"), str(mnt / "cold.bin")],
                capture_output=True, text=True, timeout=OUTAGE * 4)
        finally:
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
    result = json.loads(done.stdout)
    # A failed upload is EIO at close; a read the server never answered is EIO too.
    assert result == {"write": "EIO", "read": "EIO"}, result

    # Nothing lost: the bytes are in the recovery folder, named after the object.
    recovery = mounter.runtime / "data" / "mssfs" / "recovery"
    saved = [p for p in recovery.iterdir() if "lost.txt" in p.name and bucket in p.name]
    assert len(saved) == 1
    assert saved[0].read_bytes() == b"precious bytes, kept when the upload fails"

    # The mount works again now that the server is back.
    assert (mnt / "cold.bin").read_bytes() == cold
    (mnt / "lost.txt").write_bytes(b"second try")
    assert s3.get_object(bucket, "lost.txt").data == b"second try"
    mounter.umount(mnt)
