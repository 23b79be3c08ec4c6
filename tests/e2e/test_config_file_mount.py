"""``mssfs mount`` configured from a TOML file: profiles, precedence, refusals."""

import pytest
from fuse_mounts import Mount, is_mounted


@pytest.fixture(scope="module")
def bucket(new_bucket, s3):
    name = new_bucket()
    s3.put_object(name, "seen.txt", b"configured\n")
    return name


def env_without_credentials(mounter):
    return {k: v for k, v in mounter.env.items() if not k.startswith(("MSS_", "AWS_"))}


def test_endpoint_credentials_and_profile_from_the_file(mounter, bucket, seaweed, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        'endpoint = "http://127.0.0.1:1"\n'  # the profile below wins
        f'access_key_id = "{seaweed.access_key}"\nsecret_access_key = "{seaweed.secret_key}"\n'
        f'[profile.local]\nendpoint = "{seaweed.endpoint}"\nro = true\nstat_ttl = "1s"\n')
    config.chmod(0o600)
    path = mounter.workdir / "mnt-cfg"
    path.mkdir()
    log = tmp_path / "log"
    done = mounter.run("mount", bucket, str(path), "--config", str(config), "--profile",
                       "local", "--log-file", str(log), env=env_without_credentials(mounter))
    assert done.returncode == 0, done.stderr
    mount = Mount(path, log, mounter.pid_of(path), bucket)
    mounter.mounts.append(mount)
    assert (path / "seen.txt").read_bytes() == b"configured\n"
    with pytest.raises(OSError) as caught:
        (path / "x").write_text("x")
    assert caught.value.errno == 30  # EROFS from the profile
    mounter.umount(mount)
    assert seaweed.secret_key not in log.read_text()


def test_file_readable_by_others_with_a_secret_is_refused(mounter, bucket, tmp_path):
    config = tmp_path / "open.toml"
    config.write_text('access_key_id = "k"\nsecret_access_key = "do-not-print"\n')
    config.chmod(0o644)
    path = tmp_path / "mnt"
    path.mkdir()
    done = mounter.run("mount", bucket, str(path), "--config", str(config),
                       env=env_without_credentials(mounter))
    assert done.returncode == 1 and "chmod 600" in done.stderr
    assert "do-not-print" not in done.stderr and done.stderr.count("\n") == 1
    assert not is_mounted(path)


def test_unknown_option_in_the_file_is_named(mounter, bucket, tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text('stat_tll = "5s"\n')
    path = tmp_path / "mnt"
    path.mkdir()
    done = mounter.run("mount", bucket, str(path), "--config", str(config))
    assert done.returncode == 1
    assert "unknown option 'stat_tll'" in done.stderr and str(config) in done.stderr
    assert not is_mounted(path)
