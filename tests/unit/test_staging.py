"""Staging files: marked with their object and locked while their mount lives; the ones
a killed mount left are moved into the recovery folder by the next mount."""

from __future__ import annotations

import os
import time

import pytest

from mssfs import staging
from mssfs.recovery import RecoveryFolder

LATER = lambda: time.time() + 60  # noqa: E731 (a clock past min_age)


def orphan(tmp_path, data: bytes, *, bucket="b", key="dir/k", whole=True) -> str:
    """A staging file whose mount has ended: made, written, its descriptor closed."""
    fd, path = staging.create(str(tmp_path / "staging"), bucket, key, whole=whole)
    os.write(fd, data)
    os.close(fd)
    return path


@pytest.mark.allow_warnings()
def test_an_orphan_goes_to_the_recovery_folder_byte_exact(tmp_path, caplog):
    data = os.urandom(300_000)
    path = orphan(tmp_path, data)
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    (saved,) = staging.salvage(str(tmp_path / "staging"), recovery, clock=LATER)
    assert not os.path.exists(path)
    (found,) = recovery.list()
    assert (found.bucket, found.key, found.path) == ("b", "dir/k", saved)
    with open(saved, "rb") as kept:
        assert kept.read() == data
    assert "s3://b/dir/k" in caplog.text and "zeros" not in caplog.text


def test_a_live_mounts_file_is_left_alone(tmp_path):
    fd, path = staging.create(str(tmp_path / "staging"), "b", "k", whole=True)
    try:
        os.write(fd, b"being written")
        recovery = RecoveryFolder(str(tmp_path / "recovery"))
        assert staging.salvage(str(tmp_path / "staging"), recovery, clock=LATER) == []
        assert os.path.exists(path) and recovery.list() == []
    finally:
        os.close(fd)


def test_a_young_file_is_left_alone(tmp_path):
    # Between mkstemp and flock a live file is unlocked for a moment: age protects it.
    path = orphan(tmp_path, b"just made")
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    assert staging.salvage(str(tmp_path / "staging"), recovery) == []
    assert os.path.exists(path)


@pytest.mark.allow_warnings()
def test_a_partial_copy_of_an_existing_object_is_kept_and_said_to_be(tmp_path, caplog):
    orphan(tmp_path, b"\0\0\0appended", whole=False)
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    assert len(staging.salvage(str(tmp_path / "staging"), recovery, clock=LATER)) == 1
    assert "never read are zeros" in caplog.text


def test_an_empty_new_file_is_removed_and_nothing_kept(tmp_path):
    path = orphan(tmp_path, b"")
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    assert staging.salvage(str(tmp_path / "staging"), recovery, clock=LATER) == []
    assert not os.path.exists(path) and recovery.list() == []


def test_files_that_are_not_staging_files_of_ours_are_left_alone(tmp_path):
    folder = tmp_path / "staging"
    folder.mkdir()
    (folder / "mssfs-unmarked").write_bytes(b"an older mssfs's, or another program's")
    (folder / "mssfs-a-directory").mkdir()
    (folder / "other").write_bytes(b"x")
    old = time.time() - 3600
    for name in ("mssfs-unmarked", "other"):
        os.utime(folder / name, (old, old))
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    assert staging.salvage(str(folder), recovery, clock=LATER) == []
    assert sorted(os.listdir(folder)) == ["mssfs-a-directory", "mssfs-unmarked", "other"]
    assert staging.salvage(str(tmp_path / "missing"), recovery) == []
