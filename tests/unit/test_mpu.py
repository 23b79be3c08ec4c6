"""Multipart housekeeping on MemoryStore: targets, age filter, abort with progress."""

import io

import pytest

from mssfs.mpu import Target, abort_all, describe, find_uploads, target_of
from mssfs.progress import Progress
from mssfs.store.memory import MemoryStore


class Clock:
    now = 1_700_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    clock = Clock()
    store = MemoryStore(clock=clock)
    for bucket in ("aaa", "bbb"):
        store.create_bucket(bucket)
    store.create_multipart_upload("aaa", "old/one")
    clock.now += 7200
    store.create_multipart_upload("aaa", "new/two")
    store.create_multipart_upload("bbb", "three")
    store.now = clock.now
    return store


def test_targets_from_text(tmp_path):
    assert target_of(None) == Target(None)
    assert target_of("bkt") == Target("bkt", "")
    assert target_of("bkt:/x/y") == Target("bkt", "x/y/")


def test_find_by_bucket_prefix_and_age(store):
    keys = [f.upload.key for f in find_uploads(store, Target("aaa"), now=store.now)]
    assert keys == ["old/one", "new/two"]
    assert [f.upload.key for f in find_uploads(store, Target("aaa", "new/"), now=store.now)] == [
        "new/two"]
    old = find_uploads(store, Target(None), older_than=3600, now=store.now)
    assert [(f.bucket, f.upload.key) for f in old] == [("aaa", "old/one")]
    assert len(find_uploads(store, Target(None), now=store.now)) == 3
    assert "aaa/old/one" in describe(old[0], store.now) and "2.0h ago" in describe(old[0],
                                                                                  store.now)


def test_abort_all_reports_progress_and_failures(store):
    found = find_uploads(store, Target(None), now=store.now)
    store.abort_multipart_upload(found[0].bucket, found[0].upload.key, found[0].upload.upload_id)
    out = io.StringIO()
    failures = abort_all(store, found, Progress(out, tty=False, interval=0))
    assert len(failures) == 1 and "old/one" in failures[0]  # already gone
    assert find_uploads(store, Target(None), now=store.now) == []
    assert "aborted 2 of 3 uploads" in out.getvalue()


def test_a_mounted_path_names_bucket_prefix_and_endpoint(tmp_path, monkeypatch):
    from mssfs import control_client

    root = tmp_path / "mnt"
    (root / "bkt" / "logs").mkdir(parents=True)
    (root / "bkt" / "logs" / "f.txt").write_text("x")
    monkeypatch.setattr(control_client, "mount_root", lambda path: str(root))
    answers = {"source": "(account)", "endpoint": "http://e:1"}
    monkeypatch.setattr(control_client, "read_stats", lambda path: {"mount": answers})
    assert target_of(str(root)) == Target(None, "", "http://e:1")
    assert target_of(str(root / "bkt" / "logs")) == Target("bkt", "logs/", "http://e:1")
    assert target_of(str(root / "bkt" / "logs" / "f.txt")) == Target(
        "bkt", "logs/f.txt", "http://e:1")
    answers["source"] = "bkt2:/base/"
    assert target_of(str(root / "bkt")) == Target("bkt2", "base/bkt/", "http://e:1")
