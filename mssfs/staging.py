"""Staging files: the local copy of a file being written, and the ones a mount left behind.

Each ``WriteBuffer`` keeps every byte written in a staging file ``mssfs-XXXXXXXX`` (mode
0600) of the staging directory, made by ``create``. The file is locked (``flock``,
exclusive) for as long as its mount process lives, and names its object in extended
attributes: ``user.mssfs.bucket`` and ``user.mssfs.key``, plus ``user.mssfs.whole``
when it holds every byte of the file (a new or truncated file; an existing object that
is appended to or overwritten has here only the ranges read or written, zeros
elsewhere). A mount that ends normally deletes its staging files; one that is killed
cannot, and its staging files hold the bytes it had not stored.

``salvage``, run when a mount starts, moves such orphans into the recovery folder (a
WARNING line, then the recovery folder's ERROR line, as for a failed upload), so that
the bytes a killed mount held end up where every other unsaved byte does. An orphan is
told from a live file by its lock: the kernel drops it when the process dies, however it
dies. A file is taken only if its lock can be taken and it is older than ``min_age`` (a
file is locked microseconds after it is made, so a young file may be a live one not yet
locked). Files without the attributes (another program's, an older mssfs's, or on a
filesystem without user extended attributes) are left where they are.

Locking: none within the process; the ``flock`` is the protocol between processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["PREFIX", "create", "salvage"]

log = logging.getLogger(__name__)

PREFIX = "mssfs-"
_BUCKET, _KEY, _WHOLE = "user.mssfs.bucket", "user.mssfs.key", "user.mssfs.whole"


class Recovery(Protocol):
    def save(self, bucket: str, key: str, source: str | bytes | int, *,
             move: bool = False) -> str: ...


def create(staging_dir: str, bucket: str, key: str, *, whole: bool) -> tuple[int, str]:
    """A new, locked staging file for ``bucket``/``key``: (fd, path)."""
    os.makedirs(staging_dir, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=PREFIX, dir=staging_dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.setxattr(fd, _BUCKET, bucket.encode())
        os.setxattr(fd, _KEY, key.encode())
        if whole:
            os.setxattr(fd, _WHOLE, b"1")
    except OSError as exc:  # no flock or no user xattrs here: salvage leaves it alone
        log.debug("staging file %s unmarked: %s", path, exc)
    return fd, path


def salvage(staging_dir: str, recovery: Recovery, *, min_age: float = 5.0,
            clock: Callable[[], float] = time.time) -> list[str]:
    """Move the staging files of ended mounts into ``recovery``; the paths it saved."""
    try:
        names = sorted(n for n in os.listdir(staging_dir) if n.startswith(PREFIX))
    except OSError:
        return []
    saved = []
    for name in names:
        path = os.path.join(staging_dir, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            kept = _salvage_one(fd, path, recovery, min_age, clock)
        except OSError as exc:  # a full disk, say: the orphan stays, and says so
            log.warning("staging file %s of an ended mount left in place: %s", path, exc)
            kept = None
        finally:
            os.close(fd)
        if kept:
            saved.append(kept)
    return saved


def _salvage_one(fd: int, path: str, recovery: Recovery, min_age: float,
                 clock: Callable[[], float]) -> str | None:
    info = os.fstat(fd)
    if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid()
            or clock() - info.st_mtime < min_age):
        return None
    try:
        bucket = os.getxattr(fd, _BUCKET).decode()
        key = os.getxattr(fd, _KEY).decode()
    except (OSError, UnicodeDecodeError):
        return None  # not a staging file of ours
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None  # a live mount holds it
    try:
        os.getxattr(fd, _WHOLE)
        whole = True
    except OSError:
        whole = False
    if info.st_size == 0 and whole:
        os.unlink(path)  # an empty new file: nothing to keep
        return None
    log.warning("%s: the staging file of a mount that ended before storing s3://%s/%s "
                "(%d bytes%s): to the recovery folder", path, bucket, key, info.st_size,
                "" if whole else "; ranges of the previous version never read are zeros")
    # Renamed into the folder when it is on the same filesystem, else copied.
    target = recovery.save(bucket, key, path, move=True)  # logs the ERROR line
    with contextlib.suppress(FileNotFoundError):  # still here when it was copied
        os.unlink(path)
    return target
