"""The TOML config file: keys, profiles, precedence, errors that name key and file."""

import pytest

from mssfs import cli
from mssfs.config import ConfigError
from mssfs.config_file import config_paths, load
from mssfs.credentials import CredentialsError

ENV = {"MSS_ACCESS_KEY_ID": "key", "MSS_SECRET_ACCESS_KEY": "sekrit", "HOME": "/nonexistent"}


def write(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)
    return path


def build(tmp_path, *argv, env=ENV, text=None):
    config = write(tmp_path / "c.toml", text) if text is not None else None
    extra = ["--config", str(config)] if config else []
    args = cli.build_parser().parse_args(["mount", "b", "/m", *extra, *argv])
    return cli.build_config(args, env)[0]


def test_options_and_profiles(tmp_path):
    text = ('stat_ttl = "5s"\npart_size = "16M"\nexact_metadata = true\nretries = 3\n'
            'debug = true\n[profile.fast]\nstat_ttl = 600\nro = true\n')
    plain = build(tmp_path, text=text)
    assert (plain.cache.stat_ttl, plain.upload.part_size, plain.cache.exact_metadata) == (
        5.0, 16 << 20, True)
    assert plain.store.max_retries == 3 and plain.debug and not plain.fuse.read_only
    fast = build(tmp_path, "--profile", "fast", text=text)
    assert fast.cache.stat_ttl == 600.0 and fast.fuse.read_only
    by_option = build(tmp_path, "-o", "profile=fast", text=text)
    assert by_option.fuse.read_only


def test_command_line_beats_environment_beats_file(tmp_path):
    text = 'endpoint = "http://file:1"\nstat_ttl = "5s"\n'
    assert build(tmp_path, text=text).store.endpoint == "http://file:1"
    env = {**ENV, "MSS_ENDPOINT": "http://env:2"}
    assert build(tmp_path, env=env, text=text).store.endpoint == "http://env:2"
    flag = build(tmp_path, "-o", "endpoint=http://cli:3,stat_ttl=7s", env=env, text=text)
    assert flag.store.endpoint == "http://cli:3" and flag.cache.stat_ttl == 7.0


def test_unknown_option_names_the_option_and_the_file(tmp_path):
    path = write(tmp_path / "c.toml", "[profile.x]\nstat_tll = 5\n")
    with pytest.raises(ConfigError) as caught:
        load([str(path)], "x")
    assert "'stat_tll'" in str(caught.value) and str(path) in str(caught.value)
    assert "[profile.x]" in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("stat_ttl = 'soon'", "not a duration"),
    ("ro = 'maybe'", "takes no value"),
    ("uid = true", "takes a value"),
    ("[cache]\nstat_ttl = 1", "unknown section [cache]"),
    ("stat_ttl = [1]", "expected a string"),
    ("not toml", "not valid TOML"),
])
def test_bad_values_name_the_file(tmp_path, text, message):
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as caught:
        load([str(path)])
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_secrets_only_in_a_private_file(tmp_path):
    text = 'access_key_id = "AK"\nsecret_access_key = "SK"\n'
    with pytest.raises(CredentialsError) as caught:
        load([str(write(tmp_path / "open.toml", text, 0o644))])
    assert "chmod 600" in str(caught.value) and "SK" not in str(caught.value)
    settings = load([str(write(tmp_path / "private.toml", text, 0o600))])
    assert (settings.credentials.access_key, settings.credentials.secret_key) == ("AK", "SK")


def test_file_credentials_rank_after_environment_and_a_command_line_passwd_file(tmp_path):
    write(tmp_path / "c.toml", 'access_key_id = "AK"\nsecret_access_key = "SK"\n', 0o600)
    args = ["--config", str(tmp_path / "c.toml")]
    env = {"HOME": "/nonexistent"}
    from_file = cli.build_config(cli.build_parser().parse_args(["mount", "b", "/m", *args]), env)
    assert from_file[0].store.credentials.access_key == "AK" and from_file[1] == ["SK"]
    from_env = cli.build_config(cli.build_parser().parse_args(["mount", "b", "/m", *args]), ENV)
    assert from_env[0].store.credentials.access_key == "key"
    passwd = write(tmp_path / "passwd", "PK:PS\n", 0o600)
    argv = ["mount", "b", "/m", *args, "-o", f"passwd_file={passwd}"]
    from_passwd = cli.build_config(cli.build_parser().parse_args(argv), env)
    assert from_passwd[0].store.credentials.access_key == "PK"


def test_search_path_user_file_wins_over_system(tmp_path, monkeypatch):
    system = write(tmp_path / "etc.toml", 'stat_ttl = 1\nretries = 9\n')
    user = tmp_path / "home" / ".config" / "mssfs"
    user.mkdir(parents=True)
    write(user / "config.toml", "stat_ttl = 2\n")
    monkeypatch.setattr("mssfs.config_file.SYSTEM_CONFIG", str(system))
    paths = config_paths({"HOME": str(tmp_path / "home")})
    assert paths == [str(system), str(user / "config.toml")]
    settings = load(paths)
    assert settings.options["cache"]["stat_ttl"] == 2.0
    assert settings.options["store"]["retries"] == 9
    assert config_paths({"HOME": str(tmp_path / "home"), "MSSFS_CONFIG": str(system)}) == [
        str(system)]
    with pytest.raises(ConfigError, match="does not exist"):
        config_paths({}, str(tmp_path / "missing.toml"))


def test_one_profile_name_selects_config_table_and_aws_credentials(tmp_path):
    aws = write(tmp_path / "credentials", "[work]\naws_access_key_id = WK\n"
                "aws_secret_access_key = WS\n[other]\naws_access_key_id = OK\n"
                "aws_secret_access_key = OS\n", 0o600)
    env = {"HOME": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": str(aws)}
    text = 'stat_ttl = 1\n[profile.work]\nstat_ttl = 9\n'
    work = build(tmp_path, "--profile", "work", env=env, text=text)
    assert work.cache.stat_ttl == 9.0 and work.store.credentials.access_key == "WK"
    # ``profile = NAME`` inside a profile table picks another AWS credentials profile.
    other = build(tmp_path, "--profile", "x", env=env, text='[profile.x]\nprofile = "other"\n')
    assert other.store.credentials.access_key == "OK"


def test_config_file_named_by_an_o_option(tmp_path):
    write(tmp_path / "o.toml", "stat_ttl = 42\n")
    args = cli.build_parser().parse_args(
        ["mount", "b", "/m", "-o", f"ro,config={tmp_path / 'o.toml'},uid=7"])
    config = cli.build_config(args, ENV)[0]
    assert (config.cache.stat_ttl, config.fuse.read_only, config.fuse.uid) == (42.0, True, 7)
