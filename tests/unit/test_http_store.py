"""HttpStore against a canned-response HTTP server: retries, typed errors, edges.

The server (``CannedServer``) runs in a thread of the test process on 127.0.0.1 and a
port the kernel picks; each test scripts its answers in order and reads back the
requests it received. A hanging answer waits on an event with its own deadline, and the
fixture shuts the server down even when the test fails. Real-server behaviour is the
contract suite's job (tests/contract).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import logging
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mssfs.store import errors, payload
from mssfs.store.base import CompletedPart
from mssfs.store.config import Credentials, StoreConfig
from mssfs.store.http import HttpStore

SECRET = "SeCrEt-KeY-never-shown-0123456789"
TOKEN = "SeSsIoN-ToKeN-never-shown"
CREDS = Credentials("AKIDTEST", SECRET, TOKEN)

BUCKETS_XML = (b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets><Bucket><Name>b1</Name>'
               b"<CreationDate>2020-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
               b"</ListAllMyBucketsResult>")


def error_xml(code: str, message: str = "msg") -> bytes:
    return (f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>RID123</RequestId></Error>").encode()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    short_by: int = 0  # announce len(body) + short_by bytes, send body, close
    hang: bool = False  # never answer (until the server stops)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[Answer] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    def next_answer(self, seen: Seen) -> Answer:
        with self.lock:
            self.seen.append(seen)
            return self.answers.pop(0) if self.answers else Answer(599, b"unscripted")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server: CannedServer = self.server  # type: ignore[assignment]
        answer = server.next_answer(
            Seen(self.command, self.path, dict(self.headers), body, self.client_address[1]))
        if answer.hang:
            server.stopping.wait(30)  # stops by itself at the latest after 30 s
            self.close_connection = True
            return
        self.send_response(answer.status)
        headers = {"x-amz-request-id": "RID123", **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(answer.body) + answer.short_by))
        if answer.short_by:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve




class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_store(endpoint: str, sleeps: Sleeps | None = None, **config: object) -> HttpStore:
    # MD5 unless a test asks otherwise: with the default ("auto") every upload that the
    # canned server answers without a CRC32 would be sent twice.
    options = {"credentials": CREDS, "max_retries": 3, "retry_base_delay": 0.5,
               "retry_max_delay": 1.5, "connect_timeout": 2.0, "read_timeout": 5.0,
               "upload_checksum": "md5"}
    options.update(config)
    clock = iter(range(1_700_000_000, 1_800_000_000, 7))
    return HttpStore(StoreConfig(endpoint=endpoint, **options),  # type: ignore[arg-type]
                     clock=lambda: float(next(clock)),
                     sleep=sleeps if sleeps is not None else Sleeps(),
                     rng=lambda: 1.0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def store(server: CannedServer, sleeps: Sleeps) -> Iterator[HttpStore]:
    st = make_store(server.endpoint, sleeps)
    yield st
    st.close()


# -- retries --------------------------------------------------------------------------


def test_503_then_200_is_retried_and_counted(server, store, sleeps) -> None:
    server.script(Answer(503, error_xml("ServiceUnavailable")), Answer(200, BUCKETS_XML))
    assert [b.name for b in store.list_buckets()] == ["b1"]
    snap = store.stats.snapshot()
    assert snap["requests"]["ListBuckets"] == 2
    assert snap["retries"] == 1
    assert snap["errors"] == 0
    assert sleeps == [0.5]


def test_every_attempt_is_signed_afresh(server, store) -> None:
    server.script(Answer(500, b""), Answer(200, BUCKETS_XML))
    store.list_buckets()
    first, second = server.seen
    assert first.headers["X-Amz-Date"] != second.headers["X-Amz-Date"]
    assert first.headers["Authorization"] != second.headers["Authorization"]


def test_slowdown_and_429_are_retried(server, store) -> None:
    server.script(Answer(503, error_xml("SlowDown")), Answer(429, b""), Answer(200, BUCKETS_XML))
    assert store.list_buckets()
    assert store.stats.snapshot()["retries"] == 2


def test_retries_exhausted_raise_service_unavailable(server, store, sleeps) -> None:
    server.script(*[Answer(503, error_xml("SlowDown"))] * 4)
    with pytest.raises(errors.ServiceUnavailable) as info:
        store.head_bucket("bkt")
    assert info.value.status == 503
    assert len(server.seen) == 4  # the first try and max_retries=3 more
    assert sleeps == [0.5, 1.0, 1.5]  # exponential, capped at retry_max_delay
    assert store.stats.snapshot()["errors"] == 1


def test_a_non_transient_error_is_not_retried(server, store) -> None:
    server.script(Answer(403, error_xml("AccessDenied")))
    with pytest.raises(errors.AccessDenied):
        store.list_buckets()
    assert len(server.seen) == 1


def test_a_file_body_is_rewound_and_sent_again(server, store) -> None:
    data = bytes(range(256)) * (40 * 1024 + 3)  # > 8 MiB: streamed, not read whole
    md5 = hashlib.md5(data).hexdigest()
    server.script(Answer(500, b""), Answer(200, headers={"ETag": f'"{md5}"'}))
    body = io.BytesIO(b"junk" + data)
    body.seek(4)
    assert store.put_object("bkt", "k", body) == md5
    assert [s.body == data for s in server.seen] == [True, True]
    sent = server.seen[1].headers
    # Object data is protected by the signed Content-MD5, not by hashing it twice.
    assert sent["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert sent["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("streamed", [False, True])
def test_upload_checksum_crc32_replaces_content_md5(server, sleeps, streamed) -> None:
    data = bytes(range(256)) * (40 * 1024 + 3) if streamed else b"small body"
    store = make_store(server.endpoint, sleeps, upload_checksum="crc32")
    server.script(Answer(200, headers={"ETag": '"e"'}))
    store.put_object("bkt", "k", io.BytesIO(data) if streamed else data)
    sent = server.seen[0].headers
    assert sent["x-amz-checksum-crc32"] == crc32_b64(data)
    assert "Content-MD5" not in sent and sent["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert "x-amz-checksum-crc32" in sent["Authorization"]  # signed, like Content-MD5
    store.close()


def test_a_crc32_multipart_upload_declares_it_and_lists_every_part(server, sleeps) -> None:
    store = make_store(server.endpoint, sleeps, upload_checksum="crc32")
    initiate = (b"<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                b"</InitiateMultipartUploadResult>")
    copied = (b"<CopyPartResult><ETag>\"c2\"</ETag><ChecksumCRC32>AAAAAQ==</ChecksumCRC32>"
              b"</CopyPartResult>")
    done = b"<CompleteMultipartUploadResult><ETag>\"m-3\"</ETag></CompleteMultipartUploadResult>"
    server.script(Answer(200, initiate), Answer(200, headers={"ETag": '"e1"'}),
                  Answer(200, copied), Answer(200, headers={"ETag": '"e3"'}), Answer(200, done))
    upload = store.create_multipart_upload("bkt", "k")
    store.upload_part("bkt", "k", upload, 1, b"one")
    store.upload_part_copy("bkt", "k", upload, 2, "bkt", "src", 0, 10)
    store.upload_part("bkt", "k", upload, 3, b"three")
    store.complete_multipart_upload("bkt", "k", upload, [
        CompletedPart(1, "e1"), CompletedPart(2, "c2"), CompletedPart(3, "e3")])
    assert server.seen[0].headers["x-amz-checksum-algorithm"] == "CRC32"
    body = server.seen[4].body.decode()
    for number, crc in ((1, crc32_b64(b"one")), (2, "AAAAAQ=="), (3, crc32_b64(b"three"))):
        assert (f"<PartNumber>{number}</PartNumber><ETag>&quot;" in body
                and f"<ChecksumCRC32>{crc}</ChecksumCRC32>" in body)
    assert store._part_crc32 == {}
    store.close()


def test_md5_sends_content_md5_and_declares_nothing(server, store) -> None:
    initiate = (b"<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                b"</InitiateMultipartUploadResult>")
    server.script(Answer(200, initiate), Answer(200, headers={"ETag": '"e1"'}))
    upload = store.create_multipart_upload("bkt", "k")
    store.upload_part("bkt", "k", upload, 1, b"one")
    assert "x-amz-checksum-algorithm" not in server.seen[0].headers
    assert "x-amz-checksum-crc32" not in server.seen[1].headers
    assert server.seen[1].headers["Content-MD5"] == base64.b64encode(
        hashlib.md5(b"one").digest()).decode()


def test_auto_keeps_crc32_while_the_server_answers_with_it(server, sleeps) -> None:
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    assert StoreConfig(endpoint=server.endpoint).upload_checksum == "auto"  # the default
    server.script(*(Answer(200, headers={"ETag": '"e"', "x-amz-checksum-crc32": crc32_b64(d)})
                    for d in (b"one", b"two")))
    server.script(Answer(200, headers={"ETag": '"d"'}))  # no CRC32: a directory marker
    store.put_object("bkt", "a", b"one")
    store.put_object("bkt", "b", b"two")
    store.put_object("bkt", "dir/", b"")  # nothing to check: no verdict
    assert [s.headers.get("x-amz-checksum-crc32") for s in server.seen] == [
        crc32_b64(b"one"), crc32_b64(b"two"), crc32_b64(b"")]
    assert not any("Content-MD5" in s.headers for s in server.seen)
    assert store.upload_checksum == "crc32"
    store.close()


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.allow_warnings("does not check CRC32")
def test_auto_sends_again_with_md5_when_the_answer_lacks_the_crc32(
    server, sleeps, streamed, caplog
) -> None:
    # A server that ignores x-amz-checksum-crc32 stores whatever it received, checked
    # by nothing: the upload is sent again with a Content-MD5, and MD5 stays.
    data = bytes(range(256)) * (40 * 1024 + 3) if streamed else b"small body"
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    server.script(Answer(200, headers={"ETag": '"e1"'}), Answer(200, headers={"ETag": '"e2"'}),
                  Answer(200, headers={"ETag": '"e3"'}))
    body = io.BytesIO(b"junk" + data)
    body.seek(4)
    assert store.put_object("bkt", "k", body if streamed else data) == "e2"
    assert store.put_object("bkt", "k2", b"next") == "e3"
    first, again, nxt = (s.headers for s in server.seen)
    assert [s.body for s in server.seen] == [data, data, b"next"]
    assert first["x-amz-checksum-crc32"] == crc32_b64(data) and "Content-MD5" not in first
    assert again["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert "x-amz-checksum-crc32" not in again and "x-amz-checksum-crc32" not in nxt
    assert "Content-MD5" in nxt and store.upload_checksum == "md5"
    assert len([r for r in caplog.records if "does not check CRC32" in r.message]) == 1
    store.close()


@pytest.mark.allow_warnings("does not check CRC32")
def test_auto_falls_back_to_md5_when_the_header_is_refused(server, sleeps) -> None:
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    server.script(Answer(400, error_xml("InvalidArgument", "x-amz-checksum-crc32")),
                  Answer(200, headers={"ETag": '"e"'}))
    assert store.put_object("bkt", "k", b"body") == "e"
    assert "x-amz-checksum-crc32" in server.seen[0].headers
    assert "Content-MD5" in server.seen[1].headers and store.upload_checksum == "md5"
    store.close()


def test_auto_keeps_crc32_when_md5_is_refused_too(server, sleeps) -> None:
    # The refusal was not about the checksum: its error is the caller's, CRC32 stays.
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    server.script(Answer(400, error_xml("InvalidArgument", "metadata too large")),
                  Answer(400, error_xml("InvalidArgument", "metadata too large")))
    with pytest.raises(errors.InvalidRequest):
        store.put_object("bkt", "k", b"body")
    assert store.upload_checksum == "crc32"
    store.close()


def test_auto_fails_an_upload_whose_crc32_the_server_computed_otherwise(server, sleeps) -> None:
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    server.script(Answer(200, headers={"ETag": '"e"', "x-amz-checksum-crc32": "AAAAAA=="}))
    with pytest.raises(errors.StoreError) as failed:
        store.put_object("bkt", "k", b"body")
    assert failed.value.code == "BadDigest"
    store.close()


@pytest.mark.allow_warnings("does not check CRC32")
def test_auto_multipart_part_sent_again_with_md5_is_listed_without_a_crc32(
    server, sleeps
) -> None:
    store = make_store(server.endpoint, sleeps, upload_checksum="auto")
    initiate = (b"<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                b"</InitiateMultipartUploadResult>")
    done = b"<CompleteMultipartUploadResult><ETag>\"m-1\"</ETag></CompleteMultipartUploadResult>"
    server.script(Answer(200, initiate), Answer(200, headers={"ETag": '"x"'}),
                  Answer(200, headers={"ETag": '"e1"'}), Answer(200, done))
    upload = store.create_multipart_upload("bkt", "k")
    assert store.upload_part("bkt", "k", upload, 1, b"one") == "e1"
    store.complete_multipart_upload("bkt", "k", upload, [CompletedPart(1, "e1")])
    assert server.seen[0].headers["x-amz-checksum-algorithm"] == "CRC32"
    assert "Content-MD5" in server.seen[2].headers
    assert "ChecksumCRC32" not in server.seen[3].body.decode()
    assert store._part_crc32 == {}
    store.close()


# -- answers that are not S3, or not whole ---------------------------------------------


def test_an_html_page_raises_not_s3_endpoint(server, store) -> None:
    page = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
    server.script(Answer(200, page, {"Content-Type": "text/html"}))
    with pytest.raises(errors.NotS3Endpoint) as info:
        store.list_buckets()
    assert server.endpoint in str(info.value)


def test_a_4xx_html_page_raises_not_s3_endpoint(server, store) -> None:
    server.script(Answer(403, b"<html>login required</html>", {"Content-Type": "text/html"}))
    with pytest.raises(errors.NotS3Endpoint):
        store.get_object("bkt", "k")


def test_an_object_answer_without_etag_is_not_s3(server, store) -> None:
    server.script(Answer(200, b"hello", {"Content-Type": "text/html"}))
    with pytest.raises(errors.NotS3Endpoint):
        store.get_object("bkt", "k")


def test_a_short_body_raises_incomplete_body_after_retries(server, store) -> None:
    server.script(*[Answer(200, b"x" * 50, {"ETag": '"e"'}, short_by=50)] * 4)
    with pytest.raises(errors.IncompleteBody):
        store.get_object("bkt", "k")
    assert len(server.seen) == 4


def test_a_short_body_then_a_whole_one_succeeds(server, store) -> None:
    server.script(Answer(200, b"x" * 50, {"ETag": '"e"'}, short_by=10),
                  Answer(200, b"y" * 60, {"ETag": '"e"'}))
    assert store.get_object("bkt", "k").data == b"y" * 60


def test_a_range_answer_of_the_wrong_length_is_incomplete(server, store) -> None:
    server.script(*[Answer(206, b"abc", {"ETag": '"e"', "Content-Range": "bytes 0-9/100"})] * 4)
    with pytest.raises(errors.IncompleteBody):
        store.get_object("bkt", "k", 0, 10)


def test_range_request_and_a_server_that_ignores_range(server, store) -> None:
    server.script(Answer(206, b"cde", {"ETag": '"e"', "Content-Range": "bytes 2-4/10"}),
                  Answer(200, b"abcdefghij", {"ETag": '"e"'}))
    got = store.get_object("bkt", "k", 2, 5)
    assert (got.data, got.size, got.etag) == (b"cde", 10, "e")
    assert server.seen[0].headers["Range"] == "bytes=2-4"
    assert store.get_object("bkt", "k", 2, 5).data == b"cde"


class Chunks(dict):
    """A sink for get_object_into: offset -> chunk, the last write at an offset wins."""

    def __call__(self, offset: int, chunk: bytes) -> None:
        self[offset] = chunk

    def joined(self) -> bytes:
        return b"".join(self[k] for k in sorted(self))


def test_get_object_into_streams_chunks_to_the_sink(server, store) -> None:
    body = bytes(range(256)) * 40  # 10,240 bytes
    server.script(Answer(206, body, {"ETag": '"e"', "Content-Range": "bytes 5-10244/20000"}))
    sink = Chunks()
    got = store.get_object_into("bkt", "k", sink, 5, 10245, if_match="e", chunk_size=4096)
    assert sorted(sink) == [0, 4096, 8192]
    assert sink.joined() == body
    assert (got.data, got.size, got.etag) == (b"", 20000, "e")
    assert server.seen[0].headers["Range"] == "bytes=5-10244"
    assert server.seen[0].headers["If-Match"] == '"e"'
    assert store.stats.snapshot()["bytes_received"] == len(body)


def test_get_object_into_restarts_the_sink_on_a_retried_short_body(server, store) -> None:
    server.script(Answer(200, b"x" * 50, {"ETag": '"e"'}, short_by=10),
                  Answer(200, b"y" * 60, {"ETag": '"e"'}))
    sink = Chunks()
    store.get_object_into("bkt", "k", sink, chunk_size=32)
    assert sink.joined() == b"y" * 60
    assert len(server.seen) == 2


def test_get_object_into_cuts_the_range_when_the_server_ignores_it(server, store) -> None:
    server.script(Answer(200, b"abcdefghij", {"ETag": '"e"'}))
    sink = Chunks()
    got = store.get_object_into("bkt", "k", sink, 2, 8, chunk_size=4)
    assert sink == {0: b"cdef", 4: b"gh"}
    assert (got.data, got.size) == (b"", 10)


def test_a_failing_sink_is_raised_as_is_and_not_retried(server, store) -> None:
    server.script(Answer(200, b"z" * 100, {"ETag": '"e"'}))

    def sink(offset: int, chunk: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        store.get_object_into("bkt", "k", sink)
    assert len(server.seen) == 1
    server.script(Answer(200, b"ok", {"ETag": '"e"'}))
    assert store.get_object("bkt", "k").data == b"ok"  # the connection was not poisoned


def test_get_object_into_errors_are_typed_and_never_reach_the_sink(server, store) -> None:
    server.script(Answer(412, error_xml("PreconditionFailed")))
    sink = Chunks()
    with pytest.raises(errors.PreconditionFailed):
        store.get_object_into("bkt", "k", sink, 0, 10, if_match="old")
    assert sink == {}


# -- typed errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "cls"), [
    (404, "NoSuchKey", errors.NoSuchKey),
    (404, "NoSuchBucket", errors.NoSuchBucket),
    (403, "SignatureDoesNotMatch", errors.SignatureDoesNotMatch),
    (409, "BucketNotEmpty", errors.BucketNotEmpty),
    (412, "PreconditionFailed", errors.PreconditionFailed),
    (416, "InvalidRange", errors.InvalidRange),
    (400, "KeyTooLongError", errors.KeyTooLong),
])
def test_error_xml_maps_to_the_typed_error(server, store, status, code, cls) -> None:
    server.script(Answer(status, error_xml(code, "server says no")))
    with pytest.raises(cls) as info:
        store.get_object("bkt", "some/key", 5, 9)
    assert info.value.code == code
    assert info.value.request_id == "RID123"
    assert (info.value.bucket, info.value.key) == ("bkt", "some/key")


def test_bodiless_head_errors_map_by_status(server, store) -> None:
    server.script(Answer(404), Answer(404), Answer(403))
    with pytest.raises(errors.NoSuchKey):
        store.head_object("bkt", "k")
    with pytest.raises(errors.NoSuchBucket):
        store.head_bucket("bkt")
    with pytest.raises(errors.AccessDenied):
        store.head_object("bkt", "k")


def test_a_non_2xx_body_is_never_returned(server, store) -> None:
    server.script(Answer(404, b"DATA-NOT-TO-BE-RETURNED"), *[Answer(500, b"DATA")] * 4)
    with pytest.raises(errors.StoreError):
        store.get_object("bkt", "k")
    with pytest.raises(errors.ServiceUnavailable):
        store.get_object("bkt", "k")


def test_a_200_error_body_of_complete_is_detected_and_retried(server, store) -> None:
    server.script(Answer(200, error_xml("InternalError")),
                  Answer(200, b"<CompleteMultipartUploadResult><ETag>&quot;abc-2&quot;</ETag>"
                              b"</CompleteMultipartUploadResult>"))
    parts = [CompletedPart(1, "e1"), CompletedPart(2, "e2")]
    assert store.complete_multipart_upload("bkt", "k", "U1", parts) == "abc-2"
    assert server.seen[0].path == "/bkt/k?uploadId=U1"


def test_a_200_error_body_of_copy_raises(server, store) -> None:
    server.script(Answer(200, error_xml("AccessDenied")))
    with pytest.raises(errors.AccessDenied):
        store.copy_object("src", "a b", "bkt", "k")
    assert server.seen[0].headers["x-amz-copy-source"] == "src/a%20b"
    assert server.seen[0].headers["x-amz-metadata-directive"] == "COPY"


def test_a_retried_complete_that_already_succeeded_returns_the_etag(server, store) -> None:
    server.script(Answer(503, b""), Answer(404, error_xml("NoSuchUpload")),
                  Answer(200, headers={"ETag": '"abc-2"', "Content-Length": "5"}))
    parts = [CompletedPart(1, "e1"), CompletedPart(2, "e2")]
    assert store.complete_multipart_upload("bkt", "k", "U1", parts) == "abc-2"
    assert [s.method for s in server.seen] == ["POST", "POST", "HEAD"]


def test_complete_no_such_upload_on_the_first_try_raises(server, store) -> None:
    server.script(Answer(404, error_xml("NoSuchUpload")))
    with pytest.raises(errors.NoSuchUpload):
        store.complete_multipart_upload("bkt", "k", "U1", [CompletedPart(1, "e1")])
    assert len(server.seen) == 1


# -- transport failures ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_server_that_never_answers_raises_request_timeout(server, sleeps) -> None:
    server.script(Answer(hang=True), Answer(hang=True))
    st = make_store(server.endpoint, sleeps, read_timeout=0.3, max_retries=1)
    try:
        with pytest.raises(errors.RequestTimeout) as info:
            st.list_buckets()
    finally:
        st.close()
    assert len(server.seen) == 2
    assert info.value.transient


def test_connection_refused_raises_connection_failed(sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    st = make_store(f"http://127.0.0.1:{port}", sleeps, max_retries=2)
    with pytest.raises(errors.ConnectionFailed) as info:
        st.head_bucket("bkt")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert len(sleeps) == 2
    assert st.stats.snapshot()["retries"] == 2
    assert not info.value.connected  # nobody there, as opposed to a broken connection


def test_a_connection_broken_by_the_server_is_told_from_a_refused_one(sleeps) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def accept_and_drop() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()  # linger 0: a reset, after the request arrived

        thread = threading.Thread(target=accept_and_drop, daemon=True)
        thread.start()
        st = make_store(f"http://127.0.0.1:{listener.getsockname()[1]}", sleeps,
                        max_retries=0)
        with pytest.raises(errors.ConnectionFailed) as info:
            st.head_bucket("bkt")
        thread.join(timeout=10)
    assert info.value.connected


# -- secrets never leak --------------------------------------------------------------


def test_secrets_never_appear_in_errors_or_logs(server, store, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(
        Answer(403, error_xml("SignatureDoesNotMatch", f"expected {SECRET} {TOKEN}")),
        Answer(200, b"<html>"),
        *[Answer(500, b"")] * 4,
    )
    raised = []
    for call in (store.list_buckets, store.list_buckets, lambda: store.head_bucket("b")):
        with pytest.raises(errors.StoreError) as info:
            call()
        raised.append(info.value)
    url = store.presign_url("bkt", "k", expires=60)
    signature = url.split("X-Amz-Signature=")[1]
    auth_header = server.seen[0].headers["Authorization"]
    texts = [str(e) for e in raised] + [repr(e) for e in raised]
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text, repr(store), repr(store.config)]
    for text in texts:
        for secret in (SECRET, TOKEN, signature, auth_header.split("Signature=")[1]):
            assert secret not in text
    debug_lines = [r.getMessage() for r in caplog.records if r.name == "mssfs.store.http"]
    assert len(debug_lines) == 6
    assert "ListBuckets" in debug_lines[0] and "status=403" in debug_lines[0]


# -- requests on the wire -------------------------------------------------------------


def test_one_connection_is_kept_alive_across_requests(server, store) -> None:
    server.script(Answer(200, headers={"ETag": '"e"', "Content-Length": "10"}),
                  Answer(204), Answer(404), Answer(200, b"0123456789", {"ETag": '"e"'}),
                  Answer(200, BUCKETS_XML))
    store.head_object("bkt", "k")
    store.delete_object("bkt", "k")
    with pytest.raises(errors.NoSuchKey):
        store.head_object("bkt", "k")
    store.get_object("bkt", "k")
    store.list_buckets()
    assert len({s.client_port for s in server.seen}) == 1


def test_put_object_sends_md5_type_and_metadata(server, store) -> None:
    server.script(Answer(200, headers={"ETag": '"5d41402abc4b2a76b9719d911017c592"'}))
    etag = store.put_object("bkt", "dir/a b+c", b"hello", content_type="text/plain",
                            metadata={"Mode": "33188"})
    assert etag == "5d41402abc4b2a76b9719d911017c592"
    seen = server.seen[0]
    assert seen.path == "/bkt/dir/a%20b%2Bc"
    assert seen.body == b"hello"
    assert seen.headers["Content-MD5"] == "XUFAKrxLKna5cZ2REBfFkg=="
    assert seen.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"  # MD5 is signed instead
    assert seen.headers["Content-Type"] == "text/plain"
    assert seen.headers["x-amz-meta-mode"] == "33188"
    assert seen.headers["X-Amz-Security-Token"] == TOKEN
    assert "content-md5" in seen.headers["Authorization"]


def test_list_falls_back_to_v1_when_v2_is_ignored(server, store) -> None:
    v1 = (b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key><Size>1"
          b"</Size><ETag>e</ETag></Contents><Contents><Key>b</Key><Size>1</Size><ETag>e</ETag>"
          b"</Contents></ListBucketResult>")
    server.script(Answer(200, v1), Answer(200, v1), Answer(200, v1))
    page = store.list_objects("bkt", max_keys=2)
    assert [o.key for o in page.objects] == ["a", "b"]
    assert page.next_token == "b"
    store.list_objects("bkt", continuation_token=page.next_token)
    paths = [s.path for s in server.seen]
    assert "list-type=2" in paths[0]
    assert "list-type" not in paths[1] and "list-type" not in paths[2]
    assert "marker=b" in paths[2]
    assert store.stats.snapshot()["requests"] == {"ListObjectsV2": 1, "ListObjects": 2}


def test_delete_objects_posts_with_md5_and_reports_failures(server, store) -> None:
    server.script(Answer(204),
                  Answer(200, b"<DeleteResult><Error><Key>x</Key><Code>AccessDenied</Code>"
                              b"<Message>no</Message></Error></DeleteResult>"))
    failures = store.delete_objects("bkt", ["x", "y&z", "ctl\x01"])
    assert [(f.key, f.code) for f in failures] == [("x", "AccessDenied")]
    delete, post = server.seen
    assert delete.method == "DELETE" and delete.path == "/bkt/ctl%01"
    assert post.path == "/bkt?delete"
    assert b"<Quiet>true</Quiet>" in post.body and b"y&amp;z" in post.body
    assert "Content-MD5" in post.headers


def test_virtual_hosted_addressing_puts_the_bucket_in_the_host(server, sleeps) -> None:
    st = make_store(server.endpoint.replace("127.0.0.1", "localhost"), sleeps,
                    addressing="virtual")
    url = st.presign_url("bkt", "a/b c", expires=10)
    port = server.server_address[1]
    assert url.startswith(f"http://bkt.localhost:{port}/a/b%20c?X-Amz-Algorithm=")
    st.close()


def test_presign_v2_and_anonymous(server, sleeps) -> None:
    st = make_store(server.endpoint, sleeps, signature="v2")
    url = st.presign_url("bkt", "k", method="PUT", expires=100)
    assert "AWSAccessKeyId=AKIDTEST" in url and "Signature=" in url and "Expires=" in url
    with pytest.raises(ValueError):
        st.presign_url("bkt", "k", expires=8 * 24 * 3600)
    anon = make_store(server.endpoint, sleeps, credentials=None)
    assert anon.presign_url("bkt", "k") == f"{server.endpoint}/bkt/k"
    server.script(Answer(200, BUCKETS_XML))
    anon.list_buckets()
    assert "Authorization" not in server.seen[0].headers
    st.close()
    anon.close()


def test_one_adapter_per_thread_with_the_configured_pool(server, sleeps) -> None:
    st = make_store(server.endpoint, sleeps, pool_size=7)
    adapters = []
    worker = threading.Thread(target=lambda: adapters.append(st._adapter()))
    worker.start()
    worker.join(timeout=10)
    mine = st._adapter()
    assert mine is st._adapter()
    assert adapters[0] is not mine
    for adapter in (mine, adapters[0]):
        assert adapter._pool_maxsize == 7
        assert adapter.max_retries.total == 0
    closed = []
    mine.close = lambda: closed.append("mine")  # type: ignore[method-assign]
    adapters[0].close = lambda: closed.append("worker")  # type: ignore[method-assign]
    st.close()
    assert sorted(closed) == ["mine", "worker"]


def test_the_adapter_of_a_finished_thread_is_closed_and_forgotten(server, store) -> None:
    server.script(Answer(200, BUCKETS_XML))
    made = []
    worker = threading.Thread(target=lambda: (store.list_buckets(), made.append(store._adapter())))
    worker.start()
    worker.join(timeout=10)
    adapter = made.pop()
    pools = adapter.poolmanager.pools
    assert len(pools) == 1
    del worker
    gc.collect()
    assert len(pools) == 0  # HTTPAdapter.close() cleared the connection pools
    del adapter
    gc.collect()
    assert len(store._adapters) == 0


def test_the_request_goes_out_as_signed(server, store) -> None:
    # No Session.prepare(): the path is sent exactly as signed (not re-quoted), bodies
    # get a Content-Length (0 for a bodiless DELETE, none for a GET), no cookie comes back.
    key = "dir/a b+c~d%e=f\u00e9"
    server.script(Answer(200, headers={"ETag": '"e1"', "Set-Cookie": "s=1"}),
                  Answer(200, b"xyz", headers={"ETag": '"e1"'}), Answer(204))
    store.put_object("bkt", key, b"data")
    assert store.get_object("bkt", key).data == b"xyz"
    store.delete_object("bkt", key)
    put, get, delete = server.seen
    wire = "/bkt/dir/a%20b%2Bc~d%25e%3Df%C3%A9"
    assert put.path == get.path == delete.path == wire
    assert (put.headers["Content-Length"], delete.headers["Content-Length"]) == ("4", "0")
    assert "Content-Length" not in get.headers
    assert "Cookie" not in get.headers
    assert put.headers["User-Agent"].startswith("mssfs/")


# -- TLS ------------------------------------------------------------------------------


def https(server: CannedServer) -> str:
    return f"https://127.0.0.1:{server.server_address[1]}"


def test_tls_is_verified_by_default(tls_server, sleeps) -> None:
    st = make_store(https(tls_server), sleeps)
    with pytest.raises(errors.StoreError) as info:
        st.list_buckets()
    assert info.value.code == "TLSError"
    assert "certificate" in str(info.value).lower() or "TLS" in str(info.value)
    assert sleeps == []  # a certificate that fails will fail again: not retried
    st.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_the_ca_bundle_or_unverified_when_asked(tls_server, certificate,
                                                         sleeps) -> None:
    for verify in (certificate[0], False):
        tls_server.script(Answer(200, BUCKETS_XML))
        st = make_store(https(tls_server), sleeps, verify_tls=verify)
        assert [b.name for b in st.list_buckets()] == ["b1"]
        st.close()


def test_a_bytes_body_of_its_own_length_is_not_copied() -> None:
    # upload_part is called with length=len(data): copying an 8 MiB part held the GIL
    # for most of a mount's write path.
    data = bytes(range(256)) * 64
    assert payload._payload(data, len(data), signed=False).data is data
    assert payload._payload(data, 10, signed=False).data == data[:10]
    buf = bytearray(data)
    body = payload._payload(buf, signed=False)
    buf[0] ^= 1  # a mutable body is copied when the request is prepared
    assert body.data == data
