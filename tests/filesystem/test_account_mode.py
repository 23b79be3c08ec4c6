"""Account mode: buckets are the top-level directories."""

import errno
import os

import pytest

from mssfs.errors import InvalidArgument, NotFound, NotPermitted, errno_for
from mssfs.paths import MountRoot
from mssfs.store.errors import BucketNotEmpty


@pytest.fixture
def account(make_env):
    env = make_env(MountRoot(None))
    env.store.create_bucket("alpha")
    env.store.create_bucket("beta")
    env.store.reset_counts()
    return env


def test_ls_root_lists_buckets(account):
    entries = account.fs.readdir("/")
    assert [e.name for e in entries] == ["alpha", "beta"]
    assert all(e.attrs.is_dir for e in entries)
    assert account.store.counts["ListBuckets"] == 1


def test_stat_of_a_bucket(account):
    assert account.fs.getattr("/alpha").is_dir
    with pytest.raises(NotFound):
        account.fs.getattr("/missing-bucket")


def test_mkdir_creates_a_bucket(account):
    account.fs.mkdir("/gamma", 0o755)
    assert "gamma" in [b.name for b in account.store.list_buckets()]
    assert account.fs.getattr("/gamma").is_dir
    assert "gamma" in [e.name for e in account.fs.readdir("/")]


def test_mkdir_with_an_invalid_bucket_name_is_einval(account):
    with pytest.raises(InvalidArgument) as raised:
        account.fs.mkdir("/Bad_Name", 0o755)
    assert errno_for(raised.value) == errno.EINVAL
    assert account.store.counts["CreateBucket"] == 0


def test_rmdir_deletes_an_empty_bucket_and_refuses_a_full_one(account):
    account.store.put_object("beta", "k", b"x")
    with pytest.raises(BucketNotEmpty) as raised:
        account.fs.rmdir("/beta")
    assert errno_for(raised.value) == errno.ENOTEMPTY
    account.fs.rmdir("/alpha")
    assert [b.name for b in account.store.list_buckets()] == ["beta"]
    with pytest.raises(NotFound):
        account.fs.getattr("/alpha")


def test_files_live_inside_buckets(account):
    with pytest.raises(NotPermitted):
        account.fs.create("/top.txt", 0o644, os.O_WRONLY)
    fh = account.fs.create("/alpha/in.txt", 0o644, os.O_WRONLY)
    account.fs.write("/alpha/in.txt", fh, 0, b"inside")
    account.fs.release("/alpha/in.txt", fh)
    assert account.store.get_object("alpha", "in.txt").data == b"inside"
    assert [e.name for e in account.fs.readdir("/alpha")] == ["in.txt"]
    account.fs.mkdir("/alpha/sub", 0o755)
    account.fs.rename("/alpha/in.txt", "/beta/moved.txt")
    assert account.store.get_object("beta", "moved.txt").data == b"inside"


def test_buckets_cannot_be_renamed(account):
    with pytest.raises(NotPermitted):
        account.fs.rename("/alpha", "/delta")
