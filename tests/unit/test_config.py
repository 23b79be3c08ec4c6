"""The option table: parsing of sizes, durations, modes; defaults written once; help."""

from dataclasses import fields

import pytest

from mssfs.config import (
    OPTIONS,
    SECTIONS,
    ConfigError,
    Source,
    build_section,
    default_of,
    options_help,
    parse_duration,
    parse_options,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("64K", 64 << 10), ("64M", 64 << 20), ("1G", 1 << 30), ("1.5G", 3 << 29),
     ("8MiB", 8 << 20), ("8mb", 8 << 20), ("2T", 2 << 40)],
)
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "-1M", "1X", "1 M B", "ten"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("250ms", 0.25), ("5m", 300.0), ("1h", 3600.0),
     ("1d", 86400.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-1s", "5 minutes", "1w"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fuse_and_mssfs_options_parse_into_sections():
    parsed = parse_options(["ro,allow_other,uid=1000,gid=100", "umask=027,stat_ttl=5s",
                            "part_size=16M,exact_metadata,virtual_host,no_verify_ssl"])
    fuse = build_section("fuse", parsed["fuse"])
    assert (fuse.read_only, fuse.allow_other, fuse.uid, fuse.gid, fuse.umask) == (
        True, True, 1000, 100, 0o027)
    assert build_section("cache", parsed["cache"]).stat_ttl == 5.0
    assert build_section("cache", parsed["cache"]).exact_metadata is True
    assert build_section("upload", parsed["upload"]).part_size == 16 << 20
    store = build_section("store", parsed["store"])
    assert (store.path_style, store.no_verify_ssl) == (False, True)


def test_unset_options_keep_defaults():
    cache = build_section("cache", parse_options([])["cache"])
    assert cache.read_cache_size == 64 << 20
    assert cache.cache_dir is None


def test_later_option_wins():
    parsed = parse_options(["ro", "rw"])
    assert parsed["fuse"]["read_only"] is False


def test_fstab_options_are_accepted_and_ignored():
    parsed = parse_options(["_netdev,nofail,noauto,x-systemd.automount,defaults,nosuid"])
    assert parsed == {section: {} for section in SECTIONS}


def test_unknown_option_names_the_option_not_the_value():
    with pytest.raises(ConfigError, match="unknown option 'cache_sise'") as caught:
        parse_options(["cache_sise=s3cr3tvalue"])
    assert "s3cr3tvalue" not in str(caught.value)


@pytest.mark.parametrize("name", ["secret_key", "password", "aws_secret_access_key", "access_key"])
def test_secret_options_are_refused_with_the_reason(name):
    with pytest.raises(ConfigError, match="command line is visible") as caught:
        parse_options([f"{name}=hunter2"])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("item", ["uid=abc", "umask=999", "part_size=lots", "stat_ttl=soon",
                                  "uid", "ro=maybe"])
def test_bad_values_are_config_errors(item):
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        parse_options([item])


def test_every_section_field_has_an_option_and_every_option_a_field():
    covered = {(o.section, o.field) for o in OPTIONS}
    for section, cls in SECTIONS.items():
        for fld in fields(cls):
            assert (section, fld.name) in covered, f"{section}.{fld.name} has no -o option"
    for option in OPTIONS:
        default_of(option)  # raises KeyError for a row naming no field


def test_help_lists_every_option_with_its_default():
    text = options_help()
    for option in OPTIONS:
        assert f"  {option.name}" in text
    assert "read_cache_size=...      memory block cache size [64M]" in text
    assert "stat_ttl=...             how long file attributes are cached [60s]" in text
    assert "umask=...                umask for objects without mode metadata [022]" in text
    assert "virtual_host" in text and "[off]" in text


@pytest.mark.parametrize(
    ("text", "bucket", "prefix"),
    [(None, None, ""), ("b", "b", ""), ("b:/", "b", ""), ("b:/a/b", "b", "a/b/"),
     ("b:a/b/", "b", "a/b/")],
)
def test_source(text, bucket, prefix):
    source = Source.parse(text)
    assert (source.bucket, source.prefix) == (bucket, prefix)


@pytest.mark.parametrize("text", [":/x", "a/b", "/b"])
def test_bad_source(text):
    with pytest.raises(ConfigError):
        Source.parse(text)
