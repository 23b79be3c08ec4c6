"""500 files through a mount whose S3 traffic crosses a faulty network (issue 5).

The mount talks to SeaweedFS through ``FaultProxy``, which answers 10% of requests with
503 SlowDown and resets 2% of connections (1% before the answer, 1% in the middle of
the answer's body, after the server did the work). 500 files of 0 to 50 MiB (many
small ones, some multi-part ones: about 1 GiB) are written through the mount, the
mount is remounted (so reads cannot come from the kernel's page cache), and every file
is read back through it and, bypassing the proxy, straight from SeaweedFS: all must be
byte-exact, none missing, none partial, no stray object. The counts are printed (run
with ``-s`` to see them) and checked against what the proxy injected.

One thing a client cannot avoid: when the answer to a CreateMultipartUpload is lost
after the server made the upload, the client never learns that upload's id; it retries,
completes the new one, and the first stays behind as an orphan (until ``mssfs mpu
abort --older-than`` or a lifecycle rule). The test allows exactly those orphans.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import pytest

from mssfs.faultproxy import FaultPlan, FaultProxy

MiB = 1024 * 1024
SEED = 20261125
PLAN = FaultPlan(error_rate=0.10, error_status=503, reset_rate=0.01, reset_body_rate=0.01,
                 seed=SEED)


def planned_sizes() -> list[int]:
    """500 sizes, skewed: 430 small (10 empty), 50 of 1-12 MiB, 20 of 20-50 MiB, plus the
    edges of the 8 MiB part size; about 1 GiB in all."""
    rng = random.Random(SEED)
    sizes = [0] * 10 + [8 * MiB, 8 * MiB + 1, 8 * MiB - 1, 16 * MiB]
    sizes += [rng.randint(1, 256 * 1024) for _ in range(416)]
    sizes += [rng.randint(1 * MiB, 12 * MiB) for _ in range(50)]
    sizes += [rng.randint(20 * MiB, 50 * MiB) for _ in range(19)] + [50 * MiB]
    rng.shuffle(sizes)
    assert len(sizes) == 500
    return sizes


def content(index: int, size: int) -> bytes:
    return random.Random(SEED * 1000 + index).randbytes(size)


def name_of(index: int) -> str:
    return f"d{index % 7}/file-{index:03d}.bin"


@pytest.fixture
def proxy(seaweed):
    with FaultProxy(seaweed.endpoint, PLAN) as running:
        yield running


def write_one(root, index: int, size: int) -> str:
    data = content(index, size)
    with open(root / name_of(index), "wb") as handle:
        for pos in range(0, size, MiB):
            handle.write(data[pos:pos + MiB])
    return hashlib.sha256(data).hexdigest()


def read_one(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(4 * MiB):
            digest.update(piece)
    return digest.hexdigest()


def mount_stats(mounter, mnt) -> dict:
    done = mounter.run("stats", "--json", str(mnt.path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def retries_of(stats: dict) -> int:
    found = [v for k, v in _walk(stats) if k == "retries"]
    assert found, f"no retry count in mssfs stats: {sorted(stats)}"
    return int(found[0])


def _walk(tree):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _walk(value)
        else:
            yield key, value


@pytest.mark.timeout(600)
def test_500_files_survive_503s_and_resets(mounter, new_bucket, s3, proxy):
    bucket = new_bucket()
    sizes = planned_sizes()
    mnt = mounter.mount(bucket, "--endpoint", proxy.endpoint)
    for d in range(7):
        (mnt.path / f"d{d}").mkdir()
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda i: write_one(mnt.path, i, sizes[i]), range(500)))
    write_retries = retries_of(mount_stats(mounter, mnt))
    mounter.umount(mnt)

    # Straight from SeaweedFS: exactly the 500 objects (+ 7 markers), whole, byte-exact.
    listed, token = {}, None
    while True:
        page = s3.list_objects(bucket, continuation_token=token)
        listed.update({o.key: o.size for o in page.objects})
        token = page.next_token
        if token is None:
            break
    expected = {name_of(i): sizes[i] for i in range(500)}
    assert {k: v for k, v in listed.items() if not k.endswith("/")} == expected
    # An upload whose CreateMultipartUpload answer was lost (the server made it, the
    # client never learned its id) is the only kind the mount may leave behind: it
    # retried the creation and used the new one. `mssfs mpu abort` clears such orphans.
    lost_creates = [unquote(target.split("?")[0].split("/", 2)[2])
                    for method, target in proxy.answers_lost()
                    if method == "POST" and re.search(r"[?&]uploads(=|&|$)", target)]
    orphans = [u.key for u in s3.list_multipart_uploads(bucket)]
    assert sorted(orphans) == sorted(lost_creates), (orphans, lost_creates)

    def stored_digest(index: int) -> str:
        return hashlib.sha256(s3.get_object(bucket, name_of(index)).data).hexdigest()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(stored_digest, range(500))) == digests

    # Through a fresh mount, still through the faults.
    again = mounter.mount(bucket, "--endpoint", proxy.endpoint)
    with ThreadPoolExecutor(4) as pool:
        read = list(pool.map(lambda i: read_one(again.path / name_of(i)), range(500)))
    assert read == digests
    read_retries = retries_of(mount_stats(mounter, again))
    mounter.umount(again)

    injected = proxy.injected()
    total = sum(sizes)
    orphan_note = f", {len(orphans)} orphaned upload(s) from lost Create answers"
    print(f"\nfaults: {len(sizes)} files, {total} bytes ({total / MiB:.0f} MiB), "
          f"{proxy.counts['requests']} requests through the proxy, injected {injected}, "
          f"retries: {write_retries} writing + {read_retries} reading{orphan_note}")
    assert injected.get("error", 0) > 0 and injected.get("reset", 0) > 0
    assert write_retries > 0 and read_retries > 0
    # Every injected fault cost the client one failed attempt, which it retried (the
    # pre-flight check of each mount is a separate client, hence <=).
    assert write_retries + read_retries <= sum(injected.values())
