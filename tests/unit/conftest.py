"""Fixtures shared by the unit tests of the HTTP store (test_http_store, test_retry_budget)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def server() -> Iterator[object]:
    """A canned-response S3 server on 127.0.0.1 (``test_http_store.CannedServer``)."""
    from test_http_store import CannedServer

    srv = CannedServer()
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
