"""Memory stages: small new files kept in memory, moved to a staging file as they grow.

The buffer's behaviour in both modes is test_write_buffer's (every test there runs with
and without a memory budget); these tests are about the stage itself: when bytes stay
in memory, when and how they move to a staging file, and that the budget always gets
its bytes back.
"""

from __future__ import annotations

import os

import pytest

from mssfs.errors import UploadFailed
from mssfs.recovery import RecoveryFolder
from mssfs.stage import Budget, MemoryStage
from mssfs.store import errors
from mssfs.store.memory import MemoryStore
from mssfs.uploader import UploadConfig, Uploader
from mssfs.write_buffer import WriteBuffer

KiB, MiB = 1024, 1024 * 1024
BUCKET = "bucket"


@pytest.fixture
def world(tmp_path):
    store = MemoryStore()
    store.create_bucket(BUCKET)
    uploader = Uploader(store, UploadConfig(part_size=5 * MiB, concurrency=2,
                                            max_bytes_in_flight=10 * MiB))
    staging = tmp_path / "staging"
    staging.mkdir()
    recovery = RecoveryFolder(str(tmp_path / "recovery"))
    buffers = []

    class World:
        pass

    w = World()
    w.store, w.staging, w.recovery = store, staging, recovery
    w.budget = Budget(file_limit=64 * KiB, total=100 * KiB)

    def buffer(key="k", base=None, truncate=False):
        buf = WriteBuffer(store, uploader, recovery, BUCKET, key, base=base,
                          truncate=truncate, content_type=None, metadata={},
                          staging_dir=str(staging), memory=w.budget)
        buffers.append(buf)
        return buf

    w.buffer = buffer
    yield w
    for buf in buffers:
        buf.close(keep_dirty=False)
    uploader.close()
    assert w.budget.used == 0


def test_a_small_new_file_never_touches_the_staging_dir(world):
    buf = world.buffer()
    data = os.urandom(4 * KiB)
    buf.write(0, data)
    assert buf.read(0, 10 * KiB) == data
    assert (buf.staging_path, os.listdir(world.staging)) == ("", [])
    assert world.budget.used == len(data)
    world.store.reset_counts()
    buf.commit()
    assert dict(world.store.counts) == {"PutObject": 1}
    assert world.store.get_object(BUCKET, "k").data == data
    buf.close()
    assert world.budget.used == 0


def test_growing_past_the_file_limit_moves_every_byte_to_a_staging_file(world):
    buf = world.buffer()
    model = bytearray()
    for offset in range(0, 60 * KiB, 10 * KiB):  # a hole at the start: zeros
        piece = os.urandom(7 * KiB)
        buf.write(offset + 3 * KiB, piece)
        model[len(model):] = bytes(offset + 3 * KiB - len(model)) + piece
    assert os.listdir(world.staging) == []
    buf.write(len(model), b"z" * 20 * KiB)  # past 64 KiB: to a staging file
    model += b"z" * 20 * KiB
    [name] = os.listdir(world.staging)
    assert buf.staging_path == str(world.staging / name)
    with open(buf.staging_path, "rb") as f:
        assert f.read() == model
    assert os.getxattr(buf.staging_path, "user.mssfs.whole") == b"1"
    assert world.budget.used == 0  # the memory went back with the move
    assert buf.read(0, len(model) + 1) == bytes(model)
    buf.commit()
    assert world.store.get_object(BUCKET, "k").data == model


def test_the_total_budget_sends_later_files_to_staging_files(world):
    first, second = world.buffer("a"), world.buffer("b")
    first.write(0, b"1" * 60 * KiB)
    second.write(0, b"2" * 60 * KiB)  # 120 KiB would pass the 100 KiB budget
    assert world.budget.used == 60 * KiB
    assert len(os.listdir(world.staging)) == 1 and second.staging_path
    first.close(keep_dirty=False)
    assert world.budget.used == 0
    third = world.buffer("c")  # room again
    third.write(0, b"3" * 60 * KiB)
    assert third.staging_path == "" and world.budget.used == 60 * KiB


def test_truncate_in_memory_gives_back_and_grows_with_zeros(world):
    buf = world.buffer()
    buf.write(0, b"x" * 50 * KiB)
    buf.truncate(10 * KiB)
    assert world.budget.used == 10 * KiB
    buf.truncate(20 * KiB)
    assert buf.read(0, 30 * KiB) == b"x" * 10 * KiB + bytes(10 * KiB)
    assert (buf.staging_path, world.budget.used) == ("", 20 * KiB)
    buf.truncate(1 * MiB)  # past the file limit: a staging file of zeros
    assert buf.staging_path and world.budget.used == 0
    assert os.path.getsize(buf.staging_path) == MiB
    buf.commit()
    assert world.store.get_object(BUCKET, "k").data == (
        b"x" * 10 * KiB + bytes(MiB - 10 * KiB))


def test_only_new_or_truncated_files_start_in_memory(world):
    world.store.put_object(BUCKET, "old", b"previous bytes")
    base = world.store.head_object(BUCKET, "old")
    appended = world.buffer("old", base=base)
    assert appended.staging_path  # the base's ranges live in a file
    emptied = world.buffer("old", base=base, truncate=True)
    assert emptied.staging_path == ""


@pytest.mark.allow_warnings("failed")
def test_a_failed_upload_keeps_the_memory_staged_bytes(world):
    buf = world.buffer()
    buf.write(0, b"not stored yet")
    world.store.fail_next("PutObject", errors.AccessDenied("no", code="AccessDenied"))
    with pytest.raises(UploadFailed) as failed:
        buf.commit()
    with open(failed.value.recovery_path, "rb") as f:
        assert f.read() == b"not stored yet"
    assert buf.dirty and os.listdir(world.staging) == []
    buf.commit()  # the release fallback, once the store takes it
    assert world.store.get_object(BUCKET, "k").data == b"not stored yet"


def test_a_stage_that_cannot_move_to_a_file_fails_the_write_and_keeps_its_bytes(world):
    buf = world.buffer()
    buf.write(0, b"kept")
    os.rmdir(world.staging)
    world.staging.write_bytes(b"")  # the staging dir is now a file: mkstemp fails
    with pytest.raises(OSError):
        buf.write(4, b"y" * 100 * KiB)
    assert buf.read(0, 10) == b"kept" and buf.staging_path == ""
    world.staging.unlink()


def test_memory_stage_limits():
    budget = Budget(file_limit=10, total=15)
    stage = MemoryStage(budget, limit=8)  # the buffer's own limit (one part) is lower
    assert not stage.fits(9)
    assert stage.fits(8) and budget.used == 8
    other = MemoryStage(budget, limit=100)
    assert not other.fits(8)  # 16 would pass the total
    assert other.fits(7) and budget.used == 15
    stage.close()
    other.close()
    assert budget.used == 0
