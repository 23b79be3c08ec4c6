"""FuseOperations: one-line delegates, the errno mapping in __call__, st_* conversion."""

import ctypes
import errno
import logging
import os
import stat
import threading

import pytest

from mssfs.attributes import Attributes, DirEntry, StatFs
from mssfs.errors import NoAttribute, NotFound, NotPermitted
from mssfs.fuse_ops import (
    BLKSIZE,
    FUSE_CAP_READDIRPLUS_AUTO,
    FUSE_FILL_DIR_PLUS,
    FUSE_READDIR_PLUS,
    UTIME_NOW,
    UTIME_OMIT,
    FuseOperations,
    TunedFUSE,
    fill_stat,
    mfusepy,
    stat_dict,
    utime_seconds,
)
from mssfs.store import errors as store_errors

FILE = Attributes(mode=stat.S_IFREG | 0o644, size=1000, mtime=1700000000.5, uid=1, gid=2)


class RecordingFs:
    """Answers every call with ``answers[op]`` (raising it if it is an exception)."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __getattr__(self, op):
        def method(*args):
            self.calls.append((op, *args))
            answer = self.answers.get(op)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return method


def ops(**answers):
    fs = RecordingFs(**answers)
    return FuseOperations(fs), fs


def test_getattr_converts_attributes_to_st_dict():
    operations, fs = ops(getattr=FILE)
    st = operations.getattr("/f", 7)
    assert fs.calls == [("getattr", "/f", 7)]
    assert st["st_mode"] == FILE.mode and st["st_size"] == 1000
    assert (st["st_uid"], st["st_gid"], st["st_nlink"]) == (1, 2, 1)
    assert st["st_mtime"] == st["st_atime"] == st["st_ctime"] == 1700000000_500000000


def test_st_blocks_counts_512_byte_units_rounded_up():
    assert stat_dict(FILE)["st_blocks"] == 2
    assert stat_dict(Attributes(stat.S_IFREG, 0, 0, 0, 0))["st_blocks"] == 0
    assert stat_dict(FILE)["st_blksize"] == BLKSIZE


def test_explicit_atime_and_ctime():
    attrs = Attributes(stat.S_IFREG, 0, mtime=10, uid=0, gid=0, atime=20, ctime=30)
    st = stat_dict(attrs)
    assert (st["st_mtime"], st["st_atime"], st["st_ctime"]) == (10 * 10**9, 20 * 10**9, 30 * 10**9)


def test_argument_order_of_data_callbacks():
    operations, fs = ops(read=b"abc", write=3, open=5, create=6)
    assert operations.read("/f", 4096, 10, 5) == b"abc"
    assert operations.write("/f", b"xyz", 20, 5) == 3
    assert operations.open("/f", 0) == 5
    assert operations.create("/g", 0o644, 1) == 6
    operations.fsync("/f", 1, 5)
    operations.truncate("/f", 9)
    assert fs.calls == [("read", "/f", 5, 10, 4096), ("write", "/f", 5, 20, b"xyz"),
                        ("open", "/f", 0), ("create", "/g", 0o644, 1),
                        ("fsync", "/f", 5, True), ("truncate", "/f", 9, None)]


def test_symlink_and_link_pass_the_new_path_first():
    operations, fs = ops(link=NotPermitted())
    operations.symlink("/link", "target/file")
    with pytest.raises(mfusepy.FuseOSError) as caught:
        operations.link("/hard", "/f")
    assert caught.value.errno == errno.EPERM
    assert fs.calls == [("symlink", "/link", "target/file"), ("link", "/hard", "/f")]


def test_readdir_adds_dot_entries_and_modes():
    operations, _ = ops(readdir=[DirEntry("a", FILE)])
    assert operations.readdir("/", 0) == [".", "..", ("a", FILE.mode, 0)]


def test_statfs():
    operations, _ = ops(statfs=StatFs(4096, 100, 50, 10, 5))
    st = operations.statfs("/")
    assert (st["f_bsize"], st["f_blocks"], st["f_bavail"], st["f_namemax"]) == (4096, 100, 50, 255)


@pytest.mark.parametrize(
    ("exc", "number"),
    [(NotFound(), errno.ENOENT), (NoAttribute(), errno.ENODATA),
     (store_errors.NoSuchKey("x"), errno.ENOENT), (store_errors.AccessDenied("x"), errno.EACCES),
     (store_errors.PreconditionFailed("x"), errno.ESTALE), (PermissionError(13, "no"), 13)],
)
def test_known_errors_map_through_errno_for(exc, number):
    operations, _ = ops(unlink=exc)
    with pytest.raises(mfusepy.FuseOSError) as caught:
        operations.unlink("/f")
    assert caught.value.errno == number


def test_expected_errors_are_logged_at_debug_only(caplog):
    operations, _ = ops(getattr=NotFound(), getxattr=NoAttribute())
    with caplog.at_level(logging.DEBUG, logger="mssfs"):
        for call in (lambda: operations.getattr("/missing"),
                     lambda: operations.getxattr("/f", "user.x")):
            with pytest.raises(mfusepy.FuseOSError):
                call()
    assert caplog.records and all(r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.allow_warnings
def test_unknown_exception_is_eio_logged_once_with_traceback(caplog):
    operations, _ = ops(read=KeyError("bug"))
    with caplog.at_level(logging.DEBUG, logger="mssfs"), pytest.raises(mfusepy.FuseOSError) as c:
        operations.read("/f", 10, 0, 1)
    assert c.value.errno == errno.EIO
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "read" in errors[0].getMessage()


def test_init_signals_ready_and_destroy_closes():
    ready = []
    fs = RecordingFs()
    operations = FuseOperations(fs, on_ready=lambda: ready.append(True))
    operations.init("/")
    operations.destroy("/")
    assert ready == [True]
    assert fs.calls == [("close",)]


def test_utimens_converts_nanoseconds_and_special_values():
    operations, fs = ops()
    operations.utimens("/f", (1_500_000_000, 2_250_000_000))
    assert fs.calls[-1] == ("utimens", "/f", 1.5, 2.25)
    assert utime_seconds(UTIME_OMIT) is None
    assert utime_seconds(UTIME_NOW, now=lambda: 42.0) == 42.0
    assert utime_seconds(5 * 10**9 + UTIME_NOW, now=lambda: 42.0) == 42.0
    assert utime_seconds(None, now=lambda: 7.0) == 7.0
    operations.utimens("/f", None)
    assert fs.calls[-1][2] == pytest.approx(fs.calls[-1][3])


def test_xattr_delegates():
    operations, fs = ops(getxattr=b"v", listxattr=["user.a"])
    assert operations.getxattr("/f", "user.a") == b"v"
    assert operations.listxattr("/f") == ["user.a"]
    operations.setxattr("/f", "user.a", b"w", 0)
    operations.removexattr("/f", "user.a")
    assert fs.calls[2:] == [("setxattr", "/f", "user.a", b"w", 0), ("removexattr", "/f", "user.a")]


def test_every_filesystem_method_has_a_callback():
    api = ["getattr", "readdir", "readlink", "statfs", "open", "create", "read", "write",
           "truncate", "flush", "fsync", "release", "mkdir", "rmdir", "unlink", "rename",
           "symlink", "link", "chmod", "chown", "utimens", "getxattr", "listxattr",
           "setxattr", "removexattr"]
    for name in api:
        assert name in FuseOperations.__dict__, name


# -- TunedFUSE: readdirplus from listing snapshots (no kernel: the binding object is
# built without mounting, and the filler is a Python function) -------------------------

DIR = Attributes(mode=stat.S_IFDIR | 0o755, size=0, mtime=1700000000.0, uid=1, gid=2, nlink=2)


class FakeFip:
    def __init__(self, fh=0):
        self.contents = type("FileInfo", (), {"fh": fh})()


def plus_fuse(entries):
    operations, fs = ops(readdir=entries)
    binding = TunedFUSE.__new__(TunedFUSE)  # no mount: only the readdir machinery
    binding.operations, binding.encoding, binding.errors = operations, "utf-8", "strict"
    binding._lock, binding._listings, binding._numbers = threading.Lock(), {}, iter(range(1, 99))
    binding._pinned = set()
    return binding, fs


def filler(room=None):
    """A filler that records (name, st fields, offset, flags); full after ``room`` entries."""
    filled = []

    def fill(buf, name, st, offset, flags):
        if room is not None and len(filled) >= room:
            return 1
        filled.append((name.decode(), st.st_mode, st.st_size, st.st_uid,
                       st.st_mtimespec.tv_sec, offset, flags))
        return 0

    return fill, filled


def test_readdirplus_gives_every_entry_its_attributes_at_non_zero_offsets():
    binding, _ = plus_fuse([DirEntry("a", FILE), DirEntry("sub", DIR)])
    fip = FakeFip()
    binding.opendir(b"/", fip)
    fill, filled = filler()
    assert binding.readdir_fuse_3(b"/", None, fill, 0, fip, FUSE_READDIR_PLUS) == 0
    assert [(f[0], f[5], f[6]) for f in filled] == [
        (".", 1, 0), ("..", 2, 0), ("a", 3, FUSE_FILL_DIR_PLUS), ("sub", 4, FUSE_FILL_DIR_PLUS)]
    assert filled[2][1:5] == (FILE.mode, 1000, 1, 1700000000)
    assert filled[3][1] == DIR.mode


def test_plain_readdir_passes_types_only():
    binding, _ = plus_fuse([DirEntry("a", FILE)])
    fip = FakeFip()
    binding.opendir(b"/", fip)
    fill, filled = filler()
    binding.readdir_fuse_3(b"/", None, fill, 0, fip, 0)
    assert filled[2] == ("a", FILE.mode, 0, 0, 0, 3, 0)


def test_a_full_buffer_resumes_from_the_snapshot_and_offset_zero_lists_again():
    binding, fs = plus_fuse([DirEntry(f"f{i}", FILE) for i in range(5)])
    fip = FakeFip()
    binding.opendir(b"/", fip)
    fill, first = filler(room=3)
    binding.readdir_fuse_3(b"/", None, fill, 0, fip, FUSE_READDIR_PLUS)
    fill, rest = filler()
    binding.readdir_fuse_3(b"/", None, fill, first[-1][5], fip, FUSE_READDIR_PLUS)
    names = [f[0] for f in first + rest]
    assert names == [".", "..", "f0", "f1", "f2", "f3", "f4"]
    assert [c[0] for c in fs.calls] == ["readdir"]  # one listing for both requests
    binding.readdir_fuse_3(b"/", None, filler()[0], 0, fip, FUSE_READDIR_PLUS)  # rewinddir
    assert [c[0] for c in fs.calls] == ["readdir", "readdir"]
    binding.releasedir(b"/", fip)
    assert binding._listings == {}


def test_each_open_directory_has_its_own_handle():
    binding, _ = plus_fuse([])
    one, two = FakeFip(), FakeFip()
    binding.opendir(b"/", one)
    binding.opendir(b"/", two)
    assert one.contents.fh != two.contents.fh


def test_other_namespaces_xattrs_are_answered_without_the_filesystem():
    binding, fs = plus_fuse([])
    for name in (b"security.capability", b"security.selinux", b"system.posix_acl_access"):
        assert binding.getxattr(b"/f", name, None, 0) == -errno.ENOTSUP
    assert fs.calls == []


def test_init_turns_off_adaptive_readdirplus():
    binding, _ = plus_fuse([])
    binding._libfuse2_options_moved_into_libfuse3_config = {}
    conn = mfusepy.fuse_conn_info(want=FUSE_CAP_READDIRPLUS_AUTO | 1)
    binding.init_fuse_3(ctypes.pointer(conn), None)
    assert conn.want == 1


@pytest.mark.parametrize("attrs", [
    FILE, DIR, Attributes(stat.S_IFREG | 0o600, 513, 1.25, 0, 0, atime=2.5, ctime=3.75)])
def test_fill_stat_writes_what_stat_dict_says(attrs):
    expected = mfusepy.c_stat()
    mfusepy.set_st_attrs(expected, stat_dict(attrs), use_ns=True)
    st = mfusepy.c_stat()
    fill_stat(st, attrs)
    assert bytes(st) == bytes(expected)


@pytest.mark.parametrize(("fh", "passed"), [(None, None), (7, 7)])
def test_getattr_fills_the_stat_itself(fh, passed):
    operations, fs = ops(getattr=FILE)
    binding = TunedFUSE.__new__(TunedFUSE)
    binding.operations, binding.encoding, binding.errors = operations, "utf-8", "strict"
    st = mfusepy.c_stat()
    st.st_ino = 99  # stale bytes in libfuse's buffer are cleared
    expected = mfusepy.c_stat()
    mfusepy.set_st_attrs(expected, stat_dict(FILE), use_ns=True)
    fip = ctypes.pointer(mfusepy.fuse_file_info(fh=fh)) if fh else None
    assert binding.getattr_fuse_3(b"/f", ctypes.pointer(st), fip) == 0
    assert bytes(st) == bytes(expected)
    assert fs.calls == [("getattr", "/f", passed)]


def test_a_missing_name_is_enoent_through_the_binding():
    operations, _ = ops(getattr=NotFound())
    binding = TunedFUSE.__new__(TunedFUSE)
    binding.operations, binding.encoding, binding.errors = operations, "utf-8", "strict"
    binding._pinned = {threading.get_ident()}  # no extra thread state in a test
    st = mfusepy.c_stat()
    assert binding._wrapper(binding.getattr_fuse_3, b"/gone", ctypes.pointer(st),
                            None) == -errno.ENOENT


def test_after_init_runs_once_at_the_first_request_after_init():
    # The kernel processes libfuse's INIT reply only after init returns, and that reply
    # lowers the read-ahead: tuning it must wait for the first request after init.
    ran = []
    fs = RecordingFs(getattr=Attributes(mode=stat.S_IFDIR | 0o755, size=0, mtime=0, uid=0,
                                        gid=0))
    operations = FuseOperations(fs, on_ready=lambda: ran.append("ready"),
                                after_init=lambda: ran.append("after"))
    operations.init("/")
    assert ran == ["ready"]
    operations.getattr("/")
    operations.getattr("/")
    assert ran == ["ready", "after"]


def test_write_hands_the_filesystem_a_view_of_libfuses_buffer():
    operations, _ = ops()
    seen = []

    class Writer:
        def write(self, path, fh, offset, data):
            seen.append((path, fh, offset, bytes(data), type(data)))
            return len(data)

    operations.fs = Writer()
    binding = TunedFUSE.__new__(TunedFUSE)
    binding.operations, binding.encoding, binding.errors = operations, "utf-8", "strict"
    raw = ctypes.create_string_buffer(b"0123456789", 10)
    buf = ctypes.cast(raw, ctypes.POINTER(ctypes.c_byte))
    assert binding.write(b"/f", buf, 10, 4096, FakeFip(fh=3)) == 10
    assert seen == [("/f", 3, 4096, b"0123456789", memoryview)]  # no copy was made


@pytest.mark.parametrize(("flags", "direct"), [
    (os.O_WRONLY | os.O_CREAT, 1), (os.O_RDWR | os.O_CREAT, 0)])
def test_write_only_handles_bypass_the_kernels_page_cache(flags, direct):
    operations, _fs = ops(create=5, open=6, backing_id=0, keep_cache=False)
    binding = TunedFUSE.__new__(TunedFUSE)
    binding.operations, binding.encoding, binding.errors = operations, "utf-8", "strict"
    for call in (lambda fip: binding.create(b"/f", 0o644, fip),
                 lambda fip: binding.open(b"/f", fip)):
        fip = FakeFip()
        fip.contents.flags, fip.contents.direct_io, fip.contents.keep_cache = flags, 0, 0
        assert call(fip) == 0
        assert fip.contents.direct_io == direct and fip.contents.fh in (5, 6)
