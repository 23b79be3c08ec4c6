"""Passthrough: which opens get a backing file, and the kernel's rule that every open of
an inode with a passthrough open is passthrough too, on the same backing file."""

from __future__ import annotations

import os
import threading
import time

import pytest

from mssfs.passthrough import FileBusy, Passthrough


class FakeKernel:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.ids = iter(range(1, 1000))
        self.open: set[int] = set()

    def open_backing(self, fd: int) -> int:
        os.fstat(fd)  # a real, open descriptor
        if self.refuse:
            return 0
        backing = next(self.ids)
        self.open.add(backing)
        return backing

    def close_backing(self, backing_id: int) -> None:
        self.open.remove(backing_id)


class Whole:
    """A disk cache's whole_file/unpin pair over a real file, counting pins."""

    def __init__(self, path: str, present: bool = True) -> None:
        self.path, self.present, self.pins = path, present, 0

    def whole_file(self) -> int | None:
        if not self.present:
            return None
        self.pins += 1
        return os.open(self.path, os.O_RDONLY)

    def unpin(self) -> None:
        self.pins -= 1


@pytest.fixture
def whole(tmp_path) -> Whole:
    path = tmp_path / "object"
    path.write_bytes(b"bytes")
    return Whole(str(path))


def enabled(kernel: FakeKernel | None = None, wait: float = 0.3) -> Passthrough:
    pt = Passthrough(wait=wait)
    pt.kernel = kernel or FakeKernel()
    return pt


def test_without_kernel_support_nothing_is_passthrough_or_counted(whole):
    pt = Passthrough(wait=0.1)
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0
    assert whole.pins == 0
    pt.open_other("/f")
    pt.release("/f", 0)
    assert pt.stats() == {"on": False, "opens": 0, "files_open": 0}


def test_readers_share_one_backing_file_closed_by_the_last_release(whole):
    kernel = FakeKernel()
    pt = enabled(kernel)
    first = pt.open_reader("/f", whole.whole_file, whole.unpin)
    second = pt.open_reader("/f", whole.whole_file, whole.unpin)
    assert first == second > 0 and kernel.open == {first}
    assert whole.pins == 1  # pinned once, for the backing file
    pt.release("/f", first)
    assert kernel.open == {first}
    pt.release("/f", second)
    assert kernel.open == set() and whole.pins == 0
    assert pt.stats() == {"on": True, "opens": 2, "files_open": 0}


def test_a_file_not_wholly_cached_is_served_and_blocks_a_backing_file_beside_it(whole):
    pt = enabled()
    partial = Whole(whole.path, present=False)
    assert pt.open_reader("/f", partial.whole_file, partial.unpin) == 0
    # Now wholly cached, but a served handle is open: the kernel would refuse.
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0
    assert whole.pins == 0
    pt.release("/f", 0)
    pt.release("/f", 0)
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) > 0


def test_a_refused_backing_file_is_unpinned_and_served(whole):
    pt = enabled(FakeKernel(refuse=True))
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0
    assert whole.pins == 0


def test_a_writer_waits_for_the_readers_then_gets_ebusy(whole):
    pt = enabled(wait=0.3)
    backing = pt.open_reader("/f", whole.whole_file, whole.unpin)
    started = time.monotonic()
    with pytest.raises(FileBusy):
        pt.open_other("/f")
    assert time.monotonic() - started >= 0.3
    pt.open_other("/g")  # other paths are not affected
    threading.Timer(0.1, pt.release, ("/f", backing)).start()
    pt.open_other("/f")  # the reader's release lets it in
    # ... and now a reader of /f is served, beside the writer.
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0


def test_rename_moves_backings_and_counts_and_unlink_frees_the_name(whole):
    kernel = FakeKernel()
    pt = enabled(kernel)
    backing = pt.open_reader("/d/f", whole.whole_file, whole.unpin)
    pt.open_other("/d/g")
    pt.rename("/d", "/e")
    assert pt.open_reader("/e/f", whole.whole_file, whole.unpin) == backing  # joins
    assert pt.open_reader("/e/g", whole.whole_file, whole.unpin) == 0  # served beside
    pt.forget("/e/f")  # unlinked: a new file there is another inode
    pt.open_other("/e/f")
    pt.release("/e/f", backing)  # found by its id
    pt.release("/e/f", backing)
    assert kernel.open == set() and whole.pins == 0


def test_an_open_waits_briefly_for_served_handles_their_application_closed(whole):
    # `cat f; cat f`: the first cat's handle (served by mssfs while it filled the cache)
    # was closed (FLUSH), but the kernel sends its RELEASE after close(2) returned, so it
    # may arrive after the second cat's OPEN. That open waits for it, then passes through.
    pt = enabled()
    assert pt.open_reader("/f", lambda: None, lambda: None) == 0  # served: not cached yet
    pt.closing("/f")
    threading.Timer(0.05, pt.release, args=("/f", 0)).start()
    backing = pt.open_reader("/f", whole.whole_file, whole.unpin)
    assert backing and pt.stats()["files_open"] == 1
    pt.release("/f", backing)
    assert whole.pins == 0


def test_an_open_does_not_wait_for_a_served_handle_still_open(whole):
    pt = enabled(wait=5.0)
    pt.open_other("/f")  # a writer, not closed
    started = time.monotonic()
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0
    assert time.monotonic() - started < 1.0 and whole.pins == 0
    pt.release("/f", 0)
    pt.release("/f", 0)


def test_a_closed_handle_that_is_never_released_is_waited_for_only_briefly(whole):
    # dup'd descriptors: close(2) of one sends FLUSH, the handle lives on in the other.
    pt = enabled()
    pt.settle = 0.1
    assert pt.open_reader("/f", lambda: None, lambda: None) == 0
    pt.closing("/f")
    started = time.monotonic()
    assert pt.open_reader("/f", whole.whole_file, whole.unpin) == 0
    assert 0.1 <= time.monotonic() - started < 1.0
    pt.release("/f", 0)
    pt.release("/f", 0)
    assert pt.open_reader("/f", whole.whole_file, whole.unpin)  # nothing served now


def test_closing_counts_move_with_a_rename(whole):
    pt = enabled()
    assert pt.open_reader("/a", lambda: None, lambda: None) == 0
    pt.closing("/a")
    pt.rename("/a", "/b")
    threading.Timer(0.05, pt.release, args=("/b", 0)).start()
    assert pt.open_reader("/b", whole.whole_file, whole.unpin)
