"""The configuration file: every mount option in TOML, with named profiles.

Where. ``--config FILE`` (or ``$MSSFS_CONFIG``) names the one file to read; without it
``/etc/mssfs/config.toml`` and then ``$XDG_CONFIG_HOME/mssfs/config.toml`` (default
``~/.config/mssfs/config.toml``) are read when they exist, the user's file winning.

What. Top-level keys apply to every mount; a ``[profile.NAME]`` table applies when the
profile is selected (``--profile NAME`` or ``-o profile=NAME``) and wins over the top
level. A key is any ``-o`` option name (``endpoint``, ``stat_ttl``, ``ro``...) with a
TOML value: a string (``"30s"``, ``"64M"``), a number, or a boolean for flags; plus
``debug`` and ``log_file``, and the credentials ``access_key_id``,
``secret_access_key``, ``session_token``. A file holding a secret is refused when its
group or others may read it (as a passwd file is). Anything else is an error naming
the key and the file.

Profiles and ``~/.aws/credentials``. One name selects both, as in the AWS CLI
(``[profile X]`` in ``~/.aws/config`` beside ``[X]`` in ``~/.aws/credentials``): the
config profile's options, and the AWS credentials profile of that name when the
credentials come from there (a ``profile = "OTHER"`` key inside ``[profile.NAME]``
names a different AWS profile; at the top level ``profile`` is the table of profiles).

Precedence (applied by ``cli``): command line > environment > this file > defaults.
This module only reads and validates; values are parsed by the ``config`` table.
No lock, no thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomllib

from mssfs.config import OPTIONS_BY_NAME, ConfigError, parse_options
from mssfs.credentials import CredentialsError, check_private
from mssfs.store.config import Credentials

SYSTEM_CONFIG = "/etc/mssfs/config.toml"
_SECRET_KEYS = ("secret_access_key", "session_token")
_CREDENTIAL_KEYS = ("access_key_id", *_SECRET_KEYS)
_COMMAND_KEYS = ("debug", "log_file")


@dataclass(frozen=True)
class FileSettings:
    """What the config file(s) say for one profile."""

    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # parse_options shape
    debug: bool | None = None
    log_file: str | None = None
    credentials: Credentials | None = None
    credentials_source: str = ""
    files: tuple[str, ...] = ()
    profile_found: bool = False


def config_paths(env: Mapping[str, str], explicit: str | None = None) -> list[str]:
    """The files to read, lowest precedence first."""
    explicit = explicit or env.get("MSSFS_CONFIG")
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError(f"config file {explicit} does not exist")
        return [explicit]
    home = env.get("HOME") or os.path.expanduser("~")
    user = os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                        "mssfs", "config.toml")
    return [p for p in (SYSTEM_CONFIG, user) if os.path.isfile(p)]


def load(paths: Sequence[str], profile: str | None = None) -> FileSettings:
    """Read ``paths`` (later ones win) for ``profile``; raise ConfigError/CredentialsError."""
    merged: dict[str, tuple[Any, str]] = {}  # key → (value, where)
    found = False
    for path in paths:
        document = _read(path)
        tables = document.pop("profile", {})
        if not isinstance(tables, dict):
            raise ConfigError(f"{path}: 'profile' must be a table of [profile.NAME] tables")
        layers = [(document, path)]
        if profile is not None and profile in tables:
            found = True
            layers.append((tables[profile], f"{path} [profile.{profile}]"))
        for values, where in layers:
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: a profile must be a table")
            for key, value in values.items():
                _check_key(key, value, where)
                merged[key] = (value, where)
    return _settings(merged, tuple(paths), found)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}")


def _check_key(key: str, value: Any, where: str) -> None:
    if isinstance(value, dict):
        raise ConfigError(f"unknown section [{key}] in {where} (only [profile.NAME])")
    if key in _CREDENTIAL_KEYS or key in _COMMAND_KEYS:
        if key == "debug" and not isinstance(value, bool):
            raise ConfigError(f"option 'debug' in {where} must be true or false")
        if key != "debug" and not isinstance(value, str):
            raise ConfigError(f"option {key!r} in {where} must be a string")
        if key in _SECRET_KEYS:
            try:
                check_private(where.split(" [", 1)[0])
            except CredentialsError as exc:
                raise CredentialsError(f"{exc} (it holds {key})")
        return
    option = OPTIONS_BY_NAME.get(key)
    if option is None:
        raise ConfigError(f"unknown option {key!r} in {where} (see mssfs mount --help)")
    if isinstance(value, bool) and not option.flag:
        raise ConfigError(f"option {key!r} in {where} takes a value, not true/false")
    if not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"option {key!r} in {where}: expected a string, number or boolean")


def _settings(merged: Mapping[str, tuple[Any, str]], files: tuple[str, ...],
              found: bool) -> FileSettings:
    options: dict[str, dict[str, Any]] = {}
    for key, (value, where) in merged.items():
        if key in _CREDENTIAL_KEYS or key in _COMMAND_KEYS:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        try:
            parsed = parse_options([f"{key}={text}"])
        except ConfigError as exc:
            raise ConfigError(f"{exc} in {where}")
        for section, values in parsed.items():
            options.setdefault(section, {}).update(values)
    credentials, source = _credentials(merged)
    return FileSettings(
        options=options,
        debug=merged["debug"][0] if "debug" in merged else None,
        log_file=merged["log_file"][0] if "log_file" in merged else None,
        credentials=credentials, credentials_source=source, files=files,
        profile_found=found,
    )


def _credentials(merged: Mapping[str, tuple[Any, str]]) -> tuple[Credentials | None, str]:
    key = merged.get("access_key_id")
    secret = merged.get("secret_access_key")
    if key is None and secret is None:
        return None, ""
    if key is None or secret is None:
        where = (key or secret)[1]  # type: ignore[index]
        raise CredentialsError(f"{where} sets only one of access_key_id and secret_access_key")
    token = merged.get("session_token")
    return Credentials(key[0], secret[0], token[0] if token else None), f"config {secret[1]}"
