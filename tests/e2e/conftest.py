"""End-to-end fixtures: mounts (see ``fuse_mounts``), the store client, buckets.

``mounter`` makes real FUSE mounts of ``python -m mssfs mount`` on the session's server
and undoes each at teardown, even when a test failed. ``s3`` is an ``HttpStore`` on
the same server, the "out of band" client the tests use to add, delete and verify
objects byte for byte. Buckets made with ``new_bucket`` are
emptied and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from fuse_mounts import Mounter, delete_bucket

from mssfs.store.config import Credentials, StoreConfig


@pytest.fixture(scope="module")
def mounter(seaweed, tmp_path_factory) -> Iterator[Mounter]:
    _require_fuse()
    mounts = Mounter(seaweed, tmp_path_factory.mktemp("e2e"))
    try:
        yield mounts
    finally:
        mounts.cleanup()


def _require_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing: the e2e tests need FUSE", pytrace=False)


@pytest.fixture(scope="module")
def s3(seaweed) -> Iterator:
    from mssfs.store.http import HttpStore

    store = HttpStore(StoreConfig(endpoint=seaweed.endpoint, max_retries=2,
                                  credentials=Credentials(seaweed.access_key, seaweed.secret_key)))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def new_bucket(s3) -> Iterator:
    made: list[str] = []

    def make() -> str:
        name = f"mssfs-e2e-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(name)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            with contextlib.suppress(Exception):
                delete_bucket(s3, name)


