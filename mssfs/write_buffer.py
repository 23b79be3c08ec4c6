"""The write buffer: the bytes of one open file between ``write`` and the upload.

One ``WriteBuffer`` per open-for-write file, shared by all its handles. Every byte
written lands first in a local *stage* (``stage``), always exactly as long as the file:
this is the durability choice. Whatever happens to the upload, the buffer can still
hand every byte to the recovery folder, and a write that breaks a streamed upload can
fall back to uploading the staged file. The stage is a *staging file* (mode 0600 in
``staging_dir``): the cost is one local ``pwrite`` per write (page cache, not RSS; 0.23
to 0.54 s of system CPU per GiB on an idle machine, a third of the mount's CPU in a busy
one: ``perf`` during a 1 GiB ``dd``) and disk space for the whole file. New files cost
less. One starts in memory when the mount gives a ``Budget``, and moves to a staging
file (``_spill``) before it outgrows it (see ``stage``). Its appends then go through a
*tail* when the mount gives a ``TailPool``: copied into a pooled buffer, written to the
staging file with ``O_DIRECT``, and streamed parts are sent from that buffer (see
``tail``). A failed local write (ENOSPC) is the application's error, not silently
dropped bytes. If the mount process is killed, its staging files stay, and the next
mount moves them into the recovery folder (``staging``); memory stages and the
unflushed end of a tail are lost with it (see ``stage`` and ``tail``).

Two ways up:

- **Streaming.** A buffer that starts empty (new file, or ``truncate``) streams: as soon
  as writes have passed the end of the next part, that part (the tail's buffer, or a
  ``FileRange`` of the staging file) is handed to an ``UploadStream``, while the
  application keeps writing.
  The multipart upload is only started when a write goes past the first part, so a
  file of at most one part is a single PutObject. Part sizes grow with the part number
  (``uploader.stream_part_size``). Backpressure comes from the uploader's byte budget:
  ``add_part`` blocks the writer while too much is in flight. Parts already sent are
  final: any change below ``_sent_end`` (an overwrite, a truncate) abandons the stream
  (it is aborted) and the buffer falls back to the staged file.
- **Staged.** Everything else (an existing object that is appended to or overwritten,
  a broken stream) uploads on commit. Bytes of the base object are fetched on demand,
  pinned to its ETag (If-Match): a read fetches only the missing 1 MiB blocks it
  touches. ``_valid`` records which ranges of the base region ``[0, _base_limit)`` are
  in the file (written or fetched), ``_written`` which were written since the base;
  ``_base_limit`` shrinks with truncation (bytes past it are zeros or written). A
  large object is re-uploaded as a *mixed* multipart upload: every part untouched
  since the base is copied server-side (UploadPartCopy), only the changed parts are
  filled locally and sent, so appending to a 4 GiB object downloads one part, not
  4 GiB. Otherwise the missing ranges are fetched (in parallel on the uploader's
  pool) and the file goes up with ``Uploader.upload_file`` (one PUT, or parallel parts).

Commit: upload now; on failure abort the upload, copy the staged bytes to the recovery
folder (one ERROR line names both; base bytes never fetched are fetched first if the
store still answers; one copy per version of the content however often the commit is
retried) and raise ``UploadFailed``; the buffer stays dirty, so a later commit (the
``release`` fallback) retries with the staged file. An unchanged buffer
commits nothing. A metadata-only change on an existing object is a self-copy. A
metadata change during a stream (``cp -p`` sets times before ``close``) is applied
after completion by a self-copy, since the multipart upload's metadata is fixed; a
change marked ``required=False`` (an mtime stamped at close) is dropped instead.

Locking: one ``threading.Condition`` (``_cond``) guards every field. It is never held
across a network call; local disk I/O (pwrite/pread/ftruncate) happens under it, which
is what orders writes. Ordering against a commit: a commit marks the buffer
``_committing`` and releases the lock while it uploads; ``write``, ``truncate``,
``set_metadata`` and another ``commit`` wait on the condition until it is done (reads
go on: the content does not change). So a commit uploads exactly the bytes written
before it started, and later writes go into the next commit. Parts are reserved under
the lock (numbers and ranges) and handed to the uploader outside it; ``_handoffs``
counts hand-overs in progress, and commit/close wait for it to reach zero so no part
is missing when the upload is completed (``complete`` also checks the part count).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from mssfs import extents
from mssfs.errors import UploadFailed
from mssfs.extents import Extents
from mssfs.recovery import RecoveryFolder
from mssfs.stage import Budget, FileStage, MemoryStage, Stage
from mssfs.store.base import ObjectInfo, ObjectStore
from mssfs.tail import PooledPart, TailPool
from mssfs.uploader import (
    MAX_PARTS,
    CopyRange,
    FileRange,
    Uploader,
    UploadStream,
    plan_part_size,
    stream_part_size,
)

__all__ = ["WriteBuffer"]

log = logging.getLogger(__name__)

FETCH_BLOCK = 1024 * 1024  # reads of the base object fetch whole 1 MiB blocks

@dataclass(frozen=True)
class _Commit:
    """What one commit uploads, captured under the lock."""

    size: int
    data_changed: bool
    metadata: dict[str, str]
    content_type: str | None
    stream: UploadStream | None
    stream_meta: tuple[str | None, dict[str, str]] | None
    meta_required: bool  # a required metadata change since the stream began
    sent_end: int
    next_part: int


class WriteBuffer:
    """Per-file write buffer; see the module docstring. Thread-safe."""

    def __init__(self, store: ObjectStore, uploader: Uploader, recovery: RecoveryFolder,
                 bucket: str, key: str, *, base: ObjectInfo | None, truncate: bool,
                 content_type: str | None, metadata: Mapping[str, str],
                 staging_dir: str, memory: Budget | None = None,
                 tails: TailPool | None = None) -> None:
        self.store, self.uploader, self.recovery = store, uploader, recovery
        self.bucket, self.key = bucket, key
        self._part_size = uploader.config.part_size
        self._cond = threading.Condition(threading.Lock())
        fresh = base is None or truncate
        self._staging_dir, self._tails = staging_dir, tails
        # In memory only while no part can be streamed nor sent from a file: at most
        # one part (single_put_threshold), so the upload is one PutObject of bytes.
        self._stage: Stage = (
            MemoryStage(memory, uploader.config.single_put_threshold)
            if fresh and memory is not None
            else FileStage(staging_dir, bucket, key, whole=fresh, tails=tails))
        self._base = base
        self._size = 0 if fresh else base.size
        self._base_limit = self._size
        self._valid: Extents = []  # base region held locally (fetched or written)
        self._written: Extents = []  # base region written since the last commit
        if not fresh:
            self._stage.truncate(self._size)
        # A new object must be created even if nothing is written; a truncated one
        # must be emptied: both count as a change.
        self._data_dirty = int(base is None or (truncate and base.size > 0))
        self._meta_dirty = False
        self._meta_required = False  # see set_metadata(required=...)
        self._metadata = dict(metadata)
        self._content_type = content_type
        self._streamable = fresh
        self._stream: UploadStream | None = None
        self._stream_meta: tuple[str | None, dict[str, str]] | None = None
        self._sent_end = 0
        self._next_part = 1
        self._handoffs = 0
        self._committing = False
        self._closed = False
        self._changes = 0  # counts every change, to tell if a kept copy is current
        self._kept: tuple[int, str] | None = None  # (changes, path) of the last copy

    # -- properties -------------------------------------------------------------
    @property
    def size(self) -> int:
        with self._cond:
            return self._size

    @property
    def dirty(self) -> int:
        """Bytes changed since the last commit (truncates and metadata count as one);
        non-zero exactly when ``commit`` has something to upload."""
        with self._cond:
            return self._data_dirty + int(self._meta_dirty)

    @property
    def staging_path(self) -> str:
        """The staging file's path; "" while the bytes are in memory."""
        return self._stage.path

    # -- changes ----------------------------------------------------------------
    def write(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (a hole before it reads as zeros)."""
        if not data:
            return 0
        with self._cond:
            self._wait_idle()
            try:
                end = offset + len(data)
                if not self._stage.fits(end):
                    self._spill()
                self._stage.pwrite(data, offset)
            except OSError as exc:
                failure, broken = exc, self._write_failed()
            else:
                failure, broken = None, None
                self._size = max(self._size, end)
                lo, hi = min(offset, self._base_limit), min(end, self._base_limit)
                self._valid = extents.add(self._valid, lo, hi)
                self._written = extents.add(self._written, lo, hi)
                self._data_dirty += len(data)
                self._changes += 1
                handover = self._after_change(offset, end)
        if failure is not None:
            if broken is not None:
                broken.abort()
            raise failure
        self._hand_over(*handover)
        return len(data)

    def _write_failed(self) -> UploadStream | None:
        """Under the lock, when the disk refused a write (ENOSPC...). Part of it may
        have landed: count it as a change, keep the file as long as the buffer, and
        give up streaming (a sent part may be what changed). Returns the stream to
        abort once the lock is released."""
        self._data_dirty += 1
        self._changes += 1
        self._stage.trim(self._size)
        return self._break_stream()

    def _spill(self) -> None:
        """Under the lock: move a memory stage's bytes to a staging file, before the
        file outgrows the memory budget (a failure is the caller's OSError)."""
        # Only new files are in memory, so the staging file is a new file's.
        memory, stage = self._stage, FileStage(self._staging_dir, self.bucket, self.key,
                                               whole=True, tails=self._tails)
        try:
            if self._size:
                stage.pwrite(memory.read_all(self._size), 0)
        except BaseException:
            stage.close()
            raise
        self._stage = stage
        memory.close()

    def truncate(self, length: int) -> None:
        """Shrink, or grow with zeros, to ``length`` bytes."""
        with self._cond:
            self._wait_idle()
            if length == self._size:
                return
            if not self._stage.fits(length):
                self._spill()
            self._stage.truncate(length)
            if length < self._base_limit:
                self._base_limit = length
                self._valid = extents.clip(self._valid, length)
                self._written = extents.clip(self._written, length)
            lowest = min(length, self._size)
            self._size = length
            self._data_dirty += 1
            self._changes += 1
            handover = self._after_change(lowest, 0)
        self._hand_over(*handover)

    def set_metadata(self, metadata: Mapping[str, str], content_type: str | None = None,
                     *, required: bool = True) -> None:
        """Replace the user metadata (and the content type, if given) of the next upload.

        ``required=False`` is for a value that should go up only if it costs nothing,
        such as an mtime stamped at close: it does not make the buffer dirty, and a
        streamed upload (whose metadata was fixed when it began) keeps its metadata
        instead of paying a self-copy. ``commit`` returns the metadata actually stored.
        A required change (chmod, utimens, setxattr while open) is always applied."""
        with self._cond:
            self._wait_idle()
            self._metadata = dict(metadata)
            if content_type is not None:
                self._content_type = content_type
            if required:
                self._meta_dirty = True
                self._meta_required = True
            self._changes += 1

    # -- reads ------------------------------------------------------------------
    def read(self, offset: int, size: int) -> bytes:
        """Read-your-writes: staged bytes, base bytes fetched on demand."""
        with self._cond:
            self._check_open()
            end = min(offset + size, self._size)
            if offset >= end:
                return b""
            lo = offset // FETCH_BLOCK * FETCH_BLOCK
            hi = min(-(-end // FETCH_BLOCK) * FETCH_BLOCK, self._base_limit)
            gaps = extents.gaps(self._valid, lo, hi) if lo < hi else []
            etag = self._base.etag if self._base else ""
        if gaps:  # one GET across the gaps; bytes written meanwhile are kept
            self._fetch(gaps[0][0], gaps[-1][1], etag)
        with self._cond:
            self._check_open()
            end = min(offset + size, self._size)
            return self._stage.pread(max(0, end - offset), offset)

    # -- commit and close -------------------------------------------------------
    def commit(self) -> ObjectInfo:
        """Upload now; see the module docstring. Raises ``UploadFailed`` after keeping
        the bytes in the recovery folder."""
        with self._cond:
            while self._committing or self._handoffs:
                self._cond.wait()
            self._check_open()
            if not (self._data_dirty or self._meta_dirty):
                assert self._base is not None  # a buffer without base starts dirty
                return self._base
            job = self._begin_commit()
        try:
            info = self._upload(job)
        except Exception as exc:
            try:
                raise self._failed(exc) from exc
            finally:
                with self._cond:
                    self._committing = False
                    self._cond.notify_all()
        with self._cond:
            # Bytes past the old base region exist only here; below it, whatever was
            # fetched or written (a mixed upload copied the rest server-side).
            self._valid = extents.add(self._valid, self._base_limit, info.size)
            self._written = []
            self._base = info
            self._base_limit = info.size
            self._data_dirty = 0
            self._meta_dirty = False
            self._meta_required = False
            self._committing = False
            self._cond.notify_all()
        return info

    def close(self, *, keep_dirty: bool = True) -> None:
        """Free the staging file. Uncommitted changes go to the recovery folder unless
        ``keep_dirty`` is False (the file was deleted). Idempotent."""
        with self._cond:
            while self._committing or self._handoffs:
                self._cond.wait()
            if self._closed:
                return
            self._closed = True
            stream, self._stream = self._stream, None
            unsaved = self._data_dirty and keep_dirty
        if stream is not None:
            stream.abort()
        try:
            if unsaved:
                self._keep()
        except OSError:
            log.exception("could not keep the unsaved bytes of s3://%s/%s",
                          self.bucket, self.key)
        finally:
            self._stage.close()

    # -- internals: streaming ---------------------------------------------------
    def _after_change(self, lowest: int, write_end: int
                      ) -> tuple[UploadStream | None, UploadStream | None, list]:
        """Under the lock, after bytes from ``lowest`` changed: break the stream, or
        reserve the parts that ``write_end`` has completed. Returns (stream to abort,
        stream to feed, parts)."""
        if not self._streamable:
            return None, None, []
        if lowest < self._sent_end:
            return self._break_stream(), None, []
        parts = []
        while self._next_part <= MAX_PARTS:
            part_size = stream_part_size(self._next_part, min_part=self._part_size)
            # Only once a write has gone *past* the part: a file of exactly one part
            # is still a single PUT.
            if write_end - self._sent_end <= part_size:
                break
            parts.append((self._next_part, self._range(self._sent_end, part_size)))
            self._sent_end += part_size
            self._next_part += 1
        if not parts:
            return None, None, []
        if self._stream is None:
            try:
                self._stream = self.uploader.start_stream(
                    self.bucket, self.key, content_type=self._content_type,
                    metadata=self._metadata)
            except RuntimeError:  # the uploader is closing: the staged file will do
                self._break_stream()
                return None, None, []
            self._stream_meta = (self._content_type, dict(self._metadata))
            self._meta_required = False
        self._handoffs += 1
        return None, self._stream, parts

    def _break_stream(self) -> UploadStream | None:
        """Under the lock: stop streaming; the staged file now carries the upload."""
        stream, self._stream = self._stream, None
        self._streamable = False
        return stream

    def _hand_over(self, abort: UploadStream | None, stream: UploadStream | None,
                   parts: list) -> None:
        """Outside the lock: abort a broken stream, or give reserved parts to the
        uploader (this is where a writer blocks for backpressure)."""
        if abort is not None:
            abort.abort()
        if stream is None:
            return
        try:
            for number, body in parts:
                stream.add_part(body, part_number=number)
        except Exception:
            log.debug("streaming s3://%s/%s stopped", self.bucket, self.key, exc_info=True)
            with self._cond:
                broken = self._break_stream() if self._stream is stream else None
            if broken is not None:
                broken.abort()
        finally:
            with self._cond:
                self._handoffs -= 1
                self._cond.notify_all()

    # -- internals: commit ------------------------------------------------------
    def _begin_commit(self) -> _Commit:
        """Under the lock: capture what to upload and take the stream over."""
        self._committing = True
        job = _Commit(self._size, bool(self._data_dirty), dict(self._metadata),
                      self._content_type, self._stream, self._stream_meta,
                      self._meta_required,
                      self._sent_end, self._next_part)
        self._break_stream()
        return job

    def _upload(self, job: _Commit) -> ObjectInfo:
        content_type, metadata = job.content_type, job.metadata
        if job.stream is not None:
            etag, (content_type, metadata) = self._finish_stream(job)
        elif not job.data_changed and self._base is not None:
            etag = self._copy_self(job, self._base.etag)
        elif (parts := self._mixed_parts(job)) is not None:
            etag = self.uploader.upload_parts(self.bucket, self.key, parts,
                                              content_type=job.content_type,
                                              metadata=job.metadata)
        else:
            self._fill_all()
            if job.size <= self.uploader.config.single_put_threshold:
                data = self._stage.read_all(job.size)
                etag = self.uploader.put(self.bucket, self.key, data, length=job.size,
                                         content_type=job.content_type,
                                         metadata=job.metadata)
            else:
                etag = self.uploader.upload_file(self.bucket, self.key, self._file_path(),
                                                 content_type=job.content_type,
                                                 metadata=job.metadata, size=job.size)
        return ObjectInfo(self.key, job.size, etag, time.time(), content_type, metadata)

    def _mixed_parts(self, job: _Commit) -> list[FileRange | PooledPart | CopyRange] | None:
        """Parts for a change to a large object: every part untouched since the base
        is copied server-side, the others are filled locally and uploaded. None when
        no part can be copied (then the staged file is uploaded whole)."""
        if self._base is None or job.size <= self.uploader.config.single_put_threshold:
            return None
        part_size = plan_part_size(job.size, min_part=self._part_size)
        with self._cond:
            written, limit = list(self._written), self._base_limit
        parts: list[FileRange | PooledPart | CopyRange] = []
        fills = []
        for start in range(0, job.size, part_size):
            end = min(start + part_size, job.size)
            if end <= limit and extents.gaps(written, start, end) == [(start, end)]:
                parts.append(CopyRange(self.bucket, self.key, start, end, self._base.etag))
            else:
                parts.append(self._range(start, end - start))
                fills.append((start, min(end, limit)))
        if len(fills) == len(parts):
            return None
        self._fill_all(fills)
        return parts

    def _finish_stream(self, job: _Commit) -> tuple[str, tuple[str | None, dict[str, str]]]:
        """Send the tail and complete; apply a required metadata change by a
        self-copy. Returns the ETag and the (content type, metadata) stored."""
        stream, pos, number = job.stream, job.sent_end, job.next_part
        assert stream is not None
        try:
            while pos < job.size:
                length = min(stream_part_size(number, min_part=self._part_size),
                             job.size - pos)
                stream.add_part(self._range(pos, length), part_number=number)
                pos, number = pos + length, number + 1
        except BaseException:
            stream.abort()
            raise
        etag = stream.complete(expected_parts=number - 1)
        wanted = (job.content_type, job.metadata)
        if job.stream_meta is None or not job.meta_required or job.stream_meta == wanted:
            return etag, job.stream_meta or wanted
        return self._copy_self(job, etag), wanted

    def _copy_self(self, job: _Commit, etag: str) -> str:
        """Apply new metadata to the stored object with a server-side self-copy."""
        return self.uploader.copy_large(self.bucket, self.key, self.bucket, self.key,
                                        job.size, metadata=job.metadata,
                                        content_type=job.content_type, if_match=etag)

    def _failed(self, exc: Exception) -> UploadFailed:
        """Keep the bytes (the lock is free; writers wait for ``_committing``)."""
        what = f"upload of s3://{self.bucket}/{self.key} failed: {exc}"
        try:
            path = self._keep()
        except OSError:
            log.exception("%s; the bytes could not be copied to the recovery folder and "
                          "stay in %s while the file is open", what,
                          self._stage.path or "memory")
            return UploadFailed(what, path=self.key)
        return UploadFailed(f"{what}; bytes kept in {path}", path=self.key,
                            recovery_path=path)

    def _keep(self) -> str:
        """Copy the file to the recovery folder, once per version of its content."""
        with self._cond:
            changes, kept = self._changes, self._kept
        if kept is not None and kept[0] == changes:
            log.error("s3://%s/%s is still kept in %s", self.bucket, self.key, kept[1])
            return kept[1]
        try:
            self._fill_all()  # a whole copy, if the store still answers GETs
        except Exception:
            pass
        with self._cond:
            missing = sum(b - a for a, b in extents.gaps(self._valid, 0, self._base_limit))
        if missing:
            log.error("s3://%s/%s: %d unchanged bytes of the stored object could not be "
                      "read; they are zeros in the recovered copy", self.bucket, self.key,
                      missing)
        path = self._stage.save(self.recovery, self.bucket, self.key)
        with self._cond:
            self._kept = (changes, path)
        return path

    # -- internals: base object -------------------------------------------------
    def _fill_all(self, ranges: Extents | None = None) -> None:
        """Fetch the base bytes still missing in ``ranges`` (default: all of them), in
        parallel on the uploader's pool."""
        with self._cond:
            wanted = [(0, self._base_limit)] if ranges is None else ranges
            limit = self._base_limit
            gaps = [g for a, b in wanted for g in extents.gaps(self._valid, a, min(b, limit))]
            etag = self._base.etag if self._base else ""
        # Gaps split by a small write are fetched by one GET (written bytes are kept).
        merged: Extents = []
        for a, b in gaps:
            if merged and a - merged[-1][1] < FETCH_BLOCK:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        chunks = [(a, min(a + self._part_size, b)) for s, b in merged
                  for a in range(s, b, self._part_size)]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._fetch(*chunk, etag)
            return
        futures = [self.uploader.submit(self._fetch, a, b, etag) for a, b in chunks]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # a dead store: fail once, not once per chunk
                future.cancel()
            raise

    def _fetch(self, start: int, end: int, etag: str) -> None:
        """GET base bytes [start, end) and store those still missing (a write may
        have landed meanwhile: written bytes win)."""
        got = self.store.get_object(self.bucket, self.key, start, end, if_match=etag)
        with self._cond:
            if self._closed or self._base is None or self._base.etag != etag:
                return
            limit = min(start + len(got.data), self._base_limit)
            for a, b in extents.gaps(self._valid, start, limit):
                self._stage.pwrite(got.data[a - start:b - start], a)
            self._valid = extents.add(self._valid, start, max(start, limit))

    def _range(self, offset: int, length: int) -> FileRange | PooledPart:
        """Bytes of the staging file, for a part sent later: a range of the file, or the
        tail's memory (``tail``). A memory stage never holds more than one part, so a
        part to stream or to send from a file never finds one."""
        return self._stage.part(offset, length)

    def _file_path(self) -> str:
        assert self._stage.path, "a file upload of a memory stage"
        self._stage.drain()
        return self._stage.path

    def _wait_idle(self) -> None:
        """Under the lock: wait for a commit in progress; fail on a closed buffer."""
        while self._committing:
            self._cond.wait()
        self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"write buffer of s3://{self.bucket}/{self.key} is closed")
