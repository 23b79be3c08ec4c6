"""Model-based test: random sequences of operations against a dict-of-paths reference.

A hypothesis state machine drives ``Filesystem`` on ``MemoryStore`` with writes, appends,
unlinks, mkdir/rmdir, renames of files and directories and the passing of time (cache
expiry), and checks after every step that reads and listings agree with the model
(mountpoint-s3's reference tests, in Python).
"""

import os
import pathlib
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mssfs import paths
from mssfs.errors import DirectoryNotEmpty, Exists, IsADirectory, NotADirectory

NAMES = st.sampled_from(["a", "b", "c.txt"])
DATA = st.binary(max_size=64)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FilesystemModel(RuleBasedStateMachine):
    build_env = None  # set by the test: conftest.build_env

    def __init__(self) -> None:
        super().__init__()
        self.workdir = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.closers: list = []
        self.env = type(self).build_env(pathlib.Path(self.workdir.name), self.clock, self.closers)
        self.fs = self.env.fs
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.links: dict[str, str] = {}
        self.dirs: set[str] = {"/"}

    def teardown(self) -> None:
        for close in self.closers:
            close()
        self.workdir.cleanup()

    def children(self, directory: str) -> set[str]:
        names = {p for p in [*self.files, *self.dirs, *self.links] if p != "/"}
        return {paths.split(p)[1] for p in names if paths.split(p)[0] == directory}

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs or path in self.links

    @rule(data=st.data(), name=st.sampled_from(["l", "a"]), dest=st.sampled_from(["a", "../x"]))
    def symlink(self, data, name, dest):
        path = paths.join(data.draw(st.sampled_from(sorted(self.dirs))), name)
        if self.exists(path):
            return
        self.fs.symlink(path, dest)
        self.links[path] = dest

    @precondition(lambda self: self.links)
    @rule(data=st.data())
    def unlink_symlink(self, data):
        path = data.draw(st.sampled_from(sorted(self.links)))
        self.fs.unlink(path)
        del self.links[path]

    @rule(data=st.data(), name=NAMES, content=DATA)
    def write(self, data, name, content):
        parent = data.draw(st.sampled_from(sorted(self.dirs)))
        path = paths.join(parent, name)
        if path in self.dirs or path in self.links:
            return
        if path in self.files:
            fh = self.fs.open(path, os.O_WRONLY | os.O_TRUNC)
        else:
            fh = self.fs.create(path, 0o644, os.O_WRONLY)
        if content:
            self.fs.write(path, fh, 0, content)
        self.fs.flush(path, fh)
        self.fs.release(path, fh)
        self.files[path] = content
        self.modes.setdefault(path, 0o644)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), content=DATA)
    def append(self, data, content):
        path = data.draw(st.sampled_from(sorted(self.files)))
        fh = self.fs.open(path, os.O_WRONLY | os.O_APPEND)
        self.fs.write(path, fh, 0, content)
        self.fs.release(path, fh)
        self.files[path] += content

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def unlink(self, data):
        path = data.draw(st.sampled_from(sorted(self.files)))
        self.fs.unlink(path)
        del self.files[path]
        del self.modes[path]

    @precondition(lambda self: self.files)
    @rule(data=st.data(), length=st.integers(0, 80))
    def truncate(self, data, length):
        path = data.draw(st.sampled_from(sorted(self.files)))
        self.fs.truncate(path, length)
        self.files[path] = self.files[path][:length].ljust(length, b"\0")

    @precondition(lambda self: self.files)
    @rule(data=st.data(), mode=st.sampled_from([0o600, 0o644, 0o755]))
    def chmod(self, data, mode):
        path = data.draw(st.sampled_from(sorted(self.files)))
        self.fs.chmod(path, mode)
        self.modes[path] = mode

    @rule(data=st.data(), name=st.sampled_from(["d", "e"]))
    def mkdir(self, data, name):
        parent = data.draw(st.sampled_from(sorted(self.dirs)))
        path = paths.join(parent, name)
        if self.exists(path):
            try:
                self.fs.mkdir(path, 0o755)
            except Exists:
                return
            raise AssertionError(f"mkdir {path} over an existing name succeeded")
        self.fs.mkdir(path, 0o755)
        self.dirs.add(path)

    @precondition(lambda self: len(self.dirs) > 1)
    @rule(data=st.data())
    def rmdir(self, data):
        path = data.draw(st.sampled_from(sorted(self.dirs - {"/"})))
        if self.children(path):
            try:
                self.fs.rmdir(path)
            except DirectoryNotEmpty:
                return
            raise AssertionError(f"rmdir of non-empty {path} succeeded")
        self.fs.rmdir(path)
        self.dirs.remove(path)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), name=NAMES)
    def rename_file(self, data, name):
        old = data.draw(st.sampled_from(sorted(self.files)))
        new = paths.join(data.draw(st.sampled_from(sorted(self.dirs))), name)
        if new in self.links:
            return
        if new in self.dirs:
            try:
                self.fs.rename(old, new)
            except IsADirectory:
                return
            raise AssertionError(f"rename of file {old} over directory {new} succeeded")
        self.fs.rename(old, new)
        if old != new:
            self.files[new] = self.files.pop(old)
            self.modes[new] = self.modes.pop(old)

    @precondition(lambda self: len(self.dirs) > 1)
    @rule(data=st.data(), name=st.sampled_from(["d", "e", "f"]))
    def rename_dir(self, data, name):
        old = data.draw(st.sampled_from(sorted(self.dirs - {"/"})))
        parent = data.draw(st.sampled_from(sorted(self.dirs)))
        new = paths.join(parent, name)
        if new == old or new.startswith(old + "/"):
            return
        if new in self.links:
            return
        if new in self.files or (new in self.dirs and self.children(new)):
            try:
                self.fs.rename(old, new)
            except (NotADirectory, DirectoryNotEmpty):
                return
            raise AssertionError(f"rename of {old} over {new} succeeded")
        self.fs.rename(old, new)
        self.dirs.discard(new)
        move = lambda p: new + p[len(old) :] if p == old or p.startswith(old + "/") else p  # noqa: E731
        self.files = {move(p): v for p, v in self.files.items()}
        self.modes = {move(p): v for p, v in self.modes.items()}
        self.links = {move(p): v for p, v in self.links.items()}
        self.dirs = {move(p) for p in self.dirs}

    @rule(seconds=st.sampled_from([1.0, 61.0]))
    def time_passes(self, seconds):
        self.clock.now += seconds

    @invariant()
    def reads_and_listings_agree(self):
        for directory in self.dirs:
            listed = {e.name for e in self.fs.readdir(directory)}
            assert listed == self.children(directory), directory
        for path, content in self.files.items():
            attrs = self.fs.getattr(path)
            assert attrs.size == len(content), path
            assert attrs.mode & 0o777 == self.modes[path], path
            assert self.env.read_file(path) == content
        for path, target in self.links.items():
            assert self.fs.getattr(path).is_symlink, path
            assert self.fs.readlink(path) == target


def test_random_operations_agree_with_the_model(env_builder):
    class Model(FilesystemModel):
        build_env = staticmethod(env_builder)

    run_state_machine_as_test(
        Model, settings=settings(max_examples=60, stateful_step_count=30, deadline=None)
    )
