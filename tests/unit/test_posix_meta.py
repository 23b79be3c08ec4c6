"""posix_meta: every dialect reads right; garbage never raises; s3fs dialect written."""

import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssfs import posix_meta
from mssfs.posix_meta import parse, parse_mode, parse_time, to_metadata


def test_s3fs_dialect():
    meta = parse({"mode": "33188", "uid": "1000", "gid": "100", "mtime": "1700000000"})
    assert meta.mode == stat.S_IFREG | 0o644
    assert (meta.uid, meta.gid, meta.mtime) == (1000, 100, 1700000000.0)
    assert not meta.symlink


def test_s3fs_sec_nsec_times():
    assert parse_time("1700000000.123456789") == pytest.approx(1700000000.123456789)


def test_rclone_octal_mode_and_float_mtime():
    meta = parse({"mode": "100664", "mtime": "1700000000.5"})
    assert meta.mode == stat.S_IFREG | 0o664
    assert meta.mtime == 1700000000.5
    assert parse_mode("40755") == stat.S_IFDIR | 0o755


def test_rfc3339_mtime():
    assert parse_time("2023-11-14T22:13:20.123456789Z") == pytest.approx(1700000000.123456)
    assert parse_time("2023-11-14T22:13:20+00:00") == 1700000000.0
    assert parse_time("2023-11-14T22:13:20") is None  # no zone: ambiguous


def test_gcs_dialect():
    meta = parse(
        {
            "goog-reserved-posix-mode": "644",
            "goog-reserved-posix-uid": "7",
            "goog-reserved-posix-gid": "8",
            "goog-reserved-file-mtime": "1600000000",
        }
    )
    assert meta.mode == 0o644
    assert (meta.uid, meta.gid, meta.mtime) == (7, 8, 1600000000.0)


def test_s3fs_mode_wins_over_gcs():
    assert parse({"mode": "33261", "goog-reserved-posix-mode": "600"}).mode == 0o100755


def test_symlink_conventions():
    assert parse({"mode": str(stat.S_IFLNK | 0o777)}).symlink
    assert parse({}, posix_meta.SYMLINK_CONTENT_TYPE).symlink
    assert parse({"goog-reserved-file-is-symlink": "true"}).symlink
    assert not parse({}, "text/plain").symlink


def test_directory_content_types():
    assert posix_meta.is_dir_content_type("application/x-directory")
    assert posix_meta.is_dir_content_type("httpd/unix-directory; charset=x")
    assert not posix_meta.is_dir_content_type(None)


@pytest.mark.parametrize(
    "metadata",
    [
        {"mode": "banana"},
        {"mode": "-1"},
        {"mode": "99999999999"},
        {"mode": "0o9"},
        {"uid": "-5", "gid": "x"},
        {"uid": str(2**40)},
        {"mtime": "nan"},
        {"mtime": "inf"},
        {"mtime": "-3"},
        {"mtime": "yesterday"},
        {"atime": "1e400"},
        {"mode": "\u00b9", "uid": "\u0663"},  # digits to isdigit(), not to int()
    ],
)
def test_garbage_is_ignored(metadata):
    meta = parse(metadata)
    assert meta == posix_meta.PosixMeta()


@given(st.dictionaries(st.sampled_from(sorted(posix_meta.POSIX_KEYS)), st.text()))
def test_parse_never_raises(metadata):
    meta = parse(metadata)
    if meta.mode is not None:
        assert 0 <= meta.mode <= 0o177777


def test_writes_s3fs_dialect_and_keeps_user_metadata():
    out = to_metadata(
        stat.S_IFREG | 0o600, 1, 2, 1700000000.9,
        base={"color": "red", "goog-reserved-posix-mode": "777", "mode": "1"},
    )
    assert out == {"mode": "33152", "uid": "1", "gid": "2", "mtime": "1700000000", "color": "red"}


@given(st.integers(0, 0o7777), st.sampled_from([stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK]))
def test_round_trip(perms, kind):
    mode = kind | perms
    assert parse(to_metadata(mode, 5, 6, 1234.0)).mode == mode
