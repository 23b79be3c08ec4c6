"""Configuration of the HTTP object-store client: one frozen dataclass, no I/O.

Built once by the command line (``mssfs.cli``) or by a test; ``HttpStore`` only reads it.
The secret is excluded from ``repr`` so a logged or printed config never shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# MSS's public domain: the endpoint when none is configured.
DEFAULT_ENDPOINT = "https://mtmss.com"

MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StoreConfig:
    endpoint: str = DEFAULT_ENDPOINT
    credentials: Credentials | None = None  # None: anonymous (unsigned) requests
    region: str = "us-east-1"
    signature: str = "v4"  # "v4" or "v2" (old MSS deployments)
    addressing: str = "path"  # "path" (https://host/bucket/key) or "virtual" (bucket.host)
    # True: verify TLS with the system CAs; a path: verify against that CA bundle;
    # False: no verification (only when the user asks for it).
    verify_tls: bool | str = True
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Transient failures are retried until ``retry_time`` seconds have passed since the
    # call began (0: never retried); ``max_retries``, when set, also caps their number.
    # The budget caps each attempt's timeouts too, so no call outlives it by more than
    # one connect: an outage longer than the budget fails (EIO) in bounded time.
    retry_time: float = 60.0
    max_retries: int | None = None
    retry_base_delay: float = 0.2  # seconds; doubled each attempt, with full jitter
    retry_max_delay: float = 10.0
    pool_size: int = 32  # connections kept per host, per thread-local session
    list_version: int = 2  # 2: ListObjectsV2; 1: ListObjects (servers without V2)
    # How object data is checked by the server: "md5" (Content-MD5, which every
    # S3-compatible server checks), "crc32" (x-amz-checksum-crc32: a sixth of the CPU,
    # checked by AWS, MinIO and SeaweedFS; multipart uploads declare it at creation and
    # list each part's checksum at completion), or "auto": CRC32 while the server's
    # answers show it checks it, else MD5 (see ``http``).
    upload_checksum: str = "auto"

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an http:// or https:// URL, not {self.endpoint!r}")
        if self.signature not in ("v4", "v2"):
            raise ValueError(f"signature must be 'v4' or 'v2', not {self.signature!r}")
        if self.addressing not in ("path", "virtual"):
            raise ValueError(f"addressing must be 'path' or 'virtual', not {self.addressing!r}")
        if not re.fullmatch(r"[a-z0-9-]+", self.region):
            raise ValueError(f"invalid region {self.region!r}")
        if self.upload_checksum not in ("auto", "md5", "crc32"):
            raise ValueError(f"upload_checksum must be 'auto', 'md5' or 'crc32', "
                             f"not {self.upload_checksum!r}")
        if self.list_version not in (1, 2):
            raise ValueError("list_version must be 1 or 2")
        if self.retry_time < 0 or (self.max_retries is not None and self.max_retries < 0):
            raise ValueError("retry_time and max_retries must not be negative")


def normalize_endpoint(value: str) -> str:
    """Accept ``host``, ``host:port`` or a URL; a bare host means https."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    return value
