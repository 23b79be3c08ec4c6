"""Progress of long commands (``mssfs umount``, ``mssfs mpu abort``) on stderr.

How it works. On a terminal, ``update`` rewrites one status line in place (``\\r`` and
erase-to-end-of-line) and ``done`` ends it with a newline. Anywhere else (a log, a pipe,
cron mail) redrawing would leave a mess, so a plain line is written only when the text
changed and at most once every ``interval`` seconds, and ``done`` writes the last one.
The caller formats the text; this module only decides how it reaches the stream.

No lock, no thread: one command drives it from its own loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """One status line on a terminal; rate-limited plain lines elsewhere."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._clock = clock
        self._last_text = ""
        self._last_time: float | None = None
        self._drawn = False

    def update(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif text != self._last_text and (
            self._last_time is None or self._clock() - self._last_time >= self.interval
        ):
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_time = self._clock()
        self._last_text = text

    def done(self, text: str | None = None) -> None:
        """End the status line, with a final ``text`` if given."""
        if self.tty:
            if text is not None:
                self.update(text)
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
        elif text is not None:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._drawn = False
