"""The secret key never shows (issue 5 §6): a ``--debug`` mount runs a workload of reads,
writes, failures and a refused mount, and every log line, every message a command or a
failing call printed, the recovery folder's names and the mount process's argv and
environment are searched for the secret. None holds it.

Failures come from a ``FaultProxy`` that answers every PUT with 503 (uploads fail for
good after one retry, so their bytes go to the recovery folder), from missing files,
and from a mount refused for a wrong secret (which must not echo the wrong one either).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mssfs.faultproxy import FaultPlan, FaultProxy


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


def all_text(paths) -> str:
    return "\n".join(Path(p).read_text(errors="replace") for p in paths if Path(p).exists())


@pytest.mark.timeout(300)
@pytest.mark.allow_warnings
def test_the_secret_appears_nowhere(mounter, seaweed, s3, bucket, tmp_path):
    secret = seaweed.secret_key
    assert len(secret) >= 20
    said: list[str] = []  # everything commands and failing calls told the user

    s3.put_object(bucket, "present.txt", b"readable")
    with FaultProxy(seaweed.endpoint) as proxy:
        mnt = mounter.mount(bucket, "--debug", "--endpoint", proxy.endpoint,
                            options="retries=1,retry_time=5s")
        # Reads, listings, writes that succeed.
        assert (mnt / "present.txt").read_bytes() == b"readable"
        (mnt / "written.txt").write_bytes(b"written through the mount")
        os.mkdir(mnt / "dir")
        said.append(repr(os.listdir(mnt.path)))
        # Failures: a missing file, and uploads refused by the server.
        for call in ((mnt / "missing.txt").read_bytes,
                     lambda: os.rmdir(mnt / "no-such-dir")):
            with pytest.raises(OSError) as info:
                call()
            said.append(str(info.value))
        proxy.set_plan(FaultPlan(error_rate=1.0, methods=frozenset({"PUT"})))
        with pytest.raises(OSError) as info:
            (mnt / "lost.txt").write_bytes(b"kept in the recovery folder")
        assert info.value.errno == errno.EIO
        said.append(str(info.value))
        proxy.set_plan(FaultPlan())
        # What the user can print about the mount.
        for argv in (["stats", str(mnt.path)], ["stats", "--json", str(mnt.path)],
                     ["mpu", "list", bucket]):
            done = mounter.run(*argv)
            said += [done.stdout, done.stderr]
        # The mount process: argv and environment.
        with open(f"/proc/{mnt.pid}/cmdline", "rb") as handle:
            said.append(handle.read().decode(errors="replace"))
        with open(f"/proc/{mnt.pid}/environ", "rb") as handle:
            environ = handle.read().decode(errors="replace")
        mounter.umount(mnt)

    # A mount refused for a wrong secret, with --debug and a log file.
    wrong = "Wr0ng-" + secret[::-1]
    refused_log = tmp_path / "refused.log"
    (tmp_path / "mnt").mkdir()
    done = mounter.run("mount", bucket, str(tmp_path / "mnt"), "--debug", "--log-file",
                       str(refused_log), env={**mounter.env, "MSS_SECRET_ACCESS_KEY": wrong})
    assert done.returncode != 0
    said += [done.stdout, done.stderr]

    logs = all_text([mnt.log, refused_log])
    assert "GetObject" in logs and "PutObject" in logs  # --debug logged the requests
    recovery = mounter.runtime / "data" / "mssfs" / "recovery"
    names = [p.name for p in recovery.iterdir()]
    assert any("lost.txt" in name for name in names)

    haystacks = {"logs": logs, "messages": "\n".join(said), "recovery names": "\n".join(names)}
    for where, text in haystacks.items():
        assert secret not in text, f"the secret key is in the {where}"
        assert wrong not in text and wrong[6:] not in text, f"the wrong secret is in the {where}"
    assert secret not in environ, "the secret key is in the mount process's environment"
