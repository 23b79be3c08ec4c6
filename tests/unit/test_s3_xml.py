"""s3_xml: parse the S3 documents in tests/unit/data/, build request bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssfs.store import s3_xml
from mssfs.store.base import CompletedPart

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_list_buckets() -> None:
    buckets = s3_xml.parse_buckets(load("list_buckets.xml"))
    assert [b.name for b in buckets] == ["quotes", "samples"]
    assert buckets[0].created == 1138985109.0


def test_list_v2_url_encoded_keys_are_decoded() -> None:
    listing = s3_xml.parse_listing(load("list_v2_encoded.xml"))
    assert listing.is_v2
    assert listing.truncated
    assert listing.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    assert [o.key for o in listing.objects] == ["dir/a b+c\x01\n.txt", "dir/✓"]
    first = listing.objects[0]
    assert first.size == 434234
    assert first.etag == "fba9dede5f27731c9771645a39863328"
    assert first.last_modified == 1255369830.0
    assert first.storage_class == "STANDARD"
    assert listing.objects[1].etag == "9b2cf535f27731c974343645a3985328-2"
    assert listing.prefixes == ["dir/sub dir/"]


def test_list_v1_has_no_key_count_and_a_next_marker() -> None:
    listing = s3_xml.parse_listing(load("list_v1.xml"))
    assert not listing.is_v2
    assert listing.truncated
    assert listing.next_marker == "photos/"
    assert listing.next_token is None
    assert [o.key for o in listing.objects] == ["my-image.jpg"]
    assert listing.prefixes == ["photos/"]


def test_plain_keys_are_not_decoded_without_encoding_type() -> None:
    body = (b"<ListBucketResult><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>"
            b"<Contents><Key>a%20b+c</Key><Size>1</Size><ETag>x</ETag></Contents>"
            b"</ListBucketResult>")
    listing = s3_xml.parse_listing(body)
    assert [o.key for o in listing.objects] == ["a%20b+c"]
    assert not listing.truncated
    assert listing.next_token is None


def test_initiate_complete_and_copy() -> None:
    assert s3_xml.parse_initiate(load("initiate.xml")).startswith("VXBsb2FkIElE")
    assert s3_xml.parse_complete(load("complete.xml")) == "3858f62230ac3c915f300c664312c11f-9"
    assert s3_xml.parse_copy_result(load("copy_object.xml")) == "9b2cf535f27731c974343645a3985328"
    assert s3_xml.parse_copy_result(load("copy_part.xml")) == "9b2cf535f27731c974343645a3985328"


@pytest.mark.parametrize("parse", [s3_xml.parse_complete, s3_xml.parse_copy_result,
                                   s3_xml.parse_listing, s3_xml.parse_initiate])
def test_a_200_answer_with_an_error_body_is_detected(parse) -> None:
    with pytest.raises(s3_xml.ErrorDocument) as info:
        parse(load("complete_200_error.xml"))
    assert info.value.info.code == "InternalError"
    assert info.value.info.request_id == "656c76696e6727732072657175657374"


def test_list_multipart_uploads() -> None:
    page = s3_xml.parse_uploads(load("list_uploads.xml"))
    assert [u.key for u in page.uploads] == ["my-divisor", "my-movie.m2ts"]
    assert page.uploads[0].upload_id == "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw"
    assert page.uploads[0].initiated == 1289422113.0
    assert page.truncated
    assert page.next_key_marker == "my-movie.m2ts"
    assert page.next_upload_id_marker.startswith("YW55IGlkZWEg")


def test_delete_result_reports_only_failures() -> None:
    failures = s3_xml.parse_delete_result(load("delete_result.xml"))
    assert [(f.key, f.code, f.message) for f in failures] == [
        ("sample2.txt", "AccessDenied", "Access Denied")
    ]


def test_error_document() -> None:
    info = s3_xml.parse_error(load("error_nosuchkey.xml"))
    assert info == s3_xml.ErrorInfo("NoSuchKey", "The resource you requested does not exist",
                                    "4442587FB7D0A2F9")
    assert s3_xml.parse_error(load("list_v1.xml")) is None
    assert s3_xml.parse_error(b"") is None
    assert s3_xml.parse_error(load("html_page.xml")) is None


def test_entities_are_never_resolved() -> None:
    with pytest.raises(s3_xml.MalformedXml):
        s3_xml.parse_document(load("billion_laughs.xml"))
    assert s3_xml.parse_error(load("billion_laughs.xml")) is None


@pytest.mark.parametrize("body", [b"", b"<html><body>hi</body></html>", b"not xml at all",
                                  b"<ListBucketResult><Contents>"])
def test_non_s3_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(s3_xml.MalformedXml):
        s3_xml.parse_listing(body)


def test_document_missing_a_required_field_is_malformed() -> None:
    with pytest.raises(s3_xml.MalformedXml):
        s3_xml.parse_initiate(b"<InitiateMultipartUploadResult><Bucket>b</Bucket>"
                              b"</InitiateMultipartUploadResult>")


def test_parse_time_accepts_xml_and_http_dates() -> None:
    assert s3_xml.parse_time("2009-10-12T17:50:30.000Z") == 1255369830.0
    assert s3_xml.parse_time("Mon, 12 Oct 2009 17:50:30 GMT") == 1255369830.0
    assert s3_xml.parse_time("") == 0.0
    assert s3_xml.parse_time("garbage") == 0.0


def test_build_complete_orders_parts_and_quotes_etags() -> None:
    body = s3_xml.build_complete([CompletedPart(2, '"bb"'), CompletedPart(1, "aa")])
    root = s3_xml.parse_document(body)
    assert root.tag == "CompleteMultipartUpload"
    parts = [(p.findtext("PartNumber"), p.findtext("ETag")) for p in root.iter("Part")]
    assert parts == [("1", '"aa"'), ("2", '"bb"')]


xml_keys = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(
        lambda c: s3_xml.xml_safe(c) and c not in "\ufffe\uffff"
    ),
    min_size=1, max_size=30,
)


@given(keys=st.lists(xml_keys, min_size=1, max_size=5), quiet=st.booleans())
def test_build_delete_round_trips_any_xml_safe_key(keys: list[str], quiet: bool) -> None:
    root = ET.fromstring(s3_xml.build_delete(keys, quiet=quiet))
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert [k.text for k in root.iter(f"{ns}Key")] == keys
    assert (root.findtext(f"{ns}Quiet") == "true") is quiet


def test_xml_safe() -> None:
    assert s3_xml.xml_safe("a\tb\nc\rd<&>\"'")
    assert not s3_xml.xml_safe("a\x01b")
