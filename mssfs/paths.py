"""Mount paths ⇄ (bucket, key), and the name rules of S3 and POSIX.

A mount shows one of three things at its root (``MountRoot``):

- an account (``bucket=None``): ``/`` lists the buckets, ``/NAME`` is bucket NAME and
  ``/NAME/a/b`` is key ``a/b`` in it; ``mkdir``/``rmdir`` of ``/NAME`` create and delete
  buckets;
- a bucket (``MountRoot("b", "")``): ``/a/b`` is key ``a/b``;
- a sub-tree of a bucket (``bucket:/prefix``): ``/a/b`` is key ``prefix/a/b``.

``resolve`` returns the key of a path *without* a trailing slash; the key of a
directory's marker object and the prefix that lists it are that key plus ``/``
(``dir_prefix``). The root of a bucket has key ``""`` and lists with prefix ``""``.

Names are checked here once, before any request: a path component over 255 bytes or a
key over 1,024 bytes (UTF-8) is ``NameTooLong`` (what SeaweedFS and S3 would refuse with
a 400 anyway); a bucket name that S3 would refuse is ``InvalidArgument``.

Pure: no I/O, no state, no locks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssfs.errors import InvalidArgument, NameTooLong

MAX_COMPONENT_BYTES = 255
MAX_KEY_BYTES = 1024

# S3's bucket naming rules (the strict, DNS-compatible ones every S3 server accepts).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")


@dataclass(frozen=True)
class MountRoot:
    """What the mount's ``/`` is: an account (bucket None), a bucket, or bucket + prefix.

    ``prefix`` is normalised to ``""`` or ``"a/b/"`` (no leading slash, one trailing).
    """

    bucket: str | None
    prefix: str = ""

    def __post_init__(self) -> None:
        prefix = "/".join(p for p in self.prefix.split("/") if p)
        object.__setattr__(self, "prefix", prefix + "/" if prefix else "")
        if self.bucket is None and self.prefix:
            raise ValueError("a prefix needs a bucket")

    @classmethod
    def parse(cls, spec: str | None) -> MountRoot:
        """``None``/``""`` → account; ``"b"`` → bucket; ``"b:/p"`` or ``"b:p"`` → sub-tree."""
        if not spec:
            return cls(None)
        bucket, _, prefix = spec.partition(":")
        return cls(bucket, prefix)

    @property
    def account_mode(self) -> bool:
        return self.bucket is None

    def resolve(self, path: str) -> tuple[str | None, str]:
        """The (bucket, key) a mount path names. Account root → (None, "")."""
        parts = split_parts(path)
        if self.bucket is None:
            if not parts:
                return None, ""
            return parts[0], "/".join(parts[1:])
        return self.bucket, self.prefix + "/".join(parts) if parts else self.prefix[:-1]

    def is_bucket_path(self, path: str) -> bool:
        """True for ``/NAME`` in account mode: a path that is a bucket, not a key."""
        return self.bucket is None and len(split_parts(path)) == 1

    def path_for_key(self, bucket: str, key: str) -> str:
        """The mount path of ``key`` in ``bucket`` (the inverse of ``resolve``)."""
        rel = key[len(self.prefix) :] if self.bucket is not None else key
        rel = rel.rstrip("/")
        if self.bucket is None:
            return "/" + bucket + ("/" + rel if rel else "")
        return "/" + rel


def split_parts(path: str) -> list[str]:
    """``"/a/b"`` → ``["a", "b"]``; ``"/"`` → ``[]``."""
    return [p for p in path.split("/") if p]


def split(path: str) -> tuple[str, str]:
    """``"/a/b"`` → ``("/a", "b")``; ``"/a"`` → ``("/", "a")``."""
    parts = split_parts(path)
    if not parts:
        return "/", ""
    return "/" + "/".join(parts[:-1]), parts[-1]


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def normalize(path: str) -> str:
    return "/" + "/".join(split_parts(path))


def dir_prefix(key: str) -> str:
    """The prefix that lists a directory whose key is ``key`` (``""`` for a bucket root)."""
    return key + "/" if key else ""


def check_path(path: str, key: str) -> None:
    """Raise ``NameTooLong`` for a component over 255 bytes or a key over 1,024 bytes."""
    for part in split_parts(path):
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise NameTooLong(f"name over {MAX_COMPONENT_BYTES} bytes", path=path)
    if len(key.encode()) + 1 > MAX_KEY_BYTES:  # +1: room for a directory marker's slash
        raise NameTooLong(f"key over {MAX_KEY_BYTES} bytes", path=path)


def check_bucket_name(name: str) -> None:
    """Raise ``InvalidArgument`` for a name S3 would refuse as a bucket name."""
    if (
        not _BUCKET_RE.fullmatch(name)
        or ".." in name
        or _IP_RE.fullmatch(name)
        or name.startswith("xn--")
    ):
        raise InvalidArgument(f"invalid bucket name {name!r}", path="/" + name)


def representable(name: str) -> bool:
    """Can a listing entry named ``name`` appear as a directory entry?

    Keys with ``//``, a leading ``/``, or the names ``.``/``..`` produce entries that
    POSIX cannot show; so does a name over 255 bytes.
    """
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(name.encode()) <= MAX_COMPONENT_BYTES
    )
