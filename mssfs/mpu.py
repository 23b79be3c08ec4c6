"""Multipart housekeeping: list and abort unfinished multipart uploads.

Why. A mount killed during a large write (SIGKILL, power loss) leaves its multipart
upload unfinished: the previous object is intact, but the parts already sent stay in
the bucket, invisible and billed, until someone aborts them. ``mssfs mpu list`` shows
them and ``mssfs mpu abort`` removes them, optionally only those older than an age (so
uploads of live mounts, which are recent, are left alone); ``-o
abort_uploads_older_than=AGE`` does the same for the mounted bucket at mount time.

How it works. A target is a bucket (``BUCKET`` or ``BUCKET:/PREFIX``), nothing (every
bucket of the account), or a path on an mssfs mount: then the mount itself says, over
the control channel, which bucket, prefix and endpoint it serves (``control_client``),
and the path below the mount root narrows the prefix. Uploads are listed with
``ListMultipartUploads`` and aborted one by one with progress on a terminal. The
commands use the same credentials as ``mssfs mount`` (``cli`` resolves them).

No lock, no thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mssfs.config import Source
from mssfs.progress import Progress
from mssfs.store.base import UploadInfo


@dataclass(frozen=True)
class Target:
    bucket: str | None  # None: every bucket of the account
    prefix: str = ""
    endpoint: str | None = None  # from the mount, when the target is a mounted path


@dataclass(frozen=True)
class Found:
    bucket: str
    upload: UploadInfo


def target_of(text: str | None) -> Target:
    """A bucket, ``BUCKET:/PREFIX``, nothing, or a path on an mssfs mount."""
    if not text:
        return Target(None)
    if os.path.exists(text):
        return _mounted_target(text)
    source = Source.parse(text)
    return Target(source.bucket, source.prefix)


def _mounted_target(path: str) -> Target:
    from mssfs.control_client import mount_root, read_stats

    root = mount_root(path)
    mount = read_stats(root).get("mount", {})
    endpoint = mount.get("endpoint")
    source = Source.parse(None if mount.get("source") == "(account)" else mount.get("source"))
    below = os.path.relpath(os.path.realpath(path), root)
    parts = [] if below == "." else below.split(os.sep)
    if source.bucket is None:
        if not parts:
            return Target(None, "", endpoint)
        source = Source(parts[0], "")
        parts = parts[1:]
    prefix = source.prefix + "/".join(parts)
    if parts and os.path.isdir(path):
        prefix += "/"
    return Target(source.bucket, prefix, endpoint)


def find_uploads(store: Any, target: Target, *, older_than: float | None = None,
                 now: float | None = None) -> list[Found]:
    """Unfinished uploads under the target, oldest first; only those older than
    ``older_than`` seconds when it is given."""
    now = time.time() if now is None else now
    buckets: Iterable[str] = (
        [target.bucket] if target.bucket else [b.name for b in store.list_buckets()]
    )
    found = []
    for bucket in buckets:
        for upload in store.list_multipart_uploads(bucket, target.prefix):
            if older_than is None or now - upload.initiated >= older_than:
                found.append(Found(bucket, upload))
    return sorted(found, key=lambda f: f.upload.initiated)


def describe(found: Found, now: float | None = None) -> str:
    age = (time.time() if now is None else now) - found.upload.initiated
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(found.upload.initiated))
    return (f"{found.bucket}/{found.upload.key}  started {started} UTC "
            f"({_age(age)} ago)  id {found.upload.upload_id}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def abort_all(store: Any, uploads: Sequence[Found], progress: Progress) -> list[str]:
    """Abort each upload; return one message per failure (the rest succeeded)."""
    failures = []
    for number, found in enumerate(uploads, 1):
        progress.update(f"mssfs: aborting uploads: {number}/{len(uploads)} "
                        f"({found.bucket}/{found.upload.key})")
        try:
            store.abort_multipart_upload(found.bucket, found.upload.key,
                                         found.upload.upload_id)
        except Exception as exc:  # one refused abort must not stop the others
            failures.append(f"{found.bucket}/{found.upload.key}: {exc}")
    progress.done(f"mssfs: aborted {len(uploads) - len(failures)} of {len(uploads)} uploads")
    return failures
