"""Fixtures shared by the unit tests of the HTTP store (test_http_store, test_retry_budget)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest


def _serving(srv) -> Iterator[object]:
    """Run ``srv`` (a ``CannedServer``) in a thread; stop it even when the test fails."""
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stopping.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


@pytest.fixture
def server() -> Iterator[object]:
    """A canned-response S3 server on 127.0.0.1 (``test_http_store.CannedServer``)."""
    from test_http_store import CannedServer

    yield from _serving(CannedServer())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (certificate, key) paths."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_server(certificate) -> Iterator[object]:
    """The canned server behind TLS, with the self-signed ``certificate``."""
    from test_http_store import CannedServer

    srv = CannedServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    yield from _serving(srv)
