"""mount(8)'s helper arguments → mssfs arguments."""

import pytest

from mssfs import cli
from mssfs.mount_helper import translate


def test_mount_arguments_become_mssfs_mount():
    assert translate(["bkt", "/mnt", "-o", "rw,_netdev,endpoint=http://e:1", "-n"]) == [
        "mount", "bkt", "/mnt", "-o", "_netdev,endpoint=http://e:1"]
    assert translate(["mssfs:bkt:/p", "/mnt", "-oro"]) == ["mount", "bkt:/p", "/mnt", "-o", "ro"]
    assert translate(["mssfs", "/mnt", "-t", "fuse.mssfs"]) == ["mount", "/mnt"]


def test_config_option_becomes_the_flag():
    assert translate(["b", "/m", "-o", "config=/etc/x.toml,profile=p"]) == [
        "mount", "b", "/m", "--config", "/etc/x.toml", "-o", "profile=p"]


def test_fake_mount_does_nothing_and_bad_usage_exits():
    assert translate(["b", "/m", "-f"]) is None
    assert translate(["b", "/m", "-sfnv"]) is None
    with pytest.raises(SystemExit):
        translate(["/m"])


def test_the_mount_fuse_form_of_mssfs_is_a_mount(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_mount", lambda args, env: seen.append(args) or 0)
    monkeypatch.setattr(cli, "select_fuse_library", lambda env: None)
    assert cli.main(["bkt", "/mnt", "-o", "rw,ro"]) == 0
    assert seen[0].args == ["bkt", "/mnt"] and seen[0].options == ["ro"]
    assert cli.mount_helper_main(["b", "/m", "-f"]) == 0 and len(seen) == 1
