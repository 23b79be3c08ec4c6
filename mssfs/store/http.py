"""``HttpStore``: the real S3 client, implementing ``ObjectStore`` on ``HttpTransport``.

Each public method describes one S3 request (a ``transport._Request``) and hands it to
``_call`` with a parser for the answer; ``transport.py`` signs, sends, retries and
judges it (the retry budget, the checks on answers, the threads), and ``payload.py``
prepares request bodies. ``get_object_into`` hands a 2xx body to a caller's sink in
256 KiB pieces as it arrives (``transfer.download_file`` pwrites them): no body-sized
buffer, whose fresh pages cost a page fault each.

Checksums. Object data is checked by the server with a Content-MD5, or with an
``x-amz-checksum-crc32`` (a sixth of MD5's CPU here): then CreateMultipartUpload
declares the algorithm, each part's CRC32 (sent, or returned by UploadPartCopy) is
remembered by upload id, and CompleteMultipartUpload lists them, as S3 requires.
``upload_checksum`` chooses: "md5" always, "crc32" always, or "auto" (the default):
CRC32 for as long as the server shows that it checks it, which S3, MinIO and SeaweedFS
do by answering a PutObject or UploadPart with the CRC32 of what they received. An
answer without it (a server that ignores the header, so nothing was checked), or a
refusal of the header (InvalidArgument, InvalidRequest, NotImplemented, when the same
request with a Content-MD5 then succeeds), sends that request again with a Content-MD5
and makes MD5 the store's checksum from then on: no upload is left unchecked.

Locking: ``_crc32_lock`` guards the remembered part checksums (dictionary operations
only) and the switch from CRC32 to MD5. The ListObjects V1 fall-back flag is a plain
attribute: a racing thread at worst makes one more V2 attempt.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
from mssfs.store.payload import _Payload, _payload
from mssfs.store.transport import _SINK_CHUNK, HttpTransport, _Reply, _Request, _SinkFailed

__all__ = ["HttpStore"]

log = logging.getLogger(__name__)

_META_PREFIX = "x-amz-meta-"
_CRC32_HEADER = "x-amz-checksum-crc32"
# How servers that do not know x-amz-checksum-* headers refuse them.
_CHECKSUM_REFUSALS = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented"})


def _metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {f"{_META_PREFIX}{k.lower()}": str(v) for k, v in (metadata or {}).items()}


def _header_text(value: str) -> str:
    # http.client decodes headers as latin-1; servers send UTF-8 metadata as raw bytes.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _md5_payload(sent: _Payload) -> _Payload:
    """The same body as ``sent`` (from its start again), with a Content-MD5."""
    if sent.fileobj is None:
        return _payload(sent.data, signed=False, checksum="md5")
    sent.fileobj.seek(sent.start)
    return _payload(sent.fileobj, sent.length, signed=False, checksum="md5")


def _metadata_of(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower()[len(_META_PREFIX):]: _header_text(v)
        for k, v in headers.items()
        if k.lower().startswith(_META_PREFIX)
    }


class HttpStore(HttpTransport):
    """An ``ObjectStore`` over HTTP(S) for MSS and any S3-compatible server."""

    def __init__(self, config: StoreConfig, **hooks: Any) -> None:
        """``hooks``: the transport's injected clock, sleep, rng and monotonic clock."""
        super().__init__(config, **hooks)
        self._list_v1 = config.list_version == 1  # see list_objects
        # With CRC32 checks: each part's CRC32, by (upload id, part number), until the
        # upload is completed or aborted (CompleteMultipartUpload must list them).
        self._checksum = config.upload_checksum
        self._crc32_trusted = True  # "auto": until the server shows it does not check it
        self._part_crc32: dict[tuple[str, int], str] = {}
        self._crc32_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpStore({self._endpoint!r})"

    @property
    def upload_checksum(self) -> str:
        """The checksum object data is sent with now: "crc32" or "md5"."""
        return "crc32" if self._crc32 else "md5"

    @property
    def _crc32(self) -> bool:
        return self._checksum == "crc32" or (self._checksum == "auto" and self._crc32_trusted)

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
        etag, _ = self._send_data("PutObject", bucket, key, body, length, headers=headers)
        return etag

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
                       checksum=True, headers={"Content-Type": "application/xml"})
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
        if self._crc32:  # parts carry a CRC32: S3 wants it declared now
            headers["x-amz-checksum-algorithm"] = "CRC32"
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
        etag, crc32 = self._send_data("UploadPart", bucket, key, body, length, params=params)
        self._remember_crc32(upload_id, part_number, crc32)
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
        headers = {"x-amz-copy-source": self._copy_source(src_bucket, src_key),
                   "x-amz-copy-source-range": f"bytes={start}-{end - 1}"}
        if if_match:
            headers["x-amz-copy-source-if-match"] = f'"{s3_xml.strip_etag(if_match)}"'
        params = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        req = _Request("UploadPartCopy", "PUT", bucket, key, params=params, headers=headers)
        etag, crc32 = self._call(req, lambda r: s3_xml.parse_copy_part(r.body))
        # An upload that declared CRC32 gets the copied part's checksum back from S3.
        self._remember_crc32(upload_id, part_number, crc32)
        return etag

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        with self._crc32_lock:
            crc32 = {n: c for (u, n), c in self._part_crc32.items() if u == upload_id}
        req = _Request("CompleteMultipartUpload", "POST", bucket, key,
                       params=[("uploadId", upload_id)],
                       headers={"Content-Type": "application/xml"},
                       payload=_payload(s3_xml.build_complete(parts, crc32)))
        try:
            etag = self._call(req, lambda r: s3_xml.parse_complete(r.body))
            self._forget_crc32(upload_id)
            return etag
        except errors.NoSuchUpload:
            if req.attempts == 1:
                raise
            # A retried Complete may have succeeded the first time and lost its answer:
            # the object then carries a multipart ETag with our part count.
            etag = self._completed_etag(bucket, key, len(parts))
            if etag is None:
                raise
            self._forget_crc32(upload_id)
            return etag

    def _completed_etag(self, bucket: str, key: str, part_count: int) -> str | None:
        try:
            info = self.head_object(bucket, key)
        except errors.NotFound:
            return None
        return info.etag if info.etag.endswith(f"-{part_count}") else None

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._forget_crc32(upload_id)
        self._call(_Request("AbortMultipartUpload", "DELETE", bucket, key,
                            params=[("uploadId", upload_id)]))

    # -- checksums of object data ----------------------------------------------------
    def _send_data(self, op: str, bucket: str, key: str, body: Body, length: int | None, *,
                   params: Sequence[tuple[str, str]] = (),
                   headers: Mapping[str, str] | None = None) -> tuple[str, str]:
        """PutObject or UploadPart of object data, signed UNSIGNED-PAYLOAD and checked by
        the server: (ETag, the CRC32 the server checked, or "" for a Content-MD5)."""
        crc32 = self._crc32

        def request(payload: _Payload) -> _Request:
            return _Request(op, "PUT", bucket, key, params=list(params),
                            headers=dict(headers or {}), payload=payload, checksum=True)

        req = request(_payload(body, length, signed=False,
                               checksum="crc32" if crc32 else "md5"))
        # An empty body (a directory marker) has nothing to check, and SeaweedFS, which
        # stores "dir/" as a directory, answers it without a CRC32: no verdict on it.
        if not (crc32 and self._checksum == "auto") or req.payload.length == 0:
            return self._call(req, lambda r: self._etag(req, r)), req.payload.crc32
        try:
            etag, echo = self._call(
                req, lambda r: (self._etag(req, r), r.headers.get(_CRC32_HEADER)))
        except errors.StoreError as exc:
            if exc.code not in _CHECKSUM_REFUSALS:
                raise
            again = request(_md5_payload(req.payload))
            etag = self._call(again, lambda r: self._etag(again, r))  # its error, if any
            self._distrust_crc32(f"it refused the header: {exc.code}")
            return etag, ""
        if echo == req.payload.crc32:
            return etag, echo
        if echo:  # it kept other bytes than were sent, and did not say so
            raise errors.StoreError(
                f"{op}: the server's CRC32 of the body ({echo}) is not the one sent "
                f"({req.payload.crc32})", code="BadDigest", bucket=bucket, key=key)
        self._distrust_crc32("its answer does not repeat the CRC32")
        again = request(_md5_payload(req.payload))
        return self._call(again, lambda r: self._etag(again, r)), ""

    def _distrust_crc32(self, why: str) -> None:
        with self._crc32_lock:
            if not self._crc32_trusted:
                return
            self._crc32_trusted = False
        log.warning("%s does not check CRC32 checksums (%s): uploads are checked with "
                    "Content-MD5 from now on", self._endpoint, why)

    def _remember_crc32(self, upload_id: str, part_number: int, crc32: str) -> None:
        if self._crc32 and crc32:
            with self._crc32_lock:
                self._part_crc32[(upload_id, part_number)] = crc32

    def _forget_crc32(self, upload_id: str) -> None:
        with self._crc32_lock:
            for done in [k for k in self._part_crc32 if k[0] == upload_id]:
                del self._part_crc32[done]

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
