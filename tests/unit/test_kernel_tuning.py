"""The kernel read-ahead of a live mount, set through sysfs (on fake files here; the e2e
read tests run with it on the real mount)."""

from __future__ import annotations

from pathlib import Path

from mssfs.kernel_tuning import filesystem_type, mount_device, set_read_ahead

MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "77 22 0:61 / /work/my\\040mnt rw,nosuid,nodev shared:40 - fuse.mssfs mssfs:b rw,user_id=0\n"
    "78 22 0:62 / /other rw - fuse.sshfs host: rw\n"
    "79 22 0:63 / /var/lib/docker/ov rw - overlay overlay rw,lowerdir=/a\n"
)


def write_mountinfo(tmp_path: Path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


def test_the_device_of_a_mount_point_comes_from_mountinfo(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path)
    assert mount_device("/work/my mnt", mountinfo=info) == "0:61"
    assert mount_device("/work/my mnt/", mountinfo=info) == "0:61"
    assert mount_device("/nowhere", mountinfo=info) is None


def test_the_filesystem_holding_a_path_is_the_deepest_mount_above_it(tmp_path: Path) -> None:
    # (the cache directory's: on overlayfs, passthrough needs a stack depth of 1)
    info = write_mountinfo(tmp_path)
    assert filesystem_type("/work/my mnt/cache", mountinfo=info) == "fuse.mssfs"
    assert filesystem_type("/var/lib/docker/ov/x/y", mountinfo=info) == "overlay"
    assert filesystem_type("/var/lib/docker/ovx", mountinfo=info) == "ext4"
    assert filesystem_type("/", mountinfo=info) == "ext4"


def test_read_ahead_is_written_in_kib_to_the_mounts_bdi(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path)
    bdi = tmp_path / "bdi" / "0:61"
    bdi.mkdir(parents=True)
    (bdi / "read_ahead_kb").write_text("128\n")
    assert set_read_ahead("/work/my mnt", 1 << 20, mountinfo=info, sysfs=str(tmp_path / "bdi"))
    assert (bdi / "read_ahead_kb").read_text() == "1024\n"


def test_without_permission_or_device_nothing_happens(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path)
    # No bdi folder (not root, or an older kernel): best effort, no exception.
    assert not set_read_ahead("/work/my mnt", 1 << 20, mountinfo=info, sysfs=str(tmp_path))
    assert not set_read_ahead("/nowhere", 1 << 20, mountinfo=info, sysfs=str(tmp_path))
    # 0 keeps the kernel's own default.
    assert not set_read_ahead("/work/my mnt", 0, mountinfo=info, sysfs=str(tmp_path))
