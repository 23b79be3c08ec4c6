"""``HttpTransport``: how one S3 request is sent, retried and judged, on ``requests``.

``HttpStore`` (``http.py``) builds the S3 operations on this class; everything below
the operations lives here.

How a call runs. Each operation describes one S3 request (``_Request``: operation
name, method, bucket, key, query, headers, body) and hands it to ``_call`` with a
parser for the answer. Each attempt signs the request afresh (a new time from the
injected clock), sends it on this thread's session, reads the whole body, checks its
length, and turns a failure into a typed ``StoreError``. Errors whose class is
``transient`` (5xx, SlowDown, 429, refused or reset connections, timeouts, short bodies)
are retried after a full-jitter exponential backoff, when the body can be sent again
(bytes, or a seekable file that is rewound to its start offset; see ``payload``).
Everything else is raised at once.

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

Bodies read. A GET body is read with one ``read(n)`` of the expected size, which costs
a single copy out of the socket buffer; a request with a sink (``get_object_into``)
gets a 2xx body in 256 KiB pieces as it arrives instead (``_stream``).

Sending. A request goes straight to a ``requests`` ``HTTPAdapter`` (its urllib3
connection pools, TLS verification and exception mapping), as a ``PreparedRequest``
built here, not through ``Session.request``: a session re-parses and re-quotes the URL,
merges environment settings, cookies and hooks on every call, none of which S3 uses
(measured: 439 against 416 µs of client CPU per 4 KiB PUT, 6 alternated runs of
1,000). The URL goes out exactly as signed. TLS is
verified as ``config.verify_tls`` says (True, a CA bundle path, or False) on every
send; no proxy or netrc comes from the environment.

Threads and locks. An adapter is not promised to be thread-safe, so each thread gets
its own (``threading.local``); ``_adapters_lock`` guards only the set of live adapters,
for ``close()``. An adapter is closed when its thread's ``Thread`` object goes away
(``weakref.finalize``), so short-lived pools (``transfer``) leave no sockets.
``Stats`` has its own lock, held for counter updates only. No lock is held across a
network call.
"""

from __future__ import annotations

import importlib.metadata
import logging
import random
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from mssfs.store import errors, s3_xml, signing
from mssfs.store.config import StoreConfig
from mssfs.store.payload import _Payload

# Request lines keep the logger name users filter on (one line per attempt at DEBUG).
log = logging.getLogger("mssfs.store.http")

# Pieces of a streamed GET body (get_object_into). 256 KiB, as s3transfer reads: with
# 1 MiB pieces every chunk is a fresh mmap of the allocator (above its mmap threshold),
# and 8 threads of them cost 3 to 4 s of system CPU per GiB once the kernel has dirty
# pages to write back: half boto3's download speed (measured: 250-350 vs 500-740 MB/s).
_SINK_CHUNK = 256 * 1024
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


@dataclass
class _Request:
    op: str
    method: str
    bucket: str = ""
    key: str = ""
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    payload: _Payload = field(default_factory=_Payload)
    # Send the payload's checksum for the server to check: Content-MD5, or
    # x-amz-checksum-crc32 when the payload carries a CRC32 instead.
    checksum: bool = False
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


def _user_agent() -> str:
    try:
        return f"mssfs/{importlib.metadata.version('mssfs')}"
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "mssfs"


_USER_AGENT = _user_agent()


def _prepared(method: str, url: str, headers: Mapping[str, str],
              payload: _Payload) -> requests.PreparedRequest:
    """The request as ``HTTPAdapter.send`` takes it, built without ``prepare()`` (see
    the module docstring): the URL as signed, the body unchanged, a Content-Length as
    ``requests`` would set one."""
    # Non-latin-1 values go as UTF-8 bytes, the bytes SigV4 signed.
    wire: dict[str, str | bytes] = {
        k: v if v.isascii() else v.encode("utf-8") for k, v in headers.items()}
    body = payload.body()
    if body is not None:
        wire["Content-Length"] = str(payload.length)
    elif method not in ("GET", "HEAD"):
        wire["Content-Length"] = "0"
    wire.setdefault("User-Agent", _USER_AGENT)
    prepared = requests.PreparedRequest()
    prepared.method, prepared.url, prepared.body = method, url, body
    prepared.headers = CaseInsensitiveDict(wire)
    return prepared


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\"()]*|timed out|Connection reset|"
                       r"Remote end closed connection|Name or service not known")


def _while_connecting(exc: BaseException) -> bool:
    """Whether a transport failure happened before a connection existed (refused, name
    not resolved, connect timeout): urllib3's ``NewConnectionError`` somewhere in the
    chain of causes, contexts and ``MaxRetryError.reason``."""
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        cause = todo.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, (urllib3.exceptions.NewConnectionError,
                              urllib3.exceptions.ConnectTimeoutError, ConnectionRefusedError)):
            return True
        todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None),
                 *cause.args]
    return False


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a transport error (no URL, no query)."""
    match = _ERRNO_RE.search(str(exc))
    return match.group(0).strip() if match else type(exc).__name__


class HttpTransport:
    """Sessions, signing, retries and answers for one endpoint; ``HttpStore`` adds the
    S3 operations on top."""

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
        self._adapters: weakref.WeakSet[HTTPAdapter] = weakref.WeakSet()
        self._adapters_lock = threading.Lock()

    def close(self) -> None:
        """Close every adapter (and so every connection) this store made, on any thread."""
        with self._adapters_lock:
            adapters = list(self._adapters)
            self._adapters.clear()
        for adapter in adapters:
            adapter.close()

    # -- transport ------------------------------------------------------------------
    def _adapter(self) -> HTTPAdapter:
        adapter = getattr(self._local, "adapter", None)
        if adapter is None:
            # pool_connections: host pools kept (one per bucket with virtual-hosted addressing).
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=self.config.pool_size,
                                  max_retries=0)
            self._local.adapter = adapter
            with self._adapters_lock:
                self._adapters.add(adapter)
            # The thread's end drops our thread-local reference; close its sockets then.
            weakref.finalize(threading.current_thread(), adapter.close)
        return adapter

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
        if req.checksum and payload.crc32:
            headers["x-amz-checksum-crc32"] = payload.crc32
        elif req.checksum:
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
            resp = self._adapter().send(
                _prepared(req.method, url, headers, req.payload), stream=True,
                timeout=timeout, verify=self.config.verify_tls, proxies={})
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
            failed = errors.ConnectionFailed(
                f"{req.op}: cannot reach {self._endpoint} ({_reason(exc)})",
                code="ConnectionFailed", **where)
            failed.connected = not _while_connecting(exc)
            return failed
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
