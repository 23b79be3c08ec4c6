"""handles: flag decoding, handle numbers, one shared OpenFile per path."""

import os
import threading

import pytest

from mssfs.errors import BadFileHandle
from mssfs.handles import HandleTable, OpenFile, open_intent


class FakeBuffer:
    def __init__(self):
        self.closed = []

    def close(self, *, keep_dirty=True):
        self.closed.append(keep_dirty)


def test_open_intent():
    assert open_intent(os.O_RDONLY) == open_intent(os.O_RDONLY | os.O_NOFOLLOW)
    ro = open_intent(os.O_RDONLY)
    assert (ro.read, ro.write, ro.truncate, ro.append) == (True, False, False, False)
    rw = open_intent(os.O_RDWR | os.O_APPEND)
    assert (rw.read, rw.write, rw.append) == (True, True, True)
    wt = open_intent(os.O_WRONLY | os.O_TRUNC)
    assert (wt.read, wt.write, wt.truncate) == (False, True, True)
    assert not open_intent(os.O_RDONLY | os.O_TRUNC).truncate


def test_handles_are_unique_and_freed():
    table = HandleTable()
    a = table.add("/a", open_intent(os.O_RDONLY))
    b = table.add("/a", open_intent(os.O_RDONLY))
    assert a.fh != b.fh
    assert table.get(a.fh) is a
    table.remove(a.fh)
    with pytest.raises(BadFileHandle):
        table.get(a.fh)
    with pytest.raises(BadFileHandle):
        table.remove(a.fh)


def test_one_open_file_per_path_and_last_detach_unregisters():
    table = HandleTable()
    built = []

    def build():
        built.append(OpenFile("/f", FakeBuffer()))
        return built[-1]

    first = table.attach("/f", build)
    second = table.attach("/f", build)
    assert first is second and len(built) == 1 and first.handles == 2
    assert not table.detach(first)
    assert table.open_file("/f") is first
    assert table.detach(first)
    assert table.open_file("/f") is None


def test_concurrent_attach_keeps_one_and_closes_the_loser():
    table = HandleTable()
    barrier = threading.Barrier(2)
    buffers = []

    def build():
        buffer = FakeBuffer()
        buffers.append(buffer)
        barrier.wait(timeout=5)  # both threads build before either registers
        return OpenFile("/f", buffer)

    results = []
    threads = [threading.Thread(target=lambda: results.append(table.attach("/f", build)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results[0] is results[1]
    assert results[0].handles == 2
    losers = [b for b in buffers if b is not results[0].buffer]
    assert len(losers) == 1 and losers[0].closed == [False]


def test_forget_and_move():
    table = HandleTable()
    f = table.attach("/d/f", lambda: OpenFile("/d/f", FakeBuffer()))
    h = table.add("/d/f", open_intent(os.O_WRONLY), open_file=f)
    table.move("/d", "/e")
    assert f.path == "/e/f" and h.path == "/e/f"
    assert table.open_file("/e/f") is f and table.open_file("/d/f") is None
    assert table.forget("/e/f") is f
    assert f.unlinked and table.open_file("/e/f") is None
    assert table.detach(f)  # unregistered already: still reports the last handle
