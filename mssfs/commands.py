"""The commands beside mount/umount: ``url``, ``stats``, ``mpu list|abort``.

How it works. ``add_parsers`` declares them (``cli`` owns argv and calls it), ``run``
executes one. ``url`` and ``stats`` ask the mount over the control channel
(``control_client``) and need no credentials; ``mpu`` talks to the store with the
same credentials and options as ``mssfs mount`` (``cli`` passes a factory for the
store's config, so credentials are resolved in one place). ``wait_before_unmount`` and
``abort_old_uploads`` are the parts of ``umount`` and ``mount`` that live here.

Failures are ``CommandError`` with a one-line message; ``cli`` prints it.
No lock, no thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from mssfs.config import parse_duration

log = logging.getLogger(__name__)


class CommandError(Exception):
    """A one-line failure of a command."""


def _age(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def add_parsers(sub: Any, add_store_arguments: Callable[[Any], None]) -> None:
    url = sub.add_parser(
        "url", help="print a presigned URL of a file on a mount (curl can use it)",
        description="Asks the mount for a presigned URL (SigV4 query signing), like the old "
        "SDK's generate_url(expires_in). No credentials needed: the mount signs it.")
    url.add_argument("path", help="a file under an mssfs mount (for PUT it may not exist)")
    url.add_argument("--expires", type=int, default=3600, metavar="SECONDS",
                     help="validity in seconds, 1 to 604800 [3600]")
    url.add_argument("--method", choices=("GET", "PUT"), default="GET", type=str.upper,
                     help="what the URL allows [GET]")
    stats = sub.add_parser("stats", help="show a mount's live counters",
                           description="Requests by type, bytes in/out, retries, errors, "
                           "cache hit ratios, memory, uploads, the recovery folder.")
    stats.add_argument("mountpoint")
    stats.add_argument("--json", action="store_true", help="print the raw JSON")
    mpu = sub.add_parser("mpu", help="list or abort unfinished multipart uploads")
    actions = mpu.add_subparsers(dest="mpu_command", required=True, metavar="ACTION")
    for name, text in (("list", "list unfinished multipart uploads"),
                       ("abort", "abort unfinished multipart uploads")):
        action = actions.add_parser(
            name, help=text, description=f"{text[0].upper()}{text[1:]} of a bucket "
            "(BUCKET or BUCKET:/PREFIX), of the bucket under an mssfs mount path, or of "
            "every bucket when no target is given. Credentials as for mssfs mount.")
        action.add_argument("target", nargs="?", metavar="BUCKET|PATH")
        action.add_argument("--older-than", type=_age, metavar="AGE",
                            help="only uploads started longer ago than AGE (30m, 2h, 1d)")
        if name == "abort":
            action.add_argument("--yes", action="store_true",
                                help="do not ask for confirmation")
        add_store_arguments(action)


def run(args: argparse.Namespace, store_config: Callable[[str | None], Any]) -> int:
    from mssfs.control_client import ControlError, presigned_url, read_stats
    from mssfs.stats import format_stats

    try:
        if args.command == "url":
            print(presigned_url(args.path, method=args.method, expires=args.expires))
        elif args.command == "stats":
            snap = read_stats(args.mountpoint)
            print(json.dumps(snap, indent=2, sort_keys=True) if args.json
                  else format_stats(snap))
        else:
            return _mpu(args, store_config)
    except ControlError as exc:
        raise CommandError(str(exc))
    return 0


def _mpu(args: argparse.Namespace, store_config: Callable[[str | None], Any]) -> int:
    from dataclasses import replace

    from mssfs import mpu
    from mssfs.progress import Progress
    from mssfs.store.http import HttpStore

    target = mpu.target_of(args.target)
    config = store_config(target.bucket)
    if target.endpoint and target.endpoint != "memory" and not args.endpoint:
        config = replace(config, endpoint=target.endpoint)
    store = HttpStore(config)
    try:
        found = mpu.find_uploads(store, target, older_than=args.older_than)
        if args.mpu_command == "list" or not found:
            for item in found:
                print(mpu.describe(item))
            if not found:
                print("no unfinished multipart uploads", file=sys.stderr)
            return 0
        if not args.yes and not _confirm(len(found)):
            raise CommandError(f"{len(found)} uploads left alone (use --yes to abort them)")
        failures = mpu.abort_all(store, found, Progress())
    finally:
        store.close()
    for failure in failures:
        print(f"mssfs: abort failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"abort {count} unfinished multipart uploads? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def wait_before_unmount(mountpoint: str, *, timeout: float) -> None:
    """``mssfs umount``: let running uploads finish first, with progress."""
    from mssfs.control_client import ControlError, wait_for_uploads
    from mssfs.progress import Progress

    try:
        wait_for_uploads(mountpoint, Progress(), timeout=timeout)
    except ControlError as exc:
        raise CommandError(str(exc))


def abort_old_uploads(config: Any) -> None:
    """``-o abort_uploads_older_than=AGE``: abort the mounted bucket's stale uploads."""
    age = config.upload.abort_uploads_older_than
    if age is None or config.source.bucket is None:
        return
    from mssfs import mpu
    from mssfs.progress import Progress
    from mssfs.store.http import HttpStore

    store = HttpStore(config.store)
    try:
        target = mpu.Target(config.source.bucket, config.source.prefix)
        found = mpu.find_uploads(store, target, older_than=age)
        if found:
            failures = mpu.abort_all(store, found, Progress())
            log.info("aborted %d multipart uploads older than %gs (%d failed)",
                     len(found) - len(failures), age, len(failures))
    finally:
        store.close()
