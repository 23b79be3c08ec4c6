"""The write path under failure: nothing written is lost, nothing old is damaged.

WriteBuffer + Uploader + RecoveryFolder on MemoryStore with fault injection. For every
way an upload can fail (PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, the GET that fills a staged file), on every path (single PUT,
stream, staged multipart), the commit raises ``UploadFailed`` (EIO), the previous object
is intact, no multipart upload is left behind, the bytes are byte-exact in the recovery
folder, and one ERROR line names the object and the file.
"""

from __future__ import annotations

import errno
import logging
import os
import re

import pytest

from mssfs.errors import UploadFailed, errno_for
from mssfs.recovery import RecoveryFolder
from mssfs.store import errors
from mssfs.store.memory import MemoryStore
from mssfs.uploader import UploadConfig, Uploader
from mssfs.write_buffer import WriteBuffer

MiB = 1024 * 1024
BUCKET = "bucket"
KEY = "dir/file.bin"
PART = 5 * MiB
OLD = b"the previous version\n"

KEPT = r"failed: its \d+ bytes are kept in "
pytestmark = pytest.mark.allow_warnings(KEPT + "|could not be read|could not abort|still kept")


@pytest.fixture
def memory():
    store = MemoryStore()
    store.create_bucket(BUCKET)
    store.put_object(BUCKET, KEY, OLD)
    return store


@pytest.fixture
def setup(memory, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    uploader = Uploader(memory, UploadConfig(part_size=PART, concurrency=4,
                                             max_bytes_in_flight=4 * PART))
    buffers = []

    def make(*, truncate=True, base=None):
        base = base or memory.head_object(BUCKET, KEY)
        buf = WriteBuffer(memory, uploader, recovery, BUCKET, KEY, base=base,
                          truncate=truncate, content_type=None, metadata={},
                          staging_dir=str(staging))
        buffers.append(buf)
        return buf

    yield make, recovery
    for buf in buffers:
        buf.close(keep_dirty=False)
    uploader.close()


def fill(buf, data, offset=0, chunk=MiB):
    for off in range(0, len(data), chunk):
        buf.write(offset + off, data[off:off + chunk])


def assert_kept(memory, recovery, failure, data, caplog, old=OLD):
    """The contract after a failed commit."""
    assert errno_for(failure) == errno.EIO
    assert memory.get_object(BUCKET, KEY).data == old  # the old object is intact
    assert memory.list_multipart_uploads(BUCKET) == []  # nothing left half-done
    [kept] = recovery.list()
    assert (kept.bucket, kept.key) == (BUCKET, KEY)
    assert failure.recovery_path == kept.path and kept.path in str(failure)
    with open(kept.path, "rb") as f:
        assert f.read() == data  # byte-exact
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
             and re.search(KEPT, r.getMessage())]
    assert len(lines) == 1 and kept.path in lines[0] and f"s3://{BUCKET}/{KEY}" in lines[0]


FAULTS = {
    "put": ("PutObject", 3 * 1024),
    "create": ("CreateMultipartUpload", 12 * MiB + 5),
    "part": ("UploadPart", 12 * MiB + 5),
    "complete": ("CompleteMultipartUpload", 12 * MiB + 5),
    "abort-too": ("UploadPart", 12 * MiB + 5),  # and the abort fails as well
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_failed_upload_keeps_bytes_and_old_object(case, memory, setup, caplog):
    make, recovery = setup
    op, size = FAULTS[case]
    failure = errors.ServiceUnavailable("injected", code="InternalError")
    memory.fail_next(op, failure)
    if case == "abort-too":
        memory.fail_next("AbortMultipartUpload", errors.ServiceUnavailable("also down"))
    data = os.urandom(size)
    buf = make()
    fill(buf, data)
    with pytest.raises(UploadFailed) as raised:
        buf.commit()
    assert raised.value.__cause__ is failure
    if case == "abort-too":
        # The server refused the abort: the upload is still listed, and said so in the log.
        assert any("could not abort" in r.getMessage() for r in caplog.records)
        for upload in memory.list_multipart_uploads(BUCKET):
            memory.abort_multipart_upload(BUCKET, upload.key, upload.upload_id)
    assert_kept(memory, recovery, raised.value, data, caplog)


def test_every_upload_failing_on_a_staged_overwrite(memory, setup, caplog):
    make, recovery = setup
    old = os.urandom(11 * MiB)
    memory.put_object(BUCKET, KEY, old)
    buf = make(truncate=False)
    buf.write(7 * MiB, b"CHANGED")
    expected = old[:7 * MiB] + b"CHANGED" + old[7 * MiB + 7:]

    def refuse(op, bucket, key):
        if op in ("PutObject", "UploadPart", "CompleteMultipartUpload"):
            return errors.ServiceUnavailable("down", code="ServiceUnavailable")
        return None

    memory.fail_when(refuse)
    with pytest.raises(UploadFailed) as raised:
        buf.commit()
    # The recovered copy holds the whole file, the old bytes fetched included.
    assert_kept(memory, recovery, raised.value, expected, caplog, old=old)
    assert memory.counts["UploadPart"] >= 1


def test_a_failed_fill_keeps_what_it_has_and_says_what_is_missing(memory, setup, caplog):
    make, recovery = setup
    buf = make(truncate=False)
    buf.write(len(OLD), b"+appended")
    # The fill for the upload fails, and so does the second try made for the recovery copy.
    memory.fail_next("GetObject", errors.ServiceUnavailable("down"), times=2)
    with pytest.raises(UploadFailed):
        buf.commit()
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    [kept] = recovery.list()
    with open(kept.path, "rb") as f:
        assert f.read() == b"\0" * len(OLD) + b"+appended"
    assert memory.get_object(BUCKET, KEY).data == OLD


def test_a_recovered_copy_of_a_mixed_upload_holds_the_whole_file(memory, setup, caplog):
    make, recovery = setup
    old = os.urandom(16 * MiB)
    memory.put_object(BUCKET, KEY, old)
    buf = make(truncate=False)
    buf.write(len(old), b"tail")  # copies parts 1-3 server-side, uploads part 4
    memory.fail_next("CompleteMultipartUpload", errors.ServiceUnavailable("down"))
    with pytest.raises(UploadFailed) as raised:
        buf.commit()
    assert memory.counts["UploadPartCopy"] == 3
    # The copied parts were never downloaded for the upload: the recovery copy fetched them.
    assert_kept(memory, recovery, raised.value, old + b"tail", caplog, old=old)


def test_commit_after_a_failure_uploads_everything(memory, setup):
    make, recovery = setup
    data = os.urandom(17 * MiB)
    memory.fail_next("UploadPart", errors.ServiceUnavailable("once"))
    buf = make()
    fill(buf, data)
    with pytest.raises(UploadFailed):
        buf.commit()
    assert buf.dirty
    with pytest.raises(UploadFailed) as again:  # the fault is still there
        memory.fail_next("UploadPart", errors.ServiceUnavailable("twice"))
        buf.commit()
    assert again.value.recovery_path == recovery.list()[0].path  # kept once, not twice
    buf.commit()  # the release fallback, or the application retrying fsync
    assert memory.get_object(BUCKET, KEY).data == data
    assert memory.list_multipart_uploads(BUCKET) == []
    assert len(recovery.list()) == 1


def test_a_part_failing_while_writing_does_not_stop_the_writer(memory, setup, caplog):
    make, recovery = setup
    memory.fail_next("UploadPart", errors.AccessDenied("denied", code="AccessDenied"))
    data = os.urandom(30 * MiB)
    buf = make()
    fill(buf, data)  # writes keep landing locally; the error comes from commit
    with pytest.raises(UploadFailed) as raised:
        buf.commit()
    assert isinstance(raised.value.__cause__, errors.AccessDenied)
    assert_kept(memory, recovery, raised.value, data, caplog)


def test_writes_after_the_uploader_closed_are_kept(memory, tmp_path):
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    uploader = Uploader(memory, UploadConfig(part_size=PART))
    buf = WriteBuffer(memory, uploader, recovery, BUCKET, KEY, base=None, truncate=True,
                      content_type=None, metadata={}, staging_dir=str(tmp_path / "s"))
    uploader.close()  # an unmount racing a writer
    data = os.urandom(12 * MiB)
    try:
        fill(buf, data)  # the writes still land locally
        with pytest.raises(UploadFailed):
            buf.commit()
        [kept] = recovery.list()
        with open(kept.path, "rb") as f:
            assert f.read() == data
        assert memory.get_object(BUCKET, KEY).data == OLD
    finally:
        buf.close(keep_dirty=False)


def test_failure_of_a_new_file_leaves_no_object(memory, setup, tmp_path):
    _, recovery = setup
    memory.fail_next("PutObject", errors.ServiceUnavailable("down"))
    uploader = Uploader(memory, UploadConfig(part_size=PART))
    new = WriteBuffer(memory, uploader, recovery, BUCKET, "new.txt", base=None,
                      truncate=True, content_type=None, metadata={},
                      staging_dir=str(tmp_path / "staging"))
    try:
        new.write(0, b"fresh")
        with pytest.raises(UploadFailed):
            new.commit()
        with pytest.raises(errors.NoSuchKey):
            memory.head_object(BUCKET, "new.txt")
        [kept] = recovery.list()
        assert kept.key == "new.txt"
    finally:
        new.close(keep_dirty=False)
        uploader.close()
