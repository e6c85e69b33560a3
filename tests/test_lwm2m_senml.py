"""SenML JSON (110) and SenML CBOR (112).

Vectors:
* RFC 8428 §6: the hex dump of the §5.1.2 example in CBOR (base name, base time, base
  unit, version, relative times, a half-precision float) — decoded and re-encoded
  byte-exact by our CBOR writer.
* RFC 8428 §5.1.2 / §5.1.6: base name and base time resolution (JSON).
* OMA LwM2M Core 1.1 §7.4.5/§7.4.6: Read /3/0 of the Device object in SenML JSON and
  SenML CBOR. The JSON text is the spec's example in compact form; the CBOR hex and
  the opaque/float CBOR vectors are those of Eclipse Leshan's SenML tests
  (AbstractSenMLTest, SenMLCborSerializerTest), an independent implementation.
"""

import json

import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import ContentFormat, FormatError, ObjLink, Record, decode, decode_records, encode, encode_records
from gateway.lwm2m.formats import _cbor, _json, senml, senml_cbor

from _lwm2m_testlib import REGISTRY, TEST_OID, object_values

SJ = ContentFormat.SENML_JSON
SC = ContentFormat.SENML_CBOR

RFC8428_CBOR = bytes.fromhex(
    "87a721781b75726e3a6465763a6f773a3130653230373361303130383030363a"
    "22fb41d303a15b00106223614120050067766f6c74616765016156 02fb405e066666666666"
    "a3006763757272656e74062402fb3ff3333333333333"
    "a3006763757272656e74062302fb3ff4cccccccccccd"
    "a3006763757272656e74062202fb3ff6666666666666"
    "a3006763757272656e74062102f93e00"
    "a3006763757272656e74062002fb3ff999999999999a"
    "a3006763757272656e74060002fb3ffb333333333333".replace(" ", ""))

DEVICE_SENML_JSON = (
    '[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},'
    '{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},'
    '{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},'
    '{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},'
    '{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]'
).encode()

DEVICE_SENML_CBOR = bytes.fromhex(
    "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a200613103764c696768747765696768"
    "74204d324d20436c69656e74a20061320369333435303030313233a20061330363312e30a20063362f300201a20063362f310205a20063372f"
    "3002190ed8a20063372f3102191388a20063382f3002187da20063382f3102190384a2006139021864a200623130020fa2006431312f300200"
    "a200623133021a5182428fa20062313403662b30323a3030a200623136036155")

DEVICE_VALUES = {
    "/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/2": "345000123",
    "/3/0/3": "1.0", "/3/0/6/0": 1, "/3/0/6/1": 5, "/3/0/7/0": 3800, "/3/0/7/1": 5000,
    "/3/0/8/0": 125, "/3/0/8/1": 900, "/3/0/9": 100, "/3/0/10": 15, "/3/0/11/0": 0,
    "/3/0/13": 1367491215, "/3/0/14": "+02:00", "/3/0/16": "U",
}


# -- generic SenML layer (RFC 8428) --------------------------------------------------------

def test_rfc8428_cbor_dump_decodes_and_reencodes_byte_exact():
    pack = senml.check_pack(_cbor.loads(RFC8428_CBOR, "SenML CBOR"), "SenML CBOR")
    assert pack[0] == {"bn": "urn:dev:ow:10e2073a0108006:", "bt": 1276020076.001, "bu": "A", "bver": 5,
                       "n": "voltage", "u": "V", "v": 120.1}
    resolved = senml.resolve(pack, "SenML CBOR")
    assert [(r.name, r.value, r.time) for r in resolved][:2] == [
        ("urn:dev:ow:10e2073a0108006:voltage", 120.1, 1276020076.001),
        ("urn:dev:ow:10e2073a0108006:current", 1.2, 1276020076.001 - 5)]
    assert resolved[5].value == 1.6 and resolved[4].value == 1.5
    assert senml_cbor.pack_to_bytes(pack) == RFC8428_CBOR


def test_rfc8428_json_resolution():
    # RFC 8428 §5.1.6: the last record uses the 3rd record's base name, the 1st's base time
    text = b"""[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},
      {"n":"humidity","u":"%RH","v":30},
      {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
      {"n":"humidity","u":"%RH","v":67}]"""
    resolved = senml.resolve(senml.check_pack(_json.loads(text, "SenML JSON"), "SenML JSON"), "SenML JSON")
    assert [(r.name, r.value, r.time) for r in resolved] == [
        ("2001:db8::2/temperature", 25.2, 1320078429.0), ("2001:db8::2/humidity", 30, 1320078429.0),
        ("2001:db8::1/temperature", 12.3, 1320078429.0), ("2001:db8::1/humidity", 67, 1320078429.0)]


def test_base_value_is_added():
    pack = senml.check_pack([{"bn": "/3303/0/5700", "bv": 20, "v": 1.5}, {"v": -0.5}], "SenML JSON")
    assert [r.value for r in senml.resolve(pack, "SenML JSON")] == [21.5, 19.5]


# -- LwM2M mapping: spec vectors -------------------------------------------------------------

def test_device_senml_json_vector():
    assert decode(SJ, DEVICE_SENML_JSON, "/3/0", REGISTRY) == DEVICE_VALUES
    assert encode(SJ, DEVICE_VALUES, "/3/0", REGISTRY) == DEVICE_SENML_JSON


def test_device_senml_cbor_vector():
    assert decode(SC, DEVICE_SENML_CBOR, "/3/0", REGISTRY) == DEVICE_VALUES
    assert encode(SC, DEVICE_VALUES, "/3/0", REGISTRY) == DEVICE_SENML_CBOR


def test_single_resource_vectors():
    # Leshan: [{-2: "/0/0/3", 8: h'ABCDEF'}]
    opaque = bytes.fromhex("81a221662f302f302f330843abcdef")
    assert encode(SC, {"/0/0/3": bytes.fromhex("abcdef")}, "/0/0/3", REGISTRY) == opaque
    assert decode(SC, opaque, "/0/0/3", REGISTRY) == {"/0/0/3": bytes.fromhex("abcdef")}
    # Leshan: [{2: 300.0, -2: "/3442/0/130"}] (unknown object, half-precision float)
    assert decode(SC, bytes.fromhex("81a202f95cb0216b2f333434322f302f313330"), "/3442/0/130",
                  REGISTRY) == {"/3442/0/130": 300.0}
    assert encode(SJ, {"/3/0/0": "Open Mobile Alliance"}, "/3/0/0", REGISTRY) == \
        b'[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]'


def test_names_and_base_names():
    assert decode(SJ, b'[{"n":"/6/0/3","v":20.0}]', "/6/0/3", REGISTRY) == {"/6/0/3": 20.0}
    acl = (b'[{"bn":"/2/3/","n":"0","v":3},{"n":"1","v":1},{"n":"3","v":123},'
           b'{"bn":"/2/2/","n":"0","v":4},{"n":"1","v":2},{"n":"3","v":124}]')
    assert decode(SJ, acl, "/2", REGISTRY) == {"/2/3/0": 3, "/2/3/1": 1, "/2/3/3": 123,
                                               "/2/2/0": 4, "/2/2/1": 2, "/2/2/3": 124}
    # no base name and a relative name: relative to the request path
    assert decode(SJ, b'[{"n":"9","v":80}]', "/3/0", REGISTRY) == {"/3/0/9": 80}
    # base name without the leading slash
    assert decode(SJ, b'[{"bn":"3/0/","n":"9","v":80}]', "/3/0", REGISTRY) == {"/3/0/9": 80}
    # at the root names are full paths
    assert encode(SJ, {"/3303/0/5700": 21.5, "/3/0/9": 80}, "/", REGISTRY) == \
        b'[{"n":"/3/0/9","v":80},{"n":"/3303/0/5700","v":21.5}]'


def test_value_types_json_and_cbor():
    base = f"/{TEST_OID}/0"
    values = {f"{base}/0": "s", f"{base}/1": -5, f"{base}/2": 2**64 - 1, f"{base}/3": 1.5, f"{base}/4": False,
              f"{base}/5": b"\xfb\xff", f"{base}/6": 1700000000, f"{base}/7": ObjLink(3, 0), f"{base}/8": "</3>"}
    j = encode(SJ, values, base, REGISTRY)
    assert j == (b'[{"bn":"/65000/0/","n":"0","vs":"s"},{"n":"1","v":-5},{"n":"2","v":18446744073709551615},'
                 b'{"n":"3","v":1.5},{"n":"4","vb":false},{"n":"5","vd":"-_8"},{"n":"6","v":1700000000},'
                 b'{"n":"7","vlo":"3:0"},{"n":"8","vs":"</3>"}]')
    assert decode(SJ, j, base, REGISTRY) == values
    c = encode(SC, values, base, REGISTRY)
    assert _cbor.loads(c, "t")[7] == {0: "7", "vlo": "3:0"}
    assert decode(SC, c, base, REGISTRY) == values


def test_vd_accepts_any_base64_spelling():
    for vd in ("-_8", "+/8=", "+/8", "-_8="):
        payload = json.dumps([{"n": "/5/0/0", "vd": vd}]).encode()
        assert decode(SJ, payload, "/5/0/0", REGISTRY) == {"/5/0/0": b"\xfb\xff"}


def test_unknown_object_keeps_senml_types():
    payload = b'[{"bn":"/10234/0/","n":"0","v":1},{"n":"1","v":1.5},{"n":"2","vs":"x"},{"n":"3","vb":true},' \
              b'{"n":"4","vd":"AQ"},{"n":"5","vlo":"1:2"}]'
    assert decode(SJ, payload, "/10234/0", REGISTRY) == {
        "/10234/0/0": 1, "/10234/0/1": 1.5, "/10234/0/2": "x", "/10234/0/3": True,
        "/10234/0/4": b"\x01", "/10234/0/5": ObjLink(1, 2)}


def test_lossless_conversions():
    # a whole float for an Integer resource, an int for a Float one, a float Time is floored
    payload = b'[{"n":"/3/0/9","v":80.0},{"n":"/3303/0/5700","v":21},{"n":"/3/0/13","v":1700000000.9}]'
    got = decode(SJ, payload, "/", REGISTRY)
    assert got == {"/3/0/9": 80, "/3303/0/5700": 21.0, "/3/0/13": 1700000000}
    assert type(got["/3/0/9"]) is int and type(got["/3303/0/5700"]) is float


# -- timestamps (Send, notifications) ------------------------------------------------------

def test_timestamped_records():
    payload = (b'[{"bn":"/3303/0/5700","bt":1700000000,"v":21.5},{"t":10,"v":22.0},'
               b'{"bn":"/3303/1/5700","v":5}]')
    recs = decode_records(SJ, payload, "/", REGISTRY)
    assert recs == [Record("/3303/0/5700", 21.5, 1700000000), Record("/3303/0/5700", 22.0, 1700000010),
                    Record("/3303/1/5700", 5.0, 1700000000)]
    assert decode(SJ, payload, "/", REGISTRY) == {"/3303/0/5700": 22.0, "/3303/1/5700": 5.0}


def test_latest_value_wins_whatever_the_order():
    payload = b'[{"n":"/3303/0/5700","v":2.0,"t":1700000010},{"n":"/3303/0/5700","v":1.0,"t":1700000000}]'
    assert decode(SJ, payload, "/", REGISTRY) == {"/3303/0/5700": 2.0}
    # relative times (< 2**28) are "now + t": now beats the past
    payload = b'[{"n":"/3303/0/5700","v":3.0},{"n":"/3303/0/5700","v":1.0,"t":-30}]'
    assert decode(SJ, payload, "/", REGISTRY) == {"/3303/0/5700": 3.0}


def test_encode_records_with_time():
    recs = [Record("/3303/0/5700", 21.5, 1700000000), Record("/3303/0/5700", 22.0, 1700000010)]
    j = encode_records(SJ, recs, "/3303/0/5700", REGISTRY)
    assert j == b'[{"bn":"/3303/0/5700","v":21.5,"t":1700000000},{"v":22.0,"t":1700000010}]'
    assert decode_records(SJ, j, "/3303/0/5700", REGISTRY) == recs
    c = encode_records(SC, recs, "/3303/0/5700", REGISTRY)
    assert decode_records(SC, c, "/3303/0/5700", REGISTRY) == recs


# -- malformed input ----------------------------------------------------------------------

@pytest.mark.parametrize("payload, base, message", [
    (b'{"n":"x"}', "/3/0", "SenML JSON: the payload must be an array of records, not a map"),
    (b"[1]", "/3/0", "SenML JSON: record 0 is a number, not a map"),
    (b'[{"n":"/3/0/0"}]', "/3/0", "SenML JSON: record 0 has no value (one of v, vs, vb, vd, vlo)"),
    (b'[{"n":"/3/0/0","v":1,"vs":"a"}]', "/3/0", "SenML JSON: record 0 has more than one value (v, vs)"),
    (b'[{"n":"/3/0/x","vs":"a"}]', "/3/0",
     "SenML JSON: record 0: name '/3/0/x' is not a LwM2M path (path '/3/0/x': segment 'x' is not a decimal id)"),
    (b'[{"n":"/4/0/0","v":1}]', "/3/0", "SenML JSON: record 0: /4/0/0 is outside the requested path /3/0"),
    (b'[{"n":"/3/0","v":1}]', "/3", "SenML JSON: record 0: /3/0 is not a resource or resource instance path"),
    (b'[{"n":"/3/0/9","vs":"x"}]', "/3/0", "SenML JSON: record 0 (/3/0/9): 'x' is not an integer"),
    (b'[{"n":"/3/0/9","v":1.5}]', "/3/0",
     "SenML JSON: record 0 (/3/0/9): 1.5 is not a whole number (an integer expected)"),
    (b'[{"n":"/3/0/0","v":1}]', "/3/0", "SenML JSON: record 0 (/3/0/0): number given where a string is expected"),
    (b'[{"n":"/1/0/6","v":2}]', "/1/0", "SenML JSON: record 0 (/1/0/6): number given where a boolean is expected"),
    (b'[{"n":"/5/0/0","vd":"!!"}]', "/5/0", "SenML JSON: record 0 (vd): '!!' is not base64"),
    (b'[{"n":"/5/0/0","vd":"A"}]', "/5/0", "SenML JSON: record 0 (vd): 'A' is not base64 (bad length)"),
    (b'[{"n":"/1/0/10","vlo":"66"}]', "/1/0", "SenML JSON: record 0: object link '66' is not of the form oid:iid"),
    (b'[{"n":"/1/0/10","vlo":"66:70000"}]', "/1/0", "SenML JSON: record 0: object link id 70000 is not in 0..65535"),
    (b"[{", "/3/0", "SenML JSON: invalid JSON at character 2: Expecting property name enclosed in double quotes"),
    (b"", "/3/0", "SenML JSON: invalid JSON at character 0: Expecting value"),
    (b'[{"n":"/3/0/9","v":NaN}]', "/3/0", "SenML JSON: NaN is not valid JSON"),
    (b'[{"n":"a","n":"b","v":1}]', "/3/0", "SenML JSON: key 'n' appears twice in one object"),
    (b'[{"bn":5,"v":1}]', "/3/0", "SenML JSON: record 0: 'bn' must be a string, not a number"),
    (b'[{"n":"/3/0/9","v":true}]', "/3/0", "SenML JSON: record 0: 'v' must be a number, not a boolean"),
    (b'[{"n":"/3/0/9","t":"5","v":1}]', "/3/0", "SenML JSON: record 0: 't' must be a number, not a string"),
    (b'[{"n":"/3/0/9","vb":1}]', "/3/0", "SenML JSON: record 0: 'vb' must be a boolean, not a number"),
    (b'[{"n":"/3/0/9","v":1,"bver":-1}]', "/3/0", "SenML JSON: record 0: 'bver' must be a non-negative integer"),
    (b'[{"n":"/3/0/9","v":1,"foo_":1}]', "/3/0",
     "SenML JSON: record 0 has must-understand label 'foo_' that is not supported"),
    (b"\xff[]", "/3/0", "SenML JSON: payload is not UTF-8 (byte 0)"),
    (b"[" * 40 + b"]" * 40, "/3/0", "SenML JSON: nesting deeper than 32 levels at character 32"),
])
def test_malformed_senml_json(payload, base, message):
    with pytest.raises(FormatError) as exc:
        decode(SJ, payload, base, REGISTRY)
    assert str(exc.value) == message


def test_unknown_labels_are_ignored():
    assert decode(SJ, b'[{"n":"/3/0/9","v":1,"foo":{"x":[1]},"u":"%"}]', "/3/0", REGISTRY) == {"/3/0/9": 1}


@pytest.mark.parametrize("payload, message", [
    (bytes.fromhex("80 00".replace(" ", "")), "SenML CBOR: 1 trailing byte after the CBOR item (at byte 1)"),
    (bytes.fromhex("a0"), "SenML CBOR: the payload must be an array of records, not a map"),
    (bytes.fromhex("8101"), "SenML CBOR: record 0 is a number, not a map"),
    (_cbor.dumps([{0: "/5/0/0", 8: "abc"}]), "SenML CBOR: record 0: 'vd' must be a byte string, not a string"),
    (_cbor.dumps([{1.5: 1}]), "SenML CBOR: record 0 has a key that is a number"),
    (_cbor.dumps([{0: "/3/0/9", 2: "x"}]), "SenML CBOR: record 0: 'v' must be a number, not a string"),
    (_cbor.dumps([{0: "/3/0/9", 2: _cbor.Tagged(99, "1")}]),
     "SenML CBOR: record 0: 'v' must be a number, not a string"),
    (bytes.fromhex("9f"), "SenML CBOR: not valid CBOR (premature end of stream (expected to read at least 1 bytes, "
                          "got 0 instead)) near byte 1"),
])
def test_malformed_senml_cbor(payload, message):
    with pytest.raises(FormatError) as exc:
        decode(SC, payload, "/3/0", REGISTRY)
    assert str(exc.value) == message


def test_unknown_cbor_integer_label_is_ignored():
    assert decode(SC, _cbor.dumps([{0: "/3/0/9", 2: 1, 99: 5}]), "/3/0", REGISTRY) == {"/3/0/9": 1}


def test_semantic_tag_on_a_value_is_ignored():
    # Wakaama's SenML CBOR reader does the same
    assert decode(SC, _cbor.dumps([{0: "/3/0/9", 2: _cbor.Tagged(99, 1)}]), "/3/0", REGISTRY) == {"/3/0/9": 1}


def test_epoch_tag_on_a_time_is_read_as_seconds():
    payload = bytes.fromhex("81a3006c2f333330332f302f35373030" "02f94d60" "06c11a6553f100")
    assert decode_records(SC, payload, "/", REGISTRY) == [Record("/3303/0/5700", 21.5, 1700000000)]


def test_base_value_alone_is_the_value():
    assert decode(SJ, b'[{"bn":"/3303/0/5700","bv":21.5},{"bn":"/3303/1/5700","v":1}]', "/", REGISTRY) == {
        "/3303/0/5700": 21.5, "/3303/1/5700": 22.5}


def test_truncated_cbor_names_the_offset():
    with pytest.raises(FormatError) as exc:
        decode(SC, DEVICE_SENML_CBOR[:20], "/3/0", REGISTRY)
    assert str(exc.value).startswith("SenML CBOR: not valid CBOR (")
    assert str(exc.value).endswith("near byte 20")


def test_cbor_decimal_fraction_value():
    # RFC 8428 §6 allows decimal fractions (tag 4) for numbers: 21.5 = 215e-1
    payload = bytes.fromhex("81a2006c2f333330332f302f35373030" "02c48220" "18d7")
    assert decode(SC, payload, "/3303/0", REGISTRY) == {"/3303/0/5700": 21.5}


@pytest.mark.parametrize("values, base, message", [
    ({"/3/0/9": float("nan")}, "/3/0", "SenML JSON: /3/0/9: nan is not an integer"),
    ({"/3303/0/5700": float("nan")}, "/3303/0", "SenML JSON: nan cannot be written in JSON"),
    ({"/3303/0/5700": float("inf")}, "/3303/0", "SenML JSON: inf cannot be written in JSON"),
    ({"/3/0/4": 1}, "/3/0", "SenML JSON: /3/0/4 is executable and has no value to encode"),
    ({"/4/0/0": 1}, "/3/0", "SenML JSON: /4/0/0 is not under the requested path /3/0"),
    ({"/3/0": 1}, "/3", "SenML JSON: /3/0 is not a resource or resource instance path"),
])
def test_encode_errors(values, base, message):
    with pytest.raises(FormatError) as exc:
        encode(SJ, values, base, REGISTRY)
    assert str(exc.value) == message


def test_cbor_can_carry_non_finite_floats():
    for f in (float("inf"), float("-inf")):
        c = encode(SC, {"/3303/0/5700": f}, "/3303/0/5700", REGISTRY)
        assert decode(SC, c, "/3303/0/5700", REGISTRY) == {"/3303/0/5700": f}


# -- properties -------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(object_values(), st.sampled_from([SJ, SC]), st.booleans())
def test_roundtrip(values, cf, at_root):
    base = "/" if at_root else f"/{TEST_OID}"
    assert decode(cf, encode(cf, values, base, REGISTRY), base, REGISTRY) == values


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False, width=32),
                          st.one_of(st.integers(0, 2**40), st.floats(0, 2e9))), max_size=5),
       st.sampled_from([SJ, SC]))
def test_roundtrip_timed(points, cf):
    recs = [Record("/3303/0/5700", float(v), t) for v, t in points]
    assert decode_records(cf, encode_records(cf, recs, "/3303/0/5700", REGISTRY), "/3303/0/5700", REGISTRY) == recs
