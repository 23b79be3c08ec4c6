"""Reading through a real mount with ordinary tools, in bucket, prefix and account mode."""

import os
import random
import subprocess

import pytest
from fuse_mounts import poll

TEXT = b"hello from mssfs\nsecond line\n"
RANDOM = random.Random(1234).randbytes(5 * 1024 * 1024 + 123)
TREE = {
    "hello.txt": TEXT,
    "docs/a.md": b"# A\n",
    "docs/b.md": b"# B\n" * 100,
    "docs/deep/c.txt": b"c" * 4097,
    "blob.bin": RANDOM,
    "empty": b"",
}


def sh(*argv, cwd=None):
    return subprocess.run(argv, capture_output=True, check=True, timeout=120, cwd=cwd).stdout


@pytest.fixture(scope="module")
def loaded(new_bucket, s3):
    bucket = new_bucket()
    for key, body in TREE.items():
        s3.put_object(bucket, key, body)
    return bucket


@pytest.fixture(scope="module")
def mnt(mounter, loaded):
    return mounter.mount(loaded)


def test_ls_lists_files_and_directories(mnt):
    assert sorted(os.listdir(mnt.path)) == ["blob.bin", "docs", "empty", "hello.txt"]
    assert sh("ls", str(mnt.path)).split() == [b"blob.bin", b"docs", b"empty", b"hello.txt"]
    assert sorted(os.listdir(mnt / "docs")) == ["a.md", "b.md", "deep"]


def test_ls_l_and_stat_show_sizes(mnt):
    lines = sh("ls", "-l", str(mnt / "docs")).decode().splitlines()
    sizes = {line.split()[-1]: int(line.split()[4]) for line in lines[1:]}
    assert sizes["a.md"] == 4 and sizes["b.md"] == 400
    assert lines[[ln.split()[-1] for ln in lines].index("deep")].startswith("d")
    assert sh("stat", "-c", "%s %F", str(mnt / "blob.bin")).decode().strip() == (
        f"{len(RANDOM)} regular file")
    assert sh("stat", "-c", "%s", str(mnt / "empty")).strip() == b"0"


def test_cat(mnt):
    assert sh("cat", str(mnt / "hello.txt")) == TEXT
    assert sh("cat", str(mnt / "docs/deep/c.txt")) == b"c" * 4097
    assert sh("cat", str(mnt / "empty")) == b""


def test_cp_out_and_cmp(mnt, tmp_path):
    sh("cp", str(mnt / "blob.bin"), str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == RANDOM
    sh("cmp", str(mnt / "blob.bin"), str(tmp_path / "copy"))


def test_find_lists_the_whole_tree(mnt):
    found = sh("find", ".", "-type", "f", cwd=mnt.path).decode().split()
    assert sorted(p[2:] for p in found) == sorted(TREE)


def test_tail_c_and_dd_skip(mnt):
    assert sh("tail", "-c", "1000", str(mnt / "blob.bin")) == RANDOM[-1000:]
    out = sh("dd", f"if={mnt / 'blob.bin'}", "bs=4096", "skip=300", "count=5", "status=none")
    assert out == RANDOM[300 * 4096: 305 * 4096]


def test_random_seeks_and_reads(mnt):
    rng = random.Random(7)
    with open(mnt / "blob.bin", "rb") as handle:
        for _ in range(200):
            offset = rng.randrange(len(RANDOM) + 10)
            size = rng.choice([1, 100, 4096, 65536, 300_000])
            handle.seek(offset)
            assert handle.read(size) == RANDOM[offset: offset + size]


def test_missing_name(mnt):
    assert not os.path.exists(mnt / "nope")
    with pytest.raises(FileNotFoundError):
        (mnt / "docs/nope").read_bytes()


def test_out_of_band_add_and_delete_appear_within_the_ttl(mnt, s3, loaded):
    s3.put_object(loaded, "docs/late.txt", b"late")
    poll(lambda: "late.txt" in os.listdir(mnt / "docs"))
    assert (mnt / "docs/late.txt").read_bytes() == b"late"
    s3.put_object(loaded, "docs/late.txt", b"later, longer")
    poll(lambda: (mnt / "docs/late.txt").read_bytes() == b"later, longer")
    s3.delete_object(loaded, "docs/late.txt")
    poll(lambda: "late.txt" not in os.listdir(mnt / "docs"))
    poll(lambda: not os.path.exists(mnt / "docs/late.txt"))


def test_prefix_mode_shows_only_the_subtree(mounter, loaded):
    mount = mounter.mount(f"{loaded}:/docs")
    assert sorted(os.listdir(mount.path)) == ["a.md", "b.md", "deep"]
    assert (mount / "deep/c.txt").read_bytes() == b"c" * 4097
    mounter.umount(mount)


def test_account_mode_lists_and_makes_buckets(mounter, s3, loaded):
    mount = mounter.mount(None)
    assert loaded in os.listdir(mount.path)
    assert (mount / loaded / "hello.txt").read_bytes() == TEXT
    name = f"{loaded}-made"
    os.mkdir(mount / name)
    s3.head_bucket(name)
    assert os.path.isdir(mount / name)
    os.rmdir(mount / name)
    assert poll(lambda: name not in [b.name for b in s3.list_buckets()])
    with pytest.raises(OSError) as caught:
        os.rmdir(mount / loaded)  # not empty
    assert caught.value.errno == 39  # ENOTEMPTY
    mounter.umount(mount)


def test_uid_gid_umask_options_apply_to_objects_without_metadata(mounter, loaded):
    mount = mounter.mount(loaded, options="uid=1234,gid=5678,umask=027")
    info = os.stat(mount / "hello.txt")
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1234, 5678, 0o640)
    assert os.stat(mount / "docs").st_mode & 0o777 == 0o750
    mounter.umount(mount)


def test_the_kernel_reads_ahead_1_mib(mnt):
    # As root the mount raises its bdi read-ahead (kernel_tuning), so sequential reads
    # reach it as 1 MiB requests rather than the kernel's default 128 KiB.
    from mssfs.kernel_tuning import mount_device

    os.listdir(mnt.path)  # it is set at the first request after INIT: make sure one came
    device = mount_device(str(mnt.path))
    assert device is not None
    with open(f"/sys/class/bdi/{device}/read_ahead_kb") as handle:
        assert handle.read().strip() == "1024"
