"""The encoder (values -> payload) and the SDK's os_energy_save in Python."""

from __future__ import annotations

import pytest

from bcl import EncodeError, NotInvertible, compile_template, encode, same_json
from firmware_examples.energy_saver import (
    F32,
    F64,
    I8,
    I16,
    I32,
    U8,
    U16,
    U64,
    Char,
    Str,
    os_energy_save,
    template_for,
)

VEHICLE = {"sense": [{"switch": {"byte": 0, "bytelength": 1, "type": "int"}, "on": [
    {"case": 0, "do": [
        {"asset": "gps.lat", "value": {"byte": 1, "bytelength": 4, "byteorder": "big", "type": "float"}},
        {"asset": "gps.lon", "value": {"byte": 5, "bytelength": 4, "byteorder": "big", "type": "float"}},
        {"asset": "speed", "value": {"byte": 9, "bytelength": 2, "byteorder": "big", "type": "int"}},
    ]},
    {"default": True, "do": [{"asset": "error", "value": "unknown payload"}]},
]}]}


def roundtrip(template, values, **kw) -> bytes:
    payload = encode(template, values, **kw)
    assert same_json(compile_template(template).decode(payload), values)
    return payload


def not_invertible(template, values, **kw) -> str:
    with pytest.raises(NotInvertible) as exc:
        encode(template, values, **kw)
    return str(exc.value)


def one(**selector) -> dict:
    return {"sense": [{"asset": "v", "value": selector}]}


def test_vehicle_position():
    values = {"gps": {"lat": 50.934544, "lon": 6.956068}, "speed": 120}
    assert roundtrip(VEHICLE, values).hex() == "00424bbcf940de981c0078"


def test_default_case_gets_a_selector_equal_to_no_case():
    assert roundtrip(VEHICLE, {"error": "unknown payload"}).hex() == "01"


def test_explicit_selector():
    assert roundtrip(VEHICLE, {"error": "unknown payload"}, selectors={"/sense/0": 7}).hex() == "07"
    msg = not_invertible(VEHICLE, {"error": "unknown payload"}, selectors={"/sense/0": 0})
    assert msg == "no payload translates to these values: case 0 at /sense/0: no value for asset gps.lat"


def test_unknown_selector_pointer():
    with pytest.raises(EncodeError) as exc:
        encode(VEHICLE, {}, selectors={"/sense/1": 0})
    assert str(exc.value) == "no switch statement at '/sense/1' (switches: /sense/0)"


def test_values_must_be_an_object():
    with pytest.raises(EncodeError) as exc:
        encode(VEHICLE, [1, 2])  # type: ignore[arg-type]
    assert str(exc.value) == "values must be a JSON object, not list"


def test_value_that_does_not_fit():
    msg = not_invertible(VEHICLE, {"gps": {"lat": 1.0, "lon": 2.0}, "speed": 70000})
    assert msg == (
        "no payload translates to these values: case 0 at /sense/0: speed: 70000 does not fit in 2 bytes of type int; "
        "default at /sense/0: no value for asset error"
    )


def test_float_that_is_not_a_float32():
    assert roundtrip(one(byte=0, bytelength=4, type="float"), {"v": 0.1}).hex() == "3dcccccd"
    assert not_invertible(one(byte=0, bytelength=4, type="float"), {"v": 0.123456789}) == (
        "no payload translates to these values: v: 0.123456789 is not a 4-byte float (it would read back as 0.12345679)"
    )
    assert roundtrip(one(byte=0, bytelength=8, type="float"), {"v": 0.123456789}).hex() == "3fbf9add3739635f"


def test_null_float_is_nan():
    assert roundtrip(one(byte=0, bytelength=4, type="float"), {"v": None}).hex() == "7fc00000"


def test_true_is_not_one():
    assert roundtrip(one(byte=0, type="boolean"), {"v": True}).hex() == "01"
    assert not_invertible(one(byte=0, type="boolean"), {"v": 1}) == (
        "no payload translates to these values: v: 1 is not true or false (type boolean)"
    )
    assert not_invertible(one(byte=0, type="uint"), {"v": True}) == (
        "no payload translates to these values: v: True is not an integer (type uint)"
    )


def test_hex_must_be_lower_case():
    assert roundtrip(one(byte=0, bytelength=2, type="hex"), {"v": "0a0b"}).hex() == "0a0b"
    assert not_invertible(one(byte=0, bytelength=2, type="hex"), {"v": "0A0B"}) == (
        "no payload translates to these values: v: '0A0B' is not lower-case hex of whole bytes"
    )


def test_string_must_fill_its_range():
    assert roundtrip(one(byte=0, bytelength=4, type="string"), {"v": "oleg"}).hex() == "6f6c6567"
    assert not_invertible(one(byte=0, bytelength=4, type="string"), {"v": "ole"}) == (
        "no payload translates to these values: v: 3 bytes do not fill the 4-byte range of type string"
    )


def test_endbyte_ranges():
    assert roundtrip(one(endbyte=-4, bytelength=4, type="uint"), {"v": 300}).hex() == "0000012c"
    t = {"sense": [
        {"asset": "head", "value": {"byte": 0, "type": "uint"}},
        {"asset": "body", "value": {"byte": 1, "endbyte": -2, "type": "string"}},
        {"asset": "crc", "value": {"endbyte": -2, "bytelength": 2, "type": "hex"}},
    ]}
    assert roundtrip(t, {"head": 7, "body": "hello", "crc": "beef"}).hex() == "0768656c6c6f" + "beef"


def test_span_of_a_number_takes_the_smallest_width_that_fits():
    assert roundtrip(one(byte=0, endbyte=0, type="uint"), {"v": 258}).hex() == "0102"
    assert roundtrip(one(byte=0, endbyte=0, type="uint"), {"v": 70000}).hex() == "00011170"


def test_byte_ranges_that_need_different_lengths():
    t = {"sense": [
        {"asset": "a", "value": {"byte": 0, "endbyte": 0, "type": "hex"}},
        {"asset": "b", "value": {"byte": 1, "endbyte": 0, "type": "hex"}},
    ]}
    assert roundtrip(t, {"a": "0102", "b": "02"}).hex() == "0102"
    assert not_invertible(t, {"a": "0102", "b": "0203"}) == (
        "no payload translates to these values: byte+endbyte ranges need different payload lengths (2, 3)"
    )


def test_overlapping_reads_must_agree():
    t = {"sense": [
        {"asset": "code", "value": {"byte": 0, "type": "uint"}},
        {"switch": {"byte": 0, "type": "uint"}, "on": [{"case": 1, "do": [{"asset": "kind", "value": "one"}]}]},
    ]}
    assert roundtrip(t, {"code": 1, "kind": "one"}).hex() == "01"
    assert roundtrip(t, {"code": 2}).hex() == "02"
    assert not_invertible(t, {"code": 2, "kind": "one"}) == (
        "no payload translates to these values: case 1 at /sense/1: code: its bytes disagree with another "
        "read of the same bytes; no case at /sense/1: the values have kind, which this path does not write"
    )


def test_values_the_template_never_writes():
    assert not_invertible(one(byte=0, type="uint"), {"v": 1, "w": 2}) == (
        "no payload translates to these values: the values have w, which this path does not write"
    )


def test_constant_must_match():
    t = {"sense": [{"asset": "k", "value": "c"}]}
    assert roundtrip(t, {"k": "c"}) == b""
    assert not_invertible(t, {"k": "d"}) == "no payload translates to these values: asset k is the constant 'c' here, not 'd'"


def test_overwritten_reads_are_free():
    t = {"sense": [
        {"asset": "a", "value": {"byte": 0, "type": "uint"}},
        {"asset": "a.b", "value": {"byte": 1, "type": "uint"}},
    ]}
    assert roundtrip(t, {"a": {"b": 5}}).hex() == "0005"


def test_switch_without_default_and_no_value():
    t = {"sense": [{"switch": {"byte": 0, "type": "uint"}, "on": [
        {"case": 0, "do": [{"asset": "x", "value": "zero"}]},
        {"case": 1, "do": [{"asset": "x", "value": "one"}]},
    ]}]}
    assert roundtrip(t, {}).hex() == "02"
    assert roundtrip(t, {"x": "one"}).hex() == "01"


def test_string_selector_default():
    t = {"sense": [{"switch": {"byte": 0, "bytelength": 1, "type": "string"}, "on": [
        {"case": "\x00", "do": [{"asset": "x", "value": "nul"}]},
        {"default": True, "do": [{"asset": "x", "value": "other"}]},
    ]}]}
    assert roundtrip(t, {"x": "other"}).hex() == "01"


def test_default_selector_searches_only_bytes_nobody_else_set():
    # Regression (property test): the selector's bytes were searched from 0, so a
    # boolean written into its first byte made every candidate conflict.
    t = {"sense": [
        {"switch": {"type": "float", "byte": 0, "bytelength": 4}, "on": [{"case": 0, "do": [{"asset": "z", "value": "zero"}]}, {"default": True, "do": []}]},
        {"asset": "a", "value": {"type": "boolean", "byte": 0}},
    ]}
    assert roundtrip(t, {"a": True}).hex() == "01000000"


def test_read_from_the_end_may_need_a_longer_payload():
    # Regression (property test): only the shortest length was tried, where the
    # read counted from the end overlapped the one counted from the start.
    t = {"sense": [
        {"asset": "b", "value": {"type": "int", "byte": 0, "bytelength": 2}},
        {"asset": "a", "value": {"type": "int", "endbyte": -2, "bytelength": 2}},
    ]}
    assert roundtrip(t, {"b": 0, "a": 1}).hex() == "000001"


def test_read_from_the_end_placed_after_everything_else():
    # Regression (property test): lengths were tried only up to 8 bytes past the minimum.
    t = {"sense": [
        {"asset": "b", "value": {"type": "float", "endbyte": -9, "bytelength": 8}},
        {"asset": "a", "value": {"type": "hex", "byte": 7, "bytelength": 3}},
    ]}
    values = {"b": 1e-323, "a": "000001"}
    assert roundtrip(t, values).hex() == "00000000000000000001" + "0000000000000002" + "00"


def test_boolean_true_from_bytes_another_read_set():
    t = {"sense": [
        {"asset": "n", "value": {"type": "uint", "byte": 0}},
        {"asset": "flag", "value": {"type": "boolean", "byte": 0}},
    ]}
    assert roundtrip(t, {"n": 5, "flag": True}).hex() == "05"
    assert not_invertible(t, {"n": 0, "flag": True}) == (
        "no payload translates to these values: flag: its bytes disagree with another read of the same bytes"
    )


def test_payload_length_is_bounded():
    t = one(byte=2**31 - 1, type="uint")
    assert not_invertible(t, {"v": 1}) == (
        "no payload translates to these values: it needs a payload of 2147483648 bytes, more than max_length=65536"
    )
    assert len(encode(one(byte=99, type="uint"), {"v": 1}, max_length=100)) == 100


def test_search_budget():
    switches = [
        {"switch": {"byte": i, "type": "uint"}, "on": [
            {"case": j, "do": [{"asset": f"s{i}", "value": f"c{j}"}]} for j in range(3)
        ]}
        for i in range(12)
    ]
    assert not_invertible({"sense": switches}, {"impossible": 1}, max_paths=500) == (
        "gave up after 500 branch combinations; pass selectors= to pick branches"
    )


# -- os_energy_save ------------------------------------------------------------------------

def test_os_energy_save_matches_the_sdk_blueprint():
    assert os_energy_save(1, U8(99), U8(84), Str("2.2.1")).hex() == "016354322e322e31"


def test_os_energy_save_little_endian_values():
    assert os_energy_save(2, I16(-1000), F32(50.934544), U16(0x0102)).hex() == "0218fc" + "f9bc4b42" + "0201"
    assert os_energy_save(255, I8(-1), I32(-2), U64(1), F64(0.5), Char("A")).hex() == (
        "ff" + "ff" + "feffffff" + "0100000000000000" + "000000000000e03f" + "41"
    )
    assert os_energy_save(-1, Str("v1", 4)).hex() == "ff" + "76310000"


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: os_energy_save(1), "os_energy_save needs at least one value (the SDK reports a conversion error)"),
        (lambda: os_energy_save(256, U8(1)), "the selector is one byte (-128..255), not 256"),
        (lambda: os_energy_save(1, U8(256)), "256 does not fit in 1 byte(s) unsigned"),
        (lambda: os_energy_save(1, I8(128)), "128 does not fit in 1 byte(s) signed"),
        (lambda: os_energy_save(1, Str("toolong", 3)), "'toolong' is 7 bytes, longer than its template length 3"),
        (lambda: os_energy_save(1, Str("x" * 51)), "a string element is at most 50 bytes, not 51"),
        (lambda: os_energy_save(1, Char("é")), "a char is one byte; 'é' is 2"),
    ],
)
def test_os_energy_save_errors(call, message):
    with pytest.raises(ValueError) as exc:
        call()
    assert str(exc.value) == message


def test_template_for_translates_what_os_energy_save_sends():
    fields = [("battery_level", U8(0)), ("temperature", I16(0)), ("lat", F32(0)), ("version", Str("0.0.0"))]
    template = template_for(3, fields)
    payload = os_energy_save(3, U8(99), I16(-215), F32(50.934544), Str("2.2.1"))
    assert compile_template(template).decode(payload) == {
        "battery_level": 99, "temperature": -215, "lat": 50.934544, "version": "2.2.1",
    }
    assert encode(template, {"battery_level": 99, "temperature": -215, "lat": 50.934544, "version": "2.2.1"}) == payload


def test_no_case_branch_with_a_growing_string_selector():
    """Found by hypothesis: the only empty selector value equals the case '', so the encoder
    must try a longer payload to take the 'no case' branch."""
    from bcl import compile_template, encode
    template = {"sense": [{"switch": {"byte": 0, "endbyte": 0, "type": "string"},
                           "on": [{"case": "", "do": [{"asset": "a", "value": "x"}]}]}]}
    compiled = compile_template(template)
    assert compiled.decode(b"b") == {} and compiled.decode(b"") == {"a": "x"}
    payload = encode(compiled, {})
    assert len(payload) >= 1 and compiled.decode(payload) == {}
