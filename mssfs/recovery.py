"""The recovery folder: where the bytes of a failed upload are kept, so none are lost.

When an upload fails for good (after the store's own retries), the write buffer hands
its content to ``RecoveryFolder.save``, which copies it into one file per object and
logs a single ERROR line naming both the object and the file. The application gets
EIO from ``close``/``fsync``; the operator finds the bytes here.

File names: ``<UTC timestamp>[-N]+<bucket>+<key>``, with the bucket and key
percent-encoded (``urllib.parse.quote(..., safe="")``, so ``/`` becomes ``%2F`` and ``+``
never appears inside a part); ``-N`` only when two saves share a microsecond. The name
is therefore reversible, ``list()`` recovers the object's name from it, and it holds
nothing but the bucket and key (no endpoint, no credentials). A name that would exceed
255 bytes keeps the start of the key and gains a fourth part, a hash of the whole key;
``list()`` then reports the shortened key with ``truncated=True``.

Durability of the copy itself: bytes are written to a hidden ``.partial`` file,
fsynced, then renamed into place, so ``list()`` never shows half a file. Files are mode
0600 in a folder of mode 0700 (created on first use; an existing folder is tightened).

No lock: every save writes its own file (``O_EXCL`` names, with a counter on clash).
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["RecoveredFile", "RecoveryFolder", "default_recovery_dir"]

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255
_SEP = "+"
_PARTIAL = ".partial-"


def default_recovery_dir(home: str, xdg_data_home: str | None = None) -> str:
    """``$XDG_DATA_HOME/mssfs/recovery``, else ``~/.local/share/mssfs/recovery``.

    Pure: the caller (``cli.py``) reads the environment and passes the values in.
    """
    base = xdg_data_home or os.path.join(home, ".local", "share")
    return os.path.join(base, "mssfs", "recovery")


@dataclass(frozen=True)
class RecoveredFile:
    path: str
    bucket: str
    key: str
    size: int
    saved_at: float  # seconds since the epoch, from the name
    truncated: bool = False  # the key in the name was shortened to fit 255 bytes


class RecoveryFolder:
    """Keeps the bytes of failed uploads; see the module docstring."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = os.path.abspath(path)
        self._clock = clock

    def save(self, bucket: str, key: str, source: str | bytes | int, *,
             move: bool = False) -> str:
        """Copy ``source`` (a file path, bytes, or an open file descriptor read from
        offset 0) into the folder; return the new file's path. Logs one ERROR line.
        ``move``: ``source`` is a path that is given up; it is renamed into the folder
        when both are on one filesystem (no copy), else copied and left to the caller."""
        self._prepare()
        now = self._clock()
        target = self._claim(bucket, key, now)
        if move and isinstance(source, str) and self._moved(source, target):
            size = os.stat(target).st_size
        else:
            size = self._copy_in(source, target)
        log.error("upload of s3://%s/%s failed: its %d bytes are kept in %s",
                  bucket, key, size, target)
        return target

    def _copy_in(self, source: str | bytes | int, target: str) -> int:
        """Write ``source`` to a hidden partial file, then rename it over ``target``."""
        partial = os.path.join(self.path, _PARTIAL + os.path.basename(target))
        try:
            size = self._write(partial, source)
            os.replace(partial, target)
        except BaseException:
            for leftover in (partial, target):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
            raise
        return size

    def _moved(self, source: str, target: str) -> bool:
        """Rename ``source`` over the reserved ``target``, durably; False when that fails
        (another filesystem: EXDEV) and the caller copies instead."""
        try:
            fd = os.open(source, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(source, target)
        except OSError:
            return False
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return True

    def list(self) -> list[RecoveredFile]:
        """The files kept so far, oldest first (empty when the folder does not exist)."""
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            parsed = _parse_name(name)
            if parsed is None:
                continue
            path = os.path.join(self.path, name)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue
            bucket, key, saved_at, truncated = parsed
            found.append(RecoveredFile(path, bucket, key, size, saved_at, truncated))
        return found

    # -- internals --------------------------------------------------------------
    def _prepare(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        if os.stat(self.path).st_mode & 0o077:
            os.chmod(self.path, 0o700)

    @staticmethod
    def _tail(bucket: str, key: str) -> str:
        """``+bucket+key``, shortened with a hash part when the name would be too long."""
        tail = f"{_SEP}{quote(bucket, safe='')}{_SEP}"
        encoded = quote(key, safe="")
        # Room left by the timestamp (27 bytes with a clash counter) and ".partial-".
        room = MAX_NAME_BYTES - 27 - len(_PARTIAL) - len(tail)
        if len(encoded) <= room:
            return tail + encoded
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        # Shorten the key by characters, so no escape or UTF-8 sequence is split.
        kept = key
        while kept and len(quote(kept, safe="")) > room - len(digest) - 1:
            kept = kept[: max(0, len(kept) - 16)] if len(kept) > 64 else kept[:-1]
        return f"{tail}{quote(kept, safe='')}{_SEP}{digest}"

    def _claim(self, bucket: str, key: str, now: float) -> str:
        """Reserve a unique file name with O_EXCL (two saves in one microsecond)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        stamp += f".{int(now % 1 * 1_000_000):06d}Z"
        tail = self._tail(bucket, key)
        for attempt in range(100):
            candidate = stamp + (f"-{attempt}" if attempt else "") + tail
            path = os.path.join(self.path, candidate)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            return path
        raise FileExistsError(f"no free name for {stamp}{tail} in {self.path}")

    @staticmethod
    def _write(partial: str, source: str | bytes | int) -> int:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, (bytes, bytearray, memoryview)):
                out.write(source)
            elif isinstance(source, int):
                _copy_fd(source, out.fileno())
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
            return os.fstat(out.fileno()).st_size


def _copy_fd(src: int, dst: int) -> None:
    """Copy the whole of ``src`` (from offset 0, without moving its position)."""
    offset = 0
    while True:
        chunk = os.pread(src, 1 << 20, offset)
        if not chunk:
            return
        os.write(dst, chunk)
        offset += len(chunk)


def _parse_name(name: str) -> tuple[str, str, float, bool] | None:
    if name.startswith("."):
        return None
    parts = name.split(_SEP)
    if len(parts) not in (3, 4):
        return None
    stamp = parts[0].split("-")[0]
    try:
        whole, frac = stamp.rstrip("Z").split(".")
        saved_at = calendar.timegm(time.strptime(whole, "%Y%m%dT%H%M%S"))
        saved_at += int(frac[:6]) / 1_000_000
    except ValueError:
        return None
    return unquote(parts[1]), unquote(parts[2]), saved_at, len(parts) == 4
