"""``mount -t fuse.mssfs`` and fstab lines, run through mount(8) as a user would.

mount(8) runs ``/sbin/mount.fuse.mssfs`` when it exists: the ``helper`` fixture links
it to the installed ``mount.mssfs`` console script for the test, and removes the link
afterwards (the README tells users to make the same link). Without the link mount(8)
falls back to fuse3's ``mount.fuse``, which runs ``mssfs SOURCE MOUNTPOINT -o ...``
from mount(8)'s own ``$PATH``: that form of the command is tested directly.
Credentials come from a passwd file, never the environment: fstab cannot carry them.
"""

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from fuse_mounts import Mount, is_mounted

HELPER = Path("/sbin/mount.fuse.mssfs")


@pytest.fixture(scope="module")
def bucket(new_bucket, s3):
    name = new_bucket()
    s3.put_object(name, "hello.txt", b"hello from fstab\n")
    return name


@pytest.fixture
def helper():
    script = Path(sys.executable).parent / "mount.mssfs"
    assert script.exists(), "mount.mssfs is not installed: pip install -e ."
    made = not HELPER.exists()
    if made:
        HELPER.symlink_to(script)
    try:
        yield HELPER
    finally:
        if made:
            with contextlib.suppress(FileNotFoundError):
                HELPER.unlink()


@pytest.fixture
def passwd(seaweed, tmp_path):
    path = tmp_path / "passwd-mssfs"
    path.write_text(f"{seaweed.access_key}:{seaweed.secret_key}\n")
    path.chmod(0o600)
    return path


def env_without_credentials(mounter) -> dict[str, str]:
    env = {k: v for k, v in mounter.env.items() if not k.startswith(("MSS_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def mount8(mounter, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], env=env_without_credentials(mounter),
                          capture_output=True, text=True, timeout=120, check=False)


def new_mountpoint(mounter, name: str) -> Path:
    path = mounter.workdir / name
    path.mkdir()
    return path


def track(mounter, path: Path, source: str) -> Mount:
    mount = Mount(path, mounter.workdir / "none.log", mounter.pid_of(path), source)
    mounter.mounts.append(mount)  # unmounted at teardown even if the test fails
    return mount


def check_and_unmount(mounter, mount: Mount) -> None:
    assert is_mounted(mount.path)
    assert (mount.path / "hello.txt").read_bytes() == b"hello from fstab\n"
    (mount.path / "written.txt").write_text("through fstab")
    mounter.umount(mount)


def test_mount_t_fuse_mssfs_with_options_from_o(mounter, bucket, seaweed, passwd, helper):
    path = new_mountpoint(mounter, "mnt-t")
    opts = f"_netdev,endpoint={seaweed.endpoint},passwd_file={passwd},stat_ttl=1s,nofail"
    done = mount8(mounter, "-t", "fuse.mssfs", bucket, str(path), "-o", opts)
    mount = track(mounter, path, bucket)
    assert done.returncode == 0, done.stderr
    assert f"mssfs:{bucket}" in Path("/proc/self/mounts").read_text()
    check_and_unmount(mounter, mount)


def test_fstab_line_with_mount_T(mounter, bucket, seaweed, passwd, helper, tmp_path):
    path = new_mountpoint(mounter, "mnt-fstab")
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{bucket} {path} fuse.mssfs "
                     f"_netdev,endpoint={seaweed.endpoint},passwd_file={passwd} 0 0\n")
    done = mount8(mounter, "-T", str(fstab), str(path))
    mount = track(mounter, path, bucket)
    assert done.returncode == 0, done.stderr
    check_and_unmount(mounter, mount)


def test_options_from_a_config_file_through_mount(mounter, bucket, seaweed, passwd, helper,
                                                  tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'endpoint = "{seaweed.endpoint}"\npasswd_file = "{passwd}"\n'
                      '[profile.ro]\nro = true\n')
    path = new_mountpoint(mounter, "mnt-config")
    done = mount8(mounter, "-t", "fuse.mssfs", bucket, str(path),
                  "-o", f"config={config},profile=ro")
    mount = track(mounter, path, bucket)
    assert done.returncode == 0, done.stderr
    assert (path / "hello.txt").read_bytes() == b"hello from fstab\n"
    with pytest.raises(OSError) as caught:
        (path / "refused.txt").write_text("x")
    assert caught.value.errno == 30  # EROFS: the profile's option applied
    mounter.umount(mount)


def test_mssfs_accepts_the_mount_fuse_form(mounter, bucket, seaweed, passwd):
    # What fuse3's mount.fuse runs for -t fuse.mssfs when no mount.fuse.mssfs exists
    # (and mssfs is on the PATH that mount(8) gives it).
    path = new_mountpoint(mounter, "mnt-path")
    done = subprocess.run(
        [sys.executable, "-m", "mssfs", bucket, str(path),
         "-o", f"rw,endpoint={seaweed.endpoint},passwd_file={passwd}"],
        env=env_without_credentials(mounter), capture_output=True, text=True, timeout=120,
        check=False)
    mount = track(mounter, path, bucket)
    assert done.returncode == 0, done.stderr
    check_and_unmount(mounter, mount)


def test_helper_refuses_bad_options_in_one_line(mounter, bucket, passwd, helper):
    path = new_mountpoint(mounter, "mnt-bad")
    done = mount8(mounter, "-t", "fuse.mssfs", bucket, str(path),
                  "-o", f"passwd_file={passwd},no_such_option=1")
    assert done.returncode != 0
    assert "unknown option 'no_such_option'" in done.stderr and "Traceback" not in done.stderr
    assert not is_mounted(path)
