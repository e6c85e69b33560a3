"""TLV (11542): byte-exact spec vectors, hand cases, malformed input, round trips.

The vectors below are the TLV examples of the OMA LwM2M Core specification (TS Core 1.1
§7.4.3 "TLV"; the same bytes are §6.4.3 in TS 1.0): the Device object instance, Read on
single- and multiple-instance objects (Device /3, Access Control /2, Server /1) and the
object-link examples with test objects 65 and 66. Eclipse Leshan's
LwM2mNodeDecoderTest carries the identical hex, which cross-checks our transcription.
"""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import ContentFormat, FormatError, ObjLink, decode, encode
from gateway.lwm2m.formats import tlv

from _lwm2m_testlib import REGISTRY, TEST_OID, instance_values, object_values

TLV = ContentFormat.TLV

# Core 1.1 §7.4.3, "Read on Object Instance /3/0": 121 bytes, resources without wrapper
DEVICE_RESOURCES = bytes.fromhex(
    "C800144F70656E204D6F62696C6520416C6C69616E6365"  # 0 Manufacturer
    "C801164C69676874776569676874204D324D20436C69656E74"  # 1 Model Number
    "C80209333435303030313233"  # 2 Serial Number
    "C303312E30"  # 3 Firmware Version
    "86064100014101 05".replace(" ", "")  # 6 Available Power Sources [1, 5]
    + "88070842000ED842011388"  # 7 Power Source Voltage [3800, 5000]
    "870841007D42010384"  # 8 Power Source Current [125, 900]
    "C10964"  # 9 Battery Level 100
    "C10A0F"  # 10 Memory Free 15
    "830B410000"  # 11 Error Code [0]
    "C40D5182428F"  # 13 Current Time 1367491215
    "C60E2B30323A3030"  # 14 UTC Offset "+02:00"
    "C11055"  # 16 Binding "U"
)
# Core 1.1 §7.4.3, "Read on Object /3": the same wrapped in object instance 0
DEVICE_OBJECT = bytes.fromhex("080079") + DEVICE_RESOURCES
# Core 1.1 §7.4.3, "Read on Object /2" (Access Control, two instances)
ACL_OBJECT = bytes.fromhex("08000EC10001C101008302417F07C1037F080212C10003C101008702417F0761013601C1037F")
# Core 1.1 §7.4.3, "Read on Object /1" (Server, one instance)
SERVER_OBJECT = bytes.fromhex("08000FC10001C40100015180C10601C10755")
# Core 1.1 §7.4.3, object link example 1: Read on /65/0
OBJ65_INSTANCE = bytes.fromhex("88000C440000420000440100420001C8010D38363133383030373535353030C40212345678")
# Core 1.1 §7.4.3, object link example 2: Read on /66
OBJ66_OBJECT = bytes.fromhex(
    "080026C8000B6D79536572766963652031C8010F496E7465726E65742E31352E323334C40200430000"
    "080126C8000B6D79536572766963652032C8010F496E7465726E65742E31352E323335C402FFFFFFFF")

DEVICE_VALUES = {
    "/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/2": "345000123",
    "/3/0/3": "1.0", "/3/0/6/0": 1, "/3/0/6/1": 5, "/3/0/7/0": 3800, "/3/0/7/1": 5000,
    "/3/0/8/0": 125, "/3/0/8/1": 900, "/3/0/9": 100, "/3/0/10": 15, "/3/0/11/0": 0,
    "/3/0/13": 1367491215, "/3/0/14": "+02:00", "/3/0/16": "U",
}
ACL_VALUES = {"/2/0/0": 1, "/2/0/1": 0, "/2/0/2/127": 7, "/2/0/3": 127,
              "/2/2/0": 3, "/2/2/1": 0, "/2/2/2/127": 7, "/2/2/2/310": 1, "/2/2/3": 127}
SERVER_VALUES = {"/1/0/0": 1, "/1/0/1": 86400, "/1/0/6": True, "/1/0/7": "U"}
OBJ65_VALUES = {"/65/0/0/0": ObjLink(66, 0), "/65/0/0/1": ObjLink(66, 1), "/65/0/1": "8613800755500",
                "/65/0/2": 305419896}
OBJ66_VALUES = {"/66/0/0": "myService 1", "/66/0/1": "Internet.15.234", "/66/0/2": ObjLink(67, 0),
                "/66/1/0": "myService 2", "/66/1/1": "Internet.15.235", "/66/1/2": ObjLink(65535, 65535)}

SPEC_VECTORS = [
    ("/3/0", DEVICE_RESOURCES, DEVICE_VALUES),
    ("/3", DEVICE_OBJECT, DEVICE_VALUES),
    ("/2", ACL_OBJECT, ACL_VALUES),
    ("/1", SERVER_OBJECT, SERVER_VALUES),
    ("/65/0", OBJ65_INSTANCE, OBJ65_VALUES),
    ("/66", OBJ66_OBJECT, OBJ66_VALUES),
]


def test_device_vector_is_121_bytes():
    assert len(DEVICE_RESOURCES) == 121


@pytest.mark.parametrize("base, payload, values", SPEC_VECTORS)
def test_spec_vectors_decode(base, payload, values):
    got = decode(TLV, payload, base, REGISTRY)
    assert got == values
    assert list(got) == list(values)  # payload order
    assert all(type(got[k]) is type(v) for k, v in values.items())


@pytest.mark.parametrize("base, payload, values", SPEC_VECTORS)
def test_spec_vectors_encode_byte_exact(base, payload, values):
    assert encode(TLV, values, base, REGISTRY) == payload


def test_old_content_format_number():
    assert decode(ContentFormat.OLD_TLV, DEVICE_RESOURCES, "/3/0", REGISTRY) == DEVICE_VALUES
    assert encode(1542, DEVICE_VALUES, "/3/0", REGISTRY) == DEVICE_RESOURCES


def test_instance_wrapper_accepted_for_instance_request():
    assert decode(TLV, DEVICE_OBJECT, "/3/0", REGISTRY) == DEVICE_VALUES


def test_bare_resources_on_object_request_are_instance_0():
    assert decode(TLV, bytes.fromhex("C10964"), "/3", REGISTRY) == {"/3/0/9": 100}


# -- multiple resources ---------------------------------------------------------------

def test_multiple_resource_both_shapes():
    wrapped = bytes.fromhex("860641000141 0105".replace(" ", ""))
    bare = bytes.fromhex("410001410105")
    for payload in (wrapped, bare):
        assert decode(TLV, payload, "/3/0/6", REGISTRY) == {"/3/0/6/0": 1, "/3/0/6/1": 5}
    assert encode(TLV, {"/3/0/6/0": 1, "/3/0/6/1": 5}, "/3/0/6", REGISTRY) == wrapped


def test_empty_multiple_resource():
    assert decode(TLV, b"", "/3/0/6", REGISTRY) == {}
    assert decode(TLV, bytes.fromhex("8006"), "/3/0/6", REGISTRY) == {}
    assert encode(TLV, {}, "/3/0/6", REGISTRY) == bytes.fromhex("8006")


def test_resource_instance_request():
    assert decode(TLV, bytes.fromhex("410105"), "/3/0/6/1", REGISTRY) == {"/3/0/6/1": 5}
    assert encode(TLV, {"/3/0/6/1": 5}, "/3/0/6/1", REGISTRY) == bytes.fromhex("410105")


def test_single_resource_with_instance_wrapper():
    payload = bytes.fromhex("0300C10964")
    assert decode(TLV, payload, "/3/0/9", REGISTRY) == {"/3/0/9": 100}


def test_16_bit_ids():
    # Temperature 5700 = 0x1644, float 21.5 exactly representable in 4 bytes
    payload = bytes.fromhex("E4164441AC0000")
    assert decode(TLV, payload, "/3303/0", REGISTRY) == {"/3303/0/5700": 21.5}
    assert encode(TLV, {"/3303/0/5700": 21.5}, "/3303/0", REGISTRY) == payload
    # object instance 300 (0x012C) and resource instance 310 (0x0136)
    obj = encode(TLV, {"/3303/300/5700": 1.0}, "/3303", REGISTRY)
    assert obj == bytes.fromhex("27012C") + bytes.fromhex("E41644") + struct.pack(">f", 1.0)
    assert decode(TLV, obj, "/3303", REGISTRY) == {"/3303/300/5700": 1.0}


@pytest.mark.parametrize("size, header", [
    (0, "C000"), (7, "C700"), (8, "C80008"), (255, "C800FF"), (256, "D0000100"),
    (65535, "D000FFFF"), (65536, "D800010000"),
])
def test_length_field_sizes(size, header):
    value = "x" * size
    payload = encode(TLV, {"/3/0/0": value}, "/3/0", REGISTRY)
    assert payload[: len(header) // 2] == bytes.fromhex(header)
    assert len(payload) == len(header) // 2 + size
    assert decode(TLV, payload, "/3/0", REGISTRY) == {"/3/0/0": value}


@pytest.mark.parametrize("value, hexvalue", [
    (0, "00"), (127, "7F"), (-1, "FF"), (-128, "80"), (128, "0080"), (-129, "FF7F"),
    (32767, "7FFF"), (32768, "00008000"), (2**31 - 1, "7FFFFFFF"), (2**31, "0000000080000000"),
    (-(2**63), "8000000000000000"), (2**63 - 1, "7FFFFFFFFFFFFFFF"),
])
def test_integer_widths(value, hexvalue):
    raw = bytes.fromhex(hexvalue)
    payload = encode(TLV, {"/3/0/9": value}, "/3/0/9", REGISTRY)
    head = bytes([0xC0 | len(raw), 9]) if len(raw) < 8 else bytes([0xC8, 9, 8])
    assert payload == head + raw
    assert decode(TLV, payload, "/3/0/9", REGISTRY) == {"/3/0/9": value}


def test_unsigned_time_float_boolean_opaque_objlnk():
    base = f"/{TEST_OID}/0"
    values = {f"{base}/2": 200, f"{base}/3": 0.1, f"{base}/4": True, f"{base}/5": b"\x00\xff",
              f"{base}/6": 1367491215, f"{base}/7": ObjLink(3, 0), f"{base}/8": "</3/0>"}
    payload = encode(TLV, values, base, REGISTRY)
    assert payload == bytes.fromhex("C102C8" "C803083FB999999999999A" "C10401" "C20500FF"
                                    "C4065182428F" "C40700030000" "C6083C2F332F303E")
    assert decode(TLV, payload, base, REGISTRY) == values
    # unsigned 2**64-1 needs 8 bytes, not a sign byte
    big = encode(TLV, {f"{base}/2": 2**64 - 1}, base, REGISTRY)
    assert big == bytes.fromhex("C802") + bytes([8]) + b"\xff" * 8


def test_float_width_choice():
    assert encode(TLV, {"/6/0/0": 1.5}, "/6/0/0", REGISTRY) == bytes.fromhex("C4003FC00000")
    assert len(encode(TLV, {"/6/0/0": 52.520008}, "/6/0/0", REGISTRY)) == 3 + 8  # type, id, 8-bit length
    inf = encode(TLV, {"/6/0/0": float("inf")}, "/6/0/0", REGISTRY)
    assert decode(TLV, inf, "/6/0/0", REGISTRY) == {"/6/0/0": float("inf")}
    # a double payload from a client decodes too
    assert decode(TLV, bytes.fromhex("C800") + b"\x08" + struct.pack(">d", 0.1), "/6/0/0", REGISTRY) == {"/6/0/0": 0.1}


def test_unknown_object_decodes_to_bytes():
    payload = bytes.fromhex("C10105C2020102")
    assert decode(TLV, payload, "/10234/0", REGISTRY) == {"/10234/0/1": b"\x05", "/10234/0/2": b"\x01\x02"}


def test_unknown_object_encodes_by_python_type():
    values = {"/10234/0/0": True, "/10234/0/1": 5, "/10234/0/2": "a", "/10234/0/3": b"\x01",
              "/10234/0/4": 1.5, "/10234/0/5": ObjLink(1, 2)}
    assert encode(TLV, values, "/10234/0", REGISTRY) == bytes.fromhex(
        "C10001" "C10105" "C10261" "C10301" "C4043FC00000" "C40500010002")


def test_values_given_as_text_are_converted_on_encode():
    # the device action API may pass numbers as strings
    assert encode(TLV, {"/1/0/1": "300"}, "/1/0/1", REGISTRY) == bytes.fromhex("C201012C")
    assert encode(TLV, {"/1/0/6": "true"}, "/1/0/6", REGISTRY) == bytes.fromhex("C10601")
    assert encode(TLV, {"/1/0/10": "66:1"}, "/1/0/10", REGISTRY) == bytes.fromhex("C40A00420001")


# -- malformed input ------------------------------------------------------------------

@pytest.mark.parametrize("base, hexpayload, message", [
    ("/3/0", "C8", "TLV: truncated header at byte 0: 3 bytes needed, 1 left"),
    ("/3/0", "C10964E8", "TLV: truncated header at byte 3: 4 bytes needed, 1 left"),
    ("/3/0", "C80014616263", "TLV: resource 0 at byte 0 has length 20 but only 3 bytes are left"),
    ("/3/0", "D8000100", "TLV: truncated header at byte 0: 5 bytes needed, 4 left"),
    ("/3/0/9", "C309000001", "TLV: /3/0/9 at byte 0: integer of 3 bytes; integers are 1, 2, 4 or 8 bytes"),
    ("/3/0/9", "C009", "TLV: /3/0/9 at byte 0: integer of 0 bytes; integers are 1, 2, 4 or 8 bytes"),
    ("/1/0/6", "C10602", "TLV: /1/0/6 at byte 0: boolean must be one byte 0 or 1, got 02"),
    ("/1/0/6", "C006", "TLV: /1/0/6 at byte 0: boolean must be one byte 0 or 1, got nothing"),
    ("/6/0/0", "C300000000", "TLV: /6/0/0 at byte 0: float of 3 bytes; floats are 4 or 8 bytes"),
    ("/1/0/10", "C20A0001", "TLV: /1/0/10 at byte 0: object link of 2 bytes; object links are 4 bytes"),
    ("/3/0/0", "C100FF", "TLV: /3/0/0 at byte 0: string is not valid UTF-8 (at value byte 0)"),
    ("/3", "0800020001",
     "TLV: object instance 1 at byte 3 cannot be inside object instance 0"),
    ("/3/0", "8306C10001", "TLV: resource 0 at byte 2 cannot be inside multiple resource 6"),
    ("/3/0", "0001", "TLV: object instance 1 at byte 0 does not match the requested path /3/0"),
    ("/3/0/1", "C10261", "TLV: resource 2 at byte 0 does not match the requested path /3/0/1"),
    ("/3/0", "C10964C10964", "TLV: duplicate resource 9 at byte 3 (/3/0/9)"),
    ("/2", "0000" "0000", "TLV: duplicate object instance 0 at byte 2 (/2/0)"),
    ("/3/0/6", "410001410005", "TLV: duplicate resource instance 0 at byte 3 (/3/0/6/0)"),
    ("/3/0", "410001", "TLV: resource instance 0 at byte 0 needs an enclosing multiple resource "
                       "for the requested path /3/0"),
    ("/3/0/6/0", "C10601", "TLV: resource 6 at byte 0 is above the requested path /3/0/6/0"),
    ("/3/0/9", "", "TLV: no value for /3/0/9"),
    ("/3/0/6/0", "", "TLV: no value for /3/0/6/0"),
    ("/", "C10964", "TLV: cannot decode at the root path; TLV carries no object ids"),
])
def test_malformed(base, hexpayload, message):
    payload = bytes.fromhex(hexpayload)
    if message is None:
        decode(TLV, payload, base, REGISTRY)  # accepted
        return
    with pytest.raises(FormatError) as exc:
        decode(TLV, payload, base, REGISTRY)
    assert str(exc.value) == message


def test_malformed_reports_offset():
    with pytest.raises(FormatError) as exc:
        decode(TLV, bytes.fromhex("C10964C309000001"), "/3/0", REGISTRY)
    assert exc.value.offset == 3


@pytest.mark.parametrize("values, base, message", [
    ({"/3/0/7": 5}, "/3/0", "TLV: /3/0/7 is a multiple-instance resource; give its values at /3/0/7/<instance>"),
    ({"/3/0/9/0": 5}, "/3/0", "TLV: /3/0/9 is a single-instance resource; give its value at /3/0/9, "
                              "not at a resource instance"),
    ({"/3/0/4": 1}, "/3/0", "TLV: /3/0/4 is executable and has no value to encode"),
    ({"/4/0/0": 1}, "/3/0", "TLV: /4/0/0 is not under the requested path /3/0"),
    ({"/3/0/9": "abc"}, "/3/0", "/3/0/9: 'abc' is not an integer"),
    ({"/3/0/9": 2**63}, "/3/0", "/3/0/9: 9223372036854775808 is out of range for Integer "
                                "(-9223372036854775808..9223372036854775807)"),
    ({"/3/0/0": 5}, "/3/0", "/3/0/0: number given where a string is expected"),
    ({"/3/0/9": 1}, "/", "TLV: cannot encode at the root path; TLV carries no object ids"),
    ({}, "/3/0/9", "TLV: no value for /3/0/9"),
    ({"/10234/0/0": [1]}, "/10234/0", "/10234/0/0: list is not a LwM2M value type"),
])
def test_encode_errors(values, base, message):
    with pytest.raises(FormatError) as exc:
        encode(TLV, values, base, REGISTRY)
    assert str(exc.value) == message


def test_value_too_long_for_tlv():
    with pytest.raises(FormatError, match="the limit is 16777215"):
        tlv._entry(tlv.RESOURCE, 0, b"\0" * (0xFFFFFF + 1))


# -- properties -------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(object_values())
def test_roundtrip_object(values):
    base = f"/{TEST_OID}"
    assert decode(TLV, encode(TLV, values, base, REGISTRY), base, REGISTRY) == values


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 65535).flatmap(lambda iid: st.tuples(st.just(iid), instance_values(iid))))
def test_roundtrip_instance(case):
    iid, values = case
    base = f"/{TEST_OID}/{iid}"
    assert decode(TLV, encode(TLV, values, base, REGISTRY), base, REGISTRY) == values
