"""``mount.mssfs``: the helper that ``mount -t fuse.mssfs`` and ``/etc/fstab`` run.

This module translates mount(8)'s helper arguments into ``mssfs mount`` arguments
(pure); the console script is ``cli.mount_helper_main``, since ``cli`` alone reads argv.

How mount(8) finds it. For ``-t fuse.mssfs`` util-linux runs ``/sbin/mount.fuse.mssfs``
when it exists, else ``/sbin/mount.fuse`` (fuse3's ``mount.fuse3``), which in turn runs
the program named by the subtype, ``mssfs``, found on ``$PATH``. Both routes work:

- ``ln -s "$(command -v mount.mssfs)" /sbin/mount.fuse.mssfs`` (the explicit helper:
  works whatever ``$PATH`` mount(8) has, e.g. at boot);
- or, with no symlink, ``mssfs`` in a directory of mount(8)'s sanitised ``$PATH``
  (``/usr/bin``, ``/bin``...: a venv's ``bin`` is not one): ``mssfs SOURCE MOUNTPOINT
  -o ...`` is accepted as ``mssfs mount SOURCE MOUNTPOINT -o ...`` (``cli``).

Arguments: ``SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-t TYPE]``, as mount(8)
passes them. SOURCE is ``BUCKET``, ``BUCKET:/PREFIX``, ``mssfs:BUCKET[:/PREFIX]`` (the
form ``/proc/mounts`` shows) or ``mssfs`` alone for the whole account. ``-f`` (fake)
does nothing; ``-s``, ``-n``, ``-v`` are accepted and ignored; ``-o config=FILE``
is ``--config FILE`` (a config file for this mount); fstab-only options
(``_netdev``, ``nofail``, ``x-systemd.*``...) are ignored by the option parser. The
mount then runs as ``mssfs mount`` does, and returns once the mount is ready.
Credentials cannot come from fstab itself: use ``passwd_file=``, a config file or
``~/.aws/credentials`` of the user mount(8) runs as.
"""

from __future__ import annotations

from collections.abc import Sequence


def translate(argv: Sequence[str]) -> list[str] | None:
    """mount(8)'s helper arguments → ``mssfs`` arguments (None: a fake mount, do nothing)."""
    positionals: list[str] = []
    options: list[str] = []
    fake = False
    items = iter(argv)
    for item in items:
        if item in ("-o", "-t"):
            value = next(items, "")
            if item == "-o" and value:
                options.append(value)
        elif item.startswith("-o") and len(item) > 2:
            options.append(item[2:])
        elif item.startswith("-") and len(item) > 1:
            fake = fake or "f" in item[1:]
        else:
            positionals.append(item)
    if len(positionals) != 2:
        raise SystemExit("usage: mount.mssfs SOURCE MOUNTPOINT [-o OPTIONS]")
    if fake:
        return None
    source, mountpoint = positionals
    if source == "mssfs":
        args = ["mount", mountpoint]
    else:
        args = ["mount", source.removeprefix("mssfs:"), mountpoint]
    kept = []
    for item in ",".join(options).split(","):
        if item.startswith("config="):  # fstab cannot pass --config: -o config=FILE
            args += ["--config", item[len("config="):]]
        elif item == "rw":
            # mount(8) adds "rw" whenever "ro" is absent; it is the default anyway, and
            # kept it would override "ro = true" of a config file.
            continue
        elif item:
            kept.append(item)
    return args + (["-o", ",".join(kept)] if kept else [])
