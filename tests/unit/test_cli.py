"""The command line: arguments and environment → MountConfig, one-line failures, logging."""

import logging
import socket

import pytest
from test_http_store import Answer

from mssfs import cli
from mssfs.config import ConfigError, Source
from mssfs.env_scrub import SECRET_VARIABLES, scrub_secrets
from mssfs.log_config import SecretFilter


def args_for(*argv):
    return cli.build_parser().parse_args(["mount", *argv])


ENV = {"MSS_ACCESS_KEY_ID": "key", "MSS_SECRET_ACCESS_KEY": "sekrit", "HOME": "/nonexistent"}


def test_bucket_and_prefix_and_mountpoint(tmp_path):
    config, secrets = cli.build_config(args_for("b:/a/b", str(tmp_path)), ENV)
    assert config.source == Source("b", "a/b/")
    assert config.mountpoint == str(tmp_path)
    assert secrets == ["sekrit"]
    assert config.store.credentials.access_key == "key"


def test_account_mode_when_only_a_mountpoint(tmp_path):
    config, _ = cli.build_config(args_for(str(tmp_path)), ENV)
    assert config.source.bucket is None


def test_relative_mountpoint_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, _ = cli.build_config(args_for("b", "mnt"), ENV)
    assert config.mountpoint == str(tmp_path / "mnt")


def test_endpoint_precedence():
    default, _ = cli.build_config(args_for("b", "/m"), ENV)
    assert default.store.endpoint == "https://mtmss.com"
    env, _ = cli.build_config(args_for("b", "/m"), {**ENV, "MSS_ENDPOINT": "http://e:1"})
    assert env.store.endpoint == "http://e:1"
    option, _ = cli.build_config(args_for("b", "/m", "-o", "endpoint=http://o:2"),
                                 {**ENV, "MSS_ENDPOINT": "http://e:1"})
    assert option.store.endpoint == "http://o:2"
    flag, _ = cli.build_config(args_for("b", "/m", "--endpoint", "f.example.com",
                                        "-o", "endpoint=http://o:2"), ENV)
    assert flag.store.endpoint == "https://f.example.com"


def test_store_options_reach_the_store_config(tmp_path):
    config, _ = cli.build_config(args_for(
        "b", "/m", "--region", "cn-north-1", "-o",
        "sigv2,virtual_host,no_verify_ssl,retries=2,timeout=5s,connect_timeout=1s,"
        "retry_time=7s"), ENV)
    store = config.store
    assert (store.region, store.signature, store.addressing) == ("cn-north-1", "v2", "virtual")
    assert (store.verify_tls, store.max_retries, store.read_timeout, store.connect_timeout) == (
        False, 2, 5.0, 1.0)
    assert store.retry_time == 7.0
    assert store.upload_checksum == "auto"  # CRC32 where the server checks it, else MD5
    crc, _ = cli.build_config(args_for("b", "/m", "-o", "upload_checksum=CRC32"), ENV)
    assert crc.store.upload_checksum == "crc32"
    with pytest.raises(ConfigError, match="md5 or crc32"):
        cli.build_config(args_for("b", "/m", "-o", "upload_checksum=sha1"), ENV)
    pem = tmp_path / "ca.pem"
    pem.write_text("")
    bundle, _ = cli.build_config(args_for("b", "/m", "-o", f"ca_bundle={pem}"), ENV)
    assert bundle.store.verify_tls == str(pem)
    with pytest.raises(cli.CliError, match="does not exist"):
        cli.build_config(args_for("b", "/m", "-o", "ca_bundle=/nonexistent.pem"), ENV)


def test_sections_and_flags():
    config, _ = cli.build_config(args_for("b", "/m", "-f", "--debug", "--log-file", "/l",
                                          "-o", "ro,uid=5,part_size=16M,stat_ttl=2s"), ENV)
    assert config.foreground and config.debug and config.log_file == "/l"
    assert config.fuse.read_only and config.fuse.uid == 5
    assert config.upload.part_size == 16 << 20 and config.cache.stat_ttl == 2.0


def test_anonymous_and_memory_need_no_credentials():
    config, secrets = cli.build_config(args_for("b", "/m", "-o", "anonymous"), {"HOME": "/x"})
    assert config.store.credentials is None and secrets == []
    memory, _ = cli.build_config(args_for("--memory", "/m"), {"HOME": "/x"})
    assert memory.memory


def test_too_many_positionals():
    with pytest.raises(cli.CliError):
        cli.build_config(args_for("a", "b", "c"), ENV)


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["mount", "b", "/nonexistent-mssfs"], "mountpoint /nonexistent-mssfs does not exist"),
     (["mount", "b", "/etc/hostname"], "is not a directory"),
     (["mount", "b", "{tmp}", "-o", "secret_key=abc"], "command line is visible"),
     (["mount", "b", "{tmp}", "-o", "bogus"], "unknown option 'bogus'"),
     (["mount", "b", "{tmp}", "-o", "uid=me"], "option 'uid'"),
     (["mount", "b", "{tmp}", "--endpoint", "ftp://x"], "endpoint must be an http"),
     (["umount", "{tmp}"], "is not mounted")],
)
def test_failures_are_one_line(capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.setattr(cli.os, "environ", {**ENV, "FUSE_LIBRARY_PATH": "libfuse3.so.3"})
    code, err = run_main(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("mssfs: ") and message in err
    assert "abc" not in err


def test_no_credentials_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli.os, "environ", {"HOME": str(tmp_path), "FUSE_LIBRARY_PATH": "x"})
    code, err = run_main(capsys, "mount", "b", str(tmp_path))
    assert code == 1 and "no credentials found" in err and err.count("\n") == 1


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["mount", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for name in ("read_cache_size=...", "passwd_file=...", "allow_other", "[64M]", "[60s]",
                 "MSS_ACCESS_KEY_ID", "--profile", "--log-file"):
        assert name in out


def test_select_fuse_library_keeps_the_users_choice(monkeypatch):
    env = {"FUSE_LIBRARY_PATH": "/opt/libfuse3.so"}
    cli.select_fuse_library(env)
    assert env["FUSE_LIBRARY_PATH"] == "/opt/libfuse3.so"
    env = {}
    cli.select_fuse_library(env)
    assert "fuse3" in env["FUSE_LIBRARY_PATH"]
    monkeypatch.setattr(cli, "find_libfuse3", lambda: None)
    with pytest.raises(cli.CliError, match="apt-get install fuse3"):
        cli.select_fuse_library({})


def test_the_libfuse_built_by_setup_is_preferred(tmp_path):
    bundled = tmp_path / "libfuse3.so.4"
    assert cli.find_libfuse3(str(bundled)) != str(bundled)  # absent: the system's
    bundled.write_bytes(b"")
    assert cli.find_libfuse3(str(bundled)) == str(bundled)


def test_runtime_dir():
    assert cli.runtime_dir({"XDG_RUNTIME_DIR": "/run/user/7"}) == "/run/user/7/mssfs"
    assert cli.runtime_dir({}).startswith("/tmp/mssfs-")


def test_secret_filter_masks_secrets_in_messages_and_arguments():
    filt = SecretFilter(["sekrit", ""])
    record = logging.LogRecord("mssfs", logging.INFO, __file__, 1, "got %s in %s",
                               ("sekrit", "x-sekrit-y"), None)
    assert filt.filter(record)
    assert record.getMessage() == "got *** in x-***-y"
    plain = logging.LogRecord("mssfs", logging.INFO, __file__, 1, "fine %d", (1,), None)
    filt.filter(plain)
    assert plain.getMessage() == "fine 1"


def test_logging_goes_to_the_log_file_with_the_secret_masked(tmp_path):
    config, secrets = cli.build_config(
        args_for("b", "/m", "--debug", "--log-file", str(tmp_path / "log")), ENV)
    cli.setup_logging(config, {"HOME": str(tmp_path)}, secrets)
    logger = logging.getLogger("mssfs")
    try:
        logging.getLogger("mssfs.test").debug("secret is %s", "sekrit")
        for handler in logger.handlers:
            handler.flush()
        text = (tmp_path / "log").read_text()
        assert "secret is ***" in text and "sekrit" not in text
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


# -- the composition root the command hands over to (mssfs.mount) -----------------------


def test_mounted_points_undo_octal_escapes(tmp_path):
    from mssfs.mount import mounted_points

    info = tmp_path / "mountinfo"
    info.write_text("36 35 98:0 / /mnt/with\\040space rw - ext3 /dev/root rw\n"
                    "37 35 0:5 / /plain rw - fuse.mssfs mssfs rw\n")
    assert mounted_points(str(info)) == {"/mnt/with space", "/plain"}


def test_fuse_options_follow_the_config():
    from mssfs.config import FuseOptions, MountConfig
    from mssfs.mount import fuse_options

    config = MountConfig(Source("b", "p/"), "/m", fuse=FuseOptions(read_only=True,
                                                                   allow_other=True))
    options = fuse_options(config)
    assert options["foreground"] is True and options["nothreads"] is False
    assert (options["ro"], options["allow_other"], options["default_permissions"]) == (
        True, True, False)
    assert options["fsname"] == "mssfs:b:/p/" and options["subtype"] == "mssfs"


@pytest.mark.allow_warnings("closing b failed")
def test_components_close_in_reverse_order_and_survive_a_failure(caplog):
    from mssfs.mount import Components

    order = []

    def failing():
        order.append("b")
        raise RuntimeError("boom")

    parts = Components(None, None, [("a", lambda: order.append("a")), ("b", failing),
                                    ("c", lambda: order.append("c"))])
    with caplog.at_level(logging.ERROR):
        parts.close()
    parts.close()  # each closer runs once
    assert order == ["c", "b", "a"]
    assert "closing b failed" in caplog.text


def test_build_wires_a_working_filesystem_on_the_memory_store(tmp_path):
    """The whole composition without a kernel: FuseOperations over build()'s Filesystem."""
    from mssfs.config import MountConfig, UploadOptions
    from mssfs.fuse_ops import FuseOperations
    from mssfs.mount import build

    config = MountConfig(Source("bucket"), str(tmp_path), memory=True, upload=UploadOptions(
        staging_dir=str(tmp_path), recovery_dir=str(tmp_path / "recovery")))
    parts = build(config)
    ops = FuseOperations(parts.filesystem)
    try:
        fh = ops.create("/hello.txt", 0o644, 1)
        assert ops.write("/hello.txt", b"hi there", 0, fh) == 8
        ops.flush("/hello.txt", fh)
        ops.release("/hello.txt", fh)
        assert ops.getattr("/hello.txt")["st_size"] == 8
        assert parts.store.get_object("bucket", "hello.txt").data == b"hi there"
        assert ops.readdir("/", 0)[2:] == [("hello.txt", 0o100644, 0)]
    finally:
        ops.destroy("/")
        parts.close()


def test_paths_are_made_absolute_and_recovery_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, _ = cli.build_config(args_for(
        "b", "m", "--log-file", "log", "-o", "cache_dir=c,staging_dir=s"),
        {**ENV, "XDG_DATA_HOME": "/data"})
    assert config.log_file == str(tmp_path / "log")
    assert config.cache.cache_dir == str(tmp_path / "c")
    assert config.upload.staging_dir == str(tmp_path / "s")
    assert config.upload.recovery_dir == "/data/mssfs/recovery"
    home, _ = cli.build_config(args_for("b", "m"), {**ENV, "HOME": "/home/u"})
    assert home.upload.recovery_dir == "/home/u/.local/share/mssfs/recovery"


def test_secrets_are_scrubbed_from_the_environment_children_inherit(monkeypatch):
    import subprocess
    import sys

    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, "sekrit-" + name)
    monkeypatch.setenv("MSS_ACCESS_KEY_ID", "visible-key")
    scrub_secrets(__import__("os").environ)
    child = subprocess.run([sys.executable, "-c", "import os; print(dict(os.environ))"],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert "sekrit" not in child and "visible-key" in child


def test_mount_scrubs_secrets_before_anything_starts(monkeypatch, tmp_path):
    from mssfs import mount as mounting

    env = {"MSS_ACCESS_KEY_ID": "key", "MSS_SECRET_ACCESS_KEY": "sekrit", "HOME": str(tmp_path)}
    seen = {}
    monkeypatch.setattr(cli.os, "environ", dict(env))
    monkeypatch.setattr(cli, "check_mountpoint", lambda path: None)
    monkeypatch.setattr(cli, "setup_logging", lambda *a: None)
    monkeypatch.setattr(cli, "blank_initial_environment", lambda: 0)  # not this process's
    monkeypatch.setattr(mounting, "run_foreground", lambda config, runtime: seen.update(
        config=config, env=dict(cli.os.environ)))
    args = cli.build_parser().parse_args(["mount", "b", str(tmp_path), "-f", "--memory"])
    assert cli.cmd_mount(args, dict(env)) == 0
    assert "MSS_SECRET_ACCESS_KEY" not in seen["env"] and "MSS_ACCESS_KEY_ID" in seen["env"]


def test_url_and_stats_outside_a_mount_fail_in_one_line(capsys, tmp_path):
    assert cli.main(["url", str(tmp_path)]) == 1
    assert cli.main(["stats", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "not a file on an mssfs mount" in err
    assert "is not on an mssfs mount" in err and "Traceback" not in err


def test_every_subcommand_has_complete_help(capsys):
    for argv in (["url"], ["stats"], ["mpu", "list"], ["mpu", "abort"], ["umount"]):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([*argv, "--help"])
    text = capsys.readouterr().out
    for expected in ("--expires", "--method", "--json", "--older-than", "--yes", "--config",
                     "--timeout"):
        assert expected in text


def test_abort_uploads_older_than_is_parsed():
    args = args_for("b", "/m", "-o", "abort_uploads_older_than=1d,url_expires=10m")
    config, _ = cli.build_config(args, ENV)
    assert config.upload.abort_uploads_older_than == 86400.0
    assert config.fuse.url_expires == 600.0


# -- TLS: verified by default, a CA bundle trusted on request -------------------------


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


LISTING = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
           b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>'
           b"<KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated>"
           b"</ListBucketResult>")


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback with a self-signed certificate, answering an empty
    S3 listing to every GET; stopped at teardown."""
    import http.server
    import ssl
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(LISTING)))
            self.end_headers()
            self.wfile.write(LISTING)

        def log_message(self, *args):
            pass

    cert, key = _self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_tls_is_verified_by_default_and_a_ca_bundle_is_trusted(tls_server):
    endpoint, cert = tls_server
    config, _ = cli.build_config(args_for("b", "/m", "--endpoint", endpoint), ENV)
    assert config.store.verify_tls is True
    with pytest.raises(cli.CliError) as caught:
        cli.preflight(config)
    message = str(caught.value)
    assert "not trusted" in message and "ca_bundle=" in message and "\n" not in message
    trusted, _ = cli.build_config(
        args_for("b", "/m", "--endpoint", endpoint, "-o", f"ca_bundle={cert}"), ENV)
    cli.preflight(trusted)
    unverified, _ = cli.build_config(
        args_for("b", "/m", "--endpoint", endpoint, "-o", "no_verify_ssl"), ENV)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: asked for
        cli.preflight(unverified)


def test_url_expires_beyond_seven_days_is_refused():
    with pytest.raises(cli.CliError, match="url_expires"):
        cli.build_config(args_for("b", "/m", "-o", "url_expires=8d"), ENV)


def test_preflight_asks_a_busy_server_again_and_fails_fast_on_an_absent_one(server):
    busy = (b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
            b"</Message></Error>")
    listing = (b"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys>"
               b"<IsTruncated>false</IsTruncated></ListBucketResult>")
    server.script(*[Answer(503, busy)] * 3, Answer(200, listing))
    config, _ = cli.build_config(args_for("b", "/m", "--endpoint", server.endpoint), ENV)
    pauses: list[float] = []
    cli.preflight(config, sleep=pauses.append)  # two rounds of two attempts
    assert len(server.seen) == 4 and len(pauses) == 1

    server.script(*[Answer(503, busy)] * (2 * cli.PREFLIGHT_ROUNDS))
    with pytest.raises(cli.CliError, match="reduce your request rate"):
        cli.preflight(config, sleep=pauses.append)
    assert len(pauses) == 1 + cli.PREFLIGHT_ROUNDS - 1  # bounded: then it gives up

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    absent, _ = cli.build_config(
        args_for("b", "/m", "--endpoint", f"http://127.0.0.1:{port}"), ENV)
    pauses.clear()
    with pytest.raises(cli.CliError, match="cannot connect"):
        cli.preflight(absent, sleep=pauses.append)
    assert pauses == []  # nobody there: no second round

