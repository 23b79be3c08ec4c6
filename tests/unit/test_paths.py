"""paths: mount roots, resolve, and the name rules."""

import pytest

from mssfs import paths
from mssfs.errors import InvalidArgument, NameTooLong
from mssfs.paths import MountRoot


def test_bucket_mode_resolves_keys():
    root = MountRoot("b")
    assert root.resolve("/") == ("b", "")
    assert root.resolve("/a/b.txt") == ("b", "a/b.txt")
    assert not root.account_mode
    assert not root.is_bucket_path("/a")


def test_prefix_mode_resolves_under_the_prefix():
    root = MountRoot.parse("b:/p/q/")
    assert root.prefix == "p/q/"
    assert root.resolve("/") == ("b", "p/q")
    assert root.resolve("/x") == ("b", "p/q/x")
    assert paths.dir_prefix(root.resolve("/")[1]) == "p/q/"
    assert root.path_for_key("b", "p/q/x/y") == "/x/y"


def test_account_mode_maps_first_component_to_bucket():
    root = MountRoot.parse(None)
    assert root.account_mode
    assert root.resolve("/") == (None, "")
    assert root.resolve("/bkt") == ("bkt", "")
    assert root.resolve("/bkt/a/b") == ("bkt", "a/b")
    assert root.is_bucket_path("/bkt")
    assert not root.is_bucket_path("/bkt/a")
    assert root.path_for_key("bkt", "a/b") == "/bkt/a/b"


def test_parse_forms():
    assert MountRoot.parse("b") == MountRoot("b", "")
    assert MountRoot.parse("b:p") == MountRoot("b", "p/")
    with pytest.raises(ValueError):
        MountRoot(None, "p")


def test_split_join_normalize():
    assert paths.split("/a/b") == ("/a", "b")
    assert paths.split("/a") == ("/", "a")
    assert paths.split("/") == ("/", "")
    assert paths.join("/", "a") == "/a"
    assert paths.join("/a", "b") == "/a/b"
    assert paths.normalize("//a//b/") == "/a/b"


def test_component_over_255_bytes_is_name_too_long():
    paths.check_path("/" + "a" * 255, "a" * 255)
    name = "é" * 128  # 256 bytes in UTF-8
    with pytest.raises(NameTooLong):
        paths.check_path("/" + name, name)


def test_key_over_1024_bytes_is_name_too_long():
    key = "/".join(["d" * 200] * 5) + "/xyz"  # 1,008 bytes: fits, with its marker's slash
    paths.check_path("/" + key, key)
    key = "/".join(["d" * 200] * 5) + "/" + "x" * 30
    with pytest.raises(NameTooLong):
        paths.check_path("/" + key, key)


@pytest.mark.parametrize("name", ["abc", "my-bucket.01", "a" * 63])
def test_valid_bucket_names(name):
    paths.check_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Upper", "under_score", "-dash", "dot.", "a..b", "192.168.1.1", "xn--x"],
)
def test_invalid_bucket_names(name):
    with pytest.raises(InvalidArgument):
        paths.check_bucket_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x" * 256])
def test_unrepresentable_names(name):
    assert not paths.representable(name)


def test_representable_name():
    assert paths.representable("a b+c%")
