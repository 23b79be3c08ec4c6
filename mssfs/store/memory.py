"""An in-memory ``ObjectStore`` with S3's semantics, request counters and fault injection.

``MemoryStore`` is the fake the filesystem tests run on, and the reference the contract
suite (``tests/contract``) holds the real client to: every behaviour here is checked
against SeaweedFS and moto by the same tests. It follows S3 where S3 is precise:

- bucket names by S3's rules (InvalidBucketName), BucketAlreadyExists, BucketNotEmpty;
- ListObjectsV2: keys ordered by their UTF-8 bytes, prefix, delimiter → common prefixes
  (which count towards ``max_keys``), opaque continuation tokens, ``start_after``;
- ranges are half-open and clipped at the end; a start at or past the end of a
  non-empty object is InvalidRange; ``if_match`` → PreconditionFailed;
- ETag = MD5 hex of the body; multipart ETag = MD5 of the concatenated part digests
  plus ``-N``; every part but the last at least 5 MiB (EntityTooSmall at completion);
- keys longer than 1024 UTF-8 bytes are KeyTooLong; deleting a missing key succeeds.

Objects are immutable records (``bytes`` bodies), so state leaves the lock by reference
without copying. ``last_modified`` is whatever the injected ``clock`` says.

Test hooks: ``counts`` (a Counter of S3 operation names, e.g. ``"GetObject"``),
``bytes_in``/``bytes_out``, ``fail_next(op, exc, times)`` and ``fail_when(predicate)``
(called with op, bucket, key; returns an exception to raise or None). A request that
fails by injection is still counted: a real client would have sent it.

Locking: one ``threading.Lock`` (``_lock``) guards the buckets, the counters and the fault
queues; ``_op`` holds it for the whole of one request. Bodies are read from files before
the lock is taken.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mssfs.store import errors
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

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_COPY_SIZE = 5 * 1024**3
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what AWS S3 stores when none is given

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")

FaultPredicate = Callable[[str, str, str], "Exception | None"]


class EntityTooSmall(errors.InvalidRequest):
    """A part other than the last was smaller than 5 MiB (S3's EntityTooSmall)."""


# The refusals this store makes: S3 code → (class, HTTP status, message), as S3 sends them.
_REFUSALS: dict[str, tuple[type[errors.StoreError], int, str]] = {
    "NoSuchBucket": (errors.NoSuchBucket, 404, "The specified bucket does not exist"),
    "NoSuchKey": (errors.NoSuchKey, 404, "The specified key does not exist"),
    "NoSuchUpload": (errors.NoSuchUpload, 404, "The specified upload does not exist"),
    "InvalidBucketName": (errors.InvalidBucketName, 400, "The specified bucket is not valid"),
    "BucketAlreadyExists": (errors.BucketAlreadyExists, 409, "The bucket already exists"),
    "BucketNotEmpty": (errors.BucketNotEmpty, 409, "The bucket you tried to delete is not empty"),
    "KeyTooLongError": (errors.KeyTooLong, 400, "Your key is too long"),
    "InvalidArgument": (errors.InvalidRequest, 400, "Invalid argument"),
    "InvalidRange": (errors.InvalidRange, 416, "The requested range is not satisfiable"),
    "PreconditionFailed": (errors.PreconditionFailed, 412,
                           "At least one of the preconditions you specified did not hold"),
    "InvalidRequest": (errors.InvalidRequest, 400, "The copy source is larger than 5 GiB"),
    "MalformedXML": (errors.InvalidRequest, 400, "The XML you provided was not well-formed"),
    "InvalidPartOrder": (errors.InvalidRequest, 400, "The list of parts was not in order"),
    "InvalidPart": (errors.InvalidRequest, 400, "One or more of the parts could not be found"),
    "EntityTooSmall": (EntityTooSmall, 400, "A part is smaller than the minimum of 5 MiB"),
}


def _refusal(code: str, bucket: str = "", key: str = "") -> errors.StoreError:
    cls, status, message = _REFUSALS[code]
    return cls(message, code=code, status=status, bucket=bucket, key=key)


@dataclass(frozen=True)
class _Object:
    data: bytes
    etag: str
    last_modified: float
    content_type: str | None
    metadata: Mapping[str, str]


@dataclass
class _Upload:
    key: str
    initiated: float
    content_type: str | None
    metadata: Mapping[str, str]
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class _Bucket:
    created: float
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)


def valid_bucket_name(name: str) -> bool:
    """S3's bucket naming rules (the general-purpose bucket ones)."""
    return bool(
        _BUCKET_RE.fullmatch(name)
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and not _IP_RE.fullmatch(name)
        and not name.startswith(("xn--", "sthree-"))
        and not name.endswith(("-s3alias", "--ol-s3"))
    )


def _read_body(body: Body, length: int | None) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
        return data if length is None else data[:length]
    return body.read() if length is None else body.read(length)


def _clean_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in (metadata or {}).items()}


def _multipart_etag(part_etags: Sequence[str]) -> str:
    digests = b"".join(bytes.fromhex(e) for e in part_etags)
    return f"{hashlib.md5(digests).hexdigest()}-{len(part_etags)}"


def _sort_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


class MemoryStore:
    """An in-memory S3: see the module docstring. Safe for use from many threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self.counts: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0  # requests that raised
        self._fail_next: list[tuple[str, Exception]] = []
        self._fail_when: list[FaultPredicate] = []

    # -- test hooks ---------------------------------------------------------------
    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.bytes_in = self.bytes_out = self.errors = 0

    def fail_next(self, op: str, exc: Exception, times: int = 1) -> None:
        """Make the next ``times`` requests of operation ``op`` raise ``exc``."""
        with self._lock:
            self._fail_next.extend([(op, exc)] * times)

    def fail_when(self, predicate: FaultPredicate) -> None:
        """Raise what ``predicate(op, bucket, key)`` returns, whenever it is not None."""
        with self._lock:
            self._fail_when.append(predicate)

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._fail_when.clear()

    def snapshot(self) -> dict[str, Any]:
        """The counters, shaped as ``HttpStore.stats.snapshot()`` (no retries here)."""
        with self._lock:
            return {"requests": dict(self.counts), "bytes_sent": self.bytes_in,
                    "bytes_received": self.bytes_out, "retries": 0, "errors": self.errors}

    @property
    def stats(self) -> MemoryStore:
        # HttpStore exposes ``stats.snapshot()``; the same call works here.
        return self

    @contextlib.contextmanager
    def _op(self, op: str, bucket: str = "", key: str = "") -> Iterator[None]:
        """Hold the lock for one request: count it, inject a fault, count a failure."""
        with self._lock:
            self.counts[op] += 1
            try:
                for i, (name, exc) in enumerate(self._fail_next):
                    if name == op:
                        del self._fail_next[i]
                        raise exc
                for predicate in self._fail_when:
                    exc = predicate(op, bucket, key)
                    if exc is not None:
                        raise exc
                yield
            except Exception:
                self.errors += 1
                raise

    def _bucket(self, bucket: str) -> _Bucket:
        found = self._buckets.get(bucket)
        if found is None:
            raise _refusal("NoSuchBucket", bucket)
        return found

    def _object(self, bucket: str, key: str) -> _Object:
        found = self._bucket(bucket).objects.get(key)
        if found is None:
            raise _refusal("NoSuchKey", bucket, key)
        return found

    def _upload(self, bucket: str, key: str, upload_id: str) -> _Upload:
        upload = self._bucket(bucket).uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise _refusal("NoSuchUpload", bucket, key)
        return upload

    @staticmethod
    def _check_key(bucket: str, key: str) -> None:
        if not key:
            raise _refusal("InvalidArgument", bucket)
        if len(_sort_key(key)) > MAX_KEY_BYTES:
            raise _refusal("KeyTooLongError", bucket, key[:64])

    # -- buckets ------------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]:
        with self._op("ListBuckets"):
            return [BucketInfo(n, b.created) for n, b in sorted(self._buckets.items())]

    def create_bucket(self, bucket: str) -> None:
        with self._op("CreateBucket", bucket):
            if not valid_bucket_name(bucket):
                raise _refusal("InvalidBucketName", bucket)
            if bucket in self._buckets:
                raise _refusal("BucketAlreadyExists", bucket)
            self._buckets[bucket] = _Bucket(created=self._clock())

    def head_bucket(self, bucket: str) -> None:
        with self._op("HeadBucket", bucket):
            self._bucket(bucket)

    def delete_bucket(self, bucket: str) -> None:
        with self._op("DeleteBucket", bucket):
            if self._bucket(bucket).objects:
                raise _refusal("BucketNotEmpty", bucket)
            del self._buckets[bucket]

    # -- objects ------------------------------------------------------------------
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
        with self._op("ListObjectsV2", bucket, prefix):
            objects = dict(self._bucket(bucket).objects)
        marker = b""
        if continuation_token:
            marker = base64.urlsafe_b64decode(continuation_token.encode())
        after = _sort_key(start_after) if start_after else b""
        entries: list[tuple[str, _Object | None]] = []  # (key, obj) or (prefix, None)
        limit = min(max_keys, 1000)
        if limit <= 0:
            return self._page([], None)
        for key in sorted((k for k in objects if k.startswith(prefix)), key=_sort_key):
            raw = _sort_key(key)
            if raw <= after or raw <= marker:
                continue
            entry: tuple[str, _Object | None] = (key, objects[key])
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if _sort_key(common) <= marker or (entries and entries[-1][0] == common):
                        continue
                    entry = (common, None)
            if len(entries) == limit:
                # One more entry exists: this page is truncated after the last one kept.
                token = entries[-1][0] if entries else ""
                return self._page(entries, token)
            entries.append(entry)
        return self._page(entries, None)

    @staticmethod
    def _page(entries: list[tuple[str, _Object | None]], last: str | None) -> ListPage:
        infos = [
            ObjectInfo(k, len(o.data), o.etag, o.last_modified, storage_class="STANDARD")
            for k, o in entries
            if o is not None
        ]
        prefixes = [k for k, o in entries if o is None]
        token = None
        if last is not None:
            token = base64.urlsafe_b64encode(_sort_key(last)).decode()
        return ListPage(infos, prefixes, token)

    @staticmethod
    def _info(key: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(key, len(obj.data), obj.etag, obj.last_modified, obj.content_type,
                          dict(obj.metadata), "STANDARD")

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        with self._op("HeadObject", bucket, key):
            return self._info(key, self._object(bucket, key))

    def get_object(
        self,
        bucket: str,
        key: str,
        start: int = 0,
        end: int | None = None,
        *,
        if_match: str | None = None,
    ) -> GetResult:
        with self._op("GetObject", bucket, key):
            obj = self._object(bucket, key)
            self._check_match(obj, if_match, bucket, key)
            size = len(obj.data)
            ranged = start > 0 or end is not None
            if ranged and size > 0 and start >= size:
                raise _refusal("InvalidRange", bucket, key)
            stop = size if end is None else min(end, size)
            data = obj.data[start:stop]
            self.bytes_out += len(data)
        return GetResult(data, obj.etag, size, obj.last_modified, obj.content_type,
                         dict(obj.metadata))

    @staticmethod
    def _check_match(obj: _Object, if_match: str | None, bucket: str, key: str) -> None:
        if if_match is not None and if_match.strip('"') != obj.etag:
            raise _refusal("PreconditionFailed", bucket, key)

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
        data = _read_body(body, length)
        obj = _Object(data, hashlib.md5(data).hexdigest(), 0.0,
                      content_type or DEFAULT_CONTENT_TYPE, _clean_metadata(metadata))
        with self._op("PutObject", bucket, key):
            self._store(bucket, key, obj)
            self.bytes_in += len(data)
        return obj.etag

    def _store(self, bucket: str, key: str, obj: _Object) -> None:
        """Write an object, stamped with the clock. Call with the lock held."""
        found = self._bucket(bucket)
        self._check_key(bucket, key)
        found.objects[key] = _Object(obj.data, obj.etag, self._clock(), obj.content_type,
                                     obj.metadata)

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
        with self._op("CopyObject", bucket, key):
            src = self._object(src_bucket, src_key)
            self._check_match(src, if_match, src_bucket, src_key)
            if len(src.data) > MAX_COPY_SIZE:
                raise _refusal("InvalidRequest", src_bucket, src_key)
            if metadata is None:
                # Directive COPY: content type and metadata come from the source.
                new = src
            else:
                new = _Object(src.data, src.etag, 0.0,
                              content_type or src.content_type, _clean_metadata(metadata))
            self._store(bucket, key, new)
            return new.etag

    def delete_object(self, bucket: str, key: str) -> None:
        with self._op("DeleteObject", bucket, key):
            self._bucket(bucket).objects.pop(key, None)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[DeleteFailure]:
        with self._op("DeleteObjects", bucket):
            if not keys or len(keys) > 1000:
                raise _refusal("MalformedXML", bucket)
            objects = self._bucket(bucket).objects
            for key in keys:
                objects.pop(key, None)
        return []

    # -- multipart ------------------------------------------------------------------
    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        with self._op("CreateMultipartUpload", bucket, key):
            found = self._bucket(bucket)
            self._check_key(bucket, key)
            upload_id = uuid.uuid4().hex
            found.uploads[upload_id] = _Upload(key, self._clock(),
                                               content_type or DEFAULT_CONTENT_TYPE,
                                               _clean_metadata(metadata))
            return upload_id

    @staticmethod
    def _check_part_number(part_number: int, bucket: str, key: str) -> None:
        if not 1 <= part_number <= 10000:
            raise _refusal("InvalidArgument", bucket, key)

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
        data = _read_body(body, length)
        etag = hashlib.md5(data).hexdigest()
        with self._op("UploadPart", bucket, key):
            self._check_part_number(part_number, bucket, key)
            self._upload(bucket, key, upload_id).parts[part_number] = (etag, data)
            self.bytes_in += len(data)
        return etag

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
        with self._op("UploadPartCopy", bucket, key):
            self._check_part_number(part_number, bucket, key)
            upload = self._upload(bucket, key, upload_id)
            src = self._object(src_bucket, src_key)
            self._check_match(src, if_match, src_bucket, src_key)
            if not 0 <= start < end <= len(src.data):
                raise _refusal("InvalidRange", src_bucket, src_key)
            data = src.data[start:end]
            etag = hashlib.md5(data).hexdigest()
            upload.parts[part_number] = (etag, data)
            return etag

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        with self._op("CompleteMultipartUpload", bucket, key):
            upload = self._upload(bucket, key, upload_id)
            chosen = self._check_parts(upload, parts, bucket, key)
            data = b"".join(d for _, d in chosen)
            etag = _multipart_etag([e for e, _ in chosen])
            obj = _Object(data, etag, 0.0, upload.content_type, upload.metadata)
            self._store(bucket, key, obj)
            del self._bucket(bucket).uploads[upload_id]
            return etag

    @staticmethod
    def _check_parts(
        upload: _Upload, parts: Sequence[CompletedPart], bucket: str, key: str
    ) -> list[tuple[str, bytes]]:
        if not parts:
            raise _refusal("MalformedXML", bucket, key)
        numbers = [p.part_number for p in parts]
        if numbers != sorted(set(numbers)):
            raise _refusal("InvalidPartOrder", bucket, key)
        chosen = []
        for part in parts:
            stored = upload.parts.get(part.part_number)
            if stored is None or stored[0] != part.etag.strip('"'):
                raise _refusal("InvalidPart", bucket, key)
            chosen.append(stored)
        if any(len(d) < MIN_PART_SIZE for _, d in chosen[:-1]):
            raise _refusal("EntityTooSmall", bucket, key)
        return chosen

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._op("AbortMultipartUpload", bucket, key):
            self._upload(bucket, key, upload_id)
            del self._bucket(bucket).uploads[upload_id]

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        with self._op("ListMultipartUploads", bucket, prefix):
            uploads = self._bucket(bucket).uploads
            found = [
                UploadInfo(u.key, upload_id, u.initiated)
                for upload_id, u in uploads.items()
                if u.key.startswith(prefix)
            ]
        return sorted(found, key=lambda u: (_sort_key(u.key), u.initiated))

    # -- presigned URLs -------------------------------------------------------------
    def presign_url(
        self, bucket: str, key: str, *, method: str = "GET", expires: int = 300
    ) -> str:
        if not 1 <= expires <= 7 * 24 * 3600:
            raise ValueError("expires must be between 1 second and 7 days")
        deadline = int(self._clock()) + expires
        return f"memory://{bucket}/{quote(key, safe='/')}?method={method}&expires={deadline}"
