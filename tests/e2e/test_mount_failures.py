"""Every way ``mssfs mount`` can be refused: one line on stderr, exit 1, no traceback, no mount."""

import http.server
import os
import socket
import threading

import pytest
from fuse_mounts import is_mounted


def refused(mounter, *args, env=None):
    done = mounter.run("mount", *args, env=env, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mssfs: ")
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


@pytest.fixture
def mountpoint(tmp_path):
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    assert not is_mounted(path)


@pytest.fixture(scope="module")
def bucket(new_bucket):
    return new_bucket()


def test_wrong_secret(mounter, bucket, mountpoint):
    env = {**mounter.env, "MSS_SECRET_ACCESS_KEY": "not-the-secret"}
    line = refused(mounter, bucket, str(mountpoint), env=env)
    assert "authentication failed" in line
    assert "not-the-secret" not in line


def test_unknown_access_key(mounter, bucket, mountpoint):
    env = {**mounter.env, "MSS_ACCESS_KEY_ID": "nobody"}
    assert "authentication failed" in refused(mounter, bucket, str(mountpoint), env=env)


def test_unknown_access_key_in_account_mode(mounter, mountpoint):
    env = {**mounter.env, "MSS_ACCESS_KEY_ID": "nobody"}
    assert "authentication failed" in refused(mounter, str(mountpoint), env=env)


def test_missing_bucket(mounter, mountpoint):
    line = refused(mounter, "mssfs-e2e-no-such-bucket", str(mountpoint))
    assert "'mssfs-e2e-no-such-bucket' does not exist" in line


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_endpoint(mounter, bucket, mountpoint):
    endpoint = f"http://127.0.0.1:{free_port()}"
    line = refused(mounter, bucket, str(mountpoint), "--endpoint", endpoint)
    assert f"cannot connect to {endpoint}" in line


class HtmlPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("account", [False, True])
def test_endpoint_that_is_not_s3(mounter, bucket, mountpoint, html_server, account):
    source = [] if account else [bucket]
    line = refused(mounter, *source, str(mountpoint), "--endpoint", html_server)
    assert "does not answer like an S3 endpoint" in line


def test_mountpoint_missing(mounter, bucket, tmp_path):
    line = refused(mounter, bucket, str(tmp_path / "nope"))
    assert "does not exist" in line


def test_mountpoint_not_a_directory(mounter, bucket, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    assert "is not a directory" in refused(mounter, bucket, str(path))


def test_mountpoint_already_mounted(mounter, bucket):
    mount = mounter.mount(bucket)
    line = refused(mounter, bucket, str(mount.path))
    assert "already mounted (busy)" in line
    assert os.listdir(mount.path) is not None  # the first mount still serves


def test_credentials_file_readable_by_others(mounter, bucket, mountpoint, tmp_path, seaweed):
    path = tmp_path / "passwd"
    path.write_text(f"{seaweed.access_key}:{seaweed.secret_key}\n")
    os.chmod(path, 0o644)
    env = {k: v for k, v in mounter.env.items() if not k.startswith("MSS_ACCESS")
           and not k.startswith("MSS_SECRET")}
    line = refused(mounter, bucket, str(mountpoint), "-o", f"passwd_file={path}", env=env)
    assert "accessible by group or others" in line and "chmod 600" in line
    assert seaweed.secret_key not in line


def test_credentials_file_private_mounts(mounter, bucket, tmp_path, seaweed):
    path = tmp_path / "passwd"
    path.write_text(f"{bucket}:{seaweed.access_key}:{seaweed.secret_key}\n")
    os.chmod(path, 0o600)
    env = {k: v for k, v in mounter.env.items() if not k.startswith("MSS_ACCESS")
           and not k.startswith("MSS_SECRET")}
    mountpoint = tmp_path / "mnt2"
    mountpoint.mkdir()
    done = mounter.run("mount", bucket, str(mountpoint), "-o", f"passwd_file={path}", env=env)
    try:
        assert done.returncode == 0, done.stderr
        assert is_mounted(mountpoint)
    finally:
        mounter.run("umount", str(mountpoint))
    assert not is_mounted(mountpoint)


def test_secret_on_the_command_line_is_refused(mounter, bucket, mountpoint):
    line = refused(mounter, bucket, str(mountpoint), "-o", "secret_key=hunter2")
    assert "refused" in line and "hunter2" not in line


def test_unknown_option_is_named(mounter, bucket, mountpoint):
    assert "unknown option 'stat_tll'" in refused(
        mounter, bucket, str(mountpoint), "-o", "stat_tll=5s")


def test_umount_of_something_not_mounted(mounter, tmp_path):
    done = mounter.run("umount", str(tmp_path))
    assert done.returncode == 1 and "is not mounted" in done.stderr
