"""Secrets out of the mount process's environment once they are read.

Why. The secret key arrives in ``MSS_SECRET_ACCESS_KEY`` (or ``AWS_*``). Once ``cli``
has read it into the store's config, keeping it in the environment only exposes it:
every child the mount starts (libfuse runs ``fusermount3``; ``stat -f`` for checks)
would inherit it, and ``/proc/PID/environ`` of the mount itself shows it to whoever may
read that file.

How. ``scrub_secrets`` removes the variables from the environment mapping
(``os.environ``, so libc's ``environ`` too: children get a clean one).
``blank_initial_environment`` then overwrites the values in the process's original
environment block, which ``/proc/PID/environ`` shows and which ``unsetenv`` leaves in
place: the kernel gives its bounds (``env_start``/``env_end``, fields 50 and 51 of
``/proc/self/stat``), and the process writes over its own memory through
``/proc/self/mem``. The strings are no longer referenced (``unsetenv`` dropped their
pointers), so only the shown text changes. Where ``/proc`` is unavailable this is
skipped: the children are still clean.

No lock, no thread: called once, before the mount starts.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

# The variables that carry a secret (the access key id is not one).
SECRET_VARIABLES = ("MSS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "MSS_SESSION_TOKEN")


def scrub_secrets(env: MutableMapping[str, str],
                  names: Iterable[str] = SECRET_VARIABLES) -> None:
    for name in names:
        env.pop(name, None)


def blank_initial_environment(names: Iterable[str] = SECRET_VARIABLES,
                              proc: str = "/proc/self") -> int:
    """Overwrite the values of ``names`` in the original environment block with ``*``;
    return how many were blanked (0 where /proc does not allow it)."""
    try:
        with open(f"{proc}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # fields 50 and 51 of stat(5)
        with open(f"{proc}/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            block = mem.read(end - start)
            blanked = 0
            for offset, length in _values(block, names):
                mem.seek(start + offset)
                mem.write(b"*" * length)
                blanked += 1
            return blanked
    except (OSError, ValueError, IndexError):
        return 0


def _values(block: bytes, names: Iterable[str]) -> list[tuple[int, int]]:
    """(offset, length) of the value of each ``NAME=value`` entry for ``names``."""
    wanted = {name.encode() + b"=" for name in names}
    found, offset = [], 0
    for entry in block.split(b"\0"):
        for prefix in wanted:
            if entry.startswith(prefix):
                found.append((offset + len(prefix), len(entry) - len(prefix)))
        offset += len(entry) + 1
    return found
