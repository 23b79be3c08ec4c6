"""The credentials chain: order of sources, s3fs passwd files, AWS profiles, no secret leaks."""

import os

import pytest

from mssfs.credentials import CredentialsError, read_passwd_file, resolve_credentials


def private_file(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_mss_environment_wins_over_aws(tmp_path):
    env = {"MSS_ACCESS_KEY_ID": "mk", "MSS_SECRET_ACCESS_KEY": "ms",
           "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "as", "HOME": str(tmp_path)}
    found = resolve_credentials(env)
    assert (found.credentials.access_key, found.credentials.secret_key) == ("mk", "ms")
    assert "ms" not in found.source


def test_aws_environment_with_session_token(tmp_path):
    env = {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "as",
           "AWS_SESSION_TOKEN": "tok", "HOME": str(tmp_path)}
    creds = resolve_credentials(env).credentials
    assert (creds.access_key, creds.secret_key, creds.session_token) == ("ak", "as", "tok")
    assert "as" not in repr(creds) and "tok" not in repr(creds)


def test_half_set_environment_is_an_error(tmp_path):
    with pytest.raises(CredentialsError, match="MSS_SECRET_ACCESS_KEY is not set"):
        resolve_credentials({"MSS_ACCESS_KEY_ID": "k", "HOME": str(tmp_path)})


def test_environment_wins_over_passwd_file(tmp_path):
    path = private_file(tmp_path / "pw", "fk:fs\n")
    env = {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "as"}
    assert resolve_credentials(env, passwd_file=path).credentials.access_key == "ak"


def test_passwd_file_bucket_line_wins_for_its_bucket(tmp_path):
    path = private_file(tmp_path / "pw", "# comment\n\ndk:ds\nother:ok:os\nmine:bk:bs\n")
    assert read_passwd_file(path, "mine").access_key == "bk"
    assert read_passwd_file(path, "else").access_key == "dk"
    assert read_passwd_file(path, None).secret_key == "ds"


def test_passwd_file_without_a_pair_for_the_bucket(tmp_path):
    path = private_file(tmp_path / "pw", "other:ok:os\n")
    with pytest.raises(CredentialsError, match="no key pair for bucket 'mine'"):
        read_passwd_file(path, "mine")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_passwd_file_readable_by_others_is_refused(tmp_path, mode):
    path = private_file(tmp_path / "pw", "k:supersecret\n", mode)
    with pytest.raises(CredentialsError, match="chmod 600") as caught:
        resolve_credentials({}, passwd_file=path)
    assert "supersecret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_passwd_line_names_the_line_not_the_secret(tmp_path):
    path = private_file(tmp_path / "pw", "k:s\na:b:c:supersecret\n")
    with pytest.raises(CredentialsError, match="line 2") as caught:
        read_passwd_file(path, None)
    assert "supersecret" not in str(caught.value)


def test_missing_passwd_file(tmp_path):
    with pytest.raises(CredentialsError, match="cannot read credentials file"):
        resolve_credentials({}, passwd_file=str(tmp_path / "nope"))


def aws_file(tmp_path):
    folder = tmp_path / ".aws"
    folder.mkdir()
    private_file(folder / "credentials",
                 "[default]\naws_access_key_id = dk\naws_secret_access_key = ds\n"
                 "[work]\naws_access_key_id=wk\naws_secret_access_key=ws\naws_session_token=wt\n")


def test_aws_credentials_default_and_named_profile(tmp_path):
    aws_file(tmp_path)
    env = {"HOME": str(tmp_path)}
    assert resolve_credentials(env).credentials.access_key == "dk"
    work = resolve_credentials(env, profile="work")
    assert (work.credentials.access_key, work.credentials.session_token) == ("wk", "wt")
    assert "[work]" in work.source
    assert resolve_credentials({**env, "AWS_PROFILE": "work"}).credentials.access_key == "wk"


def test_unknown_profile_is_named(tmp_path):
    aws_file(tmp_path)
    with pytest.raises(CredentialsError, match="profile 'nope' not found"):
        resolve_credentials({"HOME": str(tmp_path)}, profile="nope")


def test_shared_credentials_file_variable(tmp_path):
    path = private_file(tmp_path / "creds", "[default]\naws_access_key_id=x\n"
                        "aws_secret_access_key=y\n")
    env = {"HOME": str(tmp_path / "nohome"), "AWS_SHARED_CREDENTIALS_FILE": path}
    assert resolve_credentials(env).credentials.access_key == "x"


def test_nothing_found_says_where_to_put_credentials(tmp_path):
    with pytest.raises(CredentialsError, match="MSS_ACCESS_KEY_ID"):
        resolve_credentials({"HOME": str(tmp_path)})
