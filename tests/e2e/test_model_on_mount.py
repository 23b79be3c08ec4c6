"""Model-based test on the real mount: the same random operations on the mount and on a
local reference directory, compared after every step (issue 5 §2).

A hypothesis ``RuleBasedStateMachine`` picks operations (create, open handles that write
at offsets, append and read, truncate, rename, unlink, mkdir, rmdir, close, remount) on a
small set of paths, so that collisions, non-empty directories and missing parents are
frequent. Each operation runs with ``os`` calls on both sides: the result or the errno
must be equal. After every step the two trees are walked and compared (types, sizes,
contents). Each example works in a fresh directory of one mount (a remount replaces the
mount and must show the same tree). ``tests/filesystem/test_model.py`` is the in-memory
twin; this one goes through the kernel, the daemon and SeaweedFS.

Budget: derandomized (reproducible in CI), at least ``MIN_STEPS`` steps in all (the test
counts them), ``deadline=None``.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

MIN_STEPS = 2000
PATHS = st.sampled_from(["a", "b", "d", "e", "d/a", "d/b", "d/f", "e/a", "d/f/a"])
DATA = st.binary(min_size=1, max_size=3000)
OFFSETS = st.integers(min_value=0, max_value=40_000)
# (flags, can read, appends) of the handles the machine opens.
MODES = st.sampled_from([
    (os.O_RDWR, True, False),
    (os.O_RDWR | os.O_CREAT, True, False),
    (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False, False),
    (os.O_WRONLY | os.O_CREAT | os.O_APPEND, False, True),
])


class World:
    """The mount the machine works on; set by the test, replaced by ``remount``."""

    mounter = None
    bucket = ""
    mount = None
    steps = 0


def outcome(call, *args):
    """('ok', value) or ('err', errno name) of ``call(*args)``."""
    try:
        return "ok", call(*args)
    except OSError as exc:
        return "err", errno.errorcode.get(exc.errno, exc.errno)


def tree(root: Path) -> dict[str, object]:
    """path → 'dir' or (size, bytes) of everything under ``root``."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            found[str((base / name).relative_to(root))] = "dir"
        for name in filenames:
            path = base / name
            found[str(path.relative_to(root))] = (path.stat().st_size, path.read_bytes())
    return found


class Handle:
    def __init__(self, path: str, fds: tuple[int, int], readable: bool, appends: bool) -> None:
        self.path, self.fds, self.readable, self.appends = path, fds, readable, appends


class MountModel(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.name = f"ex-{uuid.uuid4().hex[:8]}"
        (World.mount.path / self.name).mkdir()
        self.ref = Path(tempfile.mkdtemp(prefix="mssfs-model-"))
        self.open: list[Handle] = []
        self.remounts = 0

    @property
    def mnt(self) -> Path:
        return World.mount.path / self.name

    def both(self, call, *relative, extra=()):
        """Run ``call`` on the mount and on the reference; both outcomes must agree."""
        got = outcome(call, *(str(self.mnt / p) for p in relative), *extra)
        want = outcome(call, *(str(self.ref / p) for p in relative), *extra)
        assert got == want, f"{call.__name__}{relative}: mount {got}, reference {want}"
        return got

    # -- namespace ------------------------------------------------------------------
    @rule(path=PATHS)
    def create(self, path):
        self.both(lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)), path)

    @rule(path=PATHS, data=DATA)
    def append(self, path, data):
        def append_to(p):
            with open(p, "ab") as handle:
                return handle.write(data)
        self.both(append_to, path)

    @rule(path=PATHS, length=st.integers(min_value=0, max_value=9000))
    def truncate(self, path, length):
        self.both(os.truncate, path, extra=(length,))

    @rule(path=PATHS)
    def mkdir(self, path):
        self.both(os.mkdir, path)

    @precondition(lambda self: not self.open)
    @rule(path=PATHS)
    def rmdir(self, path):
        self.both(os.rmdir, path)

    @precondition(lambda self: not self.open)
    @rule(path=PATHS)
    def unlink(self, path):
        self.both(os.unlink, path)

    @precondition(lambda self: not self.open)
    @rule(src=PATHS, dst=PATHS)
    def rename(self, src, dst):
        self.both(os.rename, src, dst)

    @rule(path=PATHS)
    def read_whole(self, path):
        self.both(lambda p: Path(p).read_bytes(), path)

    @precondition(lambda self: not self.open and self.remounts < 1)
    @rule()
    def remount(self):
        World.mounter.umount(World.mount)
        World.mount = World.mounter.mount(World.bucket)
        self.remounts += 1

    # -- handles --------------------------------------------------------------------
    @precondition(lambda self: len(self.open) < 2)
    @rule(target=handles, path=PATHS, mode=MODES)
    def open_handle(self, path, mode):
        flags, readable, appends = mode
        got = outcome(os.open, str(self.mnt / path), flags, 0o644)
        want = outcome(os.open, str(self.ref / path), flags, 0o644)
        for kind, fd in (got, want):
            if kind == "ok" and got[0] != want[0]:
                os.close(fd)
        assert got[0] == want[0] and (got[0] == "ok" or got == want), (
            f"open({path}, {flags:#o}): mount {got}, reference {want}")
        if got[0] != "ok":
            return None
        handle = Handle(path, (got[1], want[1]), readable, appends)
        self.open.append(handle)
        return handle

    @rule(handle=handles, offset=OFFSETS, data=DATA)
    def write_at(self, handle, offset, data):
        if handle is None or handle not in self.open:
            return
        results = [outcome(os.write if handle.appends else os.pwrite, fd, data,
                           *(() if handle.appends else (offset,))) for fd in handle.fds]
        assert results[0] == results[1], f"write {handle.path}: {results}"

    @rule(handle=handles, offset=OFFSETS, size=st.integers(min_value=0, max_value=5000))
    def read_at(self, handle, offset, size):
        if handle is None or handle not in self.open or not handle.readable:
            return
        results = [outcome(os.pread, fd, size, offset) for fd in handle.fds]
        assert results[0] == results[1], f"pread {handle.path} @{offset}+{size}"

    @rule(handle=consumes(handles))
    def close(self, handle):
        if handle is None or handle not in self.open:
            return
        self.open.remove(handle)
        results = [outcome(os.close, fd) for fd in handle.fds]
        assert results[0] == results[1], f"close {handle.path}: {results}"

    # -- the comparison ---------------------------------------------------------------
    @invariant()
    def same_tree(self):
        World.steps += 1
        assert tree(self.mnt) == tree(self.ref)

    def teardown(self):
        for handle in self.open:
            for fd in handle.fds:
                outcome(os.close, fd)
        shutil.rmtree(self.ref, ignore_errors=True)


@pytest.mark.timeout(600)
def test_the_mount_behaves_like_a_local_directory(mounter, new_bucket):
    World.mounter, World.bucket, World.steps = mounter, new_bucket(), 0
    World.mount = mounter.mount(World.bucket)
    run_state_machine_as_test(MountModel, settings=settings(
        max_examples=60, stateful_step_count=50, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck), print_blob=True))
    print(f"model: {World.steps} steps")
    assert World.steps >= MIN_STEPS, f"only {World.steps} steps ran"
    mounter.umount(World.mount)
