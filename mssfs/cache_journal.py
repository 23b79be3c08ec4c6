"""The journal beside each data file of the disk cache (``disk_cache``): which blocks the
file holds, and whether they were checked.

Format: a header (magic ``MSSFSIX1``, block size) then 12-byte records ``(block,
length, crc32)``, appended as the cache changes. A length of ``0xFFFFFFFF`` removes the
block; block number ``0xFFFFFFFF`` is a *seal*: the blocks recorded before it were
checked against their CRCs and are on disk (``fdatasync``), so a later mount need not
read them again. A block's bytes are written to the data file before its record, so a
crash leaves at worst bytes that no record names, and a torn last record is ignored.

``replay`` reads a journal back into a ``CachedFile``; ``rewrite`` compacts it (live
blocks and the seal only). Files are created 0600.

Locking: none here. ``DiskBlockCache`` calls these under its lock, or at start before
any other thread can see the cache.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

MAGIC = b"MSSFSIX1"
_HEADER = struct.Struct(">8sI")  # magic, block size
_RECORD = struct.Struct(">III")  # block, length, crc32
REMOVED = 0xFFFFFFFF  # as a length: the block was removed
SEAL = 0xFFFFFFFF  # as a block number: the blocks listed so far are on disk and checked


@dataclass
class CachedFile:
    """One object version's data file, as its journal describes it."""

    blocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # n → (length, crc)
    records: int = 0  # in the journal, live or dead
    pins: int = 0  # whole_file users (in memory only)
    verified: bool = True  # False: written by an earlier process, CRCs not yet checked
    sealed: bool = False  # the journal says so: a later process need not check the CRCs


def replay(path: str, block_size: int, data_size: int) -> CachedFile | None:
    """The file a journal describes (blocks past ``data_size`` dropped), or None when it
    is unreadable, of another block size, or holds no block."""
    try:
        with open(path, "rb") as journal:
            raw = journal.read()
    except OSError:
        return None
    if len(raw) < _HEADER.size or _HEADER.unpack_from(raw) != (MAGIC, block_size):
        return None
    file = CachedFile(verified=False)
    body = memoryview(raw)[_HEADER.size:]
    for off in range(0, len(body) - _RECORD.size + 1, _RECORD.size):
        n, length, crc = _RECORD.unpack_from(body, off)
        file.records += 1
        if n == SEAL:
            file.verified = file.sealed = True
        elif length == REMOVED:
            file.blocks.pop(n, None)
        elif n * block_size + length <= data_size:
            file.blocks[n] = (length, crc)
            file.verified = file.sealed = False  # a block newer than the seal
    return file if file.blocks else None


def append(path: str, file: CachedFile, block_size: int, n: int, length: int,
           crc: int) -> None:
    """One record (a new journal starts with its header)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        record = _RECORD.pack(n, length, crc)
        if os.fstat(fd).st_size == 0:
            record = _HEADER.pack(MAGIC, block_size) + record
        os.write(fd, record)
    finally:
        os.close(fd)
    file.records += 1


def rewrite(path: str, file: CachedFile, block_size: int) -> None:
    """Replace the journal by its live records (and the seal), atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as out:
            out.write(_HEADER.pack(MAGIC, block_size))
            for n, (length, crc) in sorted(file.blocks.items()):
                out.write(_RECORD.pack(n, length, crc))
            if file.sealed:
                out.write(_RECORD.pack(SEAL, 0, 0))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    file.records = len(file.blocks)
