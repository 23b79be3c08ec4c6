"""The mount's configuration: one declarative table of ``-o`` options, and ``MountConfig``.

How it works. Every ``-o`` option is one row of ``OPTIONS`` (rclone's ``vfscommon``
style): its name, the section and field of ``MountConfig`` it sets, a parser for its
value, and its help text. The default of an option is the default of the dataclass
field it sets, so a default is written exactly once. Parsing (``parse_options``) and
``mssfs mount --help`` (``options_help``) are both generated from the table, and a test
checks that every field of every section has a row.

Values are parsed into plain types: sizes (``64M``, ``1G``, ``4096``) into bytes,
durations (``30s``, ``5m``, ``1h``, ``250ms``, a bare number of seconds) into float
seconds, modes (``022``) as octal. Options that would carry a secret are refused with
the reason; a message never repeats an option's value, since a mistyped option may be a
secret. This module does no I/O; ``cli`` builds ``MountConfig`` once, ``mount`` reads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mssfs.store.config import StoreConfig


class ConfigError(ValueError):
    """A bad option or value; the message is one line meant for the user."""


# -- value parsers -------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(text: str) -> int:
    """``4096``, ``64K``, ``64M``, ``1G``, ``1.5G`` (binary units; ``MiB``/``MB`` accepted)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 64K, 8M, 1G)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def parse_duration(text: str) -> float:
    """``30`` or ``30s``, ``250ms``, ``5m``, ``1h``, ``1d``; ``0`` disables a cache."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 250ms, 5m, 1h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_octal(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{1,4}", text.strip()):
        raise ValueError(f"not an octal mode: {text!r} (example: 022)")
    return int(text, 8)


def parse_int(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise ValueError(f"not a non-negative integer: {text!r}")
    return int(text)


def parse_checksum(text: str) -> str:
    name = text.strip().lower()
    if name not in ("auto", "md5", "crc32"):
        raise ValueError(f"expected auto, md5 or crc32, not {text!r}")
    return name


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("", "1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


# -- the sections of MountConfig -----------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What is mounted: the whole account (bucket None), a bucket, or a prefix in it."""

    bucket: str | None = None
    prefix: str = ""  # "" or "a/b/" (normalised with a trailing slash)

    @classmethod
    def parse(cls, text: str | None) -> Source:
        """``None`` (account mode), ``bucket``, ``bucket:/prefix`` or ``bucket:prefix``."""
        if not text:
            return cls()
        bucket, _, prefix = text.partition(":")
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid bucket {text!r}: expected BUCKET or BUCKET:/PREFIX")
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "")

    def __str__(self) -> str:
        if self.bucket is None:
            return "(account)"
        return f"{self.bucket}:/{self.prefix}" if self.prefix else self.bucket


@dataclass(frozen=True)
class FuseOptions:
    read_only: bool = False
    allow_other: bool = False
    default_permissions: bool = False
    uid: int | None = None  # None: the uid of the mounting user
    gid: int | None = None
    umask: int = 0o022
    attr_timeout: float = 1.0  # how long the kernel trusts attributes without asking
    entry_timeout: float = 1.0
    negative_timeout: float = 0.0
    url_expires: float = 3600.0  # expiry of the presigned URL in ``user.mssfs.url``
    # Kernel read-ahead of the mount (root only; see kernel_tuning): 1 MiB turns the
    # kernel's 128 KiB sequential reads into 1 MiB ones. 0 keeps the kernel's value.
    kernel_read_ahead: int = 1 << 20


@dataclass(frozen=True)
class StoreOptions:
    endpoint: str | None = None  # None: --endpoint, $MSS_ENDPOINT, then mtmss.com
    region: str = "us-east-1"
    sigv2: bool = False
    path_style: bool = True  # False: virtual-hosted addressing (bucket.host)
    ca_bundle: str | None = None
    no_verify_ssl: bool = False
    retries: int | None = None  # None: only retry_time bounds the retries
    retry_time: float = 60.0  # seconds transient failures are retried before EIO
    timeout: float = 60.0  # read timeout of one request
    connect_timeout: float = 10.0
    anonymous: bool = False
    passwd_file: str | None = None
    profile: str | None = None
    upload_checksum: str = "auto"  # "md5", "crc32", or "auto" (CRC32 if the server checks it)


@dataclass(frozen=True)
class CacheOptions:
    stat_ttl: float = 60.0
    dir_ttl: float = 60.0
    negative_ttl: float = 5.0
    cache_entries: int = 100_000
    exact_metadata: bool = False
    read_cache_size: int = 64 << 20
    read_block_size: int = 1 << 20
    read_ahead: int = 64 << 20  # the largest prefetch window of one reader
    read_ahead_budget: int = 128 << 20  # in-flight prefetch of all readers together
    read_concurrency: int = 8
    cache_dir: str | None = None  # None: no disk cache
    cache_size: int = 1 << 30
    # The kernel reads wholly cached objects from the disk cache itself (passthrough).
    passthrough: bool = True


@dataclass(frozen=True)
class UploadOptions:
    part_size: int = 8 << 20
    upload_concurrency: int = 8
    staging_dir: str | None = None  # None: the system temporary directory
    # New files' appends reach the staging file with O_DIRECT from pooled buffers.
    direct_staging: bool = True
    recovery_dir: str | None = None  # None: $XDG_DATA_HOME/mssfs/recovery
    # At mount: abort multipart uploads in the bucket older than this (None: off).
    abort_uploads_older_than: float | None = None


@dataclass(frozen=True)
class MountConfig:
    """Everything one mount needs; built once by ``cli``, read by ``mount``."""

    source: Source
    mountpoint: str
    store: StoreConfig = field(default_factory=StoreConfig)
    fuse: FuseOptions = field(default_factory=FuseOptions)
    cache: CacheOptions = field(default_factory=CacheOptions)
    upload: UploadOptions = field(default_factory=UploadOptions)
    foreground: bool = False
    debug: bool = False
    log_file: str | None = None
    memory: bool = False  # dev mount over MemoryStore: never for real data


# -- the option table ----------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    name: str
    section: str  # attribute of the parsed-options dict: "fuse", "store", "cache", "upload"
    field: str
    parse: Callable[[str], Any]
    help: str
    flag: bool = False  # a bare ``-o name`` means true
    value: Any = None  # for flags setting a fixed value (path_style / virtual_host)


def _flag(name: str, section: str, fld: str, help: str, value: Any = True) -> Option:
    return Option(name, section, fld, parse_bool, help, flag=True, value=value)


OPTIONS: tuple[Option, ...] = (
    # usual FUSE / fstab options
    _flag("ro", "fuse", "read_only", "mount read-only (every change fails with EROFS)"),
    _flag("rw", "fuse", "read_only", "mount read-write (the default)", value=False),
    _flag("allow_other", "fuse", "allow_other", "let other users access the mount"),
    _flag("default_permissions", "fuse", "default_permissions",
          "let the kernel check permissions against mode/uid/gid"),
    Option("uid", "fuse", "uid", parse_int,
           "owner of objects without uid metadata (default: you)"),
    Option("gid", "fuse", "gid", parse_int,
           "group of objects without gid metadata (default: yours)"),
    Option("umask", "fuse", "umask", parse_octal, "umask for objects without mode metadata"),
    Option("attr_timeout", "fuse", "attr_timeout", parse_duration, "kernel attribute cache time"),
    Option("entry_timeout", "fuse", "entry_timeout", parse_duration, "kernel name cache time"),
    Option("negative_timeout", "fuse", "negative_timeout", parse_duration,
           "kernel cache time of missing names"),
    Option("url_expires", "fuse", "url_expires", parse_duration,
           "expiry of the URL in the user.mssfs.url attribute"),
    Option("kernel_read_ahead", "fuse", "kernel_read_ahead", parse_size,
           "kernel read-ahead of the mount, set when mounting as root (0: kernel default)"),
    # the object store
    Option("endpoint", "store", "endpoint", str,
           "S3 endpoint URL (also --endpoint, $MSS_ENDPOINT)"),
    Option("region", "store", "region", str, "region used in SigV4 signatures (also --region)"),
    _flag("sigv2", "store", "sigv2", "sign with AWS Signature V2 (old MSS deployments)"),
    _flag("path_style", "store", "path_style", "path-style requests: https://host/bucket/key"),
    _flag("virtual_host", "store", "path_style", "virtual-hosted requests: https://bucket.host/key",
          value=False),
    Option("ca_bundle", "store", "ca_bundle", str, "verify TLS against this CA bundle file"),
    _flag("no_verify_ssl", "store", "no_verify_ssl", "do not verify TLS certificates (unsafe)"),
    Option("retries", "store", "retries", parse_int, "retries of a failed transient request"),
    Option("retry_time", "store", "retry_time", parse_duration,
           "how long transient failures are retried before an operation fails with EIO"),
    Option("timeout", "store", "timeout", parse_duration, "read timeout of one request"),
    Option("connect_timeout", "store", "connect_timeout", parse_duration, "connect timeout"),
    Option("upload_checksum", "store", "upload_checksum", parse_checksum,
           "how the server checks uploaded bytes: auto (crc32 where the server shows it "
           "checks it, else md5), md5 (every S3 server) or crc32 (a sixth of md5's CPU)"),
    _flag("anonymous", "store", "anonymous", "send unsigned requests (public buckets)"),
    Option("passwd_file", "store", "passwd_file", str,
           "credentials file, mode 600: KEY:SECRET or BUCKET:KEY:SECRET lines"),
    Option("profile", "store", "profile", str,
           "[profile.NAME] of the config file and of ~/.aws/credentials (also --profile)"),
    # caches
    Option("stat_ttl", "cache", "stat_ttl", parse_duration, "how long file attributes are cached"),
    Option("dir_ttl", "cache", "dir_ttl", parse_duration, "how long directory listings are cached"),
    Option("negative_ttl", "cache", "negative_ttl", parse_duration,
           "how long a missing name is remembered"),
    Option("cache_entries", "cache", "cache_entries", parse_int, "entries of the metadata cache"),
    _flag("exact_metadata", "cache", "exact_metadata",
          "HEAD every listed object for its mode/uid/gid/mtime (slower ls -l)"),
    Option("read_cache_size", "cache", "read_cache_size", parse_size, "memory block cache size"),
    Option("read_block_size", "cache", "read_block_size", parse_size, "size of one cached block"),
    Option("read_ahead", "cache", "read_ahead", parse_size, "largest read-ahead window of a file"),
    Option("read_ahead_budget", "cache", "read_ahead_budget", parse_size,
           "read-ahead in flight, all files together"),
    Option("read_concurrency", "cache", "read_concurrency", parse_int, "parallel ranged GETs"),
    Option("cache_dir", "cache", "cache_dir", str,
           "on-disk block cache directory (off by default)"),
    Option("cache_size", "cache", "cache_size", parse_size, "size limit of the on-disk cache"),
    _flag("no_passthrough", "cache", "passthrough",
          "read objects wholly in the disk cache through mssfs, not by FUSE passthrough",
          value=False),
    # uploads
    Option("part_size", "upload", "part_size", parse_size,
           "multipart part size (grows for huge files)"),
    Option("upload_concurrency", "upload", "upload_concurrency", parse_int,
           "parallel part uploads"),
    Option("staging_dir", "upload", "staging_dir", str,
           "where files being rewritten are staged (default: the system temp dir)"),
    _flag("no_direct_staging", "upload", "direct_staging",
          "stage new files with ordinary writes, not O_DIRECT from pooled buffers",
          value=False),
    Option("recovery_dir", "upload", "recovery_dir", str,
           "where bytes of failed uploads are kept (default: ~/.local/share/mssfs/recovery)"),
    Option("abort_uploads_older_than", "upload", "abort_uploads_older_than", parse_duration,
           "at mount, abort the bucket's multipart uploads older than this (e.g. 1d)"),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}

SECTIONS: dict[str, type] = {
    "fuse": FuseOptions,
    "store": StoreOptions,
    "cache": CacheOptions,
    "upload": UploadOptions,
}

# fstab/mount(8) options that mean nothing to mssfs but appear in fstab lines.
IGNORED_OPTIONS = frozenset({
    "defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail",
    "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime",
})

# Options other tools take that would put a secret on the command line (visible in ps).
SECRET_OPTIONS = frozenset({
    "secret_key", "secret_access_key", "aws_secret_access_key", "secretkey", "password",
    "passwd", "access_key", "access_key_id", "aws_access_key_id", "session_token",
})


def split_options(values: Iterable[str]) -> list[tuple[str, str | None]]:
    """``["ro,uid=1000", "umask=022"]`` → ``[("ro", None), ("uid", "1000"), ("umask", "022")]``."""
    pairs: list[tuple[str, str | None]] = []
    for value in values:
        for item in value.split(","):
            if item.strip():
                name, sep, val = item.strip().partition("=")
                pairs.append((name.strip(), val if sep else None))
    return pairs


def parse_options(values: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``-o`` values into ``{section: {field: value}}``; raise ConfigError."""
    parsed: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for name, raw in split_options(values):
        if name.lower() in SECRET_OPTIONS:
            raise ConfigError(
                f"option {name!r} is refused: a secret on the command line is visible to every "
                "user (ps, shell history); use MSS_ACCESS_KEY_ID/MSS_SECRET_ACCESS_KEY, "
                "-o passwd_file=FILE or ~/.aws/credentials"
            )
        if name in IGNORED_OPTIONS or name.startswith("x-"):
            continue
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"unknown option {name!r} (see mssfs mount --help)")
        parsed[option.section][option.field] = _parse_value(option, raw)
    return parsed


def _parse_value(option: Option, raw: str | None) -> Any:
    if option.flag:
        try:
            on = parse_bool(raw or "")
        except ValueError:
            raise ConfigError(f"option {option.name!r} takes no value")
        if option.value is True:
            return on
        return option.value if on else not option.value
    if raw is None or raw == "":
        raise ConfigError(f"option {option.name!r} needs a value: -o {option.name}=VALUE")
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"option {option.name!r}: {exc}")


def build_section(section: str, values: Mapping[str, Any]) -> Any:
    return replace(SECTIONS[section](), **values)


def default_of(option: Option) -> Any:
    for fld in fields(SECTIONS[option.section]):
        if fld.name == option.field:
            return fld.default
    raise KeyError(option.field)


def _format_default(option: Option) -> str:
    value = default_of(option)
    if option.flag:
        return "on" if value == option.value else "off"
    if value is None:
        return "-"
    if option.parse is parse_size:
        return format_size(value)
    if option.parse is parse_octal:
        return f"{value:03o}"
    if option.parse is parse_duration:
        return f"{value:g}s"
    return str(value)


def format_size(value: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if value and value % _SIZE_UNITS[unit] == 0:
            return f"{value // _SIZE_UNITS[unit]}{unit}"
    return str(value)


def options_help() -> str:
    """The ``-o`` table for ``--help``: name, default, help; generated from OPTIONS."""
    lines = ["mount options (-o NAME[=VALUE],...; default in brackets):"]
    for option in OPTIONS:
        name = option.name if option.flag else f"{option.name}=..."
        lines.append(f"  {name:<24} {option.help} [{_format_default(option)}]")
    lines.append("  also accepted and ignored (fstab): " + ", ".join(sorted(IGNORED_OPTIONS)))
    return "\n".join(lines)
