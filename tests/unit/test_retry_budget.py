"""The retry time budget of ``HttpStore`` (DESIGN.md §7): a clock and a sleep are injected.

``FakeTime`` is both the monotonic clock and the sleep: sleeping advances the clock, so
a budget of minutes is spent in microseconds and the tests assert the exact schedule.
The server is the canned one of ``test_http_store``.
"""

from __future__ import annotations

import pytest
from test_http_store import (
    CREDS,
    Answer,
    error_xml,
)

from mssfs.store import errors
from mssfs.store.config import StoreConfig
from mssfs.store.http import HttpStore

BUCKETS_XML = (b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets><Bucket><Name>b1</Name>'
               b"<CreationDate>2020-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
               b"</ListAllMyBucketsResult>")
SLOWDOWN = Answer(503, error_xml("SlowDown"))


class FakeTime:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budget_store(endpoint: str, fake: FakeTime, **config: object) -> HttpStore:
    options = {"credentials": CREDS, "retry_base_delay": 0.5, "retry_max_delay": 4.0,
               "connect_timeout": 2.0, "read_timeout": 5.0, "retry_time": 20.0}
    options.update(config)
    return HttpStore(StoreConfig(endpoint=endpoint, **options),  # type: ignore[arg-type]
                     sleep=fake.sleep, monotonic=fake.monotonic, rng=lambda: 1.0)


def test_failures_within_the_budget_are_ridden_out(server) -> None:
    fake = FakeTime()
    server.script(*[SLOWDOWN] * 7, Answer(200, BUCKETS_XML))
    store = budget_store(server.endpoint, fake)
    try:
        assert [b.name for b in store.list_buckets()] == ["b1"]
    finally:
        store.close()
    # Seven retries: more than the old count limit of five, well within 20 s.
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert store.stats.snapshot()["retries"] == 7


def test_a_spent_budget_fails_and_never_sleeps_past_it(server) -> None:
    fake = FakeTime()
    server.script(*[SLOWDOWN] * 40)
    store = budget_store(server.endpoint, fake)
    try:
        with pytest.raises(errors.ServiceUnavailable):
            store.head_bucket("bkt")
    finally:
        store.close()
    assert sum(fake.sleeps) == pytest.approx(20.0)
    assert fake.sleeps[-1] == pytest.approx(20.0 - 0.5 - 1.0 - 2.0 - 4.0 * 4)
    assert len(server.seen) == len(fake.sleeps) + 1
    snap = store.stats.snapshot()
    assert (snap["retries"], snap["errors"]) == (len(fake.sleeps), 1)


def test_max_retries_still_caps_the_count(server) -> None:
    fake = FakeTime()
    server.script(*[SLOWDOWN] * 5)
    store = budget_store(server.endpoint, fake, max_retries=2)
    try:
        with pytest.raises(errors.ServiceUnavailable):
            store.head_bucket("bkt")
    finally:
        store.close()
    assert fake.sleeps == [0.5, 1.0]
    assert len(server.seen) == 3


def test_a_zero_budget_means_no_retry(server) -> None:
    fake = FakeTime()
    server.script(SLOWDOWN, Answer(200, BUCKETS_XML))
    store = budget_store(server.endpoint, fake, retry_time=0.0)
    try:
        with pytest.raises(errors.ServiceUnavailable):
            store.list_buckets()
    finally:
        store.close()
    assert fake.sleeps == [] and len(server.seen) == 1


def test_non_transient_errors_are_not_retried_whatever_the_budget(server) -> None:
    fake = FakeTime()
    server.script(Answer(403, error_xml("AccessDenied")))
    store = budget_store(server.endpoint, fake, retry_time=3600.0)
    try:
        with pytest.raises(errors.AccessDenied):
            store.head_bucket("bkt")
    finally:
        store.close()
    assert fake.sleeps == []


@pytest.mark.timeout(20)
def test_the_budget_caps_an_attempt_s_read_timeout(server) -> None:
    """A server that accepts and never answers: with a read timeout of 60 s and a budget
    of 1 s, the call fails after one short attempt instead of waiting a minute."""
    server.script(Answer(hang=True), Answer(hang=True), Answer(hang=True))
    store = HttpStore(StoreConfig(endpoint=server.endpoint, credentials=CREDS,
                                  read_timeout=60.0, retry_time=1.0))
    try:
        with pytest.raises(errors.RequestTimeout):
            store.list_buckets()
    finally:
        store.close()
    assert 1 <= len(server.seen) <= 2


def test_negative_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_time"):
        StoreConfig(endpoint="http://127.0.0.1:1", retry_time=-1.0)
