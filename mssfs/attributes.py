"""The value types the filesystem returns: attributes of a path, directory entries, statfs.

``Filesystem`` (``filesystem.py``) returns these plain frozen dataclasses and never a
FUSE structure; ``fuse_ops.py`` turns them into the ``st_*`` dicts the binding wants.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Attributes:
    mode: int  # full st_mode, type bits included (stat.S_IFREG | 0o644 ...)
    size: int
    mtime: float
    uid: int
    gid: int
    atime: float | None = None  # None: same as mtime
    ctime: float | None = None  # None: same as mtime
    nlink: int = 1
    etag: str | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


@dataclass(frozen=True)
class DirEntry:
    name: str
    attrs: Attributes


@dataclass(frozen=True)
class StatFs:
    block_size: int
    blocks: int
    blocks_free: int
    files: int
    files_free: int
    name_max: int = 255
