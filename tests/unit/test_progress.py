"""Progress: one redrawn line on a terminal, rate-limited plain lines elsewhere."""

import io

from mssfs.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_terminal_redraws_one_line():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.update("1 left")
    progress.update("0 left")
    progress.done("finished")
    assert out.getvalue() == "\r1 left\x1b[K\r0 left\x1b[K\rfinished\x1b[K\n"


def test_plain_lines_only_on_change_and_at_most_every_interval():
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=False, interval=5.0, clock=clock)
    progress.update("3 left")
    progress.update("3 left")
    clock.now = 1.0
    progress.update("2 left")  # too soon: not written
    clock.now = 6.0
    progress.update("1 left")
    progress.done("finished")
    assert out.getvalue().splitlines() == ["3 left", "1 left", "finished"]
    assert "\r" not in out.getvalue()


def test_done_without_anything_drawn_writes_nothing():
    out = io.StringIO()
    Progress(out, tty=True).done()
    Progress(out, tty=False).done()
    assert out.getvalue() == ""
