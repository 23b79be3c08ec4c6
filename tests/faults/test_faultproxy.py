"""The fault-injecting proxy itself: it relays faithfully, injects each fault it is asked
for, counts them, is deterministic with a seed, and stops. The client's answer to each
fault is checked too: a typed, transient error, retried within the budget."""

from __future__ import annotations

import os
import socket
from collections import Counter

import pytest

from mssfs.faultproxy import KINDS, FaultPlan, FaultProxy
from mssfs.store import errors

NO_RETRY = {"retry_time": 0.0}


def test_without_faults_everything_is_relayed(proxy, through, direct, bucket) -> None:
    store = through(proxy)
    big = os.urandom(3 * 1024 * 1024 + 17)
    store.put_object(bucket, "big", big)
    store.put_object(bucket, "empty", b"")
    assert direct.get_object(bucket, "big").data == big
    assert store.get_object(bucket, "big", start=5, end=70_005).data == big[5:70_005]
    assert store.head_object(bucket, "empty").size == 0
    assert sorted(o.key for o in store.list_objects(bucket).objects) == ["big", "empty"]
    assert proxy.injected() == {}
    assert proxy.counts["requests"] == proxy.counts["forwarded"] == 5


@pytest.mark.parametrize(("status", "error"), [(503, errors.ServiceUnavailable),
                                               (500, errors.StoreError)])
def test_error_answers_carry_an_s3_error_document(proxy, through, bucket, status, error):
    proxy.set_plan(FaultPlan(error_rate=1.0, error_status=status))
    store = through(proxy, **NO_RETRY)
    with pytest.raises(error) as info:
        store.put_object(bucket, "k", b"data")
    assert info.value.status == status and info.value.transient
    assert info.value.code == ("SlowDown" if status == 503 else "InternalError")
    # The connection stays usable after an error answer: a second request on it works.
    proxy.set_plan(FaultPlan())
    store.put_object(bucket, "k", b"data")
    assert proxy.injected() == {"error": 1}


def test_a_reset_before_the_answer_is_a_connection_failure(proxy, through, bucket) -> None:
    proxy.set_plan(FaultPlan(reset_rate=1.0))
    with pytest.raises(errors.ConnectionFailed) as info:
        through(proxy, **NO_RETRY).put_object(bucket, "k", os.urandom(1 << 20))
    assert info.value.transient
    assert proxy.injected() == {"reset": 1}


@pytest.mark.timeout(60)
def test_a_stall_outlasts_the_read_timeout(proxy, through, bucket) -> None:
    proxy.set_plan(FaultPlan(stall_rate=1.0, stall_seconds=30))
    with pytest.raises(errors.RequestTimeout):
        through(proxy, read_timeout=0.5, **NO_RETRY).head_bucket(bucket)
    assert proxy.injected() == {"stall": 1}


@pytest.mark.parametrize("kind", ["reset_body", "short_body"])
def test_a_cut_body_is_an_incomplete_body(proxy, through, direct, bucket, kind) -> None:
    data = os.urandom(2 * 1024 * 1024)
    direct.put_object(bucket, "k", data)
    proxy.set_plan(FaultPlan(**{f"{kind}_rate": 1.0}))
    with pytest.raises((errors.IncompleteBody, errors.ConnectionFailed)) as info:
        through(proxy, **NO_RETRY).get_object(bucket, "k")
    assert info.value.transient
    assert proxy.injected() == {kind: 1}


def test_a_lost_answer_to_a_put_is_retried_and_the_object_is_whole(
        proxy, through, direct, bucket) -> None:
    """The server stored the object, the client never heard: the retry puts it again."""
    proxy.set_plan(FaultPlan(reset_body_rate=1.0, methods=frozenset({"PUT"})))
    store = through(proxy, retry_time=0.0)
    with pytest.raises(errors.ConnectionFailed):
        store.put_object(bucket, "k", b"stored anyway")
    assert proxy.injected() == {"reset_answer": 1}
    assert proxy.answers_lost() == [("PUT", f"/{bucket}/k")]
    assert direct.get_object(bucket, "k").data == b"stored anyway"


def test_the_fates_are_deterministic_with_a_seed() -> None:
    plan = FaultPlan(error_rate=0.1, reset_rate=0.02, seed=7)
    fates = [plan.choose("GET", f"/b/k{i % 50}", i // 50 + 1) for i in range(20_000)]
    assert fates == [plan.choose("GET", f"/b/k{i % 50}", i // 50 + 1) for i in range(20_000)]
    other = FaultPlan(error_rate=0.1, reset_rate=0.02, seed=8)
    assert fates != [other.choose("GET", f"/b/k{i % 50}", i // 50 + 1) for i in range(20_000)]
    tally = Counter(fates)
    assert 1_800 < tally["error"] < 2_200 and 300 < tally["reset"] < 500
    assert set(tally) == {None, "error", "reset"}


def test_methods_limit_the_faults() -> None:
    plan = FaultPlan(error_rate=1.0, methods=frozenset({"PUT"}))
    assert plan.choose("GET", "/b/k", 1) is None and plan.choose("PUT", "/b/k", 1) == "error"


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError):
        FaultPlan(error_rate=0.8, reset_rate=0.3)
    with pytest.raises(ValueError):
        FaultPlan(error_status=404)
    assert KINDS == ("error", "reset", "stall", "reset_body", "short_body")


def test_every_fault_together_is_ridden_out_by_retries(proxy, through, direct, bucket) -> None:
    proxy.set_plan(FaultPlan(error_rate=0.15, reset_rate=0.05, reset_body_rate=0.05,
                             short_body_rate=0.05, seed=3))
    store = through(proxy, retry_time=30.0)
    blobs = {f"k{i}": os.urandom(i * 40_000) for i in range(25)}
    for key, data in blobs.items():
        store.put_object(bucket, key, data)
    for key, data in blobs.items():
        assert store.get_object(bucket, key).data == data
        assert direct.get_object(bucket, key).data == data
    injected = proxy.injected()
    assert sum(injected.values()) > 0
    assert store.stats.snapshot()["retries"] == sum(injected.values())


def test_stop_ends_the_proxy(seaweed) -> None:
    proxy = FaultProxy(seaweed.endpoint).start()
    port = int(proxy.endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):
        pass
    proxy.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert not [t for t in proxy._threads if t.is_alive()]


def test_a_lost_create_answer_leaves_an_upload_the_client_cannot_know(
        proxy, through, direct, bucket) -> None:
    """Why the 500-file test allows orphans exactly where a Create answer was lost."""
    proxy.set_plan(FaultPlan(reset_body_rate=1.0, methods=frozenset({"POST"})))
    with pytest.raises((errors.ConnectionFailed, errors.IncompleteBody)):
        through(proxy, retry_time=0.0).create_multipart_upload(bucket, "k")
    [(method, target)] = proxy.answers_lost()
    assert method == "POST" and target.startswith(f"/{bucket}/k?uploads")
    assert [u.key for u in direct.list_multipart_uploads(bucket)] == ["k"]
