"""Request signing for S3: AWS Signature V4 (headers and presigned query) and SigV2.

Pure functions, no I/O and no clock: every function takes the time ``now`` (seconds
since the epoch) from its caller, so tests are deterministic and a retried request is
re-signed with a fresh time by the client.

How a request is described. ``path`` is the URI path exactly as it goes on the wire,
already encoded with ``uri_encode(..., keep_slash=True)``; for S3 it is never normalised
or encoded a second time. ``params`` are the query parameters as raw (decoded) pairs;
``encode_query`` turns them into the wire query and ``canonical_query`` into the sorted
form SigV4 signs, both with the same encoder, so the server decodes what we signed.
An empty value is written as the bare name (``?uploads``), which both SigV2's resource
and SigV4's canonical ``uploads=`` agree on.

Payload hash (``x-amz-content-sha256``). The client passes the real SHA-256 of the
body: ``EMPTY_SHA256`` for no body, the digest of a bytes body, and for a file body the
digest computed in one read of the file before sending it (together with Content-MD5,
which S3 requires anyway). ``UNSIGNED-PAYLOAD`` is only used in presigned URLs, where
the body is not known; signing real hashes keeps plain-http endpoints (MSS intranet,
SeaweedFS) protected against body tampering too.

SigV2 (HMAC-SHA1) is kept for old MSS deployments: ``Authorization: AWS key:sig``,
signing ``method, Content-MD5, Content-Type, Date, x-amz-* headers, resource`` where the
resource is always ``/bucket/key`` plus the sub-resources S3 lists (even for
virtual-hosted requests), and the presigned form ``AWSAccessKeyId/Expires/Signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from email.utils import formatdate

from mssfs.store.config import MAX_PRESIGN_EXPIRES, Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# Percent-encoding table, built once: a byte → its wire form.
_ENCODED = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]

# Query parameters that name a sub-resource and so belong in the SigV2 resource.
_V2_SUBRESOURCES = frozenset(
    {
        "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
        "partNumber", "policy", "requestPayment", "restore", "tagging", "torrent",
        "uploadId", "uploads", "versionId", "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language",
        "response-content-type", "response-expires",
    }
)

Params = Sequence[tuple[str, str]]


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """S3 URI encoding: every UTF-8 byte except ``A-Za-z0-9-_.~`` becomes ``%XX``."""
    out = "".join(_ENCODED[b] for b in value.encode("utf-8"))
    if keep_slash:
        out = out.replace("%2F", "/")
    return out


def encode_query(params: Params) -> str:
    """The wire query string, in the given order (``name`` alone for empty values)."""
    return "&".join(
        f"{uri_encode(k)}={uri_encode(v)}" if v != "" else uri_encode(k) for k, v in params
    )


def canonical_query(params: Params) -> str:
    """The SigV4 canonical query: encoded pairs sorted by name, then value."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def amz_date(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical header block, signed-header list) of lower-cased, trimmed headers."""
    lowered = {name.lower().strip(): " ".join(str(v).split()) for name, v in headers.items()}
    names = sorted(lowered)
    block = "".join(f"{n}:{lowered[n]}\n" for n in names)
    return block, ";".join(names)


def _v4_signature(
    credentials: Credentials,
    region: str,
    service: str,
    stamp: str,
    canonical_request: str,
) -> str:
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = _signing_key(credentials.secret_key, stamp[:8], region, service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_v4(
    method: str,
    host: str,
    path: str,
    params: Params,
    headers: Mapping[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    now: float,
    service: str = "s3",
) -> dict[str, str]:
    """Sign a request with SigV4 in the ``Authorization`` header.

    ``host`` is the Host header value (with the port when it is not the scheme's
    default). Returns a new dict: ``headers`` plus Host, X-Amz-Date,
    X-Amz-Content-SHA256, X-Amz-Security-Token (with a session token) and Authorization.
    Every header passed in is signed.
    """
    stamp = amz_date(now)
    out = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "host")}
    out["X-Amz-Date"] = stamp
    out["X-Amz-Content-SHA256"] = payload_hash
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    block, signed = _canonical_headers({**out, "host": host})
    canonical = "\n".join(
        [method.upper(), path, canonical_query(params), block, signed, payload_hash]
    )
    signature = _v4_signature(credentials, region, service, stamp, canonical)
    out["Host"] = host
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{stamp[:8]}/{region}/{service}"
        f"/aws4_request, SignedHeaders={signed}, Signature={signature}"
    )
    return out


def check_expires(expires: int) -> int:
    if not 1 <= int(expires) <= MAX_PRESIGN_EXPIRES:
        raise ValueError(f"expires must be 1 to {MAX_PRESIGN_EXPIRES} seconds, not {expires}")
    return int(expires)


def presign_v4(
    method: str,
    host: str,
    path: str,
    params: Params,
    credentials: Credentials,
    region: str,
    now: float,
    expires: int,
    service: str = "s3",
) -> str:
    """The query string of a SigV4 presigned URL (``params`` first, then the X-Amz-*).

    Only ``host`` is signed and the payload is ``UNSIGNED-PAYLOAD``, so the URL works
    for any body (PUT) and from any client.
    """
    stamp = amz_date(now)
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(check_expires(expires))),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.session_token:
        auth.append(("X-Amz-Security-Token", credentials.session_token))
    all_params = [*params, *auth]
    canonical = "\n".join(
        [method.upper(), path, canonical_query(all_params), f"host:{host}\n", "host",
         UNSIGNED_PAYLOAD]
    )
    signature = _v4_signature(credentials, region, service, stamp, canonical)
    return encode_query([*all_params, ("X-Amz-Signature", signature)])


# -- SigV2 ------------------------------------------------------------------------


def _v2_resource(resource_path: str, params: Params) -> str:
    """``/bucket/key`` (encoded) plus the sorted sub-resources, values not encoded."""
    subs = sorted((k, v) for k, v in params if k in _V2_SUBRESOURCES)
    if not subs:
        return resource_path
    return resource_path + "?" + "&".join(f"{k}={v}" if v != "" else k for k, v in subs)


def _v2_string_to_sign(
    method: str, date: str, resource: str, headers: Mapping[str, str]
) -> str:
    lowered = {k.lower(): str(v).strip() for k, v in headers.items()}
    amz = sorted((k, v) for k, v in lowered.items() if k.startswith("x-amz-"))
    lines = [method.upper(), lowered.get("content-md5", ""), lowered.get("content-type", ""), date]
    lines += [f"{k}:{v}" for k, v in amz]
    return "\n".join([*lines, resource])


def _v2_sign(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def sign_v2(
    method: str,
    resource_path: str,
    params: Params,
    headers: Mapping[str, str],
    credentials: Credentials,
    now: float,
) -> dict[str, str]:
    """Sign with SigV2 (``Authorization: AWS key:signature``, a ``Date`` header).

    ``resource_path`` is ``/bucket/key`` as encoded on the wire (path-style), whatever
    the addressing of the request.
    """
    out = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "date")}
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    date = formatdate(now, usegmt=True)
    out["Date"] = date
    sts = _v2_string_to_sign(method, date, _v2_resource(resource_path, params), out)
    out["Authorization"] = f"AWS {credentials.access_key}:{_v2_sign(credentials.secret_key, sts)}"
    return out


def presign_v2(
    method: str,
    resource_path: str,
    params: Params,
    credentials: Credentials,
    now: float,
    expires: int,
) -> str:
    """The query string of a SigV2 presigned URL (``AWSAccessKeyId/Expires/Signature``)."""
    deadline = str(int(now) + check_expires(expires))
    headers = {}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    sts = _v2_string_to_sign(method, deadline, _v2_resource(resource_path, params), headers)
    auth = [
        ("AWSAccessKeyId", credentials.access_key),
        ("Expires", deadline),
        ("Signature", _v2_sign(credentials.secret_key, sts)),
    ]
    if credentials.session_token:
        auth.append(("x-amz-security-token", credentials.session_token))
    return encode_query([*params, *auth])
