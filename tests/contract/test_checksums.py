"""Contract: object data checked by CRC32 (``upload_checksum="crc32"``) on the real
servers: single PUTs, multipart uploads mixing sent and copied parts, and a body that
does not match its checksum refused."""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mssfs.store import errors
from mssfs.store.base import CompletedPart
from mssfs.store.payload import _payload
from mssfs.store.transport import _Request

MIB = 1024 * 1024

pytestmark = pytest.mark.parametrize("store_kind", ["seaweedfs", "moto"])


@pytest.fixture
def crc_store(request: pytest.FixtureRequest, store_kind: str,
              http_store_for: Callable[..., Any]) -> Iterator[tuple[Any, str]]:
    server = request.getfixturevalue("moto_server" if store_kind == "moto" else "seaweed")
    store = http_store_for(server, upload_checksum="crc32")
    bucket = f"mssfs-crc-{os.urandom(6).hex()}"
    store.create_bucket(bucket)
    try:
        yield store, bucket
    finally:
        for upload in store.list_multipart_uploads(bucket):
            store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
        keys = [o.key for o in store.list_objects(bucket).objects]
        if keys:
            store.delete_objects(bucket, keys)
        store.delete_bucket(bucket)
        store.close()


def test_a_put_checked_by_crc32_round_trips(crc_store):
    s, bucket = crc_store
    data = os.urandom(100_000)
    s.put_object(bucket, "k", data)
    assert s.get_object(bucket, "k").data == data


def test_a_multipart_upload_with_sent_and_copied_parts(crc_store):
    s, bucket = crc_store
    source = os.urandom(6 * MIB)
    s.put_object(bucket, "source", source)
    first, tail = os.urandom(5 * MIB), b"the tail"
    upload = s.create_multipart_upload(bucket, "big")
    e1 = s.upload_part(bucket, "big", upload, 1, first)
    e2 = s.upload_part_copy(bucket, "big", upload, 2, bucket, "source", 0, 5 * MIB)
    e3 = s.upload_part(bucket, "big", upload, 3, tail)
    s.complete_multipart_upload(bucket, "big", upload, [
        CompletedPart(1, e1), CompletedPart(2, e2), CompletedPart(3, e3)])
    assert s.get_object(bucket, "big").data == first + source[: 5 * MIB] + tail
    assert s._part_crc32 == {}  # forgotten once completed


def test_a_body_that_does_not_match_its_crc32_is_refused(crc_store, expect_quirk):
    s, bucket = crc_store
    expect_quirk("crc32_not_checked")
    payload = _payload(b"the bytes sent", signed=False, checksum="crc32")
    payload.crc32 = base64.b64encode(zlib.crc32(b"other bytes").to_bytes(4, "big")).decode()
    with pytest.raises(errors.StoreError) as refused:
        s._call(_Request("PutObject", "PUT", bucket, "bad", payload=payload, checksum=True))
    assert refused.value.status == 400
    with pytest.raises(errors.NoSuchKey):
        s.head_object(bucket, "bad")


@pytest.mark.allow_warnings("does not check CRC32")
def test_the_default_checks_uploads_by_crc32_where_the_server_shows_it_does(
    request, store_kind, http_store_for, quirks
):
    # "auto": SeaweedFS (like S3 and MinIO) answers each upload with the CRC32 it
    # computed, so the whole exchange stays on CRC32 and every byte is checked. moto
    # neither checks it nor answers with it: there the first upload is sent again with
    # a Content-MD5, and MD5 is used from then on.
    server = request.getfixturevalue("moto_server" if store_kind == "moto" else "seaweed")
    s = http_store_for(server, upload_checksum="auto")
    bucket = f"mssfs-auto-{os.urandom(6).hex()}"
    s.create_bucket(bucket)
    try:
        small, first, tail = os.urandom(1000), os.urandom(5 * MIB), b"the tail"
        s.put_object(bucket, "small", small)
        upload = s.create_multipart_upload(bucket, "big")
        e1 = s.upload_part(bucket, "big", upload, 1, first)
        e2 = s.upload_part(bucket, "big", upload, 2, tail)
        s.complete_multipart_upload(bucket, "big", upload,
                                    [CompletedPart(1, e1), CompletedPart(2, e2)])
        assert s.get_object(bucket, "small").data == small
        assert s.get_object(bucket, "big").data == first + tail
        assert s.upload_checksum == ("md5" if "crc32_not_checked" in quirks else "crc32")
    finally:
        s.delete_objects(bucket, ["small", "big"])
        s.delete_bucket(bucket)
        s.close()
