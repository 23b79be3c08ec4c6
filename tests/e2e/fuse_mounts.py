"""Real FUSE mounts of ``python -m mssfs mount`` for the end-to-end tests, and their undoing.

``Mounter`` runs the command as a user would (daemon mode: it returns once the mount is
ready), with credentials in the environment only. Every mount it makes is undone by
``cleanup`` even when the test failed: ``fusermount3 -u``, then ``-uz`` as a last
resort, then the mount process is killed by its own pid (read from the pid file the
mount writes in the private runtime directory of this test run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

# Short caches so out-of-band changes show within a test's patience.
FAST_TTLS = "stat_ttl=1s,dir_ttl=1s,negative_ttl=1s,attr_timeout=0,entry_timeout=0"


def poll(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Call ``predicate`` until it returns a true value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def is_mounted(path: str | os.PathLike[str]) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == target for line in handle)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Mount:
    def __init__(self, path: Path, log: Path, pid: int | None, source: str | None) -> None:
        self.path, self.log, self.pid, self.source = path, log, pid, source

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)


class Mounter:
    """Runs ``mssfs mount`` / ``umount`` and undoes every mount it made."""

    def __init__(self, server, workdir: Path) -> None:
        self.workdir = workdir
        self.runtime = workdir / "run"
        self.env = clean_env(server, self.runtime)
        self.mounts: list[Mount] = []

    def run(self, *args: str, env: dict | None = None, timeout: float = 90.0):
        return subprocess.run(
            [sys.executable, "-m", "mssfs", *args], env=env or self.env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def mount(self, source: str | None, *args: str, options: str = FAST_TTLS) -> Mount:
        path = self.workdir / f"mnt-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        log = self.workdir / f"{path.name}.log"
        argv = ["mount", *([source] if source else []), str(path), "--log-file", str(log)]
        argv += [*(["-o", options] if options else []), *args]
        done = self.run(*argv)
        assert done.returncode == 0, f"mount failed: {done.stderr}\n{tail(log)}"
        assert is_mounted(path)
        mount = Mount(path, log, self.pid_of(path), source)
        self.mounts.append(mount)
        assert mount.pid is not None, "the mount wrote no pid file"
        return mount

    def pid_of(self, path: Path) -> int | None:
        from mssfs.mount import pidfile_for

        try:
            pidfile = pidfile_for(str(path), str(self.runtime / "mssfs"))
            return int(Path(pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def umount(self, mount: Mount) -> None:
        done = self.run("umount", str(mount.path))
        assert done.returncode == 0, f"umount failed: {done.stderr}\n{tail(mount.log)}"
        assert not is_mounted(mount.path)
        if mount.pid is not None:
            assert not pid_alive(mount.pid)

    def cleanup(self) -> None:
        for mount in self.mounts:
            force_unmount(mount)


def force_unmount(mount: Mount) -> None:
    """Unmount whatever the state: ``-u`` (retried while busy), ``-uz``, then kill by pid."""
    deadline = time.monotonic() + 5
    while is_mounted(mount.path) and time.monotonic() < deadline:
        done = subprocess.run(["fusermount3", "-u", str(mount.path)], capture_output=True,
                              timeout=60, check=False)
        if done.returncode != 0:
            time.sleep(0.2)
    if is_mounted(mount.path):
        subprocess.run(["fusermount3", "-uz", str(mount.path)], capture_output=True,
                       timeout=60, check=False)
    if mount.pid is not None and pid_alive(mount.pid):
        # After an unmount the process finishes its uploads and exits by itself.
        with contextlib.suppress(AssertionError):
            poll(lambda: not pid_alive(mount.pid), timeout=60)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not pid_alive(mount.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(mount.pid, signum)
            with contextlib.suppress(AssertionError):
                poll(lambda: not pid_alive(mount.pid), timeout=30)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def clean_env(server, runtime: Path) -> dict[str, str]:
    """The environment of a mount: credentials of the server, nothing inherited that counts."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MSS_", "XDG_"))}
    runtime.mkdir(parents=True, exist_ok=True)
    env.update(MSS_ENDPOINT=server.endpoint, MSS_ACCESS_KEY_ID=server.access_key,
               MSS_SECRET_ACCESS_KEY=server.secret_key, XDG_RUNTIME_DIR=str(runtime),
               XDG_DATA_HOME=str(runtime / "data"), XDG_STATE_HOME=str(runtime / "state"))
    return env


def delete_bucket(store, bucket: str) -> None:
    for upload in store.list_multipart_uploads(bucket):
        store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
    token = None
    while True:
        page = store.list_objects(bucket, continuation_token=token)
        if page.objects:
            store.delete_objects(bucket, [o.key for o in page.objects])
        token = page.next_token
        if token is None:
            break
    store.delete_bucket(bucket)


def object_bytes(store, bucket: str, key: str) -> bytes:
    return store.get_object(bucket, key).data
