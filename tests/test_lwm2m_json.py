"""LwM2M JSON (11543, old 1543).

The Device object vector is the JSON example of the OMA LwM2M 1.0 Core specification
(§6.4.4, Read /3/0), written compactly with a base name and the final resource numbers
(Binding is resource 16), in the form Eclipse Leshan's decoder tests use it. The
timestamped example is the spec's "multiple historical representations" example.
"""

import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import ContentFormat, FormatError, ObjLink, Record, decode, decode_records, encode, encode_records

from _lwm2m_testlib import REGISTRY, TEST_OID, object_values

LJ = ContentFormat.LWM2M_JSON

DEVICE_JSON = (
    '{"bn":"/3/0/","e":['
    '{"n":"0","sv":"Open Mobile Alliance"},{"n":"1","sv":"Lightweight M2M Client"},'
    '{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},'
    '{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},'
    '{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},'
    '{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}').encode()

DEVICE_VALUES = {
    "/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/2": "345000123",
    "/3/0/3": "1.0", "/3/0/6/0": 1, "/3/0/6/1": 5, "/3/0/7/0": 3800, "/3/0/7/1": 5000,
    "/3/0/8/0": 125, "/3/0/8/1": 900, "/3/0/9": 100, "/3/0/10": 15, "/3/0/11/0": 0,
    "/3/0/13": 1367491215, "/3/0/14": "+02:00", "/3/0/16": "U",
}


def test_device_vector():
    assert decode(LJ, DEVICE_JSON, "/3/0", REGISTRY) == DEVICE_VALUES
    assert encode(LJ, DEVICE_VALUES, "/3/0", REGISTRY) == DEVICE_JSON
    assert decode(ContentFormat.OLD_JSON, DEVICE_JSON, "/3/0", REGISTRY) == DEVICE_VALUES


def test_base_name_variants():
    root_bn = b'{"bn":"/","e":[{"n":"3/0/9","v":100},{"n":"3/0/7/1","v":5000}]}'
    no_bn_absolute = b'{"e":[{"n":"/3/0/9","v":100},{"n":"/3/0/7/1","v":5000}]}'
    no_bn_relative = b'{"e":[{"n":"9","v":100},{"n":"7/1","v":5000}]}'  # 1.0 draft style
    cut_in_the_middle = b'{"bn":"/3/0/","e":[{"n":"9","v":100},{"n":"7/1","v":5000}]}'
    for payload in (root_bn, no_bn_absolute, no_bn_relative, cut_in_the_middle):
        assert decode(LJ, payload, "/3/0", REGISTRY) == {"/3/0/9": 100, "/3/0/7/1": 5000}
    # Leshan: a base name cut in the middle of an id
    assert decode(LJ, b'{"bn":"3/0/1","e":[{"n":"1/0","v":0},{"n":"1/1","v":0}]}', "/3/0/11",
                  REGISTRY) == {"/3/0/11/0": 0, "/3/0/11/1": 0}


def test_old_draft_numbers_as_strings():
    payload = b'{"e":[{"n":"9","v":"100"},{"n":"13","v":"1367491215","t":"-5"}],"bt":"25462634"}'
    assert decode_records(LJ, payload, "/3/0", REGISTRY) == [
        Record("/3/0/9", 100, 25462634), Record("/3/0/13", 1367491215, 25462629)]


def test_timestamped_notification():
    # LwM2M 1.0 §6.4.4: several historical values of one resource, relative to bt
    payload = (b'{"bn":"/3303/0/5700","e":[{"v":22.9,"t":-30},{"v":22.4,"t":-5},{"v":24.1,"t":-50}],'
               b'"bt":25462634}')
    recs = decode_records(LJ, payload, "/3303/0/5700", REGISTRY)
    assert [(r.value, r.time) for r in recs] == [(22.9, 25462604), (22.4, 25462629), (24.1, 25462584)]
    assert decode(LJ, payload, "/3303/0/5700", REGISTRY) == {"/3303/0/5700": 22.4}


def test_value_types():
    base = f"/{TEST_OID}/0"
    values = {f"{base}/0": "s", f"{base}/1": -5, f"{base}/3": 1.5, f"{base}/4": True, f"{base}/5": b"\xfb\xff",
              f"{base}/6": 1700000000, f"{base}/7": ObjLink(66, 1), f"{base}/14/3": False}
    payload = encode(LJ, values, base, REGISTRY)
    assert payload == (b'{"bn":"/65000/0/","e":[{"n":"0","sv":"s"},{"n":"1","v":-5},{"n":"3","v":1.5},'
                       b'{"n":"4","bv":true},{"n":"5","sv":"+/8="},{"n":"6","v":1700000000},'
                       b'{"n":"7","ov":"66:1"},{"n":"14/3","bv":false}]}')
    assert decode(LJ, payload, base, REGISTRY) == values


def test_unknown_object():
    payload = b'{"bn":"/1024/0/","e":[{"n":"0","sv":"a string"},{"n":"1","v":10.5},{"n":"2","bv":true}]}'
    assert decode(LJ, payload, "/1024/0", REGISTRY) == {"/1024/0/0": "a string", "/1024/0/1": 10.5,
                                                       "/1024/0/2": True}


def test_empty_entry_list():
    assert decode(LJ, b'{"e":[]}', "/2", REGISTRY) == {}
    assert encode(LJ, {}, "/2", REGISTRY) == b'{"e":[]}'


def test_timed_encode():
    recs = [Record("/3303/0/5700", 22.4, 1700000000), Record("/3303/0/5700", 22.9, 1700000010)]
    payload = encode_records(LJ, recs, "/3303/0/5700", REGISTRY)
    assert payload == b'{"bn":"/3303/0/5700","e":[{"v":22.4,"t":1700000000},{"v":22.9,"t":1700000010}]}'
    assert decode_records(LJ, payload, "/3303/0/5700", REGISTRY) == recs


@pytest.mark.parametrize("payload, message", [
    (b"[]", 'LwM2M JSON: the payload must be an object with an "e" array'),
    (b"{}", 'LwM2M JSON: missing the "e" array'),
    (b'{"e":{}}', 'LwM2M JSON: "e" must be an array'),
    (b'{"bn":3,"e":[]}', 'LwM2M JSON: "bn" must be a string'),
    (b'{"bt":"x","e":[]}', "LwM2M JSON: 'bt' must be a number"),
    (b'{"e":[1]}', "LwM2M JSON: entry 0 is not an object"),
    (b'{"e":[{"n":5,"v":1}]}', "LwM2M JSON: entry 0: 'n' must be a string"),
    (b'{"e":[{"n":"9"}]}', "LwM2M JSON: entry 0 has no value (one of v, bv, sv, ov)"),
    (b'{"e":[{"n":"9","v":1,"sv":"1"}]}', "LwM2M JSON: entry 0 has more than one value (v, sv)"),
    (b'{"e":[{"n":"9","v":"abc"}]}', "LwM2M JSON: entry 0: 'v' must be a number"),
    (b'{"e":[{"n":"9","v":1,"t":[]}]}', "LwM2M JSON: entry 0: 't' must be a number"),
    (b'{"e":[{"n":"14","bv":1}]}', "LwM2M JSON: entry 0: 'bv' must be a boolean"),
    (b'{"e":[{"n":"14","sv":1}]}', "LwM2M JSON: entry 0: 'sv' must be a string"),
    (b'{"e":[{"n":"14","ov":"1"}]}', "LwM2M JSON: entry 0: object link '1' is not of the form oid:iid"),
    (b'{"e":[{"n":"x","v":1}]}',
     "LwM2M JSON: entry 0: name '/3/0/x' is not a LwM2M path (path '/3/0/x': segment 'x' is not a decimal id)"),
    (b'{"e":[{"n":"/4/0/1","v":1}]}', "LwM2M JSON: entry 0: /4/0/1 is outside the requested path /3/0"),
    (b'{"e":[{"n":"9","sv":"x"}]}', "LwM2M JSON: entry 0 (/3/0/9): 'x' is not an integer"),
    (b'{"e":[{"n":"0","v":1}]}', "LwM2M JSON: entry 0 (/3/0/0): number given where a string is expected"),
    (b'{"e":[', "LwM2M JSON: invalid JSON at character 6: Expecting value"),
])
def test_malformed(payload, message):
    with pytest.raises(FormatError) as exc:
        decode(LJ, payload, "/3/0", REGISTRY)
    assert str(exc.value) == message


def test_opaque_sv_must_be_base64():
    with pytest.raises(FormatError) as exc:
        decode(LJ, b'{"e":[{"n":"0","sv":"***"}]}', "/5/0", REGISTRY)
    assert str(exc.value) == "LwM2M JSON: entry 0 (/5/0/0): '***' is not base64"


@settings(max_examples=150, deadline=None)
@given(object_values(), st.booleans())
def test_roundtrip(values, at_root):
    base = "/" if at_root else f"/{TEST_OID}"
    assert decode(LJ, encode(LJ, values, base, REGISTRY), base, REGISTRY) == values
