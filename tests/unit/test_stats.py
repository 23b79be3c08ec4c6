"""Stats: upload states, what umount waits for, the text view."""

import threading
from types import SimpleNamespace

from mssfs.stats import file_state, format_stats, human_size, pending_work, rss_bytes


def open_file(*, dirty=0, pending=False, recovered=False, uploading=False):
    lock = threading.Lock()
    if uploading:
        lock.acquire()
    return SimpleNamespace(commit_lock=lock, recovered=recovered, pending_create=pending,
                           buffer=SimpleNamespace(dirty=dirty, size=10))


def test_file_states():
    assert file_state(None) == "clean"
    assert file_state(open_file()) == "clean"
    assert file_state(open_file(dirty=3)) == "dirty"
    assert file_state(open_file(pending=True)) == "dirty"
    assert file_state(open_file(dirty=3, uploading=True)) == "uploading"
    assert file_state(open_file(dirty=3, recovered=True)) == "failed"


def test_pending_work_counts_files_and_running_uploads():
    assert pending_work({}) == (0, 0, False)
    snap = {"uploads": {"files_dirty": 2, "files_uploading": 1, "bytes_dirty": 99,
                        "in_flight": 0, "pending": 0}}
    assert pending_work(snap) == (3, 99, True)
    idle = {"uploads": {"files_dirty": 1, "bytes_dirty": 5, "in_flight": 0, "pending": 0}}
    assert pending_work(idle) == (1, 5, False)  # open and dirty, nothing running


def test_format_names_every_section():
    snap = {"mount": {"source": "b", "mountpoint": "/m", "pid": 7, "uptime_s": 3.0,
                      "endpoint": "http://e"},
            "requests": {"GetObject": 2, "PutObject": 1}, "bytes_sent": 2048,
            "bytes_received": 3 << 20, "retries": 1, "errors": 0,
            "cache": {"metadata": {"hits": 3, "misses": 1, "hit_ratio": 0.75},
                      "block": {"hits": 0, "misses": 0, "hit_ratio": None}, "disk": None},
            "memory": {"rss_bytes": 50 << 20},
            "uploads": {"files_dirty": 1, "bytes_dirty": 10, "files_uploading": 0,
                        "files_failed": 0, "pending": 0, "in_flight": 0, "failed": 0,
                        "checksum": "crc32"},
            "recovery": {"dir": "/r", "count": 1, "bytes": 4,
                         "files": [{"bucket": "b", "key": "k", "size": 4, "path": "/r/x"}]}}
    text = format_stats(snap)
    for expected in ("3 total, 1 retries", "GetObject", "3.0 MiB in", "2.0 KiB out",
                     "75.0%", "blocks     - (0 hits", "disk cache off", "50.0 MiB resident",
                     "1 files dirty", "checked by CRC32", "recovery   1 files",
                     "b/k (4 B): /r/x"):
        assert expected in text


def test_sizes_and_rss():
    assert human_size(0) == "0 B" and human_size(1536) == "1.5 KiB"
    assert rss_bytes() > 0
    assert rss_bytes("/nonexistent") == 0
