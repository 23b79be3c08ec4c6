"""The commands' side of the control channel: umount's wait with progress, URL names."""

import errno
import io

import pytest

from mssfs import control_client
from mssfs.control_client import ControlError, presigned_url, wait_for_uploads
from mssfs.progress import Progress


def snapshots(*uploads):
    answers = iter(uploads)

    def read(mountpoint):
        return {"uploads": next(answers)}

    return read


def test_umount_waits_while_uploads_run_and_shows_what_is_left(monkeypatch):
    monkeypatch.setattr(control_client, "read_stats", snapshots(
        {"files_uploading": 1, "files_dirty": 1, "bytes_dirty": 3 << 20, "in_flight": 2},
        {"files_uploading": 1, "bytes_dirty": 1 << 20, "in_flight": 1},
        {"files_dirty": 0, "in_flight": 0, "pending": 0}))
    out = io.StringIO()
    wait_for_uploads("/m", Progress(out, tty=True), timeout=60, interval=0)
    text = out.getvalue()
    assert "2 files, 3.0 MiB left" in text and "1 files, 1.0 MiB left" in text
    assert text.endswith("uploads finished\x1b[K\n")


def test_nothing_running_means_no_wait_and_no_output(monkeypatch):
    monkeypatch.setattr(control_client, "read_stats", snapshots({"files_dirty": 1}))
    out = io.StringIO()
    wait_for_uploads("/m", Progress(out, tty=True), timeout=60, interval=0)
    assert out.getvalue() == ""


def test_a_mount_that_cannot_answer_is_left_to_the_unmount(monkeypatch):
    def fail(mountpoint):
        raise ControlError("not an mssfs mount")

    monkeypatch.setattr(control_client, "read_stats", fail)
    wait_for_uploads("/m", Progress(io.StringIO(), tty=False), timeout=60, interval=0)


def test_the_wait_is_bounded(monkeypatch):
    monkeypatch.setattr(control_client, "read_stats", lambda m: {"uploads": {"in_flight": 1}})
    with pytest.raises(ControlError, match="still running"):
        wait_for_uploads("/m", Progress(io.StringIO(), tty=False), timeout=0, interval=0)


def test_put_url_of_a_missing_file_asks_its_directory(monkeypatch, tmp_path):
    asked = []

    def getxattr(path, name):
        asked.append((str(path), name))
        return b"http://signed"

    monkeypatch.setattr(control_client.os, "getxattr", getxattr)
    assert presigned_url(str(tmp_path / "new.txt"), method="PUT", expires=60) == "http://signed"
    (tmp_path / "old.txt").write_text("x")
    presigned_url(str(tmp_path / "old.txt"), method="PUT", expires=60)
    assert asked == [(str(tmp_path), "user.mssfs.url.put.60/new.txt"),
                     (str(tmp_path / "old.txt"), "user.mssfs.url.put.60")]


def test_errors_of_the_url_request_are_explained(monkeypatch, tmp_path):
    def einval(path, name):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(control_client.os, "getxattr", einval)
    with pytest.raises(ControlError, match="1 s to 7 days"):
        presigned_url(str(tmp_path), expires=0)
