"""Filesystem errors and the one table that turns any exception into an errno.

The filesystem raises ``FsError`` subclasses for POSIX conditions it decides itself
(``IsADirectory``, ``DirectoryNotEmpty``...) and lets typed store errors
(``mssfs.store.errors``) pass through. ``errno_for`` is the only place where an
exception meets an errno; ``fuse_ops.FuseOperations.__call__`` calls it. Anything it
does not recognise is EIO (and is logged with its traceback by the caller), because
fusepy would otherwise answer EINVAL for an unknown exception.
"""

from __future__ import annotations

import errno

from mssfs.store import errors as store_errors


class FsError(Exception):
    """A POSIX-level failure with a fixed errno."""

    errno = errno.EIO

    def __init__(self, message: str = "", *, path: str = "") -> None:
        super().__init__(message or self.__class__.__name__)
        self.path = path


class NotFound(FsError):
    errno = errno.ENOENT


class Exists(FsError):
    errno = errno.EEXIST


class NotADirectory(FsError):
    errno = errno.ENOTDIR


class IsADirectory(FsError):
    errno = errno.EISDIR


class DirectoryNotEmpty(FsError):
    errno = errno.ENOTEMPTY


class InvalidArgument(FsError):
    errno = errno.EINVAL


class NameTooLong(FsError):
    errno = errno.ENAMETOOLONG


class ReadOnly(FsError):
    errno = errno.EROFS


class NotPermitted(FsError):
    errno = errno.EPERM


class PermissionDenied(FsError):
    errno = errno.EACCES


class NotSupported(FsError):
    errno = errno.ENOTSUP


class NoAttribute(FsError):
    errno = errno.ENODATA


class BadFileHandle(FsError):
    errno = errno.EBADF


class CrossDevice(FsError):
    errno = errno.EXDEV


class Stale(FsError):
    errno = errno.ESTALE


class UploadFailed(FsError):
    """An upload failed after retries; the bytes were kept in the recovery folder."""

    errno = errno.EIO

    def __init__(self, message: str = "", *, path: str = "", recovery_path: str = "") -> None:
        super().__init__(message, path=path)
        self.recovery_path = recovery_path


# Store errors → errno, most specific class first (the first isinstance match wins).
STORE_ERRNO: tuple[tuple[type[BaseException], int], ...] = (
    (store_errors.NoSuchUpload, errno.EIO),
    (store_errors.NotFound, errno.ENOENT),
    (store_errors.AccessDenied, errno.EACCES),
    (store_errors.BucketNotEmpty, errno.ENOTEMPTY),
    (store_errors.BucketAlreadyExists, errno.EEXIST),
    (store_errors.InvalidBucketName, errno.EINVAL),
    (store_errors.KeyTooLong, errno.ENAMETOOLONG),
    (store_errors.EntityTooLarge, errno.EFBIG),
    (store_errors.PreconditionFailed, errno.ESTALE),
    (store_errors.StoreError, errno.EIO),
)


def errno_for(exc: BaseException) -> int | None:
    """The errno for a known exception, or None when it is not one we recognise."""
    if isinstance(exc, FsError):
        return exc.errno
    for cls, number in STORE_ERRNO:
        if isinstance(exc, cls):
            return number
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return None
