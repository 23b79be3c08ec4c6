"""The uploader: single PUTs, streamed and file-backed multipart uploads, big copies.

``Uploader`` owns the only upload thread pool (``UploadConfig.concurrency`` workers) and
a global budget of bytes in flight (``max_bytes_in_flight``): a part is *admitted* to
the budget before it is queued and leaves it when its request has finished. Admission
blocks the calling thread (a FUSE worker writing a file) while the budget is spent, so
a writer faster than the network is slowed down to the network's pace instead of
filling memory: that is the backpressure. A part larger than the whole budget is still
admitted when nothing else is in flight, so progress never stops. Worker threads never
wait for admission (only callers do), so the pool cannot deadlock on its own budget.

Parts are ``bytes``, a ``FileRange`` (a region of a local file, read with ``os.pread``
by the worker just before it sends it: no memory while it waits in the queue), a
``PooledPart`` (bytes of a buffer lent by a ``tail.TailPool``, sent as they are and
given back to the pool as soon as their request has finished; the write buffer streams
these, or file ranges of its staging file) or a ``CopyRange`` (a range of a stored
object, sent as UploadPartCopy: no bytes through us, no room in the budget).
``upload_parts`` mixes them freely; ``upload_file`` and ``copy_large`` are built on it.
So memory in flight is at most ``concurrency`` parts being sent, plus admitted
``bytes`` and pooled parts, whatever the file size.

``UploadStream`` is one multipart upload fed part by part. ``CreateMultipartUpload`` is
the first job the stream puts on the pool, and every part job waits for its result:
the pool is FIFO, so that job always runs before (or alongside) the parts that wait for
it, and the caller of ``start_stream`` never blocks on the network. The first failure
of any job is kept; later parts are then skipped, and ``complete()`` aborts the upload
(best effort, logged) and raises that first failure. ``abort()`` waits for the parts in
flight and then aborts the upload, so no part lands after the abort.

Part sizes: ``plan_part_size`` for a known total (grow the part so no upload needs more
than 10,000 parts), ``stream_part_size`` for a stream of unknown length: like goofys,
the part size grows with the part number. Part ``n`` (1-based) belongs to tier
``(n - 1) // 1000`` and has ``min_part * 2**tier`` bytes (capped at 5 GiB): with 8 MiB
parts, the first 1,000 parts cover 7.8 GiB, 2,000 parts 23 GiB, and 10,000 parts
7.8 TiB (the last tier's parts are 4 GiB): past S3's 5 TiB object limit, so a stream
never runs out of part numbers. Memory does not grow with the tiers when parts are file
ranges: only the parts being sent are read into memory.

Locking: ``_cond`` (one ``threading.Condition``) guards the budget and the counters;
each ``UploadStream`` has one lock for its parts and first error. Neither is held
across a request; waiting on the condition releases it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from mssfs.store.base import Body, CompletedPart, ObjectStore
from mssfs.tail import PooledPart

__all__ = [
    "CopyRange",
    "FileRange",
    "UploadConfig",
    "UploadStream",
    "Uploader",
    "plan_part_size",
    "stream_part_size",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_SINGLE_COPY = 5 * GiB  # CopyObject's limit
COPY_PART_SIZE = 512 * MiB  # server-side copy parts (s3fs's multipart_copy_size)
PARTS_PER_TIER = 1000


def plan_part_size(total_size: int | None, *, min_part: int = 8 * MiB,
                   max_parts: int = MAX_PARTS) -> int:
    """The part size for an upload of ``total_size`` bytes (None: unknown length).

    At least ``min_part`` (and S3's 5 MiB); doubled until ``max_parts`` parts hold the
    whole object; never more than 5 GiB. Rounded to whole MiB by the doubling. For an
    unknown length this is the size of the first part (see ``stream_part_size``).
    """
    size = max(min_part, MIN_PART_SIZE)
    if total_size is None:
        return min(size, MAX_PART_SIZE)
    while size * max_parts < total_size and size < MAX_PART_SIZE:
        size *= 2
    return min(size, MAX_PART_SIZE)


def stream_part_size(part_number: int, *, min_part: int = 8 * MiB) -> int:
    """The size of part ``part_number`` (1-based) of a stream of unknown length."""
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number {part_number} is outside 1..{MAX_PARTS}")
    tier = (part_number - 1) // PARTS_PER_TIER
    return min(max(min_part, MIN_PART_SIZE) << tier, MAX_PART_SIZE)


@dataclass(frozen=True)
class UploadConfig:
    part_size: int = 8 * MiB  # the smallest part; also the single-PUT threshold
    concurrency: int = 8  # upload worker threads (parts in flight at once)
    # Bytes admitted and not finished, all uploads together. None: 128 MiB, or two
    # parts when parts are larger (so a large part size never refuses to start).
    max_bytes_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE or self.part_size > MAX_PART_SIZE:
            raise ValueError("part_size must be between 5 MiB and 5 GiB")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_bytes_in_flight is not None and self.max_bytes_in_flight < self.part_size:
            raise ValueError("max_bytes_in_flight must hold at least one part")

    @property
    def byte_budget(self) -> int:
        """The effective ``max_bytes_in_flight``."""
        if self.max_bytes_in_flight is not None:
            return self.max_bytes_in_flight
        return max(128 * MiB, 2 * self.part_size)

    @property
    def single_put_threshold(self) -> int:
        """Objects up to this size go up in one PutObject."""
        return self.part_size


@dataclass(frozen=True)
class FileRange:
    """Bytes [offset, offset + length) of an open file, read when the part is sent."""

    fd: int
    offset: int
    length: int

    def read(self) -> bytes:
        chunks = []
        done = 0
        while done < self.length:
            chunk = os.pread(self.fd, self.length - done, self.offset + done)
            if not chunk:
                raise OSError(f"file ended {self.length - done} bytes early")
            chunks.append(chunk)
            done += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True)
class CopyRange:
    """Bytes [start, end) of a stored object, as a part copied server-side."""

    bucket: str
    key: str
    start: int
    end: int
    if_match: str | None = None


PartBody = bytes | bytearray | memoryview | FileRange | PooledPart


def _length(body: PartBody) -> int:
    return body.length if isinstance(body, FileRange) else len(body)


class Uploader:
    """Owner of the upload pool; see the module docstring. Thread-safe."""

    def __init__(self, store: ObjectStore, config: UploadConfig | None = None) -> None:
        self.store = store
        self.config = config or UploadConfig()
        self._pool = ThreadPoolExecutor(self.config.concurrency,
                                        thread_name_prefix="mssfs-upload")
        self._cond = threading.Condition(threading.Lock())
        self._admitted = 0  # bytes admitted and not yet finished
        self._closed = False
        self._stats = {"pending": 0, "in_flight": 0, "failed": 0, "bytes_uploaded": 0,
                       "max_bytes_admitted": 0, "max_in_flight": 0}

    # -- public -----------------------------------------------------------------
    def put(self, bucket: str, key: str, body: Body, *, length: int | None = None,
            content_type: str | None = None,
            metadata: Mapping[str, str] | None = None) -> str:
        """One PutObject, in the calling thread; returns the ETag."""
        size = length if length is not None else _body_len(body)
        self._count("in_flight", 1)
        try:
            etag = self.store.put_object(bucket, key, body, length=length,
                                         content_type=content_type, metadata=metadata)
        except BaseException:
            self._count("failed", 1)
            raise
        finally:
            self._count("in_flight", -1)
        self._count("bytes_uploaded", size)
        return etag

    def start_stream(self, bucket: str, key: str, *, content_type: str | None = None,
                     metadata: Mapping[str, str] | None = None) -> UploadStream:
        """Begin a multipart upload fed with ``add_part``; does not block."""
        return UploadStream(self, bucket, key, content_type, metadata)

    def upload_file(self, bucket: str, key: str, path: str, *,
                    content_type: str | None = None,
                    metadata: Mapping[str, str] | None = None,
                    size: int | None = None) -> str:
        """Upload a local file (``size`` bytes from its start; default: all of it).

        A single PUT up to one part, else a parallel multipart upload, aborted on any
        failure. Returns the ETag."""
        with open(path, "rb") as f:
            if size is None:
                size = os.fstat(f.fileno()).st_size
            if size <= self.config.single_put_threshold:
                data = FileRange(f.fileno(), 0, size).read()
                return self.put(bucket, key, data, length=size,
                                content_type=content_type, metadata=metadata)
            part_size = plan_part_size(size, min_part=self.config.part_size)
            parts = [FileRange(f.fileno(), start, min(part_size, size - start))
                     for start in range(0, size, part_size)]
            return self.upload_parts(bucket, key, parts, content_type=content_type,
                                     metadata=metadata)

    def upload_parts(self, bucket: str, key: str, parts: Sequence[PartBody | CopyRange], *,
                     content_type: str | None = None,
                     metadata: Mapping[str, str] | None = None) -> str:
        """One multipart upload of ``parts`` in order, in parallel: bytes, file ranges,
        or ranges of another object (UploadPartCopy) mixed freely, which is how a small
        change to a large object avoids downloading it. Aborted on any failure."""
        stream = self.start_stream(bucket, key, content_type=content_type, metadata=metadata)
        try:
            for number, part in enumerate(parts, 1):
                if isinstance(part, CopyRange):
                    stream.add_copy(part, part_number=number)
                else:
                    stream.add_part(part, part_number=number)
            return stream.complete(expected_parts=len(parts))
        except BaseException:
            stream.abort()
            raise

    def copy_large(self, src_bucket: str, src_key: str, bucket: str, key: str, size: int,
                   *, metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None, if_match: str | None = None) -> str:
        """Server-side copy of any size: CopyObject up to 5 GiB, else UploadPartCopy of
        512 MiB+ parts in parallel. ``metadata=None`` keeps the source's metadata and
        content type. Returns the new ETag."""
        if size <= MAX_SINGLE_COPY:
            return self.store.copy_object(src_bucket, src_key, bucket, key,
                                          metadata=metadata, content_type=content_type,
                                          if_match=if_match)
        if metadata is None:
            src = self.store.head_object(src_bucket, src_key)
            metadata, content_type = src.metadata, src.content_type
            if_match = if_match or src.etag
        part_size = max(COPY_PART_SIZE, plan_part_size(size, min_part=self.config.part_size))
        parts = [CopyRange(src_bucket, src_key, start, min(start + part_size, size), if_match)
                 for start in range(0, size, part_size)]
        return self.upload_parts(bucket, key, parts, content_type=content_type,
                                 metadata=metadata)

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """Run ``fn(*args)`` on the pool (parallel copies, fills).

        ``fn`` must not wait for jobs submitted after it: no ``upload_file``,
        ``copy_large`` or ``UploadStream.complete`` inside a job (the workers could all
        end up waiting for jobs queued behind them)."""
        return self._pool.submit(fn, *args)

    def stats(self) -> dict[str, int]:
        """Uploads pending (queued), in flight, failed, bytes uploaded, and peaks."""
        with self._cond:
            return dict(self._stats, bytes_admitted=self._admitted)

    def close(self) -> None:
        """Wait for the jobs in flight and stop the workers. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=True)

    # -- budget, for UploadStream -----------------------------------------------
    def _admit(self, size: int) -> None:
        with self._cond:
            limit = self.config.byte_budget
            while (size and self._admitted and self._admitted + size > limit
                   and not self._closed):
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the uploader is closed")
            self._admitted += size
            self._stats["pending"] += 1
            peak = max(self._stats["max_bytes_admitted"], self._admitted)
            self._stats["max_bytes_admitted"] = peak

    def _started(self) -> None:
        with self._cond:
            self._stats["pending"] -= 1
            self._stats["in_flight"] += 1
            peak = max(self._stats["max_in_flight"], self._stats["in_flight"])
            self._stats["max_in_flight"] = peak

    def _finished(self, size: int, *, started: bool, ok: bool | None) -> None:
        """``ok``: True sent, False failed, None skipped."""
        with self._cond:
            self._admitted -= size
            self._stats["in_flight" if started else "pending"] -= 1
            if ok:
                self._stats["bytes_uploaded"] += size
            elif ok is False:
                self._stats["failed"] += 1
            self._cond.notify_all()

    def _count(self, name: str, delta: int) -> None:
        with self._cond:
            self._stats[name] += delta


def _release(body: object) -> None:
    if isinstance(body, PooledPart):
        body.release()


def _body_len(body: Body) -> int:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    return 0  # a file body of unknown length: not counted


class UploadStream:
    """One multipart upload, fed part by part; see the module docstring."""

    def __init__(self, uploader: Uploader, bucket: str, key: str,
                 content_type: str | None, metadata: Mapping[str, str] | None) -> None:
        self._uploader = uploader
        self._store = uploader.store
        self.bucket, self.key = bucket, key
        self._lock = threading.Lock()
        self._parts: dict[int, str] = {}  # part number → ETag
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self._aborted = False
        self._next_number = 1
        self._upload_id: Future[str] = uploader.submit(
            functools.partial(self._store.create_multipart_upload, bucket, key,
                              content_type=content_type, metadata=dict(metadata or {})))

    @property
    def failed(self) -> bool:
        with self._lock:
            return self._error is not None

    def add_part(self, body: PartBody, *, part_number: int | None = None) -> int:
        """Queue one part (blocking while the byte budget is spent); return its number.

        Numbers are given in order unless ``part_number`` is passed (callers that
        reserve numbers under their own lock and hand parts over outside it)."""
        return self._add(_length(body), self._send_part, body, part_number)

    def add_copy(self, src: CopyRange, *, part_number: int | None = None) -> int:
        """Queue an UploadPartCopy of a range of another object."""
        # A copy moves no bytes through us: it takes no room in the byte budget.
        return self._add(0, self._send_copy, src, part_number)

    def complete(self, *, expected_parts: int | None = None) -> str:
        """Wait for every part, then assemble them; returns the ETag. On any failure the
        upload is aborted and the first failure raised. ``expected_parts``: refuse
        (rather than store an object with a hole) unless parts 1..N are all there."""
        self._wait()
        with self._lock:
            error, parts = self._error, sorted(self._parts.items())
        try:
            if error is not None:
                raise error
            if not parts:
                raise ValueError("a multipart upload needs at least one part")
            numbers = [n for n, _ in parts]
            if expected_parts is not None and numbers != list(range(1, expected_parts + 1)):
                raise RuntimeError(f"multipart upload of s3://{self.bucket}/{self.key}: "
                                   f"expected parts 1..{expected_parts}, have {len(numbers)}")
            completed = [CompletedPart(n, etag) for n, etag in parts]
            return self._store.complete_multipart_upload(
                self.bucket, self.key, self._upload_id.result(), completed)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop: skip parts not yet sent, wait for those in flight, abort the upload
        (best effort: a failure is logged, not raised). Idempotent."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        self._wait()
        try:
            upload_id = self._upload_id.result()
        except Exception:
            return  # never created: nothing to abort
        try:
            self._store.abort_multipart_upload(self.bucket, self.key, upload_id)
        except Exception as exc:
            log.warning("could not abort the multipart upload of s3://%s/%s (%s): %s",
                        self.bucket, self.key, upload_id, exc)

    # -- internals --------------------------------------------------------------
    def _add(self, size: int, send: Callable[[int, object], str], body: object,
             part_number: int | None) -> int:
        with self._lock:
            if self._aborted or self._error is not None:  # don't wait for room in vain
                size = 0
        self._uploader._admit(size)
        with self._lock:
            if part_number is None:
                part_number = self._next_number
            self._next_number = max(self._next_number, part_number + 1)
            if self._aborted or self._error is not None:
                skip = True
            else:
                skip = False
                future = self._uploader.submit(self._run, size, send, part_number, body)
                self._futures.append(future)
        if skip:
            _release(body)
            self._uploader._finished(size, started=False, ok=None)
        return part_number

    def _run(self, size: int, send: Callable[[int, object], str], number: int,
             body: object) -> None:
        self._uploader._started()
        ok: bool | None = None
        try:
            with self._lock:
                skip = self._aborted or self._error is not None
            if not skip:
                ok = False
                etag = send(number, body)
                with self._lock:
                    self._parts[number] = etag
                ok = True
        except BaseException as exc:
            with self._lock:
                if self._error is None and not self._aborted:
                    self._error = exc
        finally:
            _release(body)  # its buffer goes back to the pool before room is made
            self._uploader._finished(size, started=True, ok=ok)

    def _send_part(self, number: int, body: object) -> str:
        upload_id = self._upload_id.result()
        if isinstance(body, FileRange):
            data = body.read()
        else:
            data = body.view if isinstance(body, PooledPart) else body
        return self._store.upload_part(self.bucket, self.key, upload_id, number, data,
                                       length=len(data))

    def _send_copy(self, number: int, src: object) -> str:
        assert isinstance(src, CopyRange)
        return self._store.upload_part_copy(self.bucket, self.key, self._upload_id.result(),
                                            number, src.bucket, src.key, src.start, src.end,
                                            if_match=src.if_match)

    def _wait(self) -> None:
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
                if not pending:
                    self._futures = []
                    return
            for future in pending:
                future.exception()
