"""``FaultProxy``: an HTTP/1.1 reverse proxy on loopback that injects S3 failures.

Tests and ``scripts/bench`` put it between a client (the mount, ``HttpStore``) and a real
S3 server to prove the client survives what networks and servers do: answers of 500 or
503 SlowDown (with an S3 ``<Error>`` document), connections reset before the answer or in
the middle of the response body, a stall past the client's read timeout, a response body
cut short by a clean close. Every request the client sends is otherwise relayed
unchanged, the ``Host`` header included (SigV4 signs it, so the server checks the
signature the client made for the proxy's address).

How a request is handled. Each accepted client connection gets a thread that reads
request heads in a keep-alive loop. ``FaultPlan.choose`` decides the request's fate
from a hash of (seed, method, path, how many times this method and path were seen):
the same seed gives the same fates to the same sequence of requests, and a retry is a
new occurrence with a fate of its own. A request that is answered locally (an error, a
stall, a reset) is never forwarded; its body is drained first when the connection is
kept. A forwarded request streams its body to the server on this connection's own
upstream connection (``http.client``) and the answer streams back in 64 KiB pieces,
so neither side is held whole in memory. Body faults happen after the server has done
the work: the client loses an answer to a request that succeeded (the hard case for
PUT, Complete and rename). An answer without a body is then lost whole (a reset before
its status line is sent).

Stopping. ``stop()`` (or leaving the ``with`` block) closes the listening socket,
shuts every client and upstream socket down, wakes stalled requests and joins the
threads. The threads are daemons, so a proxy also ends with the test process.

Locking. ``_lock`` guards the occurrence counters, the counts and the set of live
sockets; it is never held across socket I/O.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

_PIECE = 64 * 1024
_MAX_LINE = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
               "transfer-encoding"}
# Fault kinds, in the order their rates are laid out on [0, 1).
KINDS = ("error", "reset", "stall", "reset_body", "short_body")


@dataclass(frozen=True)
class FaultPlan:
    """Which fraction of requests gets which fault; rates add up to at most 1."""

    error_rate: float = 0.0  # answered with ``error_status`` and an S3 error document
    error_status: int = 503  # 503: SlowDown; 500: InternalError
    reset_rate: float = 0.0  # connection reset after the request head, nothing answered
    stall_rate: float = 0.0  # no answer for ``stall_seconds`` (then a reset)
    stall_seconds: float = 120.0
    reset_body_rate: float = 0.0  # forwarded; reset half-way through the answer's body
    short_body_rate: float = 0.0  # forwarded; clean close half-way through the body
    seed: int = 0
    methods: frozenset[str] | None = None  # only these methods get faults (None: all)

    def __post_init__(self) -> None:
        rates = [getattr(self, f"{kind}_rate") for kind in KINDS]
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if self.error_status not in (500, 503):
            raise ValueError("error_status must be 500 or 503")

    def choose(self, method: str, path: str, nth: int) -> str | None:
        """The fault of the ``nth`` occurrence of (method, path), or None."""
        if self.methods is not None and method not in self.methods:
            return None
        digest = hashlib.sha256(f"{self.seed}|{method}|{path}|{nth}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64
        for kind in KINDS:
            rate = getattr(self, f"{kind}_rate")
            if point < rate:
                return kind
            point -= rate
        return None


def error_document(status: int) -> bytes:
    code, message = (("SlowDown", "Please reduce your request rate.") if status == 503
                     else ("InternalError", "We encountered an internal error."))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>").encode()


class _Reset(Exception):
    """End this client connection: with a TCP reset, or a clean close when ``clean``."""

    def __init__(self, clean: bool = False) -> None:
        super().__init__()
        self.clean = clean


class FaultProxy:
    """A fault-injecting reverse proxy to ``upstream`` (``http://host:port``) on 127.0.0.1."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None,
                 upstream_timeout: float = 300.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError("upstream must be http://host:port")
        self.upstream = (parts.hostname, parts.port)
        self.plan = plan or FaultPlan()
        self.upstream_timeout = upstream_timeout
        self.counts: Counter[str] = Counter()
        # (kind, method, request target) of every injected fault, in order.
        self.events: list[tuple[str, str, str]] = []
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    # -- owner's interface ---------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> FaultProxy:
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener = listener
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:  # close() alone does not wake a thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        # The accept loop first: a connection it accepted just now may still spawn a
        # serving thread, which the snapshots below must include.
        with self._lock:
            acceptors = [t for t in self._threads if t.name.endswith("_accept_loop")]
        for thread in acceptors:
            thread.join(timeout=10)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_plan(self, plan: FaultPlan) -> None:
        """Change the faults of the requests that arrive from now on."""
        self.plan = plan

    def answers_lost(self) -> list[tuple[str, str]]:
        """(method, target) of requests the server carried out whose answer the client
        lost (a body fault): the ones a client cannot know the outcome of."""
        with self._lock:
            return [(method, target) for kind, method, target in self.events
                    if kind in ("reset_body", "short_body", "reset_answer")]

    def injected(self) -> dict[str, int]:
        """Faults injected so far, by kind (zeros omitted); ``reset_answer`` is a body
        fault drawn for an answer without a body (the answer is lost whole)."""
        with self._lock:
            return {kind: n for kind, n in self.counts.items()
                    if n and kind not in ("requests", "forwarded")}

    # -- threads ---------------------------------------------------------------------------
    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"faultproxy-{target.__name__}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(client)
            self._spawn(self._serve, client)

    def _track(self, sock: socket.socket, add: bool = True) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def _count(self, what: str, head: _Head | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if head is not None:
                self.events.append((what, head.method, head.target))

    def _serve(self, client: socket.socket) -> None:
        rfile = client.makefile("rb")
        upstream: list[http.client.HTTPConnection] = []  # this connection's, made lazily
        reset = False
        try:
            while not self._stopping.is_set():
                head = _read_head(rfile)
                if head is None:
                    return
                if not self._handle(client, rfile, head, upstream):
                    return
        except _Reset as stop:
            reset = not stop.clean
        except (OSError, http.client.HTTPException, ValueError):
            reset = True  # a broken client or server: the client sees a reset, as in life
        finally:
            for conn in upstream:
                conn.close()
            rfile.close()
            self._track(client, add=False)
            _close(client, reset)

    # -- one request -----------------------------------------------------------------------
    def _handle(self, client: socket.socket, rfile: BinaryIO, head: _Head,
                upstream: list[http.client.HTTPConnection]) -> bool:
        """Answer one request; False when the client connection must close."""
        path = head.target.split("?", 1)[0]
        with self._lock:
            self._seen[(head.method, path)] += 1
            nth = self._seen[(head.method, path)]
            self.counts["requests"] += 1
        fault = self.plan.choose(head.method, path, nth)
        if fault == "reset":
            self._count("reset", head)
            raise _Reset
        if fault == "stall":
            self._count("stall", head)
            self._stopping.wait(self.plan.stall_seconds)
            raise _Reset
        if fault == "error":
            self._count("error", head)
            _drain_body(rfile, head)
            body = error_document(self.plan.error_status)
            client.sendall(_response_head(self.plan.error_status, [
                ("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                + body)
            return head.keep_alive
        self._count("forwarded")
        return self._forward(client, rfile, head, upstream, fault)

    def _connection(self, upstream: list[http.client.HTTPConnection]) -> http.client.HTTPConnection:
        if not upstream:
            conn = http.client.HTTPConnection(*self.upstream, timeout=self.upstream_timeout)
            conn.connect()
            assert conn.sock is not None
            self._track(conn.sock)
            upstream.append(conn)
        return upstream[0]

    def _forward(self, client: socket.socket, rfile: BinaryIO, head: _Head,
                 upstream: list[http.client.HTTPConnection], fault: str | None) -> bool:
        conn = self._connection(upstream)
        conn.putrequest(head.method, head.target, skip_host=True, skip_accept_encoding=True)
        for name, value in head.headers:
            if name.lower() not in _HOP_BY_HOP:
                conn.putheader(name, value)
        if head.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        _relay_request_body(rfile, head, conn.send)
        resp = conn.getresponse()
        length = resp.getheader("Content-Length")
        bodiless = head.method == "HEAD" or resp.status in (204, 304)
        size = 0 if bodiless else (int(length) if length and length.isdigit() else None)
        if fault in ("reset_body", "short_body"):
            self._count(fault if size != 0 else "reset_answer", head)
            self._cut(client, resp, size, clean=fault == "short_body")
        headers = [(n, v) for n, v in resp.getheaders() if n.lower() not in _HOP_BY_HOP]
        chunked = size is None
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        client.sendall(_response_head(resp.status, headers, resp.reason))
        _relay_response_body(resp, client, chunked, bodiless)
        if resp.will_close:
            upstream.pop().close()
        return head.keep_alive

    def _cut(self, client: socket.socket, resp: http.client.HTTPResponse, size: int | None,
             clean: bool) -> None:
        """Send the answer's head and half its body, then close or reset. Never returns."""
        if not size:
            raise _Reset  # nothing to cut: the whole answer is lost
        headers = [(n, v) for n, v in resp.getheaders() if n.lower() not in _HOP_BY_HOP]
        client.sendall(_response_head(resp.status, headers, resp.reason))
        half = size // 2
        while half > 0:
            piece = resp.read(min(_PIECE, half))
            if not piece:
                break
            client.sendall(piece)
            half -= len(piece)
        raise _Reset(clean=clean)


@dataclass
class _Head:
    method: str
    target: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    length: int
    chunked: bool


def _read_head(rfile: BinaryIO) -> _Head | None:
    """The next request's line and headers; None at a clean end of the connection."""
    line = rfile.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(_MAX_LINE)
    if not line:
        return None
    method, target, version = line.decode("latin-1").split()
    headers: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(_MAX_LINE)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    connection = fields.get("connection", "").lower()
    keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
    chunked = "chunked" in fields.get("transfer-encoding", "").lower()
    length = int(fields.get("content-length", "0") or 0) if not chunked else 0
    return _Head(method, target, headers, keep_alive, length, chunked)


def _drain_body(rfile: BinaryIO, head: _Head) -> None:
    _relay_request_body(rfile, head, lambda data: None)


def _relay_request_body(rfile: BinaryIO, head: _Head, send: Any) -> None:
    """Copy the request body (sized or chunked, framing kept) from ``rfile`` to ``send``."""
    if head.chunked:
        while True:
            size_line = rfile.readline(_MAX_LINE)
            send(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the blank line
                    trailer = rfile.readline(_MAX_LINE)
                    send(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return
            _copy(rfile, send, size + 2)  # the chunk and its CRLF
        return
    _copy(rfile, send, head.length)


def _copy(rfile: BinaryIO, send: Any, count: int) -> None:
    while count > 0:
        piece = rfile.read(min(_PIECE, count))
        if not piece:
            raise ConnectionError("the client closed in the middle of a request body")
        send(piece)
        count -= len(piece)


def _relay_response_body(resp: http.client.HTTPResponse, client: socket.socket,
                         chunked: bool, bodiless: bool) -> None:
    if bodiless:
        resp.read()
        return
    while True:
        piece = resp.read(_PIECE)
        if not piece:
            break
        client.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        client.sendall(b"0\r\n\r\n")


def _response_head(status: int, headers: list[tuple[str, str]], reason: str = "") -> bytes:
    reason = reason or http.client.responses.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _close(sock: socket.socket, reset: bool) -> None:
    """Close ``sock``; with ``reset``, abortively (the peer gets a TCP RST)."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
