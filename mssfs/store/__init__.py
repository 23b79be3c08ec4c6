"""A self-contained S3 client: the ``ObjectStore`` protocol and its implementations.

This package knows S3, not POSIX, and imports nothing from the rest of mssfs.
"""

from mssfs.store.base import (
    BucketInfo,
    CompletedPart,
    DeleteFailure,
    GetResult,
    ListPage,
    ObjectInfo,
    ObjectStore,
    UploadInfo,
)
from mssfs.store.config import DEFAULT_ENDPOINT, Credentials, StoreConfig

__all__ = [
    "DEFAULT_ENDPOINT",
    "BucketInfo",
    "CompletedPart",
    "Credentials",
    "DeleteFailure",
    "GetResult",
    "ListPage",
    "ObjectInfo",
    "ObjectStore",
    "StoreConfig",
    "UploadInfo",
]
