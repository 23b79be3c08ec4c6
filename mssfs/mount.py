"""The composition root: ``MountConfig`` → store → caches → ``Filesystem`` → FUSE.

How it works. ``build`` turns the mount's configuration into each component's own
frozen config and wires the objects, in dependency order: the store (``HttpStore``, or
``MemoryStore`` for the dev mount), the metadata cache, the block caches and the
prefetcher, the uploader and the recovery folder, then ``Filesystem``, the
``StatsSource`` that reads every component's counters, and, in ``serve``, the
``ControlFilesystem`` (the commands' xattr channel) and ``FuseOperations`` that wrap
it. Nothing else in mssfs constructs these objects; features are objects passed in,
not flags checked deep inside (gcsfuse's ``server.go``).

``serve`` runs libfuse in the calling thread (always foreground: ``cli`` daemonises
before calling it, so no thread exists at fork time) and calls ``on_ready`` from the
``init`` callback, which is how the parent learns the mount is up. When libfuse returns
(unmount, SIGTERM, SIGINT: libfuse3 turns each into a clean exit of its loop) the
``destroy`` callback has called ``Filesystem.close()``, which finishes pending uploads;
``Components.close`` then closes the rest in reverse order of creation, each once.

No locks: everything here runs once, in one thread, before and after libfuse's loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import select
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mssfs.config import MountConfig
from mssfs.control import ControlFilesystem
from mssfs.fuse_ops import FuseOperations, TunedFUSE
from mssfs.kernel_tuning import set_read_ahead

log = logging.getLogger(__name__)



class MountError(Exception):
    """A mount or unmount that cannot happen; the message is one line for the user."""


# MetadataCacheConfig wants positive TTLs: "0" (no caching) becomes "expire at once".
_TINY_TTL = 1e-3


@dataclass
class Components:
    """The wired objects of one mount, closed in reverse order of creation."""

    store: Any
    filesystem: Any
    closers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    stats: Any = None  # stats.StatsSource: what user.mssfs.stats answers

    def close(self) -> None:
        while self.closers:
            name, close = self.closers.pop()
            try:
                close()
            except Exception:
                log.error("closing %s failed", name, exc_info=True)


def build_store(config: MountConfig) -> Any:
    if config.memory:
        from mssfs.store.memory import MemoryStore

        store = MemoryStore()
        if config.source.bucket:
            store.create_bucket(config.source.bucket)
        return store
    from mssfs.store.http import HttpStore

    return HttpStore(config.store)


def _ttl(seconds: float) -> float:
    return seconds if seconds > 0 else _TINY_TTL


def build(config: MountConfig, store: Any | None = None) -> Components:
    """Wire every component for ``config`` (``store`` injected by tests)."""
    from mssfs.filesystem import Filesystem
    from mssfs.metadata_cache import MetadataCache, MetadataCacheConfig
    from mssfs.namespace import FsConfig
    from mssfs.paths import MountRoot
    from mssfs.recovery import RecoveryFolder
    from mssfs.staging import salvage
    from mssfs.stats import StatsSource
    from mssfs.uploader import UploadConfig, Uploader

    store = build_store(config) if store is None else store
    parts = Components(store, None)
    if hasattr(store, "close"):
        parts.closers.append(("store", store.close))
    cache, up = config.cache, config.upload
    metadata = MetadataCache(MetadataCacheConfig(
        stat_ttl=_ttl(cache.stat_ttl), negative_ttl=_ttl(cache.negative_ttl),
        listing_ttl=_ttl(cache.dir_ttl), max_entries=cache.cache_entries,
    ))
    prefetcher, block_cache, disk = _read_path(config, store, parts)
    uploader = Uploader(
        store, UploadConfig(part_size=up.part_size, concurrency=up.upload_concurrency)
    )
    parts.closers.append(("uploader", uploader.close))
    fs_config = FsConfig(
        read_only=config.fuse.read_only, umask=config.fuse.umask,
        exact_metadata=cache.exact_metadata, direct_staging=up.direct_staging,
        presign_expires=max(1, int(config.fuse.url_expires)), **_optional(
            uid=config.fuse.uid, gid=config.fuse.gid, staging_dir=up.staging_dir),
    )
    recovery = RecoveryFolder(up.recovery_dir or _default_recovery_dir())
    # The bytes of a mount that was killed are still in its staging files: keep them.
    salvage(fs_config.staging_dir, recovery)
    parts.filesystem = Filesystem(
        store, MountRoot(config.source.bucket, config.source.prefix), fs_config,
        metadata=metadata, prefetcher=prefetcher, uploader=uploader, recovery=recovery,
    )
    # Asked of the kernel at init (fuse_ops.TunedFUSE): only a disk cache has files
    # for the kernel to read.
    if disk is not None and cache.passthrough:
        from mssfs.kernel_tuning import filesystem_type
        from mssfs.passthrough import STACKED

        parts.filesystem.passthrough.wanted = True
        try:
            stacked = filesystem_type(disk.root) in STACKED
        except OSError:  # no /proc: assume the deeper stack (the kernel checks anyway)
            stacked = True
        parts.filesystem.passthrough.stack_depth = 1 if stacked else 0
    # Not in closers: the FUSE ``destroy`` callback closes the filesystem (finishing
    # uploads) while the uploader and the store are still open.
    parts.stats = StatsSource(
        store, parts.filesystem, uploader, metadata, block_cache, disk,
        info={"source": str(config.source), "mountpoint": config.mountpoint,
              "endpoint": "memory" if config.memory else config.store.endpoint},
    )
    return parts


def _read_path(config: MountConfig, store: Any, parts: Components) -> tuple[Any, Any, Any]:
    """The prefetcher and its block caches (memory, and disk when ``cache_dir`` is set)."""
    from mssfs.disk_cache import DiskBlockCache, DiskCacheConfig
    from mssfs.prefetch import Prefetcher, ReadConfig
    from mssfs.read_cache import BlockCache

    cache = config.cache
    disk = None
    if cache.cache_dir:
        disk = DiskBlockCache(DiskCacheConfig(cache.cache_dir, capacity_bytes=cache.cache_size,
                                              block_size=cache.read_block_size))
        parts.closers.append(("disk cache", disk.close))
    read = ReadConfig(
        block_size=cache.read_block_size, max_window=cache.read_ahead,
        max_inflight_bytes=cache.read_ahead_budget, max_concurrency=cache.read_concurrency,
        cache_bytes=cache.read_cache_size,
        # The kernel may have two read-ahead windows in flight, served in any order.
        max_backward_seek=max(ReadConfig.max_backward_seek, 2 * config.fuse.kernel_read_ahead),
    )
    blocks = BlockCache(read.cache_bytes)
    prefetcher = Prefetcher(store, read, blocks, disk)
    parts.closers.append(("prefetcher", prefetcher.close))
    return prefetcher, blocks, disk


def _optional(**values: Any) -> dict[str, Any]:
    """Only the values that are set: unset ones keep the component's own default."""
    return {name: value for name, value in values.items() if value is not None}


def _default_recovery_dir() -> str:
    from mssfs.recovery import default_recovery_dir

    return default_recovery_dir(os.path.expanduser("~"))


def fuse_options(config: MountConfig) -> dict[str, Any]:
    """The libfuse ``-o`` options of a mount (see DESIGN.md §8 for the I/O sizes)."""
    source = config.source
    options: dict[str, Any] = {
        "foreground": True,
        "nothreads": False,  # libfuse's multithreaded loop: callbacks run in parallel
        # libfuse 3.14 (Debian 12) prints "Ignoring invalid max threads value" to stderr
        # when this is left unset; 10 is libfuse's documented default.
        "max_idle_threads": 10,
        "fsname": f"mssfs:{source}" if source.bucket else "mssfs",
        "subtype": "mssfs",
        "attr_timeout": config.fuse.attr_timeout,
        "entry_timeout": config.fuse.entry_timeout,
        "negative_timeout": config.fuse.negative_timeout,
        "default_permissions": config.fuse.default_permissions,
        "allow_other": config.fuse.allow_other,
        "ro": config.fuse.read_only,
    }
    return options


def serve(config: MountConfig, parts: Components, on_ready: Callable[[], None] | None) -> None:
    """Run libfuse until unmount; raise on a failed mount. Always closes ``parts``."""
    ready = []

    def signal_ready() -> None:
        ready.append(True)
        if on_ready is not None:
            on_ready()

    target = parts.filesystem
    if parts.stats is not None:
        target = ControlFilesystem(parts.filesystem, parts.stats.snapshot)
    operations = FuseOperations(
        target, signal_ready,
        after_init=lambda: set_read_ahead(config.mountpoint, config.fuse.kernel_read_ahead))
    try:
        with warnings.catch_warnings():
            # mfusepy warns that it ignores Operations.__call__; ours is called explicitly.
            warnings.simplefilter("ignore", DeprecationWarning)
            TunedFUSE(operations, config.mountpoint, **fuse_options(config))
    except RuntimeError as exc:
        # libfuse3's fuse_main answers 8 when its loop ended on SIGTERM/SIGINT/SIGHUP
        # (its handler stores the signal as the loop's error): after a successful
        # mount, that is the normal way to stop.
        if not (ready and exc.args == (8,)):
            raise
        log.info("stopped by a signal")
    finally:
        parts.close()


def run(config: MountConfig, on_ready: Callable[[], None] | None = None) -> None:
    """Build the components for ``config`` and serve them until unmount."""
    parts = build(config)
    log.info("mounting %s at %s", config.source, config.mountpoint)
    serve(config, parts, on_ready)
    log.info("unmounted %s", config.mountpoint)


# -- what is mounted ---------------------------------------------------------------------


def mounted_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    """Mount points of this mount namespace (field 5 of mountinfo, octal escapes undone)."""
    points = set()
    with open(mountinfo, "rb") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
                points.add(os.fsdecode(raw))
    return points


# -- running: foreground, daemon, unmount ----------------------------------------------


def pidfile_for(mountpoint: str, runtime: str) -> str:
    digest = hashlib.sha1(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return os.path.join(runtime, f"{digest}.pid")


def _write_pidfile(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def run_foreground(config: MountConfig, runtime: str) -> None:
    pidfile = pidfile_for(config.mountpoint, runtime)
    try:
        run(config, on_ready=lambda: _write_pidfile(pidfile))
    except RuntimeError as exc:
        raise MountError(f"mounting {config.mountpoint} failed: {exc}")
    finally:
        _remove(pidfile)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def run_daemon(config: MountConfig, runtime: str, *, timeout: float) -> None:
    """Fork a detached mount process; return once it reports the mount ready.

    The child is a fork, so the credentials reach it in memory, never through argv or
    files. It reports over a pipe: ``ready``, or ``error <reason>``; if it dies without
    a word, or says nothing within ``timeout``, that is a failure too.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        _daemon_child(config, runtime, write_fd)
    os.close(write_fd)
    os.waitpid(pid, 0)  # the first child exits as soon as it has forked the daemon
    try:
        message = _read_report(read_fd, timeout)
    finally:
        os.close(read_fd)
    if message.startswith("ready"):
        return
    if message.startswith("error "):
        raise MountError(message[6:].strip())
    if message == "timeout":
        raise MountError(f"the mount did not become ready within {timeout:g} s")
    raise MountError("the mount process exited before the mount was ready (see the log)")


def _read_report(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return "timeout"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def _daemon_child(config: MountConfig, runtime: str, report_fd: int) -> None:  # pragma: no cover
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    # libfuse writes its own complaints to stderr: keep them in the log when there is one.
    target = os.open(config.log_file, os.O_WRONLY | os.O_APPEND) if config.log_file else devnull
    os.dup2(target, 2)
    os.chdir("/")  # hold no directory busy; every configured path is absolute (cli)
    pidfile = pidfile_for(config.mountpoint, runtime)
    status = 0

    def ready() -> None:
        _write_pidfile(pidfile)
        os.write(report_fd, b"ready\n")

    try:
        run(config, on_ready=ready)
    except BaseException as exc:
        log.error("mount failed", exc_info=True)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        try:
            os.write(report_fd, f"error mounting {config.mountpoint} failed: {reason}\n".encode())
        except OSError:
            pass
        status = 1
    finally:
        _remove(pidfile)
        logging.shutdown()
    os._exit(status)


def unmount(mountpoint: str, runtime: str, *, timeout: float) -> None:
    """``fusermount3 -u``, then wait for the mount process to finish its uploads."""
    path = os.path.realpath(mountpoint)
    if path not in mounted_points():
        raise MountError(f"{mountpoint} is not mounted")
    pid = _read_pid(pidfile_for(path, runtime))
    _fusermount_u(path, mountpoint)
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise MountError(f"unmounted; mount process {pid} is still finishing uploads")
        time.sleep(0.1)


def _fusermount_u(path: str, shown: str, busy_grace: float = 5.0) -> None:
    """Unmount; "busy" is retried briefly, since the kernel releases closed files lazily."""
    deadline = time.monotonic() + busy_grace
    while True:
        done = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode == 0:
            return
        reason = (done.stderr.strip().splitlines() or ["fusermount3 failed"])[-1]
        if "busy" not in reason.lower():
            raise MountError(f"unmounting {shown} failed: {reason}")
        if time.monotonic() > deadline:
            raise MountError(f"{shown} is busy: a file or directory in it is open")
        time.sleep(0.2)


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
