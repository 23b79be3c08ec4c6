"""RecoveryFolder: where the bytes of failed uploads are kept."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pytest

from mssfs.recovery import RecoveryFolder, default_recovery_dir

# Every save logs its one ERROR line: that is the behaviour under test, not noise.
pytestmark = pytest.mark.allow_warnings(r"failed: its \d+ bytes are kept in ")

NOW = 1_764_100_000.25  # 2025-11-25T19:46:40.25Z


@pytest.fixture
def folder(tmp_path):
    return RecoveryFolder(str(tmp_path / "recovery"), clock=lambda: NOW)


def test_save_bytes_is_exact_private_and_logged(folder, caplog):
    caplog.set_level(logging.ERROR, logger="mssfs.recovery")
    path = folder.save("bucket", "dir/a file+b.txt", b"hello\x00world")
    with open(path, "rb") as f:
        assert f.read() == b"hello\x00world"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder.path).st_mode) == 0o700
    assert os.path.dirname(path) == folder.path
    name = os.path.basename(path)
    assert "/" not in name and name.startswith("20251125T194640.250000Z+bucket+")
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert path in record.getMessage()
    assert "s3://bucket/dir/a file+b.txt" in record.getMessage()


def test_list_recovers_bucket_key_size_and_time(folder):
    folder.save("b", "x/y.bin", b"12345")
    [entry] = folder.list()
    assert (entry.bucket, entry.key, entry.size, entry.truncated) == ("b", "x/y.bin", 5, False)
    assert entry.saved_at == pytest.approx(NOW)


def test_save_from_path_and_from_descriptor(folder, tmp_path):
    source = tmp_path / "staged"
    data = os.urandom(3 * 1024 * 1024 + 7)
    source.write_bytes(data)
    from_path = folder.save("b", "k1", str(source))
    fd = os.open(source, os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)  # the copy must not depend on the position
        from_fd = folder.save("b", "k2", fd)
    finally:
        os.close(fd)
    for path in (from_path, from_fd):
        with open(path, "rb") as f:
            assert f.read() == data


def test_same_instant_same_key_gets_two_files(folder):
    first = folder.save("b", "k", b"one")
    second = folder.save("b", "k", b"two")
    assert first != second
    assert sorted(e.key for e in folder.list()) == ["k", "k"]


def test_long_key_is_shortened_to_a_valid_name(folder):
    key = "d/" + "é" * 400
    path = folder.save("b", key, b"x")
    assert len(os.path.basename(path).encode()) <= 255
    [entry] = folder.list()
    assert entry.truncated and key.startswith(entry.key) and entry.key


def test_existing_open_folder_is_tightened(tmp_path):
    target = tmp_path / "r"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    RecoveryFolder(str(target)).save("b", "k", b"")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700


def test_list_of_missing_folder_is_empty_and_ignores_partials(tmp_path, folder):
    assert RecoveryFolder(str(tmp_path / "nope")).list() == []
    folder.save("b", "k", b"1")
    (tmp_path / "recovery" / ".partial-junk").write_bytes(b"x")
    assert len(folder.list()) == 1


def test_default_recovery_dir():
    assert default_recovery_dir("/home/u") == "/home/u/.local/share/mssfs/recovery"
    assert default_recovery_dir("/home/u", "/data") == "/data/mssfs/recovery"


def test_a_moved_file_is_renamed_in_without_a_copy(tmp_path):
    source = tmp_path / "staged"
    source.write_bytes(b"staged bytes")
    inode = source.stat().st_ino
    folder = RecoveryFolder(str(tmp_path / "recovery"))
    saved = folder.save("b", "k", str(source), move=True)
    assert not source.exists()
    assert os.stat(saved).st_ino == inode
    assert Path(saved).read_bytes() == b"staged bytes"
    assert [f.key for f in folder.list()] == ["k"]


def test_a_move_across_filesystems_is_a_copy(tmp_path, monkeypatch):
    source = tmp_path / "staged"
    source.write_bytes(b"staged bytes")
    real = os.replace

    def replace(src, dst):
        if os.fspath(src) == str(source):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    folder = RecoveryFolder(str(tmp_path / "recovery"))
    saved = folder.save("b", "k", str(source), move=True)
    assert source.exists()  # left to the caller
    assert Path(saved).read_bytes() == b"staged bytes" and len(folder.list()) == 1
