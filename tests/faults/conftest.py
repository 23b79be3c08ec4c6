"""Fixtures of the fault tier: a ``FaultProxy`` in front of the session's SeaweedFS.

``proxy`` starts a proxy with no faults on 127.0.0.1 (a port the kernel picks) and stops
it after the test, even when the test failed; the test sets its plan. ``through(proxy,
**config)`` is an ``HttpStore`` whose endpoint is the proxy; ``direct`` bypasses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mssfs.faultproxy import FaultProxy
from mssfs.store.config import Credentials, StoreConfig
from mssfs.store.http import HttpStore


@pytest.fixture
def proxy(seaweed) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed.endpoint) as running:
        yield running


@pytest.fixture
def through(seaweed) -> Iterator[Any]:
    made: list[HttpStore] = []

    def make(proxy: FaultProxy, **config: Any) -> HttpStore:
        config.setdefault("retry_base_delay", 0.01)
        config.setdefault("retry_max_delay", 0.2)
        store = HttpStore(StoreConfig(
            endpoint=proxy.endpoint,
            credentials=Credentials(seaweed.access_key, seaweed.secret_key), **config))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def direct(seaweed) -> Iterator[HttpStore]:
    store = HttpStore(StoreConfig(endpoint=seaweed.endpoint, max_retries=2,
                                  credentials=Credentials(seaweed.access_key, seaweed.secret_key)))
    yield store
    store.close()


def delete_bucket(store: HttpStore, bucket: str) -> None:
    for upload in store.list_multipart_uploads(bucket):
        store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
    while True:
        keys = [o.key for o in store.list_objects(bucket).objects]
        if not keys:
            break
        store.delete_objects(bucket, keys)
    store.delete_bucket(bucket)


@pytest.fixture
def bucket(direct) -> Iterator[str]:
    name = f"mssfs-faults-{uuid.uuid4().hex[:12]}"
    direct.create_bucket(name)
    yield name
    delete_bucket(direct, name)
