"""Request bodies for ``transport``: hashed once, sent without copies.

Object data (``put_object``, ``upload_part``) goes with a signed Content-MD5 and is
signed ``UNSIGNED-PAYLOAD`` (``_payload``): the server checks the body against the
MD5, so each byte is hashed once instead of twice. Bytes go out as they are, never
copied when they are ``bytes`` of the announced length. A file body up to
``_SMALL_FILE_BODY`` is read into memory; a larger one is hashed in one pass and then
streamed from its start offset in 1 MiB chunks (``_FileBody``), never read whole into
memory, and rewound for a retry.

Locking: none; a payload belongs to one request.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mssfs.store import signing
from mssfs.store.base import Body

_CHUNK = 1024 * 1024
_SMALL_FILE_BODY = 8 * 1024 * 1024  # file bodies up to this size are read into memory


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
