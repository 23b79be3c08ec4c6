"""The control channel: extended attributes answered by the mount process itself.

Why xattrs. The commands ``mssfs url``, ``mssfs stats`` and ``mssfs umount`` need
something only the mount process has (the credentials, the live counters). Reading an
extended attribute through the mount reaches exactly that process, needs no socket,
pid file or credentials in the command, works for any user who can see the path, and
is stateless: each read is one question and its answer. So the mount answers a few
names that are never stored and never listed by ``listxattr``:

- ``user.mssfs.stats`` on the mount root: the live counters as JSON (``stats``);
- ``user.mssfs.state`` on a file: ``clean``, ``dirty``, ``uploading`` or ``failed``
  (also for a closed file whose last upload failed: the recovery folder holds a copy
  newer than the stored object);
- ``user.mssfs.url.<get|put>.<seconds>``: a presigned URL for that method and expiry;
  on a directory, ``user.mssfs.url.put.<seconds>/<name>`` names a file that need not
  exist yet (a PUT URL to create it). ``user.mssfs.url`` itself, a GET URL with the
  mount's ``url_expires``, is answered by ``xattrs``, since it is listed.

How it works. ``ControlFilesystem`` wraps ``Filesystem``: ``getxattr`` answers the
names above and hands every other call to the wrapped object unchanged
(``__getattr__``), so ``fuse_ops`` stays a translation layer and ``Filesystem`` knows
nothing of the commands. A bad parameter (unknown method, expiry outside 1 s .. 7 days)
is EINVAL; a directory has no URL (ENODATA).

No lock, no thread: every answer reads its owners' locked accessors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mssfs import paths
from mssfs.errors import InvalidArgument, NoAttribute, NotFound
from mssfs.stats import FAILED, file_state
from mssfs.store import errors as store_errors

STATS_XATTR = "user.mssfs.stats"
STATE_XATTR = "user.mssfs.state"
URL_PREFIX = "user.mssfs.url."
MAX_EXPIRES = 7 * 24 * 3600

_URL_NAME = re.compile(r"user\.mssfs\.url\.(get|put)\.(\d{1,7})(?:/(.+))?")


def url_xattr(method: str, expires: int) -> str:
    """The attribute name that asks the mount for a presigned URL."""
    return f"{URL_PREFIX}{method.lower()}.{int(expires)}"


class ControlFilesystem:
    """``Filesystem`` plus the control attributes; see the module docstring."""

    def __init__(self, fs: Any, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._fs = fs
        self._snapshot = snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def getxattr(self, path: str, name: str) -> bytes:
        if name == STATS_XATTR:
            if paths.normalize(path) != "/":
                raise NoAttribute(path=path)
            text = json.dumps(self._snapshot(), sort_keys=True)
            # Tools such as getfattr ask for the size first, then the value: padding
            # (JSON allows trailing blanks) keeps a counter that grew in between from
            # making the second answer larger than the first (ERANGE).
            return text.ljust(-(-(len(text) + 256) // 4096) * 4096).encode()
        if name == STATE_XATTR:
            return self._state(paths.normalize(path)).encode()
        if name.startswith(URL_PREFIX):
            return self._url(paths.normalize(path), name).encode()
        return self._fs.getxattr(path, name)

    def _state(self, path: str) -> str:
        attrs = self._fs.getattr(path)  # ENOENT for a missing path
        if attrs.is_dir:
            raise NoAttribute(path=path)
        open_file = self._fs.handles.open_file(path)
        if open_file is None and self._recovered_since(path, attrs.mtime):
            return FAILED  # closed, but its last upload failed: the bytes are recovered
        return file_state(open_file)

    def _recovered_since(self, path: str, mtime: float) -> bool:
        bucket, key = self._fs.resolve(path)
        return any(f.bucket == bucket and f.key == key and f.saved_at >= mtime
                   for f in self._fs.recovery.list())

    def _url(self, path: str, name: str) -> str:
        match = _URL_NAME.fullmatch(name)
        if match is None:
            raise InvalidArgument(f"{name}: expected {URL_PREFIX}get|put.SECONDS", path=path)
        method, expires, child = match.group(1).upper(), int(match.group(2)), match.group(3)
        if not 1 <= expires <= MAX_EXPIRES:
            raise InvalidArgument("a URL expires after 1 s to 7 days", path=path)
        if child is not None:
            # A file that does not exist yet (a PUT URL) is named from its directory:
            # the kernel would answer ENOENT before asking about the file itself.
            if "/" in child or child in (".", "..") or not self._fs.getattr(path).is_dir:
                raise InvalidArgument("a child name is one component, under a directory",
                                      path=path)
            path = paths.normalize(path.rstrip("/") + "/" + child)
        attrs = self._attrs_or_none(path)
        if (attrs is None and method == "GET") or (attrs is not None and not attrs.is_file):
            raise NoAttribute(path=path)
        bucket, key = self._fs.resolve(path)
        if bucket is None or not key:
            raise NoAttribute(path=path)
        return self._fs.store.presign_url(bucket, key, method=method, expires=expires)

    def _attrs_or_none(self, path: str) -> Any:
        try:
            return self._fs.getattr(path)
        except (NotFound, store_errors.NotFound):
            return None
