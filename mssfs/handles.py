"""Open files: file handle numbers, and the one write buffer per path they share.

``HandleTable`` hands out handle numbers (``fh``) for ``open``/``create`` and maps them
to a ``Handle``: a read handle holds an ``ObjectReader`` pinned to the ETag seen at
open; a write handle (O_WRONLY, O_RDWR, O_TRUNC, O_APPEND, create) points at the
``OpenFile`` of its path. All write handles of one path share that ``OpenFile`` and its
``WriteBuffer``, so two ``open``s of one file see each other's writes, and reads of a
dirty file go through the buffer (read-your-writes).

An ``OpenFile`` stays registered under its path until its last handle is released;
``unlink`` detaches it (its later writes are discarded, as POSIX drops the data of an
unlinked file at the last close) and ``rename`` moves it to the new path.

``open_intent`` is the one place that decodes open flags.

Locking: ``HandleTable._lock`` guards the two dicts and the handle counts; it is held
only around dict operations, never across a store call or a buffer operation. Building
a ``WriteBuffer`` may do I/O, so ``attach`` builds outside the lock and, if another
thread registered the path meanwhile, closes its own and joins theirs.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mssfs.errors import BadFileHandle


@dataclass(frozen=True)
class OpenIntent:
    read: bool
    write: bool
    truncate: bool
    append: bool


def open_intent(flags: int) -> OpenIntent:
    """Decode ``open(2)`` flags: what a handle may do and what opening it implies."""
    access = flags & os.O_ACCMODE
    return OpenIntent(
        read=access in (os.O_RDONLY, os.O_RDWR),
        write=access in (os.O_WRONLY, os.O_RDWR),
        truncate=bool(flags & os.O_TRUNC) and access != os.O_RDONLY,
        append=bool(flags & os.O_APPEND),
    )


@dataclass(eq=False)
class OpenFile:
    """One path open for writing: its shared buffer and what the store knows of it."""

    path: str
    buffer: Any  # a write_buffer.WriteBuffer
    # What the next upload writes besides the bytes (POSIX + user metadata).
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    attrs: Any = None  # Attributes as of open/last upload (size and mtime come live)
    # True until the object exists in the store (a create not yet uploaded).
    pending_create: bool = False
    unlinked: bool = False
    # The last upload failed and the buffer saved every byte to the recovery folder.
    recovered: bool = False
    # utimens set the mtime since the last write: the upload keeps it (tar, cp -p set
    # times on the open descriptor before close) instead of stamping the upload time.
    mtime_set: bool = False
    handles: int = 0
    # Serialises commits of this file so two flushes never upload at once.
    commit_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class Handle:
    fh: int
    path: str
    intent: OpenIntent
    reader: Any = None  # prefetch.ObjectReader for read handles
    open_file: OpenFile | None = None
    # Bytes written (or an ftruncate) through this handle since its last upload.
    wrote: bool = False
    # Opened by create or O_TRUNC and not uploaded since: ``release`` must upload even
    # if nothing was written (an empty file, a truncated one).
    must_upload: bool = False
    # Read handles: the kernel may keep its cached pages of the file (page_versions).
    keep_cache: bool = False
    # Read handles: the kernel reads this backing file itself (passthrough); 0: none.
    backing: int = 0
    # The application closed a descriptor of it (a FLUSH came); RELEASE follows.
    closed: bool = False


class HandleTable:
    """fh → Handle and path → OpenFile, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._handles: dict[int, Handle] = {}
        self._files: dict[str, OpenFile] = {}

    def add(self, path: str, intent: OpenIntent, *, reader=None, open_file=None) -> Handle:
        with self._lock:
            handle = Handle(next(self._numbers), path, intent, reader, open_file)
            self._handles[handle.fh] = handle
            return handle

    def find(self, fh: int) -> Handle | None:
        with self._lock:
            return self._handles.get(fh)

    def get(self, fh: int) -> Handle:
        handle = self.find(fh)
        if handle is None:
            raise BadFileHandle(f"no open file handle {fh}")
        return handle

    def remove(self, fh: int) -> Handle:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is None:
            raise BadFileHandle(f"no open file handle {fh}")
        return handle

    def handles(self) -> list[Handle]:
        with self._lock:
            return list(self._handles.values())

    def open_file(self, path: str) -> OpenFile | None:
        with self._lock:
            return self._files.get(path)

    def open_files(self) -> list[OpenFile]:
        with self._lock:
            return list(self._files.values())

    def attach(self, path: str, build: Callable[[], OpenFile]) -> OpenFile:
        """The path's ``OpenFile`` with one more handle; ``build`` makes it if absent."""
        with self._lock:
            existing = self._files.get(path)
            if existing is not None:
                existing.handles += 1
                return existing
        built = build()  # may do I/O: outside the lock
        with self._lock:
            existing = self._files.get(path)
            if existing is None:
                self._files[path] = existing = built
                built = None
            existing.handles += 1
        if built is not None:  # never written to: nothing to keep
            built.buffer.close(keep_dirty=False)
        return existing

    def detach(self, open_file: OpenFile) -> bool:
        """One handle fewer; True (and unregistered) when it was the last."""
        with self._lock:
            open_file.handles -= 1
            if open_file.handles > 0:
                return False
            if self._files.get(open_file.path) is open_file:
                del self._files[open_file.path]
            return True

    def forget(self, path: str) -> OpenFile | None:
        """Unlink: the path's open file no longer has a name (its data will be dropped)."""
        with self._lock:
            open_file = self._files.pop(path, None)
            if open_file is not None:
                open_file.unlinked = True
            return open_file

    def move(self, old: str, new: str) -> None:
        """Rename: open files at or under ``old`` now live under ``new``."""
        with self._lock:
            moved = {p: f for p, f in self._files.items() if p == old or p.startswith(old + "/")}
            for path, open_file in moved.items():
                del self._files[path]
                open_file.path = new + path[len(old) :]
                self._files[open_file.path] = open_file
            for handle in self._handles.values():
                if handle.path == old or handle.path.startswith(old + "/"):
                    handle.path = new + handle.path[len(old) :]
