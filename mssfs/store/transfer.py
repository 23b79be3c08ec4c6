"""Parallel whole-file transfers over any ``ObjectStore``: ``upload_file``, ``download_file``.

Used by the benchmark and by ``mssfs`` commands that copy a local file to or from the
store without a mount.

Upload. A file of at most one part goes up in a single PUT. A larger one becomes a
multipart upload: the file is cut into ``part_size`` pieces (grown so there are at most
10,000 parts), and a pool of ``concurrency`` threads uploads them, each worker reading
its own piece with ``os.pread`` just before sending it, so at most ``concurrency`` parts
are in memory at once whatever the file size. The first failure stops the remaining
parts (queued ones are cancelled, running ones finish), the upload is aborted, and the
error is raised: no half-assembled object and no orphaned upload are left behind.

Download. A HEAD gives the size and the ETag; then parallel ranged GETs, each pinned to
that ETag with If-Match (an object overwritten during the download fails cleanly with
``PreconditionFailed`` instead of mixing two versions), are written with ``os.pwrite``
into a temporary file beside the target (as they arrive, 1 MiB at a time, when the store
offers ``get_object_into``: an 8 MiB buffer per GET costs page faults on every page of
it, measured at three times the CPU per byte of the whole download), which is renamed
into place only once every range has arrived. On failure the temporary file is removed
and the target untouched.

Threads: each call owns its ``ThreadPoolExecutor`` and shuts it down before returning
(the ``with`` block), so no thread outlives the call. No locks: workers share only the
file descriptor (``pread``/``pwrite`` take explicit offsets) and a stop event.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from mssfs.store.base import CompletedPart, ObjectInfo, ObjectStore
from mssfs.store.errors import IncompleteBody

MiB = 1024 * 1024
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * MiB

log = logging.getLogger("mssfs.store.transfer")


def plan_parts(size: int, part_size: int) -> list[tuple[int, int]]:
    """Half-open ranges covering ``size`` bytes, ``part_size`` each (grown so that there
    are at most 10,000), the last one shorter."""
    part_size = max(part_size, -(-size // MAX_PARTS), 1)
    return [(start, min(start + part_size, size)) for start in range(0, size, part_size)]


def _run_parallel(tasks: Sequence[Callable[[], object]], concurrency: int) -> list[object]:
    """Run ``tasks`` on a pool; stop at the first failure and raise it."""
    stop = threading.Event()

    def guarded(task: Callable[[], object]) -> object:
        if stop.is_set():
            raise _Stopped()
        return task()

    with ThreadPoolExecutor(max_workers=max(1, concurrency),
                            thread_name_prefix="mssfs-transfer") as pool:
        futures: list[Future[object]] = [pool.submit(guarded, t) for t in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            stop.set()
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()  # type: ignore[misc]
    return [f.result() for f in futures]


class _Stopped(Exception):
    """A queued task skipped because another one failed."""


def _read_exactly(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"the file shrank while uploading: {len(data)} of {length} bytes "
                      f"at offset {offset}")
    return data


def upload_file(
    store: ObjectStore,
    bucket: str,
    key: str,
    path: str | os.PathLike[str],
    *,
    part_size: int = 8 * MiB,
    concurrency: int = 8,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Upload a local file (single PUT up to one part, else parallel multipart);
    return the object's ETag."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size <= part_size:
            return store.put_object(bucket, key, _read_exactly(file.fileno(), size, 0),
                                    content_type=content_type, metadata=metadata)
        ranges = plan_parts(size, max(part_size, MIN_PART_SIZE))
        upload_id = store.create_multipart_upload(bucket, key, content_type=content_type,
                                                  metadata=metadata)
        fd = file.fileno()

        def part(number: int, start: int, end: int) -> Callable[[], object]:
            def send() -> CompletedPart:
                data = _read_exactly(fd, end - start, start)
                return CompletedPart(number, store.upload_part(bucket, key, upload_id,
                                                               number, data))
            return send

        try:
            tasks = [part(n, s, e) for n, (s, e) in enumerate(ranges, start=1)]
            parts = [p for p in _run_parallel(tasks, concurrency)
                     if isinstance(p, CompletedPart)]
            return store.complete_multipart_upload(bucket, key, upload_id, parts)
        except BaseException:
            _abort(store, bucket, key, upload_id)
            raise


def _abort(store: ObjectStore, bucket: str, key: str, upload_id: str) -> None:
    try:
        store.abort_multipart_upload(bucket, key, upload_id)
    except Exception as exc:  # the original failure matters more than this one
        log.warning("could not abort the multipart upload of %s/%s: %s", bucket, key, exc)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def download_file(
    store: ObjectStore,
    bucket: str,
    key: str,
    path: str | os.PathLike[str],
    *,
    part_size: int = 8 * MiB,
    concurrency: int = 8,
) -> ObjectInfo:
    """Download an object to ``path`` with parallel ranged GETs pinned to its ETag;
    return what HEAD said of it."""
    info = store.head_object(bucket, key)
    target = Path(path)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            if info.size <= part_size:
                got = store.get_object(bucket, key, if_match=info.etag)
                _check_length(got.data, info.size, bucket, key)
                _write_all(fd, got.data, 0)
            else:
                os.ftruncate(fd, info.size)
                _run_parallel([_fetch(store, bucket, key, info.etag, fd, s, e)
                               for s, e in plan_parts(info.size, part_size)], concurrency)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return info


def _fetch(store: ObjectStore, bucket: str, key: str, etag: str, fd: int, start: int,
           end: int) -> Callable[[], object]:
    get_into = getattr(store, "get_object_into", None)

    def run() -> None:
        if get_into is None:
            data = store.get_object(bucket, key, start, end, if_match=etag).data
            _check_length(data, end - start, bucket, key)
            _write_all(fd, data, start)
            return
        got = [0]  # the furthest byte written (a retried GET rewrites from its start)

        def sink(offset: int, chunk: bytes) -> None:
            _write_all(fd, chunk, start + offset)
            got[0] = max(got[0], offset + len(chunk))

        get_into(bucket, key, sink, start, end, if_match=etag)
        if got[0] != end - start:
            raise IncompleteBody(f"got {got[0]} of {end - start} bytes",
                                 code="IncompleteBody", bucket=bucket, key=key)
    return run


def _check_length(data: bytes, expected: int, bucket: str, key: str) -> None:
    if len(data) != expected:
        raise IncompleteBody(f"got {len(data)} of {expected} bytes", code="IncompleteBody",
                             bucket=bucket, key=key)
