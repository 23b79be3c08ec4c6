"""Signing: AWS's published SigV4 examples, and botocore's signers as the reference."""

from __future__ import annotations

import datetime
import hashlib
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssfs.store import signing
from mssfs.store.config import Credentials

AWS_CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
# 2013-05-24T00:00:00Z, the date of AWS's S3 SigV4 examples.
EXAMPLE_TIME = 1369353600.0
HOST = "examplebucket.s3.amazonaws.com"


def test_uri_encode_keeps_unreserved_and_encodes_everything_else() -> None:
    assert signing.uri_encode("aZ09-_.~") == "aZ09-_.~"
    assert signing.uri_encode("a b+c%d?e#f=g&h/i") == "a%20b%2Bc%25d%3Fe%23f%3Dg%26h%2Fi"
    assert signing.uri_encode("dir/ä ✓", keep_slash=True) == "dir/%C3%A4%20%E2%9C%93"
    # An already-encoded string is encoded again, not left alone: no double decoding.
    assert signing.uri_encode("%2F") == "%252F"


def test_aws_example_get_object_with_range() -> None:
    headers = signing.sign_v4(
        "GET", HOST, "/test.txt", [], {"Range": "bytes=0-9"}, signing.EMPTY_SHA256,
        AWS_CREDS, "us-east-1", EXAMPLE_TIME,
    )
    assert headers["X-Amz-Date"] == "20130524T000000Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_aws_example_presigned_url() -> None:
    query = signing.presign_v4(
        "GET", HOST, "/test.txt", [], AWS_CREDS, "us-east-1", EXAMPLE_TIME, 86400
    )
    params = dict(parse_qsl(query))
    assert params["X-Amz-Signature"] == (
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    assert params["X-Amz-Expires"] == "86400"
    assert params["X-Amz-Credential"] == "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


@pytest.mark.parametrize("expires", [0, -1, 7 * 24 * 3600 + 1])
def test_presign_rejects_expiry_out_of_range(expires: int) -> None:
    with pytest.raises(ValueError):
        signing.presign_v4("GET", HOST, "/k", [], AWS_CREDS, "us-east-1", EXAMPLE_TIME, expires)
    with pytest.raises(ValueError):
        signing.presign_v2("GET", "/b/k", [], AWS_CREDS, EXAMPLE_TIME, expires)


def test_presign_accepts_the_bounds() -> None:
    for expires in (1, 7 * 24 * 3600):
        assert "X-Amz-Signature=" in signing.presign_v4(
            "PUT", HOST, "/k", [], AWS_CREDS, "us-east-1", EXAMPLE_TIME, expires
        )


def test_session_token_is_sent_and_signed() -> None:
    creds = Credentials("AK", "SK", "TOKEN/+=")
    headers = signing.sign_v4("GET", HOST, "/k", [], {}, signing.EMPTY_SHA256, creds,
                              "us-east-1", EXAMPLE_TIME)
    assert headers["X-Amz-Security-Token"] == "TOKEN/+="
    assert "x-amz-security-token" in headers["Authorization"]
    query = signing.presign_v4("GET", HOST, "/k", [], creds, "us-east-1", EXAMPLE_TIME, 60)
    assert dict(parse_qsl(query))["X-Amz-Security-Token"] == "TOKEN/+="


# -- botocore as the reference ------------------------------------------------------

key_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
)
keys = st.one_of(
    key_text,
    st.lists(st.sampled_from(["a", " ", "+", "%", "?", "#", "=", "&", "/", "é", "😀", "~", "%2F"]),
             min_size=1, max_size=20).map("".join),
)
param_names = st.text(st.sampled_from("abcXYZ-_.~ +%=&/é"), min_size=1, max_size=8)
param_values = st.text(st.sampled_from("abc019 +%=&/?#é~"), max_size=10)
params_st = st.dictionaries(param_names, param_values, max_size=4).map(lambda d: list(d.items()))
header_names = st.text(st.sampled_from("abcdefxyz-"), min_size=1, max_size=10).map(
    lambda s: "x-" + s
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
headers_st = st.dictionaries(header_names, header_values, max_size=4)
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"])


def _url(host: str, path: str, params: list[tuple[str, str]], scheme: str = "http") -> str:
    query = signing.encode_query(params)
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _frozen_now(now: float):
    dt = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)
    return mock.patch.object(botocore.auth, "get_current_datetime", return_value=dt)


def _boto_creds(creds: Credentials) -> botocore.credentials.Credentials:
    return botocore.credentials.Credentials(creds.access_key, creds.secret_key,
                                            creds.session_token)


creds_st = st.builds(
    Credentials,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=4, max_size=20),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=40),
    st.none() | st.text("abcXYZ019/+=", min_size=1, max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(method=methods, key=keys, params=params_st, headers=headers_st, body=st.binary(max_size=64),
       creds=creds_st, now=st.integers(0, 4_000_000_000),
       region=st.sampled_from(["us-east-1", "cn-north-1", "beijing"]),
       host=st.sampled_from(["s3.example.com", "127.0.0.1:8333", "b.mtmss.com"]))
def test_sigv4_header_signing_matches_botocore(method, key, params, headers, body, creds, now,
                                               region, host) -> None:
    path = "/bucket/" + signing.uri_encode(key, keep_slash=True)
    payload = hashlib.sha256(body).hexdigest()
    ours = signing.sign_v4(method, host, path, params, headers, payload, creds, region, now)
    request = AWSRequest(method=method, url=_url(host, path, params), headers=dict(headers),
                         data=body)
    with _frozen_now(now):
        botocore.auth.S3SigV4Auth(_boto_creds(creds), "s3", region).add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Content-SHA256"] == request.headers["X-Amz-Content-SHA256"]


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(["GET", "PUT"]), key=keys, params=params_st, creds=creds_st,
       now=st.integers(0, 4_000_000_000), expires=st.integers(1, 7 * 24 * 3600))
def test_sigv4_presigned_url_matches_botocore(method, key, params, creds, now, expires) -> None:
    path = "/bucket/" + signing.uri_encode(key, keep_slash=True)
    host = "s3.example.com"
    ours = dict(parse_qsl(signing.presign_v4(method, host, path, params, creds, "us-east-1",
                                             now, expires), keep_blank_values=True))
    request = AWSRequest(method=method, url=_url(host, path, params, "https"))
    with _frozen_now(now):
        botocore.auth.S3SigV4QueryAuth(_boto_creds(creds), "s3", "us-east-1",
                                       expires=expires).add_auth(request)
    theirs = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    assert ours == theirs


class _FixedDateHmacV1(botocore.auth.HmacV1Auth):
    date = ""

    def _get_date(self) -> str:
        return self.date


v2_params = st.lists(
    st.sampled_from([("uploads", ""), ("uploadId", "abc+/="), ("partNumber", "3"),
                     ("delete", ""), ("prefix", "x y"), ("versionId", "v1")]),
    unique_by=lambda p: p[0], max_size=3,
)
v2_headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["text/plain", "application/octet-stream"]),
    "Content-MD5": st.just("1B2M2Y8AsgTpgAmY7PhCfg=="),
    "x-amz-meta-mode": st.sampled_from(["33188", " 420 "]),
    "X-Amz-Copy-Source": st.just("/b/k%20x"),
    "Range": st.just("bytes=0-1"),
})


@settings(max_examples=200, deadline=None)
@given(method=methods, key=keys, params=v2_params, headers=v2_headers, creds=creds_st,
       now=st.integers(0, 4_000_000_000))
def test_sigv2_header_signing_matches_botocore(method, key, params, headers, creds, now) -> None:
    path = "/bucket/" + signing.uri_encode(key, keep_slash=True)
    ours = signing.sign_v2(method, path, params, headers, creds, now)
    request = AWSRequest(method=method, url=_url("s3.example.com", path, params),
                         headers=dict(headers))
    signer = _FixedDateHmacV1(_boto_creds(creds))
    signer.date = ours["Date"]
    signer.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_sigv2_presigned_url_matches_botocore() -> None:
    creds = Credentials("AKID", "secret/key+")
    query = signing.presign_v2("GET", "/bucket/a%20b", [], creds, 1_700_000_000, 300)
    request = AWSRequest(method="GET", url="https://s3.example.com/bucket/a%20b")
    with mock.patch.object(botocore.auth.time, "time", return_value=1_700_000_000):
        botocore.auth.HmacV1QueryAuth(_boto_creds(creds), expires=300).add_auth(request)
    theirs = dict(parse_qsl(urlsplit(request.url).query))
    assert dict(parse_qsl(query)) == theirs
    assert theirs["Expires"] == "1700000300"


def test_canonical_query_sorts_by_encoded_name_then_value() -> None:
    assert signing.canonical_query([("b", "2"), ("a", "z"), ("a", "y"), ("uploads", "")]) == (
        "a=y&a=z&b=2&uploads="
    )
    assert signing.encode_query([("uploads", ""), ("x y", "1+1")]) == "uploads&x%20y=1%2B1"
