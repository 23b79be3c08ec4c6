"""Where the mount's access key and secret come from, in a fixed order.

How it works. ``resolve_credentials`` tries each source in turn and returns the first
that has a key pair, with a short description of where it came from (for a log line
that never shows the secret):

1. ``MSS_ACCESS_KEY_ID`` / ``MSS_SECRET_ACCESS_KEY`` in the environment;
2. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``);
3. a credentials file given with ``-o passwd_file=FILE``, read as s3fs-fuse reads its
   ``passwd-s3fs``: ``ACCESS_KEY:SECRET_KEY`` lines, or ``BUCKET:ACCESS_KEY:SECRET_KEY``
   lines that win for that bucket; ``#`` comments. The file is refused when its group or
   other users have any access to it, as s3fs does;
3b. ``access_key_id``/``secret_access_key`` of the config file (``config_file``, which
   refuses a file readable by others), passed in as ``configured``;
4. ``~/.aws/credentials`` (or ``$AWS_SHARED_CREDENTIALS_FILE``), profile ``--profile``,
   else ``$AWS_PROFILE``, else ``default``.

The environment is passed in as a mapping (``cli`` is the only module that reads
``os.environ``). Errors are ``CredentialsError`` with a one-line message that names the
source and never contains a secret. No secret is ever accepted from argv.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from mssfs.store.config import Credentials


class CredentialsError(Exception):
    """No usable credentials; the message is one line for the user."""


@dataclass(frozen=True)
class ResolvedCredentials:
    credentials: Credentials
    source: str  # e.g. "environment (MSS_ACCESS_KEY_ID)"; never contains the secret


def resolve_credentials(
    env: Mapping[str, str],
    *,
    bucket: str | None = None,
    passwd_file: str | None = None,
    profile: str | None = None,
    home: str | None = None,
    configured: Credentials | None = None,
    configured_source: str = "config file",
) -> ResolvedCredentials:
    """The first key pair found in the order described in the module docstring."""
    for prefix in ("MSS", "AWS"):
        found = _from_env(env, prefix)
        if found:
            return found
    if passwd_file:
        return ResolvedCredentials(read_passwd_file(passwd_file, bucket), f"file {passwd_file}")
    if configured is not None:
        return ResolvedCredentials(configured, configured_source)
    home = home or env.get("HOME") or os.path.expanduser("~")
    path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    name = profile or env.get("AWS_PROFILE") or "default"
    if os.path.exists(path):
        creds = read_aws_profile(path, name)
        if creds is not None:
            return ResolvedCredentials(creds, f"{path} [{name}]")
    if profile:
        raise CredentialsError(f"profile {profile!r} not found in {path}")
    raise CredentialsError(
        "no credentials found: set MSS_ACCESS_KEY_ID and MSS_SECRET_ACCESS_KEY, "
        "or use -o passwd_file=FILE, or ~/.aws/credentials"
    )


def _from_env(env: Mapping[str, str], prefix: str) -> ResolvedCredentials | None:
    key = env.get(f"{prefix}_ACCESS_KEY_ID", "")
    secret = env.get(f"{prefix}_SECRET_ACCESS_KEY", "")
    if not key and not secret:
        return None
    if not key or not secret:
        missing = f"{prefix}_SECRET_ACCESS_KEY" if key else f"{prefix}_ACCESS_KEY_ID"
        raise CredentialsError(f"{missing} is not set (both {prefix}_* variables are needed)")
    token = env.get(f"{prefix}_SESSION_TOKEN") or None
    return ResolvedCredentials(Credentials(key, secret, token), f"environment ({prefix}_*)")


def check_private(path: str) -> None:
    """Refuse a credentials file that is missing, not a file, or readable by others."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}")
    if not stat.S_ISREG(info.st_mode):
        raise CredentialsError(f"credentials file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )


def read_passwd_file(path: str, bucket: str | None) -> Credentials:
    """Parse an s3fs-style passwd file; a ``BUCKET:`` line for ``bucket`` wins."""
    check_private(path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc}")
    default: Credentials | None = None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) == 2 and all(fields):
            default = default or Credentials(fields[0], fields[1])
        elif len(fields) == 3 and all(fields):
            if bucket is not None and fields[0] == bucket:
                return Credentials(fields[1], fields[2])
        else:
            # The line may hold a secret: name its number only.
            raise CredentialsError(
                f"credentials file {path}, line {number}: expected ACCESS_KEY:SECRET_KEY "
                "or BUCKET:ACCESS_KEY:SECRET_KEY"
            )
    if default is None:
        where = f" for bucket {bucket!r}" if bucket else ""
        raise CredentialsError(f"credentials file {path} has no key pair{where}")
    return default


def read_aws_profile(path: str, profile: str) -> Credentials | None:
    """The key pair of one profile of an AWS shared credentials file, or None."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot parse {path}: {type(exc).__name__}")
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    key = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key or not secret:
        raise CredentialsError(f"profile {profile!r} in {path} lacks a key or a secret")
    token = section.get("aws_session_token", "").strip() or None
    return Credentials(key, secret, token)
