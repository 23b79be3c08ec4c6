"""Which version of each file the kernel's page cache may hold: the ``keep_cache`` choice.

FUSE drops a file's cached pages at every ``open`` unless the answer sets
``keep_cache``. Dropping them is always correct, and wasteful when the object has not
changed: a second ``cat`` of a large file would download it again. ``PageVersions``
remembers, per path, the ETag of the version last opened for reading; a read-only
``open`` that finds the same ETag (after the usual close-to-open revalidation) keeps the
pages, so the re-read is served by the kernel at memory speed, without a request.

Why this is safe: an ETag names one content, so pages filled under it are that
content's bytes. Any other answer (a changed ETag, no ETag, a file open for writing
through the mount) drops the pages, as before. Pages the mount itself wrote are the
file's content too, and the next read-only open finds a new ETag after the upload and
drops them anyway. Rename moves a kernel node (and its pages) to the new path, whose
remembered ETag is then some other file's: the pages are dropped.

Locking: one lock around the bounded LRU map, held for dictionary operations only.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache


class PageVersions:
    """path → ETag whose pages the kernel may hold, for at most ``capacity`` paths."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._etags: LRUCache[str, str] = LRUCache(maxsize=max(1, capacity))

    def opened_for_read(self, path: str, etag: str | None) -> bool:
        """Record a read-only open of ``path`` at ``etag``; whether the kernel may keep
        the pages it has for the file."""
        with self._lock:
            keep = bool(etag) and self._etags.get(path) == etag
            if etag:
                self._etags[path] = etag
            else:
                self._etags.pop(path, None)
            return keep

    def forget(self, path: str) -> None:
        """``path`` is being changed through the mount: its next open drops the pages."""
        with self._lock:
            self._etags.pop(path, None)
