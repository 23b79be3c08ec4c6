"""MemoryStore's own test hooks: counters, fault injection, clock, presign, threads.

Its S3 behaviour is checked by the contract suite (tests/contract), on all stores.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from mssfs.store import errors
from mssfs.store.base import CompletedPart, ObjectStore
from mssfs.store.memory import EntityTooSmall, MemoryStore, valid_bucket_name


@pytest.fixture
def mem(fake_clock):
    s = MemoryStore(clock=fake_clock)
    s.create_bucket("bkt")
    s.reset_counts()
    return s


def test_implements_the_protocol(mem):
    assert isinstance(mem, ObjectStore)


def test_counts_operations_and_bytes(mem):
    mem.put_object("bkt", "k", b"12345")
    mem.get_object("bkt", "k", 1, 3)
    mem.head_object("bkt", "k")
    mem.list_objects("bkt")
    mem.copy_object("bkt", "k", "bkt", "k2")
    mem.delete_objects("bkt", ["k", "k2"])
    assert mem.counts == {"PutObject": 1, "GetObject": 1, "HeadObject": 1,
                          "ListObjectsV2": 1, "CopyObject": 1, "DeleteObjects": 1}
    assert (mem.bytes_in, mem.bytes_out) == (5, 2)
    snapshot = mem.stats.snapshot()
    assert snapshot["requests"]["PutObject"] == 1
    assert (snapshot["bytes_sent"], snapshot["bytes_received"]) == (5, 2)
    mem.reset_counts()
    assert not mem.counts and mem.bytes_in == mem.bytes_out == 0


def test_failed_requests_are_counted(mem):
    with pytest.raises(errors.NoSuchKey):
        mem.get_object("bkt", "missing")
    assert mem.counts["GetObject"] == 1
    assert mem.stats.snapshot()["errors"] == 1


def test_fail_next(mem):
    mem.put_object("bkt", "k", b"x")
    boom = errors.ServiceUnavailable("injected", code="SlowDown", status=503)
    mem.fail_next("GetObject", boom, times=2)
    for _ in range(2):
        with pytest.raises(errors.ServiceUnavailable):
            mem.get_object("bkt", "k")
    mem.head_object("bkt", "k")  # other operations are not affected
    assert mem.get_object("bkt", "k").data == b"x"
    assert mem.counts["GetObject"] == 3


def test_fail_when(mem):
    def refuse_secret_puts(op, bucket, key):
        if op == "PutObject" and key.startswith("secret/"):
            return errors.AccessDenied("injected", code="AccessDenied", status=403)
        return None

    mem.fail_when(refuse_secret_puts)
    mem.put_object("bkt", "public/a", b"x")
    with pytest.raises(errors.AccessDenied):
        mem.put_object("bkt", "secret/a", b"x")
    mem.clear_faults()
    mem.put_object("bkt", "secret/a", b"x")
    assert mem.head_object("bkt", "secret/a").size == 1


def test_clock_sets_last_modified(mem, fake_clock):
    mem.put_object("bkt", "a", b"x")
    fake_clock.advance(10)
    mem.put_object("bkt", "b", b"x")
    assert mem.head_object("bkt", "a").last_modified == fake_clock.now - 10
    assert mem.head_object("bkt", "b").last_modified == fake_clock.now
    upload = mem.create_multipart_upload("bkt", "c")
    assert mem.list_multipart_uploads("bkt")[0].initiated == fake_clock.now
    mem.abort_multipart_upload("bkt", "c", upload)


def test_presign_url(mem, fake_clock):
    url = mem.presign_url("bkt", "a b/c", method="PUT", expires=60)
    assert url == f"memory://bkt/a%20b/c?method=PUT&expires={int(fake_clock.now) + 60}"
    with pytest.raises(ValueError):
        mem.presign_url("bkt", "k", expires=0)


def test_entity_too_small_is_an_invalid_request(mem):
    upload = mem.create_multipart_upload("bkt", "k")
    parts = [CompletedPart(n, mem.upload_part("bkt", "k", upload, n, b"x")) for n in (1, 2)]
    with pytest.raises(EntityTooSmall) as raised:
        mem.complete_multipart_upload("bkt", "k", upload, parts)
    assert isinstance(raised.value, errors.InvalidRequest)
    assert raised.value.code == "EntityTooSmall"


def test_parts_out_of_order_and_bad_numbers(mem):
    upload = mem.create_multipart_upload("bkt", "k")
    etag = mem.upload_part("bkt", "k", upload, 1, b"x")
    with pytest.raises(errors.InvalidRequest):
        mem.complete_multipart_upload("bkt", "k", upload,
                                      [CompletedPart(1, etag), CompletedPart(1, etag)])
    for number in (0, 10001):
        with pytest.raises(errors.InvalidRequest):
            mem.upload_part("bkt", "k", upload, number, b"x")


def test_part_copy_range_outside_source(mem):
    mem.put_object("bkt", "src", b"0123")
    upload = mem.create_multipart_upload("bkt", "k")
    with pytest.raises(errors.InvalidRange):
        mem.upload_part_copy("bkt", "k", upload, 1, "bkt", "src", 2, 5)


def test_delete_objects_limits(mem):
    with pytest.raises(errors.InvalidRequest):
        mem.delete_objects("bkt", [])
    with pytest.raises(errors.InvalidRequest):
        mem.delete_objects("bkt", [str(i) for i in range(1001)])


@pytest.mark.parametrize(
    ("name", "valid"),
    [("abc", True), ("a.b-c", True), ("x" * 63, True), ("ab", False), ("x" * 64, False),
     ("Abc", False), ("a_b", False), ("a..b", False), ("a.-b", False), ("1.2.3.4", False),
     ("xn--abc", False), ("abc-s3alias", False), ("-abc", False), ("abc.", False)],
)
def test_bucket_names(name, valid):
    assert valid_bucket_name(name) is valid


def test_listing_token_resumes_after_a_common_prefix(mem):
    for key in ["a/1", "a/2", "b/1", "c"]:
        mem.put_object("bkt", key, b"")
    first = mem.list_objects("bkt", delimiter="/", max_keys=1)
    assert list(first.prefixes) == ["a/"] and first.truncated
    second = mem.list_objects("bkt", delimiter="/", max_keys=1,
                              continuation_token=first.next_token)
    assert list(second.prefixes) == ["b/"]


def test_concurrent_writers(mem):
    def write(i: int) -> str:
        return mem.put_object("bkt", f"k{i % 10}", str(i).encode())

    with ThreadPoolExecutor(8) as pool:
        etags = list(pool.map(write, range(400)))
    assert len(etags) == 400 and mem.counts["PutObject"] == 400
    keys = [o.key for o in mem.list_objects("bkt").objects]
    assert keys == [f"k{i}" for i in range(10)]
    for key in keys:
        got = mem.get_object("bkt", key)
        assert got.etag == hashlib.md5(got.data).hexdigest()
