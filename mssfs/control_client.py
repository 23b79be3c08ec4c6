"""The commands' side of the control channel (see ``control``): ask a mount, by xattr.

How it works. ``mssfs url``, ``mssfs stats`` and ``mssfs umount`` read extended
attributes that the mount process answers itself: ``user.mssfs.stats`` on the mount
root (found by walking up from a path to the nearest mount point), and
``user.mssfs.url.<method>.<seconds>`` on a file, or on its directory with ``/<name>``
appended for a file that does not exist yet. The commands therefore need no
credentials and no socket: whoever can see the path can ask.

``wait_for_uploads`` is what ``mssfs umount`` does before unmounting: while the mount
reports uploads running, it shows the files and bytes left (``progress``) and waits,
so the unmount does not cut a running upload short and the user sees why it waits.
Files open with unsaved data but no upload running are not waited for: the unmount
then reports the mount busy, which is the truth.

No lock, no thread.
"""

from __future__ import annotations

import errno
import json
import os
import time
from typing import Any

from mssfs.control import STATS_XATTR, url_xattr
from mssfs.progress import Progress
from mssfs.stats import human_size, pending_work


class ControlError(Exception):
    """The mount could not answer; the message is one line for the user."""


def mount_root(path: str) -> str:
    """The mount point that holds ``path`` (the nearest ancestor that is one)."""
    current = os.path.realpath(path)
    while not os.path.ismount(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def read_stats(mountpoint: str) -> dict[str, Any]:
    """The live counters of the mount at ``mountpoint``."""
    root = mount_root(mountpoint)
    try:
        raw = os.getxattr(root, STATS_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise ControlError(f"{mountpoint} is not on an mssfs mount")
        raise ControlError(f"cannot read the stats of {root}: {exc.strerror}")
    return json.loads(raw)


def presigned_url(path: str, *, method: str = "GET", expires: int = 3600) -> str:
    """A presigned URL for the file at ``path``, signed by its mount."""
    name = url_xattr(method, expires)
    target = path
    if method.upper() == "PUT" and not os.path.lexists(path):
        target, child = os.path.split(os.path.abspath(path))
        name = f"{name}/{child}"
    try:
        return os.getxattr(target, name).decode()
    except FileNotFoundError:
        raise ControlError(f"{path} does not exist")
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise ControlError(f"no URL for {path}: not a file on an mssfs mount")
        if exc.errno == errno.EINVAL:
            raise ControlError(f"no URL for {path}: the expiry must be 1 s to 7 days")
        raise ControlError(f"no URL for {path}: {exc.strerror}")


def wait_for_uploads(mountpoint: str, progress: Progress, *, timeout: float,
                     interval: float = 0.2) -> None:
    """Wait while the mount reports uploads running, showing what is left."""
    deadline = time.monotonic() + timeout
    shown = False
    while True:
        try:
            files, size, busy = pending_work(read_stats(mountpoint))
        except (ControlError, ValueError):
            return  # an old or a dead mount: the unmount says what is wrong
        if not busy:
            break
        if time.monotonic() > deadline:
            progress.done()
            raise ControlError(f"uploads still running on {mountpoint} after {timeout:g} s")
        progress.update(f"mssfs: uploading before unmount: {files} files, "
                        f"{human_size(size)} left")
        shown = True
        time.sleep(interval)
    if shown:
        progress.done("mssfs: uploads finished")
