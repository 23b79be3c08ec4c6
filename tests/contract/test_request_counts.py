"""Contract: each call is the requests it should be, counted by the server itself.

The store's requests are counted where they arrive: MemoryStore's ``counts``, SeaweedFS's
Prometheus counters (by coarse type: HEAD counts as GET), and for moto, which has no
counters, the client's own ``stats``.
"""

from __future__ import annotations

import os
import time

import pytest

REAL_KIND = "external" if os.environ.get("MSSFS_TEST_ENDPOINT") else "seaweedfs"
pytestmark = pytest.mark.parametrize(
    "store_kind", ["memory", *([] if REAL_KIND == "external" else ["seaweedfs"]), "moto"]
)

# Protocol operation → SeaweedFS's request type label.
SEAWEED_TYPE = {"ListObjectsV2": "LIST", "GetObject": "GET", "HeadObject": "GET",
                "PutObject": "PUT"}


@pytest.fixture
def counter(store, store_kind, request):
    """``counter(op, at_least=0)``: requests of operation ``op`` the server has seen for
    this bucket. SeaweedFS counts a request just after answering it, so the count is
    polled (for up to 10 s) until it reaches ``at_least``; then its exact value is taken."""
    s, bucket = store
    if store_kind == "memory":
        read = lambda op: s.counts[op]  # noqa: E731
    elif store_kind == "seaweedfs":
        server = request.getfixturevalue("seaweed")
        read = lambda op: server.request_counts(bucket).get(SEAWEED_TYPE[op], 0)  # noqa: E731
    else:
        read = lambda op: s.stats.snapshot()["requests"].get(op, 0)  # noqa: E731

    def count(op: str, at_least: int = 0) -> int:
        deadline = time.monotonic() + 10
        value = read(op)
        while value < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
            value = read(op)
        return value

    return count


def test_listing_pages_cost_one_request_each(store, counter):
    s, bucket = store
    for i in range(5):
        s.put_object(bucket, f"k{i}", b"x")
    before = counter("ListObjectsV2")
    token, pages = None, 0
    while True:
        page = s.list_objects(bucket, max_keys=2, continuation_token=token)
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert pages == 3
    assert counter("ListObjectsV2", before + 3) == before + 3


def test_ranged_get_and_head_are_one_request_each(store, counter):
    s, bucket = store
    s.put_object(bucket, "k", b"0123456789")
    gets = counter("GetObject")
    assert s.get_object(bucket, "k", 2, 4).data == b"23"
    assert counter("GetObject", gets + 1) == gets + 1
    heads = counter("HeadObject")
    s.head_object(bucket, "k")
    assert counter("HeadObject", heads + 1) == heads + 1


def test_put_is_one_request(store, counter, store_kind):
    s, bucket = store
    s.put_object(bucket, "first", b"")
    # SeaweedFS counts CreateBucket as a PUT of the bucket too.
    before = counter("PutObject", 2 if store_kind == "seaweedfs" else 1)
    s.put_object(bucket, "k", b"x" * 100_000)
    assert counter("PutObject", before + 1) == before + 1
