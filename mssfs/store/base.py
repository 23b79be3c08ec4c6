"""The ``ObjectStore`` protocol: a narrow, S3-shaped interface, and its value types.

Everything above ``mssfs.store`` talks to object storage only through this protocol,
so the filesystem never sees ``requests``, XML or HTTP status codes. The methods are
named after S3 verbs and return frozen dataclasses; failures are the typed errors of
``mssfs.store.errors``. Two implementations exist: ``HttpStore`` (the real client,
``store/http.py``) and ``MemoryStore`` (an in-memory fake with the same semantics,
``store/memory.py``); ``tests/contract`` runs one suite against both.

Conventions shared by every implementation:

- Keys are ``str`` (UTF-8 on the wire); buckets are ``str``.
- ``ObjectInfo.metadata`` holds user metadata with the ``x-amz-meta-`` prefix removed
  and the name lower-cased; values are ``str``.
- Byte ranges are half-open: ``start`` inclusive, ``end`` exclusive (``end=None`` means
  to the end of the object).
- ETags are returned with their quotes stripped.
- All methods are safe to call from many threads at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

# A body to upload: bytes, or a binary file positioned at the start of the data
# (``length`` bytes are read from it; the whole rest of the file when ``length`` is None).
Body = bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: float = 0.0  # seconds since the epoch


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch
    content_type: str | None = None
    # User metadata (x-amz-meta-*, prefix removed, names lower-cased). Listings do not
    # carry it: objects from list_objects have an empty mapping.
    metadata: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None


@dataclass(frozen=True)
class ListPage:
    """One page of ListObjects: objects, common prefixes, and the token for the next."""

    objects: Sequence[ObjectInfo]
    prefixes: Sequence[str]
    next_token: str | None = None  # None when this is the last page

    @property
    def truncated(self) -> bool:
        return self.next_token is not None


@dataclass(frozen=True)
class GetResult:
    """The bytes of a GET (whole object or a range) and what the server said of them."""

    data: bytes
    etag: str
    size: int  # the size of the whole object, not of the range
    last_modified: float = 0.0
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadInfo:
    """An in-progress multipart upload."""

    key: str
    upload_id: str
    initiated: float  # seconds since the epoch


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str


@dataclass(frozen=True)
class DeleteFailure:
    key: str
    code: str
    message: str


@runtime_checkable
class ObjectStore(Protocol):
    """An S3-compatible object store. See the module docstring for conventions."""

    # -- buckets ----------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]: ...

    def create_bucket(self, bucket: str) -> None: ...

    def head_bucket(self, bucket: str) -> None:
        """Return if the bucket exists and is reachable; raise NoSuchBucket/AccessDenied."""
        ...

    def delete_bucket(self, bucket: str) -> None: ...

    # -- objects ----------------------------------------------------------------
    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        *,
        continuation_token: str | None = None,
        start_after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage: ...

    def head_object(self, bucket: str, key: str) -> ObjectInfo: ...

    def get_object(
        self,
        bucket: str,
        key: str,
        start: int = 0,
        end: int | None = None,
        *,
        if_match: str | None = None,
    ) -> GetResult:
        """GET bytes [start, end). A range past the end is clipped; start beyond the
        size of a non-empty object raises InvalidRange. ``if_match`` (an ETag) makes a
        changed object raise PreconditionFailed."""
        ...

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
        """Store an object in one request (with Content-MD5); return its ETag."""
        ...

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
        """Server-side copy (objects up to 5 GiB). ``metadata=None`` keeps the source's
        metadata (directive COPY); a mapping replaces it (directive REPLACE), and then
        ``content_type`` is set too. Returns the new ETag."""
        ...

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete a key; deleting a missing key succeeds (as S3 does)."""
        ...

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[DeleteFailure]:
        """Delete up to 1000 keys in one request; return the keys that failed."""
        ...

    # -- multipart --------------------------------------------------------------
    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Start a multipart upload; return its upload id."""
        ...

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
        """Upload one part (1..10000); return its ETag."""
        ...

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
        """Fill a part with bytes [start, end) of another object; return its ETag."""
        ...

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        """Assemble the parts; return the object's ETag."""
        ...

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]: ...

    # -- presigned URLs ---------------------------------------------------------
    def presign_url(
        self, bucket: str, key: str, *, method: str = "GET", expires: int = 300
    ) -> str:
        """A URL that grants ``method`` on the object for ``expires`` seconds
        (1 s to 7 days) without credentials."""
        ...
