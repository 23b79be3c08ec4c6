"""Shared fixtures: the stores and servers every tier tests against, and test hygiene.

Stores. ``store`` yields ``(store, bucket)`` for each of ``STORE_KINDS``:

- ``memory``: a fresh ``MemoryStore`` (with a ``fake_clock``);
- ``seaweedfs``: ``HttpStore`` against a local SeaweedFS, started once per session on
  loopback ports by ``mssfs.devserver.SeaweedServer``;
- ``moto``: ``HttpStore`` against moto's S3 server in a thread, also once per session.

Each test gets a new, uniquely named bucket; afterwards its objects and in-progress
uploads are removed and the bucket deleted. ``store_factory()`` makes more buckets.

An external S3 endpoint instead of the local SeaweedFS (the README points here):

    MSSFS_TEST_ENDPOINT=https://s3.example.com      # replaces the local SeaweedFS
    MSSFS_TEST_ACCESS_KEY=...  MSSFS_TEST_SECRET_KEY=...
    MSSFS_TEST_REGION=us-east-1                      # optional

Then the real-server parameter is called ``external`` and has no known quirks.

Known, named differences between servers live in ``QUIRKS``; tests consult them through
the ``quirks`` fixture or ``expect_quirk`` and keep the strict S3 expectation for every
other store.

Hygiene. A test that logs a WARNING or worse fails, unless it carries
``@pytest.mark.allow_warnings`` (optionally with a regex the messages must match). The
in-process moto server's own log (``werkzeug``) is not counted: it logs an error after
answering it with a 500, which the client sees, so the record can land in the next test.
Nothing is skipped silently: a missing server or FUSE fails the test with a message,
unless ``MSSFS_ALLOW_SKIP=1`` (a developer's escape hatch) turns that into a skip. A run
in which no test passed or failed ends with pytest's "no tests ran" status (5).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mssfs.devserver import DevServerError, MotoServer, SeaweedServer
from mssfs.store.config import Credentials, StoreConfig
from mssfs.store.memory import MemoryStore

EXTERNAL_ENDPOINT = os.environ.get("MSSFS_TEST_ENDPOINT", "")
REAL_KIND = "external" if EXTERNAL_ENDPOINT else "seaweedfs"
STORE_KINDS = ["memory", REAL_KIND, "moto"]
ALLOW_SKIP = os.environ.get("MSSFS_ALLOW_SKIP") == "1"

# Documented differences of each server from S3, by name (DESIGN.md §10, devserver.py).
QUIRKS: dict[str, set[str]] = {
    "memory": set(),
    "external": set(),
    "seaweedfs": {
        "keys_are_paths",  # "a//b" is stored as "a/b" and "/a" as "a" (filer paths)
        # UploadPartCopy answers the whole source's ETag (only in an upload that declared
        # no checksum algorithm)
        "part_copy_etag_is_source_etag",
        "flat_listing_in_tree_order",  # no delimiter: "a/b" is listed before "a-b"
        "backslash_listed_as_slash",  # "a\\b" is stored and read as is, listed as "a/b"
        "marker_drops_metadata",  # a key ending in "/" loses its user metadata
    },
    "moto": {
        "buckets_in_creation_order",  # ListBuckets is not sorted by name
        "lax_bucket_names",  # only the length of a bucket name is checked
        "recreate_own_bucket_succeeds",  # us-east-1 legacy: 200 for one's own bucket
        "no_key_length_limit",  # keys over 1024 bytes are accepted
        "copy_ignores_if_match",  # x-amz-copy-source-if-match is not checked
        "unknown_upload_is_500",  # UploadPart on an unknown upload id: KeyError → 500
        "presign_not_enforced",  # presigned URLs are not checked (signature, expiry)
        "crc32_not_checked",  # a body that does not match x-amz-checksum-crc32 is stored
    },
}


def unavailable(message: str) -> None:
    """A prerequisite is missing: fail (CI must not skip), or skip if allowed."""
    if ALLOW_SKIP:
        pytest.skip(message)
    pytest.fail(message + " (set MSSFS_ALLOW_SKIP=1 to skip instead)", pytrace=False)


# -- servers ----------------------------------------------------------------------------


@dataclass
class ExternalServer:
    """An S3 endpoint given by the environment; shaped like SeaweedServer."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real S3 server: a local SeaweedFS, or MSSFS_TEST_ENDPOINT when set."""
    if EXTERNAL_ENDPOINT:
        yield ExternalServer(
            EXTERNAL_ENDPOINT,
            os.environ.get("MSSFS_TEST_ACCESS_KEY", ""),
            os.environ.get("MSSFS_TEST_SECRET_KEY", ""),
            os.environ.get("MSSFS_TEST_REGION", "us-east-1"),
        )
        return
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"), max_lifetime=4 * 3600)
    try:
        server.start()
    except DevServerError as exc:
        unavailable(f"cannot start the local SeaweedFS: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        server.start()
    except Exception as exc:  # an import error or a port problem: say which
        unavailable(f"cannot start moto's S3 server: {exc!r}")
    try:
        yield server
    finally:
        server.stop()


def http_store_for(server: Any, **config: Any) -> Any:
    """An ``HttpStore`` for a server fixture (SeaweedServer, MotoServer, external)."""
    try:
        from mssfs.store.http import HttpStore
    except ImportError as exc:
        pytest.fail(f"mssfs.store.http.HttpStore is not importable: {exc}", pytrace=False)
    config.setdefault("max_retries", 2)
    config.setdefault("retry_base_delay", 0.05)
    config.setdefault("region", getattr(server, "region", "us-east-1"))
    if isinstance(server, MotoServer):
        # moto neither checks x-amz-checksum-crc32 nor answers with it, so "auto" would
        # send its first upload twice (and warn): test_checksums covers that on moto.
        config.setdefault("upload_checksum", "md5")
    return HttpStore(
        StoreConfig(
            endpoint=server.endpoint,
            credentials=Credentials(server.access_key, server.secret_key),
            **config,
        )
    )


@pytest.fixture(name="http_store_for")
def http_store_for_fixture() -> Callable[..., Any]:
    return http_store_for


# -- clocks and stores --------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told to: ``clock()``, ``advance(s)``, ``set(t)``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, now: float) -> None:
        self.now = now


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def quirks(store_kind: str) -> set[str]:
    return QUIRKS[store_kind]


@pytest.fixture
def expect_quirk(request: pytest.FixtureRequest, store_kind: str) -> Callable[[str], bool]:
    """``expect_quirk(name)``: if the current store has that quirk, mark the test as an
    expected failure (strict: it fails when the server stops misbehaving); return
    whether it has it."""

    def mark(name: str) -> bool:
        if name in QUIRKS[store_kind]:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{store_kind}: {name}"))
            return True
        return False

    return mark


def unique_bucket() -> str:
    return f"mssfs-test-{uuid.uuid4().hex[:16]}"


def empty_and_delete(store: Any, bucket: str) -> None:
    """Remove every object and in-progress upload of ``bucket``, then the bucket."""
    for upload in store.list_multipart_uploads(bucket):
        store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
    token = None
    while True:
        page = store.list_objects(bucket, continuation_token=token)
        keys = [o.key for o in page.objects]
        if keys:
            store.delete_objects(bucket, keys)
        token = page.next_token
        if token is None:
            break
    store.delete_bucket(bucket)


@pytest.fixture
def store_factory(
    request: pytest.FixtureRequest, store_kind: str, fake_clock: FakeClock
) -> Iterator[Callable[[], tuple[Any, str]]]:
    """``store_factory()`` → ``(store, bucket)``: one store per test, a new bucket per call."""
    if store_kind == "memory":
        store: Any = MemoryStore(clock=fake_clock)
    else:
        server = request.getfixturevalue("moto_server" if store_kind == "moto" else "seaweed")
        store = http_store_for(server)
    buckets: list[str] = []

    def make() -> tuple[Any, str]:
        bucket = unique_bucket()
        store.create_bucket(bucket)
        buckets.append(bucket)
        return store, bucket

    try:
        yield make
        for bucket in buckets:
            empty_and_delete(store, bucket)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def store(store_factory: Callable[[], tuple[Any, str]]) -> tuple[Any, str]:
    """``(store, bucket)`` on each store kind, with a new empty bucket."""
    return store_factory()


@pytest.fixture
def require_fuse() -> None:
    """Fail (or skip, with MSSFS_ALLOW_SKIP=1) when a FUSE mount is impossible here."""
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse is missing: FUSE tests need it")
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        unavailable("fusermount3 is missing: install the Debian package fuse3")


# -- unexpected warnings fail the test (after s3ql's pytest_checklogs) ---------------------


class _WarningCollector(logging.Handler):
    # The in-process moto server's own log (werkzeug's thread). It logs an error it
    # answered with a 500 only after sending the 500, so the record can land in the
    # next test; the client has seen that 500 already.
    SERVER_LOGGERS = ("werkzeug",)

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in self.SERVER_LOGGERS:
            self.records.append(record)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_warnings(pattern=None): the test may log WARNING or worse "
        "(only messages matching the regex, when given)",
    )
    config.stash[_OUTCOMES] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    collector = _WarningCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        result = yield
    finally:
        root.removeHandler(collector)
    _check_warnings(item, collector.records)
    return result


def _check_warnings(item: pytest.Item, records: list[logging.LogRecord]) -> None:
    marker = item.get_closest_marker("allow_warnings")
    if marker is not None:
        pattern = marker.args[0] if marker.args else None
        if pattern is None:
            return
        records = [r for r in records if not re.search(pattern, r.getMessage())]
    if records:
        lines = "\n".join(f"  {r.levelname} {r.name}: {r.getMessage()}" for r in records[:10])
        pytest.fail(f"unexpected log records at WARNING or above:\n{lines}", pytrace=False)


# -- per-store tally of the contract suite, and "no test ran" ------------------------------

# nodeid → (store kind, outcome) of every contract test, for the summary line.
_OUTCOMES = pytest.StashKey[dict[str, tuple[str, str]]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("store_kind") if callspec else None
    if kind and "tests/contract/" in item.nodeid.replace(os.sep, "/"):
        if report.when == "call":
            outcome = "xfailed" if report.skipped and hasattr(report, "wasxfail") else (
                report.outcome)
        elif report.failed:
            outcome = "error"  # a fixture failed: setup or teardown
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = ""
        if outcome:
            item.config.stash[_OUTCOMES][item.nodeid] = (kind, outcome)
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for kind, outcome in config.stash.get(_OUTCOMES, {}).values():
        tally[kind][outcome] += 1
    if tally:
        parts = [
            kind + " " + ", ".join(f"{n} {o}" for o, n in sorted(tally[kind].items()))
            for kind in STORE_KINDS
            if kind in tally
        ]
        terminalreporter.write_line("contract: " + "; ".join(parts))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    outcomes = ("passed", "failed", "error", "xfailed", "xpassed")
    ran = sum(len(reporter.stats.get(k, [])) for k in outcomes)
    if ran == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
