"""``HttpStore``: the real S3 client, on ``requests``, implementing ``ObjectStore``.

How a call runs. Each public method describes one S3 request (``_Request``: operation
name, method, bucket, key, query, headers, body) and hands it to ``_call`` with a
parser for the answer. Each attempt signs the request afresh (a new time from the
injected clock), sends it on this thread's session, reads the whole body, checks its
length, and turns a failure into a typed ``StoreError``. Errors whose class is
``transient`` (5xx, SlowDown, 429, refused or reset connections, timeouts, short bodies)
are retried after a full-jitter exponential backoff, when the body can be sent again
(bytes, or a seekable file that is rewound to its start offset). Everything else is
raised at once.

The retry budget is time, not a count (DESIGN.md §7): ``_call`` keeps retrying a
transient failure until ``config.retry_time`` seconds (on the injected monotonic clock)
have passed since the call began, so an outage shorter than the budget is ridden out.
Each attempt's connect and read timeouts are capped by what is left of the budget (at
least ``_MIN_ATTEMPT_TIMEOUT``), and no backoff sleeps past it: a server that stops
answering for longer than the budget makes the call fail within about ``retry_time``
plus one short attempt, never a hang. ``config.max_retries``, when set, also caps the
number of retries (the pre-flight check of ``cli`` uses it to fail fast).

Answers are judged at this edge only. A non-2xx answer becomes an error from its
``<Error>`` body (``errors.error_for``) and is never returned as data; a 4xx that is not
S3 XML (an HTML login page, a proxy's message), a 2xx whose XML is not the expected
document, or an object answer without an ETag is ``NotS3Endpoint``, naming the
endpoint. A GET body whose length differs from Content-Length or from the range asked
is ``IncompleteBody``. Messages carry the operation, bucket and key, never a header,
a signature or a secret.

Bodies. ``put_object`` and ``upload_part`` send a signed Content-MD5 and sign
``UNSIGNED-PAYLOAD`` (see ``_payload``). Bytes go out as they are, never copied when
they are ``bytes`` of the announced length; a file body is hashed in one pass and then
streamed from its start offset in 1 MiB chunks (``_FileBody``), never read
whole into memory. GET bodies are read with one ``read(n)`` of the expected size, which
costs a single copy out of the socket buffer. ``get_object_into`` instead hands a 2xx
body to a caller's sink in 256 KiB pieces as it arrives (``transfer.download_file``
pwrites them): no body-sized buffer, whose fresh pages cost a page fault each.

Threads and locks. ``requests.Session`` is not promised to be thread-safe, so each
thread gets its own (``threading.local``); ``_sessions_lock`` guards only the set of
live sessions, for ``close()``. A session is closed when its thread's ``Thread`` object
goes away (``weakref.finalize``), so short-lived pools (``transfer``) leave no sockets.
``Stats`` has its own lock, held for counter updates only. No lock is held across a
network call. The ListObjects V1 fall-back flag is a plain attribute: a racing thread
at worst makes one more V2 attempt.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import random
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from mssfs.store import errors, s3_xml, signing
from mssfs.store.base import (
    Body,
    BucketInfo,
    CompletedPart,
    DeleteFailure,
    GetResult,
    ListPage,
    ObjectInfo,
    UploadInfo,
)
from mssfs.store.config import StoreConfig

log = logging.getLogger("mssfs.store.http")

_CHUNK = 1024 * 1024
# Pieces of a streamed GET body (get_object_into). 256 KiB, as s3transfer reads: with
# 1 MiB pieces every chunk is a fresh mmap of the allocator (above its mmap threshold),
# and 8 threads of them cost 3 to 4 s of system CPU per GiB once the kernel has dirty
# pages to write back: half boto3's download speed (measured: 250-350 vs 500-740 MB/s).
_SINK_CHUNK = 256 * 1024
_SMALL_FILE_BODY = 8 * 1024 * 1024  # file bodies up to this size are read into memory
_META_PREFIX = "x-amz-meta-"
# The shortest timeout an attempt gets when little of the retry budget is left.
_MIN_ATTEMPT_TIMEOUT = 1.0


class Stats:
    """Request counters: by S3 operation, bytes both ways, retries, errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retries = 0
        self.errors = 0

    def record(self, op: str, sent: int, received: int) -> None:
        with self._lock:
            self.requests[op] += 1
            self.bytes_sent += sent
            self.bytes_received += received

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def count_error(self) -> None:
        with self._lock:
            self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "retries": self.retries,
                "errors": self.errors,
            }


class _FileBody:
    """Streams ``length`` bytes of a file from its current offset; ``len()`` for
    Content-Length. Deliberately has no ``read`` so urllib3 iterates our 1 MiB chunks
    instead of reading 16 KiB blocks."""

    def __init__(self, fileobj: Any, length: int) -> None:
        self._file = fileobj
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        left = self._length
        while left > 0:
            chunk = self._file.read(min(_CHUNK, left))
            if not chunk:
                raise OSError("the file body ended before its announced length")
            left -= len(chunk)
            yield chunk


@dataclass
class _Payload:
    """A request body, prepared once (hashes) and sendable again on each attempt."""

    data: bytes | None = None
    fileobj: Any = None
    start: int = 0
    length: int = 0
    md5: str = ""
    sha256: str = signing.EMPTY_SHA256

    def body(self) -> bytes | _FileBody | None:
        if self.fileobj is None:
            return self.data
        self.fileobj.seek(self.start)
        return _FileBody(self.fileobj, self.length)


def _payload(body: Body | None, length: int | None = None, *, signed: bool = True) -> _Payload:
    """Prepare a body. ``signed=False`` (object data, always sent with Content-MD5) signs
    ``UNSIGNED-PAYLOAD`` instead of the body's SHA-256: the signature covers the
    Content-MD5 header and the server checks the body against it, so integrity holds
    end to end while each byte is hashed once instead of twice (MD5 and SHA-256)."""
    if body is None:
        return _Payload()
    if isinstance(body, bytes) and length in (None, len(body)):
        return _bytes_payload(body, signed=signed)  # immutable: no copy (8 MiB under the GIL)
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body if length is None else memoryview(body)[:length])
        return _bytes_payload(data, signed=signed)
    start = body.tell()
    if length is None:
        length = body.seek(0, io.SEEK_END) - start
        body.seek(start)
    if length <= _SMALL_FILE_BODY or not body.seekable():
        data = body.read(length)
        if len(data) != length:
            raise ValueError(f"the file body has {len(data)} bytes, not {length}")
        return _bytes_payload(data, signed=signed)
    md5, sha = hashlib.md5(), (hashlib.sha256() if signed else None)
    left = length
    while left > 0:
        chunk = body.read(min(_CHUNK, left))
        if not chunk:
            raise ValueError("the file body is shorter than its length")
        md5.update(chunk)
        if sha is not None:
            sha.update(chunk)
        left -= len(chunk)
    return _Payload(None, body, start, length, base64.b64encode(md5.digest()).decode(),
                    sha.hexdigest() if sha is not None else signing.UNSIGNED_PAYLOAD)


def _bytes_payload(data: bytes, *, signed: bool = True) -> _Payload:
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    sha = hashlib.sha256(data).hexdigest() if signed else signing.UNSIGNED_PAYLOAD
    return _Payload(data, None, 0, len(data), md5, sha)


@dataclass
class _Request:
    op: str
    method: str
    bucket: str = ""
    key: str = ""
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    payload: _Payload = field(default_factory=_Payload)
    content_md5: bool = False
    attempts: int = 0  # set by _call: how many times the request was sent
    # get_object_into: a 2xx body goes to sink(offset, chunk) in chunk_size pieces
    # instead of into memory; streamed counts the bytes the last attempt delivered.
    sink: Callable[[int, bytes], None] | None = None
    chunk_size: int = _SINK_CHUNK
    streamed: int = 0


class _SinkFailed(Exception):
    """The sink of ``get_object_into`` raised: passed through the retry loop untouched
    and unwrapped by ``get_object_into``."""


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {f"{_META_PREFIX}{k.lower()}": str(v) for k, v in (metadata or {}).items()}


def _header_text(value: str) -> str:
    # http.client decodes headers as latin-1; servers send UTF-8 metadata as raw bytes.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _metadata_of(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower()[len(_META_PREFIX):]: _header_text(v)
        for k, v in headers.items()
        if k.lower().startswith(_META_PREFIX)
    }


def _wire_headers(headers: Mapping[str, str]) -> dict[str, str | bytes]:
    # Non-latin-1 values go as UTF-8 bytes, the bytes SigV4 signed.
    return {k: v if v.isascii() else v.encode("utf-8") for k, v in headers.items()}


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\"()]*|timed out|Connection reset|"
                       r"Remote end closed connection|Name or service not known")


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a transport error (no URL, no query)."""
    match = _ERRNO_RE.search(str(exc))
    return match.group(0).strip() if match else type(exc).__name__



class HttpStore:
    """An ``ObjectStore`` over HTTP(S) for MSS and any S3-compatible server."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stats = Stats()
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng
        parts = urlsplit(config.endpoint)
        self._scheme = parts.scheme
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self._host = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self._endpoint = f"{self._scheme}://{self._host}"
        self._local = threading.local()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()
        self._list_v1 = config.list_version == 1

    def __repr__(self) -> str:
        return f"HttpStore({self._endpoint!r})"

    def close(self) -> None:
        """Close every session this store made (on any thread)."""
        with self._sessions_lock:
            sessions = list(self._sessions)
            self._sessions.clear()
        for session in sessions:
            session.close()

    # -- transport ------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            size = self.config.pool_size
            # pool_connections: host pools kept (one per bucket with virtual-hosted addressing).
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.verify = self.config.verify_tls
            session.trust_env = False  # no proxy or netrc from the environment
            self._local.session = session
            with self._sessions_lock:
                self._sessions.add(session)
            # The thread's end drops our thread-local reference; close its sockets then.
            weakref.finalize(threading.current_thread(), session.close)
        return session

    def _address(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(host, wire path, SigV2 resource path) of a bucket/key."""
        encoded = signing.uri_encode(key, keep_slash=True)
        resource = "/" + (f"{bucket}/{encoded}" if bucket else "")
        if bucket and self.config.addressing == "virtual":
            return f"{bucket}.{self._host}", "/" + encoded, f"/{bucket}/{encoded}"
        if bucket and not key:
            resource = f"/{bucket}"
        return self._host, resource, resource

    def _signed_headers(self, req: _Request, host: str, path: str, resource: str,
                        payload: _Payload) -> dict[str, str]:
        headers = dict(req.headers)
        if req.content_md5:
            headers["Content-MD5"] = payload.md5
        creds = self.config.credentials
        now = self._clock()
        if creds is None:
            return {**headers, "Host": host}
        if self.config.signature == "v2":
            return {**signing.sign_v2(req.method, resource, req.params, headers, creds, now),
                    "Host": host}
        return signing.sign_v4(req.method, host, path, req.params, headers, payload.sha256,
                               creds, self.config.region, now)

    def _attempt(self, req: _Request, attempt: int,
                 timeout: tuple[float, float]) -> _Reply:
        """One try: sign, send, read the whole body. Raises typed errors."""
        host, path, resource = self._address(req.bucket, req.key)
        headers = self._signed_headers(req, host, path, resource, req.payload)
        headers["Accept-Encoding"] = "identity"  # byte counts must match Content-Length
        query = signing.encode_query(req.params)
        url = f"{self._scheme}://{host}{path}" + (f"?{query}" if query else "")
        started = time.monotonic()
        status, received = 0, 0
        try:
            resp = self._session().request(
                req.method, url, headers=_wire_headers(headers), data=req.payload.body(),
                timeout=timeout, stream=True, allow_redirects=False,
            )
            status = resp.status_code
            body = self._read(req, resp)
            received = len(body) or req.streamed
            return _Reply(status, resp.headers, body)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport_error(req, exc) from exc
        finally:
            self.stats.record(req.op, req.payload.length, received)
            log.debug("%s %s bucket=%s key=%r status=%s bytes=%d ms=%.1f attempt=%d",
                      req.method, req.op, req.bucket, req.key, status,
                      req.payload.length + received, (time.monotonic() - started) * 1000,
                      attempt + 1)

    def _read(self, req: _Request, resp: requests.Response) -> bytes:
        """The whole body; IncompleteBody if it is shorter than announced.

        The connection goes back to the pool only after a complete body; any failure
        closes it (``resp.close()``) so a half-read answer never poisons the next one.
        """
        announced = resp.headers.get("Content-Length", "")
        bodiless = req.method == "HEAD" or resp.status_code in (204, 304)
        expected = int(announced) if announced.isdigit() and not bodiless else None
        req.streamed = 0
        try:
            if expected and req.sink is not None and self._streams(req, resp):
                self._stream(req, resp, expected)
                data = b""
                expected = 0
            elif expected:
                data = resp.raw.read(expected, decode_content=False)
            else:
                data = resp.raw.read(decode_content=False)
        except urllib3.exceptions.ProtocolError as exc:
            resp.close()
            raise errors.IncompleteBody(
                f"{req.op}: the connection closed before the whole body arrived "
                f"({_reason(exc)})", code="IncompleteBody", status=resp.status_code,
                bucket=req.bucket, key=req.key) from exc
        data = data or b""
        if expected is not None and len(data) != expected:
            resp.close()
            raise errors.IncompleteBody(
                f"{req.op}: got {len(data)} of {expected} bytes", code="IncompleteBody",
                status=resp.status_code, bucket=req.bucket, key=req.key)
        resp.raw.release_conn()
        return data

    @staticmethod
    def _streams(req: _Request, resp: requests.Response) -> bool:
        # A 200 to a ranged GET is the whole object (the server ignored Range): read it
        # into memory and let _get_result cut the range out of it.
        return resp.status_code == 206 or (
            resp.status_code == 200 and "Range" not in req.headers)

    def _stream(self, req: _Request, resp: requests.Response, expected: int) -> None:
        """Hand the body to ``req.sink`` in ``req.chunk_size`` pieces. Small reads into
        fresh ``bytes`` reuse the allocator's free memory; one large body-sized buffer
        per GET would page-fault every page of it (measured: 3x the CPU per byte)."""
        assert req.sink is not None
        while req.streamed < expected:
            chunk = resp.raw.read(min(req.chunk_size, expected - req.streamed),
                                  decode_content=False)
            if not chunk:
                resp.close()
                raise errors.IncompleteBody(
                    f"{req.op}: got {req.streamed} of {expected} bytes",
                    code="IncompleteBody", status=resp.status_code,
                    bucket=req.bucket, key=req.key)
            try:
                req.sink(req.streamed, chunk)
            except Exception as exc:  # the caller's own failure: not a transport error
                resp.close()
                raise _SinkFailed(exc) from exc
            req.streamed += len(chunk)

    def _transport_error(self, req: _Request, exc: BaseException) -> errors.StoreError:
        if isinstance(exc, errors.StoreError):
            return exc
        where = {"bucket": req.bucket, "key": req.key}
        if isinstance(exc, requests.exceptions.SSLError):
            # Not transient: a certificate that fails verification will fail again.
            return errors.StoreError(f"{req.op}: TLS failure with {self._endpoint} "
                                     f"({_reason(exc)})", code="TLSError", **where)
        if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
            return errors.RequestTimeout(
                f"{req.op}: no answer from {self._endpoint} in time ({_reason(exc)})",
                code="RequestTimeout", **where)
        if isinstance(exc, (requests.ConnectionError, urllib3.exceptions.HTTPError,
                            ConnectionError)):
            return errors.ConnectionFailed(
                f"{req.op}: cannot reach {self._endpoint} ({_reason(exc)})",
                code="ConnectionFailed", **where)
        return errors.StoreError(f"{req.op}: request to {self._endpoint} failed "
                                 f"({type(exc).__name__})", code="ClientError", **where)

    def _error_of(self, req: _Request, reply: _Reply) -> errors.StoreError:
        """The typed error of a non-2xx answer."""
        where = {"bucket": req.bucket, "key": req.key}
        info = s3_xml.parse_error(reply.body) if reply.body else None
        if info is not None:
            return errors.error_for(reply.status, info.code, self._scrub(info.message),
                                    request_id=info.request_id, **where)
        request_id = reply.headers.get("x-amz-request-id", "")
        if reply.body and reply.status < 500 and reply.status != 429:
            return errors.NotS3Endpoint(
                f"{req.op}: {self._endpoint} answered HTTP {reply.status} with a body that "
                f"is not an S3 error document; is this an S3 endpoint?",
                code=f"HTTP{reply.status}", status=reply.status, **where)
        return errors.error_for(reply.status, request_id=request_id, **where)

    def _scrub(self, text: str) -> str:
        creds = self.config.credentials
        for secret in (creds.secret_key, creds.session_token) if creds else ():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _not_s3(self, req: _Request, what: str) -> errors.NotS3Endpoint:
        return errors.NotS3Endpoint(
            f"{req.op}: the answer of {self._endpoint} is not S3 ({what})",
            code="NotS3", bucket=req.bucket, key=req.key)

    def _call(self, req: _Request, parse: Callable[[_Reply], Any] | None = None) -> Any:
        """Run ``req`` with retries; return ``parse(reply)`` (or the reply)."""
        deadline = self._monotonic() + self.config.retry_time
        attempt = 0
        while True:
            req.attempts = attempt + 1
            try:
                reply = self._attempt(req, attempt, self._timeouts(deadline))
                if not 200 <= reply.status < 300:
                    raise self._error_of(req, reply)
                return self._parse(req, reply, parse)
            except errors.StoreError as exc:
                delay = self._retry_delay(exc, attempt, deadline)
                if delay is None:
                    self.stats.count_error()
                    raise
                self.stats.count_retry()
                self._sleep(delay)
                attempt += 1

    def _timeouts(self, deadline: float) -> tuple[float, float]:
        """(connect, read) timeouts of the next attempt: the configured ones, capped by
        what is left of the retry budget (a budget of 0 means no retries, no cap)."""
        connect, read = self.config.connect_timeout, self.config.read_timeout
        if self.config.retry_time <= 0:
            return connect, read
        left = max(deadline - self._monotonic(), _MIN_ATTEMPT_TIMEOUT)
        return min(connect, left), min(read, left)

    def _retry_delay(self, exc: errors.StoreError, attempt: int,
                     deadline: float) -> float | None:
        """Seconds to wait before retrying ``exc``, or None when it must be raised."""
        cap = self.config.max_retries
        if not exc.transient or (cap is not None and attempt >= cap):
            return None
        left = deadline - self._monotonic()
        if left <= 0:
            return None
        backoff = min(self.config.retry_max_delay, self.config.retry_base_delay * 2**attempt)
        return min(self._rng() * backoff, left)

    def _parse(self, req: _Request, reply: _Reply, parse: Callable[[_Reply], Any] | None) -> Any:
        if parse is None:
            return reply
        try:
            return parse(reply)
        except s3_xml.ErrorDocument as exc:
            info = exc.info
            raise errors.error_for(reply.status, info.code, self._scrub(info.message),
                                   bucket=req.bucket, key=req.key,
                                   request_id=info.request_id) from None
        except s3_xml.MalformedXml as exc:
            raise self._not_s3(req, str(exc)) from None

    def _etag(self, req: _Request, reply: _Reply) -> str:
        etag = reply.headers.get("ETag")
        if not etag:
            raise self._not_s3(req, "no ETag header")
        return s3_xml.strip_etag(etag)

    # -- buckets ----------------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]:
        req = _Request("ListBuckets", "GET")
        return self._call(req, lambda r: s3_xml.parse_buckets(r.body))

    def create_bucket(self, bucket: str) -> None:
        body = None
        if self.config.region != "us-east-1":
            body = (f"<CreateBucketConfiguration><LocationConstraint>{self.config.region}"
                    f"</LocationConstraint></CreateBucketConfiguration>").encode()
        self._call(_Request("CreateBucket", "PUT", bucket, payload=_payload(body)))

    def head_bucket(self, bucket: str) -> None:
        self._call(_Request("HeadBucket", "HEAD", bucket))

    def delete_bucket(self, bucket: str) -> None:
        self._call(_Request("DeleteBucket", "DELETE", bucket))

    # -- objects ------------------------------------------------------------------------
    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        *,
        continuation_token: str | None = None,
        start_after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        common = [("prefix", prefix), ("max-keys", str(max_keys)), ("encoding-type", "url")]
        if delimiter:
            common.append(("delimiter", delimiter))
        if not self._list_v1:
            params = [("list-type", "2"), *common]
            if continuation_token:
                params.append(("continuation-token", continuation_token))
            if start_after:
                params.append(("start-after", start_after))
            listing = self._call(_Request("ListObjectsV2", "GET", bucket, params=params),
                                 lambda r: s3_xml.parse_listing(r.body))
            if listing.is_v2:
                return ListPage(listing.objects, listing.prefixes,
                                listing.next_token if listing.truncated else None)
            # No KeyCount: the server ignored list-type=2. Use V1 from now on.
            log.info("%s does not support ListObjectsV2; using ListObjects", self._endpoint)
            self._list_v1 = True
        marker = continuation_token or start_after
        params = common + ([("marker", marker)] if marker else [])
        listing = self._call(_Request("ListObjects", "GET", bucket, params=params),
                             lambda r: s3_xml.parse_listing(r.body))
        next_token = None
        if listing.truncated:
            names = [o.key for o in listing.objects] + list(listing.prefixes)
            next_token = listing.next_marker or (max(names) if names else None)
        return ListPage(listing.objects, listing.prefixes, next_token)

    def _object_info(self, req: _Request, reply: _Reply, size: int) -> ObjectInfo:
        h = reply.headers
        return ObjectInfo(
            key=req.key, size=size, etag=self._etag(req, reply),
            last_modified=s3_xml.parse_time(h.get("Last-Modified", "")),
            content_type=h.get("Content-Type"), metadata=_metadata_of(h),
            storage_class=h.get("x-amz-storage-class"),
        )

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        req = _Request("HeadObject", "HEAD", bucket, key)

        def parse(reply: _Reply) -> ObjectInfo:
            length = reply.headers.get("Content-Length", "")
            if not length.isdigit():
                raise self._not_s3(req, "no Content-Length")
            return self._object_info(req, reply, int(length))

        return self._call(req, parse)

    def get_object(
        self,
        bucket: str,
        key: str,
        start: int = 0,
        end: int | None = None,
        *,
        if_match: str | None = None,
    ) -> GetResult:
        headers = {"If-Match": f'"{s3_xml.strip_etag(if_match)}"'} if if_match else {}
        ranged = start > 0 or end is not None
        if ranged:
            last = "" if end is None else str(max(end, start + 1) - 1)
            headers["Range"] = f"bytes={start}-{last}"
        req = _Request("GetObject", "GET", bucket, key, headers=headers)
        try:
            return self._call(req, lambda r: self._get_result(req, r, start, end))
        except errors.InvalidRange:
            if start != 0:
                raise
            # S3 refuses any range of an empty object: fetch it whole instead.
            whole = self.get_object(bucket, key, if_match=if_match)
            return GetResult(whole.data[:end], whole.etag, whole.size, whole.last_modified,
                             whole.content_type, whole.metadata)

    def get_object_into(
        self,
        bucket: str,
        key: str,
        sink: Callable[[int, bytes], None],
        start: int = 0,
        end: int | None = None,
        *,
        if_match: str | None = None,
        chunk_size: int = _SINK_CHUNK,
    ) -> GetResult:
        """``get_object`` without holding the body: each piece of ``chunk_size`` bytes
        (the last one shorter) goes to ``sink(offset_in_range, chunk)`` as it arrives,
        and the result's ``data`` is empty (its ``size`` is the object's). A retried
        attempt starts again at offset 0, so the sink must accept rewrites. An exception
        from the sink ends the call at once (no retry) and is raised as it is."""
        headers = {"If-Match": f'"{s3_xml.strip_etag(if_match)}"'} if if_match else {}
        if start > 0 or end is not None:
            if end is not None and end <= start:
                return self.get_object(bucket, key, start, end, if_match=if_match)
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        req = _Request("GetObject", "GET", bucket, key, headers=headers, sink=sink,
                       chunk_size=chunk_size)

        def parse(reply: _Reply) -> GetResult:
            result = self._get_result(req, reply, start, end)
            for pos in range(0, len(result.data), chunk_size):  # Range ignored: cut here
                sink(pos, result.data[pos:pos + chunk_size])
            return GetResult(b"", result.etag, result.size, result.last_modified,
                             result.content_type, result.metadata)

        try:
            return self._call(req, parse)
        except _SinkFailed as exc:
            raise exc.__cause__ from None  # type: ignore[misc]
        except errors.InvalidRange:
            if start != 0:
                raise
            whole = self.get_object(bucket, key, 0, end, if_match=if_match)
            if whole.data:
                sink(0, whole.data)
            return GetResult(b"", whole.etag, whole.size, whole.last_modified,
                             whole.content_type, whole.metadata)

    def _get_result(self, req: _Request, reply: _Reply, start: int,
                    end: int | None) -> GetResult:
        data, size = reply.body, len(reply.body) or req.streamed
        if reply.status == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)",
                                 reply.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != start:
                raise self._not_s3(req, "a partial answer without a matching Content-Range")
            size = int(match.group(3)) if match.group(3) != "*" else -1
            stop = size if end is None else min(max(end, start + 1), size)
            got = len(data) or req.streamed
            if size >= 0 and got != stop - start:
                want = stop - start
                raise errors.IncompleteBody(f"GetObject: got {got} of {want} bytes",
                                            code="IncompleteBody", status=206,
                                            bucket=req.bucket, key=req.key)
        elif start or end is not None:
            data = data[start:end]  # the server ignored Range and sent it all
        if end is not None and end <= start:
            data = b""
        info = self._object_info(req, reply, size)
        return GetResult(data, info.etag, size, info.last_modified, info.content_type,
                         info.metadata)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        headers = _metadata_headers(metadata)
        if content_type:
            headers["Content-Type"] = content_type
        req = _Request("PutObject", "PUT", bucket, key, headers=headers,
                       payload=_payload(body, length, signed=False), content_md5=True)
        return self._call(req, lambda r: self._etag(req, r))

    def _copy_source(self, src_bucket: str, src_key: str) -> str:
        return signing.uri_encode(f"{src_bucket}/{src_key}", keep_slash=True)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> str:
        headers = {"x-amz-copy-source": self._copy_source(src_bucket, src_key),
                   "x-amz-metadata-directive": "COPY" if metadata is None else "REPLACE"}
        if metadata is not None:
            headers.update(_metadata_headers(metadata))
            if content_type:
                headers["Content-Type"] = content_type
        if if_match:
            headers["x-amz-copy-source-if-match"] = f'"{s3_xml.strip_etag(if_match)}"'
        req = _Request("CopyObject", "PUT", bucket, key, headers=headers)
        return self._call(req, lambda r: s3_xml.parse_copy_result(r.body))

    def delete_object(self, bucket: str, key: str) -> None:
        try:
            self._call(_Request("DeleteObject", "DELETE", bucket, key))
        except errors.NoSuchKey:
            pass  # S3 answers 204 for a missing key; some servers say 404

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[DeleteFailure]:
        if not keys or len(keys) > 1000:
            raise errors.InvalidRequest("DeleteObjects takes 1 to 1000 keys",
                                        code="MalformedXML", bucket=bucket)
        # XML 1.0 cannot carry some control characters: delete those keys one by one.
        for key in (k for k in keys if not s3_xml.xml_safe(k)):
            self.delete_object(bucket, key)
        safe = [k for k in keys if s3_xml.xml_safe(k)]
        if not safe:
            return []
        req = _Request("DeleteObjects", "POST", bucket, params=[("delete", "")],
                       payload=_payload(s3_xml.build_delete(safe, quiet=True)),
                       content_md5=True, headers={"Content-Type": "application/xml"})
        return self._call(req, lambda r: s3_xml.parse_delete_result(r.body))

    # -- multipart ------------------------------------------------------------------------
    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        headers = _metadata_headers(metadata)
        if content_type:
            headers["Content-Type"] = content_type
        req = _Request("CreateMultipartUpload", "POST", bucket, key, params=[("uploads", "")],
                       headers=headers)
        return self._call(req, lambda r: s3_xml.parse_initiate(r.body))

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        *,
        length: int | None = None,
    ) -> str:
        params = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        req = _Request("UploadPart", "PUT", bucket, key, params=params,
                       payload=_payload(body, length, signed=False), content_md5=True)
        return self._call(req, lambda r: self._etag(req, r))

    def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        start: int,
        end: int,
        *,
        if_match: str | None = None,
    ) -> str:
        headers = {"x-amz-copy-source": self._copy_source(src_bucket, src_key),
                   "x-amz-copy-source-range": f"bytes={start}-{end - 1}"}
        if if_match:
            headers["x-amz-copy-source-if-match"] = f'"{s3_xml.strip_etag(if_match)}"'
        params = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        req = _Request("UploadPartCopy", "PUT", bucket, key, params=params, headers=headers)
        return self._call(req, lambda r: s3_xml.parse_copy_result(r.body))

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        req = _Request("CompleteMultipartUpload", "POST", bucket, key,
                       params=[("uploadId", upload_id)],
                       headers={"Content-Type": "application/xml"},
                       payload=_payload(s3_xml.build_complete(parts)))
        try:
            return self._call(req, lambda r: s3_xml.parse_complete(r.body))
        except errors.NoSuchUpload:
            if req.attempts == 1:
                raise
            # A retried Complete may have succeeded the first time and lost its answer:
            # the object then carries a multipart ETag with our part count.
            etag = self._completed_etag(bucket, key, len(parts))
            if etag is None:
                raise
            return etag

    def _completed_etag(self, bucket: str, key: str, part_count: int) -> str | None:
        try:
            info = self.head_object(bucket, key)
        except errors.NotFound:
            return None
        return info.etag if info.etag.endswith(f"-{part_count}") else None

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._call(_Request("AbortMultipartUpload", "DELETE", bucket, key,
                            params=[("uploadId", upload_id)]))

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        found: list[UploadInfo] = []
        key_marker = upload_id_marker = ""
        while True:
            params = [("uploads", ""), ("prefix", prefix), ("encoding-type", "url")]
            if key_marker:
                params += [("key-marker", key_marker), ("upload-id-marker", upload_id_marker)]
            page = self._call(_Request("ListMultipartUploads", "GET", bucket, params=params),
                              lambda r: s3_xml.parse_uploads(r.body))
            found.extend(page.uploads)
            if not page.truncated or not page.next_key_marker:
                return found
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    # -- presigned URLs -----------------------------------------------------------------
    def presign_url(
        self, bucket: str, key: str, *, method: str = "GET", expires: int = 300
    ) -> str:
        signing.check_expires(expires)
        host, path, resource = self._address(bucket, key)
        base = f"{self._scheme}://{host}{path}"
        creds = self.config.credentials
        if creds is None:
            return base
        now = self._clock()
        if self.config.signature == "v2":
            query = signing.presign_v2(method, resource, [], creds, now, expires)
        else:
            query = signing.presign_v4(method, host, path, [], creds, self.config.region,
                                       now, expires)
        return f"{base}?{query}"
