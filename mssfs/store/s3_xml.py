"""The XML documents of the S3 API: parse answers, build request bodies. Pure, no I/O.

Parsing uses ``xml.etree.ElementTree`` on bytes. A document carrying a DOCTYPE is
refused before parsing, so no entity (internal or external) is ever resolved: S3 never
sends one, and refusing it closes the door on entity-expansion attacks. Namespaces are
dropped (AWS sends ``xmlns="http://s3.amazonaws.com/doc/2006-03-01/"``, other servers
none), so lookups use bare tag names.

Two kinds of failure leave this module:

- ``MalformedXml``: the bytes are not XML, or not the document expected (a proxy's
  HTML page, a truncated answer). The client reports it as ``NotS3Endpoint``.
- ``ErrorDocument``: the root is ``<Error>``. Besides error answers, S3 can answer
  CompleteMultipartUpload and CopyObject with ``200 OK`` and an ``<Error>`` body, so
  every parser checks the root first.

Listings are requested with ``encoding-type=url`` so keys holding characters XML 1.0
cannot carry (control characters) round-trip; when the answer says
``<EncodingType>url</EncodingType>`` the key-like fields are URL-decoded here.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from mssfs.store.base import BucketInfo, CompletedPart, DeleteFailure, ObjectInfo, UploadInfo


class MalformedXml(ValueError):
    """The body is not the S3 XML document that was expected."""


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str = ""
    request_id: str = ""


class ErrorDocument(Exception):
    """The body is an S3 ``<Error>`` document (possibly inside a 200 answer)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.code)
        self.info = info


@dataclass(frozen=True)
class Listing:
    """A parsed ListBucketResult (V2 or V1)."""

    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_token: str | None  # V2: NextContinuationToken
    next_marker: str | None  # V1: NextMarker (only sent with a delimiter)
    is_v2: bool  # KeyCount present: the server understood list-type=2


@dataclass(frozen=True)
class UploadsPage:
    uploads: list[UploadInfo]
    truncated: bool
    next_key_marker: str
    next_upload_id_marker: str


# -- parsing helpers ----------------------------------------------------------------


def parse_document(body: bytes) -> ET.Element:
    """Parse ``body`` (namespaces dropped); raise ``MalformedXml`` if it is not XML."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedXml("XML with a DOCTYPE or entity declaration is refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedXml(f"not XML: {exc}") from None
    for elem in root.iter():
        if isinstance(elem.tag, str) and "}" in elem.tag:
            elem.tag = elem.tag.rsplit("}", 1)[1]
    return root


def parse_error(body: bytes) -> ErrorInfo | None:
    """The ``<Error>`` of a body, or None when it is not an S3 error document."""
    try:
        root = parse_document(body)
    except MalformedXml:
        return None
    if root.tag != "Error":
        return None
    return _error_info(root)


def _error_info(root: ET.Element) -> ErrorInfo:
    return ErrorInfo(_text(root, "Code"), _text(root, "Message"), _text(root, "RequestId"))


def _root(body: bytes, expected: str) -> ET.Element:
    root = parse_document(body)
    if root.tag == "Error":
        raise ErrorDocument(_error_info(root))
    if root.tag != expected:
        raise MalformedXml(f"expected <{expected}>, got <{root.tag}>")
    return root


def _text(elem: ET.Element, tag: str, default: str = "") -> str:
    child = elem.find(tag)
    if child is None or child.text is None:
        return default
    return child.text


def _required(elem: ET.Element, tag: str) -> str:
    child = elem.find(tag)
    if child is None:
        raise MalformedXml(f"<{elem.tag}> has no <{tag}>")
    return child.text or ""


def parse_time(value: str) -> float:
    """ISO 8601 (XML) or RFC 1123 (HTTP headers) time → seconds since the epoch."""
    if not value:
        return 0.0
    try:
        stamp = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            stamp = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def strip_etag(value: str) -> str:
    return value.strip().strip('"')


def _is_true(elem: ET.Element, tag: str) -> bool:
    return _text(elem, tag).strip().lower() == "true"


# -- documents ------------------------------------------------------------------------


def parse_buckets(body: bytes) -> list[BucketInfo]:
    root = _root(body, "ListAllMyBucketsResult")
    return [
        BucketInfo(_required(b, "Name"), parse_time(_text(b, "CreationDate")))
        for b in root.iterfind("Buckets/Bucket")
    ]


def parse_listing(body: bytes) -> Listing:
    """A ListObjectsV2 or ListObjects (V1) answer, keys URL-decoded if encoded."""
    root = _root(body, "ListBucketResult")
    decode = unquote_plus if _text(root, "EncodingType").lower() == "url" else _same
    objects = [
        ObjectInfo(
            key=decode(_required(c, "Key")),
            size=int(_text(c, "Size", "0")),
            etag=strip_etag(_text(c, "ETag")),
            last_modified=parse_time(_text(c, "LastModified")),
            storage_class=_text(c, "StorageClass") or None,
        )
        for c in root.iterfind("Contents")
    ]
    prefixes = [decode(_text(p, "Prefix")) for p in root.iterfind("CommonPrefixes")]
    next_marker = _text(root, "NextMarker")
    return Listing(
        objects=objects,
        prefixes=prefixes,
        truncated=_is_true(root, "IsTruncated"),
        next_token=_text(root, "NextContinuationToken") or None,
        next_marker=decode(next_marker) if next_marker else None,
        is_v2=root.find("KeyCount") is not None,
    )


def _same(value: str) -> str:
    return value


def parse_initiate(body: bytes) -> str:
    """InitiateMultipartUploadResult → the upload id."""
    upload_id = _required(_root(body, "InitiateMultipartUploadResult"), "UploadId")
    if not upload_id:
        raise MalformedXml("empty UploadId")
    return upload_id


def parse_complete(body: bytes) -> str:
    """CompleteMultipartUploadResult → the ETag (``ErrorDocument`` for a 200 + Error)."""
    return strip_etag(_required(_root(body, "CompleteMultipartUploadResult"), "ETag"))


def parse_copy_result(body: bytes) -> str:
    """CopyObjectResult or CopyPartResult → the ETag (``ErrorDocument`` on 200 + Error)."""
    return parse_copy_part(body)[0]


def parse_copy_part(body: bytes) -> tuple[str, str]:
    """CopyObjectResult or CopyPartResult → (ETag, ChecksumCRC32 or "")."""
    root = parse_document(body)
    if root.tag == "Error":
        raise ErrorDocument(_error_info(root))
    if root.tag not in ("CopyObjectResult", "CopyPartResult"):
        raise MalformedXml(f"expected <CopyObjectResult>, got <{root.tag}>")
    return strip_etag(_required(root, "ETag")), _text(root, "ChecksumCRC32").strip()


def parse_uploads(body: bytes) -> UploadsPage:
    root = _root(body, "ListMultipartUploadsResult")
    decode = unquote_plus if _text(root, "EncodingType").lower() == "url" else _same
    uploads = [
        UploadInfo(decode(_required(u, "Key")), _required(u, "UploadId"),
                   parse_time(_text(u, "Initiated")))
        for u in root.iterfind("Upload")
    ]
    return UploadsPage(
        uploads=uploads,
        truncated=_is_true(root, "IsTruncated"),
        next_key_marker=decode(_text(root, "NextKeyMarker")),
        next_upload_id_marker=_text(root, "NextUploadIdMarker"),
    )


def parse_delete_result(body: bytes) -> list[DeleteFailure]:
    root = _root(body, "DeleteResult")
    return [
        DeleteFailure(_text(e, "Key"), _text(e, "Code"), _text(e, "Message"))
        for e in root.iterfind("Error")
    ]


# -- request bodies -------------------------------------------------------------------

_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
_NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def build_complete(parts: Sequence[CompletedPart],
                   crc32: Mapping[int, str] | None = None) -> bytes:
    """The CompleteMultipartUpload body, parts in ascending part number, with each
    part's CRC32 (``crc32``: part number → base64) when the upload declared one."""
    crc32 = crc32 or {}
    items = "".join(
        f"<Part><PartNumber>{p.part_number}</PartNumber>"
        f"<ETag>&quot;{escape(strip_etag(p.etag))}&quot;</ETag>"
        + (f"<ChecksumCRC32>{escape(crc32[p.part_number])}</ChecksumCRC32>"
           if crc32.get(p.part_number) else "")
        + "</Part>"
        for p in sorted(parts, key=lambda p: p.part_number)
    )
    return f"{_XML_HEAD}<CompleteMultipartUpload{_NS}>{items}</CompleteMultipartUpload>".encode()


def build_delete(keys: Sequence[str], *, quiet: bool = True) -> bytes:
    """The Delete body of DeleteObjects (Quiet: only failures are reported)."""
    items = "".join(f"<Object><Key>{_escape_key(k)}</Key></Object>" for k in keys)
    flag = "<Quiet>true</Quiet>" if quiet else ""
    return f"{_XML_HEAD}<Delete{_NS}>{flag}{items}</Delete>".encode()


def _escape_key(key: str) -> str:
    # Tab, LF and CR survive only as numeric references (a parser normalises them
    # otherwise). Other control characters cannot appear in XML 1.0 at all: callers
    # delete such keys one by one (see ``xml_safe``).
    out = escape(key, {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})
    return out


def xml_safe(key: str) -> bool:
    """Whether an XML 1.0 document can carry ``key`` (no C0 controls but tab/LF/CR)."""
    return not any(ord(c) < 0x20 and c not in "\t\n\r" for c in key)
