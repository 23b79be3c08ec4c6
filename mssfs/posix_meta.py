"""POSIX attributes ⇄ S3 user metadata, in every common dialect.

Reading (``parse``) accepts what the other tools write, so a bucket filled by any of
them shows the right modes, owners and times:

- s3fs-fuse / geesefs: ``mode`` = the full ``st_mode`` in decimal (``"33188"``),
  ``uid``, ``gid``, ``mtime``/``ctime``/``atime`` in seconds (``"1700000000"``, or
  s3fs's ``"sec.nsec"``); s3sync's ``permissions``, ``owner``, ``group``;
- rclone: ``mode`` as an *octal* string (``"100664"``), ``mtime`` as float seconds
  (RFC 3339 is accepted too);
- GCS: ``goog-reserved-posix-mode`` (octal), ``goog-reserved-posix-uid/gid``,
  ``goog-reserved-file-mtime``.

Telling s3fs's decimal from rclone's octal: a decimal value is taken when it is a valid
``st_mode`` (at most 0o177777 with known type bits, or bare permission bits); otherwise
the string is read as octal. ``"100664"`` is 100664 in decimal, above 0o177777, so it is
octal 0o100664; ``"33188"`` (s3fs) is not even an octal string. A value that fits
neither, or any other garbage, is ignored: the caller falls back to its defaults. This
module never raises on metadata.

Writing (``to_metadata``) uses s3fs's dialect only (decimal mode with the type bits,
uid, gid, mtime in whole seconds), the de-facto interchange format.

Symlinks follow s3fs: the body is the target and the mode has ``S_IFLNK``; yas3fs's
``Content-Type: application/x-symlink`` and GCS's ``goog-reserved-file-is-symlink`` are
read too. Directory markers are ``dir/`` objects with ``Content-Type:
application/x-directory`` (``httpd/unix-directory`` is read as well).

Pure: no I/O, no state.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

DIR_CONTENT_TYPE = "application/x-directory"
SYMLINK_CONTENT_TYPE = "application/x-symlink"
_DIR_CONTENT_TYPES = frozenset({DIR_CONTENT_TYPE, "httpd/unix-directory"})

# Metadata names that carry POSIX attributes; every other name is a user xattr.
POSIX_KEYS = frozenset(
    {
        "mode",
        "uid",
        "gid",
        "mtime",
        "ctime",
        "atime",
        "permissions",
        "owner",
        "group",
        "goog-reserved-posix-mode",
        "goog-reserved-posix-uid",
        "goog-reserved-posix-gid",
        "goog-reserved-file-mtime",
        "goog-reserved-file-is-symlink",
    }
)

_VALID_TYPES = frozenset(
    {
        stat.S_IFREG,
        stat.S_IFDIR,
        stat.S_IFLNK,
        stat.S_IFIFO,
        stat.S_IFCHR,
        stat.S_IFBLK,
        stat.S_IFSOCK,
    }
)
_MAX_ID = 2**32 - 1
# ASCII digits only: str.isdigit() also accepts "¹" or "٣", which int() refuses.
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PosixMeta:
    """What the metadata says; None for each attribute it does not (validly) carry."""

    mode: int | None = None  # full st_mode when it had type bits, else permission bits
    uid: int | None = None
    gid: int | None = None
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None
    symlink: bool = False


def parse(metadata: Mapping[str, str], content_type: str | None = None) -> PosixMeta:
    """Read POSIX attributes from user metadata (names lower-case, no prefix)."""
    mode = _first(metadata, ("mode", "permissions"), parse_mode)
    if mode is None:
        mode = _first(metadata, ("goog-reserved-posix-mode",), _parse_octal_mode)
    symlink = (
        (mode is not None and stat.S_IFMT(mode) == stat.S_IFLNK)
        or content_type == SYMLINK_CONTENT_TYPE
        or metadata.get("goog-reserved-file-is-symlink", "").lower() == "true"
    )
    return PosixMeta(
        mode=mode,
        uid=_first(metadata, ("uid", "owner", "goog-reserved-posix-uid"), _parse_id),
        gid=_first(metadata, ("gid", "group", "goog-reserved-posix-gid"), _parse_id),
        mtime=_first(metadata, ("mtime", "goog-reserved-file-mtime"), parse_time),
        atime=_first(metadata, ("atime",), parse_time),
        ctime=_first(metadata, ("ctime",), parse_time),
        symlink=symlink,
    )


def to_metadata(
    mode: int, uid: int, gid: int, mtime: float, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """s3fs-dialect metadata for these attributes, merged over ``base``.

    Other dialects' POSIX names are dropped from ``base`` so that a rewritten object
    never carries two disagreeing modes; user (xattr) names are kept.
    """
    out = {k: v for k, v in (base or {}).items() if k not in POSIX_KEYS}
    out["mode"] = str(mode)
    out["uid"] = str(uid)
    out["gid"] = str(gid)
    out["mtime"] = str(int(mtime))
    return out


def is_dir_content_type(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in _DIR_CONTENT_TYPES


def parse_mode(value: str) -> int | None:
    """s3fs decimal first, then rclone octal; None when neither is a sane mode."""
    value = value.strip()
    if value.lower().startswith("0o"):
        return _parse_octal_mode(value[2:])
    if value.startswith("0") and len(value) > 1:
        return _parse_octal_mode(value)
    if _DIGITS.fullmatch(value):
        decimal = int(value)
        if _valid_mode(decimal):
            return decimal
        return _parse_octal_mode(value)
    return None


def _parse_octal_mode(value: str) -> int | None:
    try:
        number = int(value.strip(), 8)
    except ValueError:
        return None
    return number if _valid_mode(number) else None


def _valid_mode(number: int) -> bool:
    if number < 0 or number > 0o177777:
        return False
    kind = stat.S_IFMT(number)
    return kind in _VALID_TYPES or (kind == 0 and number <= 0o7777)


def _parse_id(value: str) -> int | None:
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if number <= _MAX_ID else None


def parse_time(value: str) -> float | None:
    """Seconds (``"1700000000"``, ``"1700000000.5"``, s3fs ``"sec.nsec"``) or RFC 3339."""
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _parse_rfc3339(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or seconds > 2**40:
        return None
    return seconds


def _parse_rfc3339(value: str) -> float | None:
    if "T" not in value:
        return None
    head, dot, frac = value.partition(".")
    if dot:  # fromisoformat takes at most microseconds: trim nanoseconds
        digits = "".join(c for c in frac if c.isdigit())
        zone = frac[len(digits) :]
        value = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _first(metadata: Mapping[str, str], names, parser):
    for name in names:
        raw = metadata.get(name)
        if raw is not None:
            parsed = parser(raw)
            if parsed is not None:
                return parsed
    return None
