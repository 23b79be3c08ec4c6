"""Contract: presigned URLs, used by a plain HTTP client (curl) without credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest


def curl(*args: str) -> tuple[int, bytes]:
    """Run curl; return (HTTP status, body). Never prints the URL (it grants access)."""
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (scripts/test installs it)", pytrace=False)
    done = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--max-time", "30", "-o", "-",
         "-w", "\n%{http_code}", *args],
        capture_output=True, check=False, timeout=60,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return int(status), body


# Only the HTTP stores: MemoryStore's memory:// URLs are tested in tests/unit.
REAL_KIND = "external" if os.environ.get("MSSFS_TEST_ENDPOINT") else "seaweedfs"
pytestmark = pytest.mark.parametrize("store_kind", [REAL_KIND, "moto"])


def test_presigned_get(store):
    s, bucket = store
    s.put_object(bucket, "dir/file name+1.txt", b"presigned bytes")
    url = s.presign_url(bucket, "dir/file name+1.txt", expires=300)
    assert url.startswith(("http://", "https://"))
    assert curl(url) == (200, b"presigned bytes")


def test_presigned_put(store, tmp_path):
    s, bucket = store
    path = tmp_path / "upload"
    path.write_bytes(b"uploaded with curl -T")
    url = s.presign_url(bucket, "put/here", method="PUT", expires=300)
    status, _ = curl("-T", str(path), url)
    assert status == 200
    assert s.get_object(bucket, "put/here").data == b"uploaded with curl -T"


def test_presigned_url_expires(store, expect_quirk):
    s, bucket = store
    s.put_object(bucket, "k", b"short-lived")
    url = s.presign_url(bucket, "k", expires=1)
    # Expiry is checked against the server's clock, in whole seconds: allow it some slack.
    # A server known not to check it gets no long wait before its expected failure.
    patience = 3 if expect_quirk("presign_not_enforced") else 30
    deadline = time.monotonic() + patience
    status, _ = curl(url)
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, _ = curl(url)
    assert status == 403


def test_tampered_url_is_refused(store, expect_quirk):
    s, bucket = store
    s.put_object(bucket, "k", b"secret")
    s.put_object(bucket, "other", b"other")
    url = s.presign_url(bucket, "k", expires=300)
    expect_quirk("presign_not_enforced")
    assert curl(url.replace("/k?", "/other?"))[0] == 403
