"""Whatever a device sends, decoding ends in a value or a FormatError, never another error."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.lwm2m import (ContentFormat, FormatError, ObjLink, SUPPORTED, decode, encode, to_json_value,
                           values_to_json)
from gateway.lwm2m.formats import _cbor

from _lwm2m_testlib import REGISTRY

PATHS = ["/3", "/3/0", "/3/0/9", "/3/0/7", "/3/0/7/1", "/1/0/6", "/5/0/0", "/6/0/0", "/3303/0/5700",
         "/10234/0", "/", "/65000/1/17"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="/0123456789:abvnsde", max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["bn", "bt", "n", "v", "vs", "vb", "vd", "vlo", "t", "e", "sv", "bv",
                                       "ov", "x_", "bver", "bv"]), children, max_size=5),
    max_leaves=20)


def _decode_safely(cf, payload, path):
    try:
        decode(cf, payload, path, REGISTRY)
    except FormatError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SUPPORTED)), st.binary(max_size=64), st.sampled_from(PATHS))
def test_random_bytes(cf, payload, path):
    _decode_safely(cf, payload, path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.sampled_from([ContentFormat.SENML_JSON, ContentFormat.LWM2M_JSON]), st.sampled_from(PATHS))
def test_random_json_structures(doc, cf, path):
    _decode_safely(cf, json.dumps(doc).encode(), path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.sampled_from(PATHS))
def test_random_cbor_structures(doc, path):
    try:
        payload = _cbor.dumps(doc if not isinstance(doc, dict) else {({"n": 0, "v": 2, "vs": 3}).get(k, k): v
                                                                       for k, v in doc.items()})
    except FormatError:
        return
    _decode_safely(ContentFormat.SENML_CBOR, payload, path)
    _decode_safely(ContentFormat.CBOR, payload, path)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_tlv_mutations_of_a_valid_payload(noise):
    base = bytearray.fromhex("C800144F70656E204D6F62696C6520416C6C69616E6365860641000141010588070842000ED842011388")
    for i, b in enumerate(noise):
        base[(i * 7) % len(base)] ^= b
    _decode_safely(ContentFormat.TLV, bytes(base), "/3/0")
    _decode_safely(ContentFormat.TLV, bytes(base), "/3")


def test_deep_cbor_nesting():
    _decode_safely(ContentFormat.SENML_CBOR, b"\x81" * 100000, "/3/0")


def test_unsupported_content_format():
    with pytest.raises(FormatError) as exc:
        decode(50, b"{}", "/3/0", REGISTRY)
    assert str(exc.value) == "unsupported content format 50"
    with pytest.raises(FormatError, match="unsupported content format 40"):
        encode(40, {}, "/3/0", REGISTRY)


def test_payload_type_and_size():
    with pytest.raises(FormatError, match="payload must be bytes, not str"):
        decode(ContentFormat.TEXT, "abc", "/3/0/0", REGISTRY)  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="over the 1048576-byte limit"):
        decode(ContentFormat.OPAQUE, b"\0" * (1024 * 1024 + 1), "/5/0/0", REGISTRY)


def test_bad_base_path_is_a_format_error():
    with pytest.raises(FormatError, match="segment 'x' is not a decimal id"):
        decode(ContentFormat.TLV, b"", "/3/x", REGISTRY)


def test_encode_duplicate_and_invalid_paths():
    from gateway.lwm2m import LwM2MPath
    with pytest.raises(FormatError, match="two values for /3/0/9"):
        encode(ContentFormat.TLV, {"/3/0/9": 1, LwM2MPath(3, 0, 9): 2}, "/3/0", REGISTRY)
    with pytest.raises(FormatError, match="not valid Unicode"):
        encode(ContentFormat.SENML_JSON, {"/3/0/0": "\ud800"}, "/3/0", REGISTRY)
    with pytest.raises(FormatError, match="not valid Unicode"):
        encode(ContentFormat.TLV, {"/3/0/0": "\ud800"}, "/3/0", REGISTRY)


def test_default_registry_used_when_none_given():
    assert decode(ContentFormat.TLV, bytes.fromhex("C10964"), "/3/0") == {"/3/0/9": 100}


def test_json_rendering_for_telemetry():
    values = {"/3303/0/5700": 21.5, "/5/0/0": b"\x01\x02", "/1/0/10": ObjLink(66, 1), "/3/0/9": 80,
              "/3/0/0": "x", "/1/0/6": True, "/3303/1/5700": float("nan")}
    assert values_to_json(values) == {"/3303/0/5700": 21.5, "/5/0/0": "AQI=", "/1/0/10": "66:1", "/3/0/9": 80,
                                      "/3/0/0": "x", "/1/0/6": True, "/3303/1/5700": None}
    assert to_json_value(b"") == ""
    json.dumps(values_to_json(values), allow_nan=False)
