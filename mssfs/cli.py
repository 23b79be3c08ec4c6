"""The ``mssfs`` command: ``mount``, ``umount`` (here), ``url``, ``stats``, ``mpu``
(``commands``), and ``mount.mssfs`` for mount(8) (``mount_helper_main``).

How it works. This is the only module that reads ``argv`` and the environment. ``mount``
parses the arguments and the ``-o`` options (``config.OPTIONS``, the one table that also
writes ``--help``) over those of the config file (``config_file``; the environment sits
between the two), resolves credentials (``credentials.resolve_credentials``), builds
one frozen ``MountConfig`` and sets up logging. Before anything is mounted it checks
the mountpoint (missing, not a directory, mounted, dead mount) and makes one preflight
request with short timeouts (bad keys, missing bucket, unreachable or non-S3 endpoint);
a server that answers but is busy (5xx, SlowDown, a broken connection) is asked again
for a few seconds, so a loaded server does not make a mount fail.
Then it hands over to ``mount``: a foreground mount, or a daemonised one that returns
only when the mount is ready.

Every failure the user can cause ends as one line ``mssfs: <reason>`` on stderr and exit
status 1, never a traceback (an unexpected exception is logged with its traceback at
DEBUG and summarised in one line). Secrets: no option takes one (``-o secret_key=...``
is refused with the reason), they never reach a child's argv (the daemon is a fork that
inherits them in memory), and a logging filter masks them should any message carry one.

No locks, no threads.
"""

from __future__ import annotations

import argparse
import ctypes.util
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import Any

from mssfs import commands
from mssfs.config import (
    ConfigError,
    MountConfig,
    Source,
    build_section,
    options_help,
    parse_options,
)
from mssfs.credentials import CredentialsError, resolve_credentials
from mssfs.env_scrub import blank_initial_environment, scrub_secrets
from mssfs.log_config import setup_logging
from mssfs.store import errors
from mssfs.store.config import DEFAULT_ENDPOINT, StoreConfig, normalize_endpoint

log = logging.getLogger("mssfs.cli")


class CliError(Exception):
    """A one-line failure for the user."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mssfs", description="Mount MSS or any S3-compatible store as a filesystem."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mount = sub.add_parser(
        "mount", help="mount an account, a bucket or a bucket prefix",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mssfs mount [BUCKET[:/PREFIX]] MOUNTPOINT [options]",
        description="Without BUCKET the whole account is mounted: the top level lists the "
        "buckets, and mkdir/rmdir there create and delete buckets.",
        epilog=options_help() + "\n\n" + CREDENTIALS_HELP,
    )
    mount.add_argument("args", nargs="+", metavar="[BUCKET[:/PREFIX]] MOUNTPOINT")
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="stay in the foreground (default: return once mounted)")
    mount.add_argument("--debug", action="store_true", help="log every S3 request")
    mount.add_argument("--log-file", help="log here (default: stderr with -f, else "
                       "~/.local/state/mssfs/mount.log)")
    mount.add_argument("--memory", action="store_true",
                       help="dev mount over an in-memory store: data vanishes on unmount")
    mount.add_argument("--ready-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    add_store_arguments(mount)
    umount = sub.add_parser("umount", help="finish pending uploads and unmount",
                            description="Waits for running uploads (progress on a "
                            "terminal), unmounts, then waits for the mount process to end.")
    umount.add_argument("mountpoint")
    umount.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for pending uploads [3600]")
    commands.add_parsers(sub, add_store_arguments)
    return parser


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the store and credentials (mount and mpu)."""
    parser.add_argument("--endpoint", help=f"S3 endpoint URL (default $MSS_ENDPOINT, "
                        f"else {DEFAULT_ENDPOINT})")
    parser.add_argument("--region", help="region for SigV4 signatures [us-east-1]")
    parser.add_argument("--profile", help="profile: [profile.NAME] of the config file and "
                        "[NAME] of ~/.aws/credentials [default]")
    parser.add_argument("--config", metavar="FILE", help="config file (default $MSSFS_CONFIG, "
                        "else /etc/mssfs/config.toml and ~/.config/mssfs/config.toml)")
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="OPT,...",
                        help="mount options (listed by mssfs mount --help)")


COMMANDS = ("mount", "umount", "url", "stats", "mpu")

CREDENTIALS_HELP = """\
credentials, first found wins:
  MSS_ACCESS_KEY_ID / MSS_SECRET_ACCESS_KEY
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
  -o passwd_file=FILE (s3fs format, mode 600)
  access_key_id/secret_access_key in the config file (mode 600)
  ~/.aws/credentials, profile --profile, $AWS_PROFILE or "default"
A secret is never accepted on the command line.

config file (TOML): every -o option as a key (endpoint = "http://...",
stat_ttl = "30s", ro = true), also debug and log_file; [profile.NAME] tables
are selected with --profile NAME or -o profile=NAME. Precedence: command line >
environment > config file > defaults."""


# scripts/setup builds libfuse 3.17 here, for FUSE passthrough (Debian 12 has 3.14).
BUNDLED_LIBFUSE = os.path.join(sys.prefix, "lib", "mssfs-libfuse", "libfuse3.so.4")


def find_libfuse3(bundled: str = BUNDLED_LIBFUSE) -> str | None:
    """The libfuse3 shared object: the one scripts/setup built, else ``find_library``,
    else the ``ldconfig -p`` cache."""
    if os.path.exists(bundled):
        return bundled
    name = ctypes.util.find_library("fuse3")
    if name:
        return name
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        if "libfuse3.so" in line and "=>" in line:
            return line.split("=>", 1)[1].strip()
    return None


def select_fuse_library(env: MutableMapping[str, str]) -> None:
    """Make mfusepy load libfuse3 (it prefers libfuse2); a user's FUSE_LIBRARY_PATH wins."""
    if env.get("FUSE_LIBRARY_PATH"):
        return
    path = find_libfuse3()
    if path is None:
        raise CliError("libfuse3 not found: install the fuse3 package (apt-get install fuse3)")
    env["FUSE_LIBRARY_PATH"] = path


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Every failure is one line on stderr and exit 1, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        # ``mssfs SOURCE MOUNTPOINT -o ...``: how mount.fuse3 runs the subtype of
        # ``mount -t fuse.mssfs`` (see mount_helper).
        from mssfs.mount_helper import translate

        argv = translate(argv) or ["--help"]
    args = build_parser().parse_args(argv)
    try:
        # Before anything imports the binding (mssfs.mount → mssfs.fuse_ops → mfusepy).
        select_fuse_library(os.environ)
    except CliError as exc:
        print(f"mssfs: {exc}", file=sys.stderr)
        return 1
    from mssfs import mount as mounting

    try:
        if args.command == "mount":
            return cmd_mount(args, os.environ)
        if args.command == "umount":
            return cmd_umount(args, os.environ)
        return commands.run(
            args, lambda bucket: store_config(args, os.environ, bucket)[0])
    except (CliError, ConfigError, CredentialsError, mounting.MountError,
            commands.CommandError) as exc:
        print(f"mssfs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("unexpected failure", exc_info=True)
        print(f"mssfs: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def mount_helper_main(argv: Sequence[str] | None = None) -> int:
    """``mount.mssfs SOURCE MOUNTPOINT -o OPTIONS``, as mount(8) runs it (mount_helper)."""
    from mssfs.mount_helper import translate

    args = translate(sys.argv[1:] if argv is None else argv)
    return 0 if args is None else main(args)


def cmd_mount(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from mssfs import mount as mounting

    # The mountpoint first: the cheapest mistake to report, and before any request.
    check_mountpoint(os.path.abspath(split_positionals(args.args)[1]))
    config, secrets = build_config(args, env)
    setup_logging(config, env, secrets)
    runtime = runtime_dir(env)
    # The secrets are in the config now: out of the environment children inherit and
    # of /proc/PID/environ (env_scrub).
    scrub_secrets(os.environ)
    blank_initial_environment()
    if not config.memory:
        preflight(config)
        commands.abort_old_uploads(config)
    if config.foreground:
        mounting.run_foreground(config, runtime)
    else:
        mounting.run_daemon(config, runtime, timeout=args.ready_timeout)
    return 0


def cmd_umount(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from mssfs import mount as mounting

    commands.wait_before_unmount(args.mountpoint, timeout=args.timeout)
    mounting.unmount(args.mountpoint, runtime_dir(env), timeout=args.timeout)
    return 0


def split_positionals(values: Sequence[str]) -> tuple[Source, str]:
    if len(values) == 1:
        return Source(), values[0]
    if len(values) == 2:
        return Source.parse(values[0]), values[1]
    raise CliError("expected [BUCKET[:/PREFIX]] MOUNTPOINT")


def build_config(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[MountConfig, list[str]]:
    """The frozen MountConfig, and the secrets for the log filter."""
    source, mountpoint = split_positionals(args.args)
    store, parsed, settings = store_config(args, env, source.bucket)
    config = MountConfig(
        source=source, mountpoint=os.path.abspath(mountpoint), store=store,
        fuse=build_section("fuse", parsed["fuse"]),
        cache=_absolute(build_section("cache", parsed["cache"]), "cache_dir"),
        upload=_upload_section(parsed["upload"], env),
        foreground=args.foreground, debug=args.debug or bool(settings.debug),
        log_file=_log_file(args.log_file or settings.log_file), memory=args.memory,
    )
    if not 1 <= config.fuse.url_expires <= 7 * 86400:
        raise CliError("option 'url_expires' must be 1s to 7d (the limit of presigned URLs)")
    credentials = store.credentials
    secrets = [] if credentials is None else [credentials.secret_key]
    if credentials is not None and credentials.session_token:
        secrets.append(credentials.session_token)
    return config, secrets


def _config_option(values: Sequence[str]) -> tuple[list[str], str | None]:
    """``-o config=FILE`` (as fstab must write ``--config``), taken out of the options."""
    kept, found = [], None
    for value in values:
        items = value.split(",")
        found = next((i[len("config="):] for i in items if i.startswith("config=")), found)
        kept.append(",".join(i for i in items if not i.startswith("config=")))
    return kept, found


def _log_file(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


def store_config(
    args: argparse.Namespace, env: Mapping[str, str], bucket: str | None
) -> tuple[StoreConfig, dict[str, dict[str, Any]], Any]:
    """The store's config with credentials, the merged options, and the file settings.

    Precedence: command line > environment > config file > defaults."""
    from mssfs.config_file import config_paths, load

    options, config_file = _config_option(args.options)
    given = parse_options(options)
    profile = args.profile or given["store"].get("profile") or env.get("MSSFS_PROFILE")
    settings = load(config_paths(env, args.config or config_file), profile)
    parsed = {name: {**settings.options.get(name, {}), **values}
              for name, values in given.items()}
    store_opts = build_section("store", parsed["store"])
    credentials = None
    if not (getattr(args, "memory", False) or store_opts.anonymous):
        resolved = resolve_credentials(
            env, bucket=bucket, profile=store_opts.profile or profile,
            # A passwd_file on the command line beats credentials in the config file.
            passwd_file=given["store"].get("passwd_file") or (
                None if settings.credentials else store_opts.passwd_file),
            configured=settings.credentials, configured_source=settings.credentials_source,
        )
        credentials = resolved.credentials
        log.debug("credentials from %s", resolved.source)
    if store_opts.ca_bundle and not os.path.isfile(store_opts.ca_bundle):
        raise CliError(f"CA bundle {store_opts.ca_bundle} does not exist")
    endpoint = (args.endpoint or given["store"].get("endpoint") or env.get("MSS_ENDPOINT")
                or store_opts.endpoint or DEFAULT_ENDPOINT)
    try:
        store = StoreConfig(
            endpoint=normalize_endpoint(endpoint), credentials=credentials,
            region=args.region or store_opts.region,
            signature="v2" if store_opts.sigv2 else "v4",
            addressing="path" if store_opts.path_style else "virtual",
            verify_tls=False if store_opts.no_verify_ssl else (store_opts.ca_bundle or True),
            connect_timeout=store_opts.connect_timeout, read_timeout=store_opts.timeout,
            max_retries=store_opts.retries, retry_time=store_opts.retry_time,
            upload_checksum=store_opts.upload_checksum,
        )
    except ValueError as exc:
        raise CliError(str(exc))
    return store, parsed, settings


# -- checks before mounting: cheap ones first, then one request ---------------------------


def check_mountpoint(path: str) -> None:
    """Refuse a mountpoint that is missing, not a directory, or already mounted."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CliError(f"mountpoint {path} does not exist")
    except OSError as exc:
        # ENOTCONN: a FUSE mount whose process died is still there.
        raise CliError(f"mountpoint {path} is not usable ({exc.strerror}); "
                         f"if it is a dead mount: fusermount3 -u {path}")
    if not os.path.isdir(path) or not info.st_mode & 0o040000:
        raise CliError(f"mountpoint {path} is not a directory")
    from mssfs.mount import mounted_points

    if os.path.realpath(path) in mounted_points():
        problem = _mount_problem(path)
        if problem:
            raise CliError(f"mountpoint {path} is a dead mount ({problem}); "
                             f"clear it with: fusermount3 -u {path}")
        raise CliError(f"mountpoint {path} is already mounted (busy)")


def _mount_problem(path: str, timeout: float = 5.0) -> str | None:
    """Why a mounted ``path`` does not answer, or None when it does. statfs always
    reaches the filesystem (stat may be answered from the kernel's cache); it runs in a
    child process (``stat -f``) so a hung mount cannot hang the command, and no thread
    is started here."""
    try:
        done = subprocess.run(["stat", "-f", "-c", "%b", path], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "not answering"
    except OSError:
        return None  # no stat(1): assume a live mount, the message says busy
    if done.returncode == 0:
        return None
    return done.stderr.strip().rsplit(": ", 1)[-1] or "not answering"


# A server that answers but is busy (5xx, SlowDown, a reset connection) is asked again
# this many times, with growing pauses (about 4 s in all), before the mount gives up.
PREFLIGHT_ROUNDS = 5


def preflight(config: MountConfig, sleep: Callable[[float], None] = time.sleep) -> None:
    """One request with short timeouts, so bad credentials or endpoints fail before
    mounting. An endpoint that cannot be reached, or does not answer in time, fails at
    once (after one retry); a busy one is asked again for a few seconds."""
    from mssfs.store.http import HttpStore

    quick = replace(config.store, connect_timeout=min(config.store.connect_timeout, 5.0),
                    read_timeout=min(config.store.read_timeout, 10.0), max_retries=1)
    store = HttpStore(quick)
    endpoint, bucket = config.store.endpoint, config.source.bucket
    try:
        for round_ in range(PREFLIGHT_ROUNDS):
            try:
                if bucket is None:
                    store.list_buckets()
                else:
                    _preflight_bucket(store, bucket, config.source.prefix)
                return
            except errors.StoreError as exc:
                if round_ + 1 == PREFLIGHT_ROUNDS or not _busy(exc):
                    raise
                sleep(0.25 * 2**round_)
    except (errors.InvalidAccessKeyId, errors.SignatureDoesNotMatch):
        raise CliError(f"authentication failed at {endpoint}: unknown access key or wrong secret")
    except errors.NoSuchBucket:
        raise CliError(f"bucket {bucket!r} does not exist at {endpoint}")
    except errors.AccessDenied as exc:
        raise CliError(f"access denied at {endpoint}: {exc.message}")
    except errors.NotS3Endpoint:
        raise CliError(f"{endpoint} does not answer like an S3 endpoint")
    except errors.ConnectionFailed:
        raise CliError(f"cannot connect to {endpoint}")
    except errors.RequestTimeout:
        raise CliError(f"{endpoint} did not answer in time")
    except errors.StoreError as exc:
        if exc.code == "TLSError":
            raise CliError(f"TLS certificate of {endpoint} not trusted: trust its CA with "
                           "-o ca_bundle=FILE (or -o no_verify_ssl, unsafe)")
        raise CliError(f"{endpoint}: {exc}")
    finally:
        store.close()


def _busy(exc: errors.StoreError) -> bool:
    """A transient failure from a server that is there: it answered 5xx or SlowDown,
    broke a connection it had accepted, or cut an answer short."""
    if isinstance(exc, errors.ConnectionFailed):
        return exc.connected
    if isinstance(exc, errors.IncompleteBody):
        return True
    return (exc.transient and exc.status >= 500) or exc.status == 429


def _preflight_bucket(store: Any, bucket: str, prefix: str) -> None:
    try:
        # A LIST has an error body (a HEAD has none), so a bad key is told apart from
        # a missing bucket or a refused one.
        store.list_objects(bucket, prefix, "/", max_keys=1)
    except (errors.InvalidAccessKeyId, errors.SignatureDoesNotMatch):
        raise
    except errors.AccessDenied:
        store.head_bucket(bucket)  # may read objects without the right to list them


def _absolute(section: Any, *names: str) -> Any:
    """Paths made absolute now: the daemon works from ``/`` so it holds no directory busy."""
    return replace(section, **{n: os.path.abspath(getattr(section, n))
                               for n in names if getattr(section, n)})


def _upload_section(values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    from mssfs.recovery import default_recovery_dir

    section = build_section("upload", values)
    if section.recovery_dir is None:
        home = env.get("HOME") or os.path.expanduser("~")
        section = replace(section, recovery_dir=default_recovery_dir(
            home, env.get("XDG_DATA_HOME")))
    return _absolute(section, "staging_dir", "recovery_dir")


def runtime_dir(env: Mapping[str, str]) -> str:
    """Where mount pid files live: $XDG_RUNTIME_DIR/mssfs, else /tmp/mssfs-UID."""
    base = env.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "mssfs") if base else f"/tmp/mssfs-{os.getuid()}"
