"""Live counters of a mount, gathered on demand, and their text rendering.

How it works. Each component already keeps its own counters under its own lock: the
store (``HttpStore.stats``: requests by S3 operation, bytes both ways, retries,
errors), the metadata cache (``counters()``), the block caches (``hits``/``misses``),
the uploader (``stats()``: parts pending, in flight, failed, bytes uploaded) and the
recovery folder (its files). ``StatsSource.snapshot`` reads them all when asked, plus
the files open for writing (dirty, being uploaded, failed) and the process's resident
memory from ``/proc/self/statm``, into one JSON-ready dict. Nothing is sampled in the
background and no thread is started: the mount answers ``user.mssfs.stats`` on its
root with this dict (see ``control``), and ``mssfs stats`` / ``mssfs umount`` read it
from there.

``format_stats`` turns a snapshot into the text ``mssfs stats`` prints; ``pending_work``
extracts what ``mssfs umount`` waits for (files and bytes left to upload).

No lock of its own: every counter is read through its owner's locked accessor; the
snapshot is a consistent view of each component, not of all of them at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StatsSource", "file_state", "format_stats", "pending_work"]

MAX_RECOVERY_LISTED = 50

# Upload states of one path, as ``user.mssfs.state`` answers them.
CLEAN, DIRTY, UPLOADING, FAILED = "clean", "dirty", "uploading", "failed"


def file_state(open_file: Any) -> str:
    """The upload state of an open file (None: closed, hence clean)."""
    if open_file is None:
        return CLEAN
    if open_file.commit_lock.locked():
        return UPLOADING
    if open_file.recovered:
        return FAILED
    if open_file.pending_create or open_file.buffer.dirty:
        return DIRTY
    return CLEAN


def rss_bytes(statm: str = "/proc/self/statm") -> int:
    """Resident memory of this process (0 where /proc is missing)."""
    try:
        with open(statm) as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _ratio(hits: int, misses: int) -> float | None:
    total = hits + misses
    return round(hits / total, 4) if total else None


def _cache(counter: Any) -> dict[str, Any] | None:
    if counter is None:
        return None
    hits, misses = int(counter.hits), int(counter.misses)
    return {"hits": hits, "misses": misses, "hit_ratio": _ratio(hits, misses)}


@dataclass
class StatsSource:
    """The components a snapshot reads; built by ``mount.build``."""

    store: Any
    filesystem: Any
    uploader: Any
    metadata: Any
    block_cache: Any
    disk_cache: Any = None
    info: dict[str, Any] = field(default_factory=dict)  # source, mountpoint, endpoint
    clock: Callable[[], float] = time.time
    started: float = field(default_factory=time.time)

    def snapshot(self) -> dict[str, Any]:
        requests = _store_counters(self.store)
        meta = self.metadata.counters() if self.metadata is not None else {}
        return {
            "mount": {**self.info, "pid": os.getpid(),
                      "uptime_s": round(self.clock() - self.started, 1)},
            **requests,
            "cache": {
                "metadata": {"hits": meta.get("hits", 0), "misses": meta.get("misses", 0),
                             "hit_ratio": _ratio(meta.get("hits", 0), meta.get("misses", 0))},
                "block": _cache(self.block_cache),
                "disk": _cache(self.disk_cache),
            },
            "passthrough": self.filesystem.passthrough.stats(),
            "memory": {"rss_bytes": rss_bytes()},
            # The checksum uploads go with now (HttpStore: "auto" may have fallen back).
            "uploads": {**self.uploader.stats(), **self._open_files(),
                        "checksum": getattr(self.store, "upload_checksum", None)},
            "staging": self.filesystem.tails.stats(),
            "recovery": self._recovery(),
        }

    def _open_files(self) -> dict[str, int]:
        counts = {"files_dirty": 0, "bytes_dirty": 0, "files_uploading": 0,
                  "files_failed": 0}
        for open_file in self.filesystem.handles.open_files():
            state = file_state(open_file)
            if state == CLEAN:
                continue
            counts[f"files_{state}"] += 1
            if state != FAILED:
                counts["bytes_dirty"] += open_file.buffer.size
        return counts

    def _recovery(self) -> dict[str, Any]:
        folder = self.filesystem.recovery
        found = folder.list()
        # The newest few only: the whole answer must fit one xattr (64 KiB).
        files = [{"path": f.path, "bucket": f.bucket, "key": f.key, "size": f.size,
                  "saved_at": f.saved_at} for f in found[-MAX_RECOVERY_LISTED:]]
        return {"dir": folder.path, "count": len(found),
                "bytes": sum(f.size for f in found), "files": files}


def _store_counters(store: Any) -> dict[str, Any]:
    stats = getattr(store, "stats", None)
    if stats is None:
        return {"requests": {}, "bytes_sent": 0, "bytes_received": 0, "retries": 0,
                "errors": 0}
    snap = stats.snapshot()
    snap.setdefault("retries", 0)
    snap.setdefault("errors", 0)
    return snap


def pending_work(snapshot: dict[str, Any]) -> tuple[int, int, bool]:
    """(files left to upload, their bytes, whether an upload is running now)."""
    up = snapshot.get("uploads", {})
    files = up.get("files_dirty", 0) + up.get("files_uploading", 0)
    busy = bool(up.get("files_uploading", 0) or up.get("in_flight", 0) or up.get("pending", 0))
    return files, up.get("bytes_dirty", 0), busy


def human_size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def _ratio_text(cache: dict[str, Any] | None) -> str:
    if cache is None:
        return "off"
    ratio = cache["hit_ratio"]
    shown = "-" if ratio is None else f"{ratio:.1%}"
    return f"{shown} ({cache['hits']} hits, {cache['misses']} misses)"


def _passthrough_text(info: dict[str, Any]) -> str:
    if not info.get("on"):
        return "off"
    return f"{info.get('opens', 0)} opens, {info.get('files_open', 0)} files open"


def _staging_text(info: dict[str, Any]) -> str:
    rate = info.get("direct_mb_s")
    written = (f"{human_size(info.get('direct_bytes', 0))} written with O_DIRECT"
               + (f" at {rate} MB/s" if rate else ""))
    buffers = (f"{info.get('buffers_lent', 0)} of {info.get('buffers_mapped', 0)} "
               "buffers lent")
    if info.get("direct", False):
        return f"O_DIRECT on: {written}, {buffers}"
    return f"O_DIRECT off ({info.get('direct_off_because') or '-'}): {written}, {buffers}"


def format_stats(snap: dict[str, Any]) -> str:
    """The human view of a snapshot, one fact per line."""
    mount, up, rec = snap.get("mount", {}), snap.get("uploads", {}), snap.get("recovery", {})
    requests = snap.get("requests", {})
    lines = [
        f"mount      {mount.get('source', '?')} at {mount.get('mountpoint', '?')} "
        f"(pid {mount.get('pid', '?')}, up {mount.get('uptime_s', 0):g} s)",
        f"endpoint   {mount.get('endpoint', '-')}",
        f"requests   {sum(requests.values())} total, {snap.get('retries', 0)} retries, "
        f"{snap.get('errors', 0)} errors",
    ]
    lines += [f"  {op:<26} {count}" for op, count in sorted(requests.items())]
    cache = snap.get("cache", {})
    lines += [
        f"bytes      {human_size(snap.get('bytes_received', 0))} in, "
        f"{human_size(snap.get('bytes_sent', 0))} out",
        f"metadata   {_ratio_text(cache.get('metadata'))}",
        f"blocks     {_ratio_text(cache.get('block'))}",
        f"disk cache {_ratio_text(cache.get('disk'))}",
        f"passthrough {_passthrough_text(snap.get('passthrough', {}))}",
        f"memory     {human_size(snap.get('memory', {}).get('rss_bytes', 0))} resident",
        f"uploads    {up.get('files_dirty', 0)} files dirty "
        f"({human_size(up.get('bytes_dirty', 0))}), {up.get('files_uploading', 0)} uploading, "
        f"{up.get('files_failed', 0)} failed; parts {up.get('pending', 0)} pending, "
        f"{up.get('in_flight', 0)} in flight, {up.get('failed', 0)} failed; "
        f"checked by {(up.get('checksum') or '-').upper()}",
        f"staging    {_staging_text(snap.get('staging', {}))}",
        f"recovery   {rec.get('count', 0)} files ({human_size(rec.get('bytes', 0))}) "
        f"in {rec.get('dir', '-')}",
    ]
    lines += [f"  {f['bucket']}/{f['key']} ({human_size(f['size'])}): {f['path']}"
              for f in rec.get("files", [])]
    return "\n".join(lines)
