"""Plain text (0, old 1541), opaque (42, old 1544) and CBOR (60) single values.

Vectors: Core §7.4.1 plain text example (Read /3/0/0 -> "Open Mobile Alliance");
Core Appendix C: opaque bytes 01 02 03 04 05 as text are "AQIDBAU="; CBOR Time as tag 1
(RFC 8949 §3.4.2 epoch time), as Leshan writes it.
"""

import math

import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import ContentFormat, FormatError, ObjLink, decode, encode

from _lwm2m_testlib import REGISTRY, TEST_OID, TYPES, VALUES

TEXT, OPAQUE, CBOR = ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR


@pytest.mark.parametrize("path, text, value", [
    ("/3/0/0", "Open Mobile Alliance", "Open Mobile Alliance"),
    ("/3/0/9", "100", 100),
    ("/3/0/13", "1367491215", 1367491215),
    ("/3303/0/5700", "21.5", 21.5),
    ("/1/0/6", "1", True),
    ("/1/0/6", "0", False),
    ("/5/0/0", "AQIDBAU=", b"\x01\x02\x03\x04\x05"),
    ("/1/0/10", "66:1", ObjLink(66, 1)),
    ("/3/0/7/1", "5000", 5000),
])
def test_text_vectors(path, text, value):
    assert decode(TEXT, text.encode(), path, REGISTRY) == {path: value}
    assert encode(TEXT, {path: value}, path, REGISTRY) == text.encode()
    assert decode(ContentFormat.OLD_TEXT, text.encode(), path, REGISTRY) == {path: value}


@pytest.mark.parametrize("path, text, value", [
    ("/1/0/6", "true", True), ("/1/0/6", "False", False), ("/3/0/9", " 42\n", 42),
    ("/3303/0/5700", "2.15e1", 21.5), ("/3303/0/5700", "-.5", -0.5), ("/3303/0/5700", "7", 7.0),
    ("/5/0/0", "AQIDBAU", b"\x01\x02\x03\x04\x05"), ("/10234/0/1", "42", "42"),
])
def test_text_lenient_input(path, text, value):
    assert decode(TEXT, text.encode(), path, REGISTRY) == {path: value}


@pytest.mark.parametrize("value, text", [
    (1e20, "100000000000000000000.0"), (1e-7, "0.0000001"), (-0.0, "-0.0"), (21.0, "21.0"),
    (0.1, "0.1"), (5e-324, "0." + "0" * 323 + "5"),
])
def test_text_float_has_no_exponent(value, text):
    assert encode(TEXT, {"/3303/0/5700": value}, "/3303/0/5700", REGISTRY) == text.encode()
    assert decode(TEXT, text.encode(), "/3303/0/5700", REGISTRY) == {"/3303/0/5700": value}


@pytest.mark.parametrize("path, payload, message", [
    ("/3/0/9", b"abc", "Plain text (/3/0/9): 'abc' is not an integer"),
    ("/3/0/9", b"1.5", "Plain text (/3/0/9): '1.5' is not an integer"),
    ("/3/0/9", b"99999999999999999999", "Plain text (/3/0/9): 99999999999999999999 is out of range for Integer "
                                         "(-9223372036854775808..9223372036854775807)"),
    ("/3303/0/5700", b"nan", "Plain text (/3303/0/5700): 'nan' is not a decimal number"),
    ("/3303/0/5700", b"1_0", "Plain text (/3303/0/5700): '1_0' is not a decimal number"),
    ("/3303/0/5700", b"1e999", "Plain text (/3303/0/5700): '1e999' is out of the float range"),
    ("/1/0/6", b"yes", "Plain text (/1/0/6): 'yes' is not a boolean (0, 1, true or false)"),
    ("/1/0/10", b"66", "Plain text (/1/0/10): object link '66' is not of the form oid:iid"),
    ("/5/0/0", b"@@", "Plain text (/5/0/0): '@@' is not base64"),
    ("/3/0/0", b"\xc3\x28", "Plain text: payload is not UTF-8 (byte 0)"),
    ("/3/0", b"x", "Plain text: carries one resource value; /3/0 is not a resource or resource instance path"),
    ("/3/0/7", b"1", "Plain text: carries one value; /3/0/7 is a multiple-instance resource "
                     "(address one of its instances)"),
])
def test_text_malformed(path, payload, message):
    with pytest.raises(FormatError) as exc:
        decode(TEXT, payload, path, REGISTRY)
    assert str(exc.value) == message


@pytest.mark.parametrize("cf, values, path, message", [
    (TEXT, {"/3/0/9": 1, "/3/0/10": 2}, "/3/0/9", "Plain text: carries exactly one value, 2 given"),
    (TEXT, {"/3/0/10": 2}, "/3/0/9", "Plain text: value is for /3/0/10, not the request path /3/0/9"),
    (TEXT, {"/3/0/4": 2}, "/3/0/4", "Plain text: /3/0/4 is executable and has no value to encode"),
    (TEXT, {"/3303/0/5700": float("inf")}, "/3303/0/5700",
     "Plain text (/3303/0/5700): inf cannot be written as a decimal number"),
    (OPAQUE, {"/3/0/0": b"x"}, "/3/0/0",
     "Opaque: /3/0/0 is a String resource; the opaque format is for Opaque resources"),
    (OPAQUE, {"/5/0/0": "x"}, "/5/0/0", "Opaque: value for /5/0/0 must be bytes"),
    (CBOR, {"/3/0/9": "x"}, "/3/0/9", "CBOR (/3/0/9): 'x' is not an integer"),
])
def test_single_encode_errors(cf, values, path, message):
    with pytest.raises(FormatError) as exc:
        encode(cf, values, path, REGISTRY)
    assert str(exc.value) == message


def test_opaque():
    blob = bytes(range(256))
    assert decode(OPAQUE, blob, "/5/0/0", REGISTRY) == {"/5/0/0": blob}
    assert encode(OPAQUE, {"/5/0/0": blob}, "/5/0/0", REGISTRY) == blob
    assert decode(ContentFormat.OLD_OPAQUE, b"\x00", "/19/0/0/0", REGISTRY) == {"/19/0/0/0": b"\x00"}
    # opaque is bytes whatever the declared type (a client answering a read with 42)
    assert decode(OPAQUE, b"abc", "/3/0/0", REGISTRY) == {"/3/0/0": b"abc"}


@pytest.mark.parametrize("path, value, hexpayload", [
    ("/3/0/13", 1367491215, "c11a5182428f"),
    ("/3303/0/5700", 21.5, "f94d60"),
    ("/3303/0/5700", 0.1, "fb3fb999999999999a"),
    ("/3/0/9", 100, "1864"),
    ("/3/0/9", -1, "20"),
    ("/1/0/6", True, "f5"),
    ("/3/0/0", "abc", "63616263"),
    ("/5/0/0", b"\x01\x02", "420102"),
    ("/1/0/10", ObjLink(66, 0), "6436363a30"),
    (f"/{TEST_OID}/0/2", 2**64 - 1, "1bffffffffffffffff"),
])
def test_cbor_vectors(path, value, hexpayload):
    assert encode(CBOR, {path: value}, path, REGISTRY).hex() == hexpayload
    assert decode(CBOR, bytes.fromhex(hexpayload), path, REGISTRY) == {path: value}


def test_cbor_lenient_input():
    assert decode(CBOR, bytes.fromhex("1a5182428f"), "/3/0/13", REGISTRY) == {"/3/0/13": 1367491215}  # untagged
    assert decode(CBOR, bytes.fromhex("c0" "74323031332d30352d30325431303a34303a31355a"), "/3/0/13",
                  REGISTRY) == {"/3/0/13": 1367491215}  # tag 0 date-time text
    assert decode(CBOR, bytes.fromhex("1864"), "/3303/0/5700", REGISTRY) == {"/3303/0/5700": 100.0}
    assert decode(CBOR, bytes.fromhex("f93c00"), "/10234/0/0", REGISTRY) == {"/10234/0/0": 1.0}


@pytest.mark.parametrize("hexpayload, message", [
    ("8101", "CBOR (/3/0/9): an array or map is not a resource value"),
    ("a0", "CBOR (/3/0/9): an array or map is not a resource value"),
    ("f6", "CBOR (/3/0/9): None is not a resource value"),
    ("f7", "CBOR (/3/0/9): undefined is not a resource value"),
    ("d86301", "CBOR (/3/0/9): CBORTag(99, 1) is not a resource value"),
    ("6161", "CBOR (/3/0/9): 'a' is not an integer"),
    ("f5", "CBOR (/3/0/9): boolean given where an integer is expected"),
    ("0101", "CBOR: 1 trailing byte after the CBOR item (at byte 1)"),
    ("f94d60", "CBOR (/3/0/9): 21.5 is not a whole number (an integer expected)"),
])
def test_cbor_malformed(hexpayload, message):
    with pytest.raises(FormatError) as exc:
        decode(CBOR, bytes.fromhex(hexpayload), "/3/0/9", REGISTRY)
    assert str(exc.value) == message


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(TYPES)).flatmap(lambda rid: st.tuples(st.just(rid), VALUES[TYPES[rid]])),
       st.sampled_from([TEXT, CBOR]), st.booleans())
def test_roundtrip(case, cf, instance):
    rid, value = case
    path = f"/{TEST_OID}/0/{rid + 10}/7" if instance else f"/{TEST_OID}/0/{rid}"
    assert decode(cf, encode(cf, {path: value}, path, REGISTRY), path, REGISTRY) == {path: value}


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_opaque_roundtrip(blob):
    path = f"/{TEST_OID}/0/5"
    assert decode(OPAQUE, encode(OPAQUE, {path: blob}, path, REGISTRY), path, REGISTRY) == {path: blob}


def test_cbor_non_finite():
    for f in (math.inf, -math.inf):
        payload = encode(CBOR, {"/3303/0/5700": f}, "/3303/0/5700", REGISTRY)
        assert decode(CBOR, payload, "/3303/0/5700", REGISTRY) == {"/3303/0/5700": f}
    nan = encode(CBOR, {"/3303/0/5700": math.nan}, "/3303/0/5700", REGISTRY)
    assert nan.hex() == "f97e00"
    assert math.isnan(decode(CBOR, nan, "/3303/0/5700", REGISTRY)["/3303/0/5700"])
