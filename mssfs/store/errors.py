"""Typed errors of the object store, decided once at the HTTP edge.

Every failure a store can report is one of the classes below; callers branch on the
class, never on message text. The S3 error code (``<Code>`` in the error body, or the
HTTP status for bodiless answers such as HEAD) is turned into a class by one table,
``ERROR_CODE_TO_CLASS``; unknown codes become a plain ``StoreError`` (or
``ServiceUnavailable`` for any 5xx), keeping the code, the status and the request id.

    StoreError
     ├── NotFound
     │    ├── NoSuchBucket
     │    ├── NoSuchKey
     │    └── NoSuchUpload
     ├── AccessDenied
     │    ├── InvalidAccessKeyId
     │    └── SignatureDoesNotMatch
     ├── Conflict
     │    ├── BucketNotEmpty
     │    └── BucketAlreadyExists
     ├── InvalidRequest
     │    ├── InvalidBucketName
     │    ├── KeyTooLong
     │    ├── InvalidRange
     │    └── EntityTooLarge
     ├── PreconditionFailed
     ├── NotS3Endpoint         (the answer was not an S3 response at all, e.g. an HTML page)
     ├── IncompleteBody        (fewer or more bytes than Content-Length / the range asked)
     └── TransientError        (retried by the client; raised once retries are spent)
          ├── ServiceUnavailable   (5xx, SlowDown, 429, InternalError)
          ├── ConnectionFailed     (refused, reset, DNS)
          └── RequestTimeout       (connect or read timeout)

Messages never contain credentials: they name the operation, bucket and key only.
"""

from __future__ import annotations


class StoreError(Exception):
    """A failed object-store request.

    ``code`` is the S3 error code (or a synthetic one such as ``"HTTP403"``), ``status``
    the HTTP status (0 when no response arrived), ``request_id`` the server's id if any.
    """

    transient = False

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        bucket: str = "",
        key: str = "",
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.bucket = bucket
        self.key = key
        self.request_id = request_id

    def __str__(self) -> str:
        where = "/".join(p for p in (self.bucket, self.key) if p)
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if where:
            parts.append(f"({where})")
        return " ".join(parts)


class NotFound(StoreError):
    pass


class NoSuchBucket(NotFound):
    pass


class NoSuchKey(NotFound):
    pass


class NoSuchUpload(NotFound):
    pass


class AccessDenied(StoreError):
    pass


class InvalidAccessKeyId(AccessDenied):
    pass


class SignatureDoesNotMatch(AccessDenied):
    pass


class Conflict(StoreError):
    pass


class BucketNotEmpty(Conflict):
    pass


class BucketAlreadyExists(Conflict):
    pass


class InvalidRequest(StoreError):
    pass


class InvalidBucketName(InvalidRequest):
    pass


class KeyTooLong(InvalidRequest):
    pass


class InvalidRange(InvalidRequest):
    pass


class EntityTooLarge(InvalidRequest):
    pass


class PreconditionFailed(StoreError):
    pass


class NotS3Endpoint(StoreError):
    pass


class IncompleteBody(StoreError):
    # A short body is a network fault: worth another try.
    transient = True


class TransientError(StoreError):
    transient = True


class ServiceUnavailable(TransientError):
    pass


class ConnectionFailed(TransientError):
    """No answer over the connection. ``connected``: the connection was made and then
    broke (a reset, an early close): the server is there, unlike a refused, unresolved
    or unroutable endpoint (``connected`` False)."""

    connected = False


class RequestTimeout(TransientError):
    pass


# S3 error codes → classes. Codes not listed fall back by HTTP status in ``error_for``.
ERROR_CODE_TO_CLASS: dict[str, type[StoreError]] = {
    "NoSuchBucket": NoSuchBucket,
    "NoSuchKey": NoSuchKey,
    "NotFound": NoSuchKey,
    "NoSuchUpload": NoSuchUpload,
    "AccessDenied": AccessDenied,
    "AllAccessDisabled": AccessDenied,
    "InvalidAccessKeyId": InvalidAccessKeyId,
    "SignatureDoesNotMatch": SignatureDoesNotMatch,
    "ExpiredToken": AccessDenied,
    "InvalidToken": AccessDenied,
    "BucketNotEmpty": BucketNotEmpty,
    "BucketAlreadyExists": BucketAlreadyExists,
    "BucketAlreadyOwnedByYou": BucketAlreadyExists,
    "OperationAborted": Conflict,
    "InvalidBucketName": InvalidBucketName,
    "KeyTooLongError": KeyTooLong,
    "KeyTooLong": KeyTooLong,
    "InvalidRange": InvalidRange,
    "EntityTooLarge": EntityTooLarge,
    "InvalidArgument": InvalidRequest,
    "InvalidRequest": InvalidRequest,
    "InvalidPart": InvalidRequest,
    "InvalidPartOrder": InvalidRequest,
    "EntityTooSmall": InvalidRequest,
    "MalformedXML": InvalidRequest,
    "PreconditionFailed": PreconditionFailed,
    "InternalError": ServiceUnavailable,
    "ServiceUnavailable": ServiceUnavailable,
    "SlowDown": ServiceUnavailable,
    "Throttling": ServiceUnavailable,
    "ThrottlingException": ServiceUnavailable,
    "RequestTimeout": RequestTimeout,
    "RequestTimeTooSkewed": AccessDenied,
}

# Bodiless answers (HEAD, or a proxy's plain-text error) are classified by status.
STATUS_TO_CLASS: dict[int, type[StoreError]] = {
    400: InvalidRequest,
    401: AccessDenied,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    416: InvalidRange,
    429: ServiceUnavailable,
}


def error_for(
    status: int,
    code: str = "",
    message: str = "",
    *,
    bucket: str = "",
    key: str = "",
    request_id: str = "",
) -> StoreError:
    """Build the typed error for an S3 error answer (status, code from the body)."""
    cls = ERROR_CODE_TO_CLASS.get(code)
    if cls is None:
        if status >= 500:
            cls = ServiceUnavailable
        else:
            cls = STATUS_TO_CLASS.get(status, StoreError)
        if cls is NotFound and key:
            cls = NoSuchKey
        elif cls is NotFound and bucket:
            cls = NoSuchBucket
    return cls(
        message or code or f"HTTP {status}",
        code=code or f"HTTP{status}",
        status=status,
        bucket=bucket,
        key=key,
        request_id=request_id,
    )
