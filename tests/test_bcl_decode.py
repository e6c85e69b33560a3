"""Decoding semantics (SPEC §3 and the choices of docs/bcl.md), on both decoders."""

from __future__ import annotations

import struct

import pytest

from bcl import (
    BclError,
    TranslationError,
    clear_cache,
    compile_template,
    json_text,
    parse_template,
    translate,
)


def dec(template: dict, payload: bytes | str) -> dict:
    """Decode with the generated decoder and check the reference agrees."""
    if isinstance(payload, str):
        payload = bytes.fromhex(payload)
    c = compile_template(template)
    got = c.decode(payload)
    assert c.decode_reference(payload) == got
    return got


def err(template: dict, payload: bytes | str) -> str:
    """The translation error message; both decoders must give the same one."""
    if isinstance(payload, str):
        payload = bytes.fromhex(payload)
    c = compile_template(template)
    with pytest.raises(TranslationError) as fast:
        c.decode(payload)
    with pytest.raises(TranslationError) as ref:
        c.decode_reference(payload)
    assert str(fast.value) == str(ref.value)
    return str(fast.value)


def one(**selector) -> dict:
    return {"sense": [{"asset": "v", "value": selector}]}


# -- values ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "hexbytes,expected",
    [
        ("424bbcf9", 50.934544),
        ("40de981c", 6.956068),
        ("41ac0000", 21.5),
        ("3dcccccd", 0.1),
        ("7f7fffff", 3.4028235e38),
        ("00000001", 1e-45),
        ("bf800000", -1.0),
    ],
)
def test_float32_is_the_shortest_decimal(hexbytes, expected):
    got = dec(one(byte=0, bytelength=4, type="float"), hexbytes)["v"]
    assert got == expected and repr(got) == repr(expected)


def test_float32_little_endian():
    assert dec(one(byte=0, bytelength=4, type="float", byteorder="little"), "f9bc4b42") == {"v": 50.934544}


def test_negative_zero_float_keeps_its_sign():
    assert json_text(dec(one(byte=0, bytelength=4, type="float"), "80000000")) == '{"v":-0.0}'


@pytest.mark.parametrize("hexbytes", ["7fc00000", "7f800000", "ff800000"])
def test_float32_nan_and_infinity_become_null(hexbytes):
    assert dec(one(byte=0, bytelength=4, type="float"), hexbytes) == {"v": None}


def test_float64():
    assert dec(one(byte=0, bytelength=8, type="float"), struct.pack(">d", 0.1)) == {"v": 0.1}
    assert dec(one(byte=0, bytelength=8, type="float"), struct.pack(">d", float("inf"))) == {"v": None}


def test_eight_byte_integers_keep_full_precision():
    assert dec(one(byte=0, bytelength=8, type="uint"), "ffffffffffffffff") == {"v": 18446744073709551615}
    assert dec(one(byte=0, bytelength=8, type="int"), "8000000000000001") == {"v": -9223372036854775807}
    assert json_text(dec(one(byte=0, bytelength=8, type="uint"), "0020000000000001")) == '{"v":9007199254740993}'


@pytest.mark.parametrize(
    "vtype,length,order,hexbytes,expected",
    [
        ("int", 1, "big", "ff", -1),
        ("uint", 1, "big", "ff", 255),
        ("int", 2, "big", "fc18", -1000),
        ("uint", 2, "little", "18fc", 64536),
        ("int", 4, "little", "feffffff", -2),
        ("uint", 4, "big", "0000058c", 1420),
    ],
)
def test_integers(vtype, length, order, hexbytes, expected):
    assert dec(one(byte=0, bytelength=length, type=vtype, byteorder=order), hexbytes) == {"v": expected}


def test_hex_is_lower_case():
    assert dec(one(byte=1, bytelength=3, type="hex"), "00ABCDEF") == {"v": "abcdef"}


def test_string_is_utf8():
    assert dec(one(byte=0, bytelength=6, type="string"), "4dc3bc6e6368") == {"v": "Münch"}


def test_string_keeps_nul_bytes():
    # What the SDK sends for a short string in a longer field; 1NCE keeps them too.
    assert dec(one(byte=0, bytelength=4, type="string"), "76310000") == {"v": "v1\x00\x00"}


def test_invalid_utf8_is_a_translation_error():
    assert err(one(byte=1, bytelength=2, type="string"), "00c328") == (
        "Asset path:v, Error: bytes [1:3] are not valid UTF-8 (invalid continuation byte)"
    )


@pytest.mark.parametrize("byte,expected", [("00", False), ("01", True), ("02", True), ("ff", True)])
def test_boolean(byte, expected):
    assert dec(one(byte=0, type="boolean"), byte) == {"v": expected}


def test_bytelength_defaults_to_one_and_byteorder_to_big():
    assert dec(one(byte=1, type="uint"), "0102") == {"v": 2}
    assert dec(one(byte=0, bytelength=2, type="uint"), "0102") == {"v": 258}


def test_constant_needs_no_payload():
    assert dec({"sense": [{"asset": "k", "value": "c"}]}, b"") == {"k": "c"}


# -- ranges ---------------------------------------------------------------------------------

def test_byte_and_endbyte_span():
    t = one(byte=1, endbyte=-1, type="hex")
    assert dec(t, "00aabbcc11") == {"v": "aabbcc"}
    assert dec(t, "0011") == {"v": ""}  # an empty range is an empty string
    assert err(t, "00") == "Asset path:v, Error: can't extract [1:0] from 1 bytes"


def test_whole_payload():
    assert dec(one(byte=0, endbyte=0, type="hex"), "") == {"v": ""}
    assert dec(one(byte=0, endbyte=0, type="string"), "6869") == {"v": "hi"}


def test_span_of_a_number_needs_an_allowed_width():
    t = one(byte=0, endbyte=0, type="uint")
    assert dec(t, "0102") == {"v": 258}
    assert dec(t, "0000000000000102") == {"v": 258}
    assert err(t, "010203") == "Asset path:v, Error: can't read uint from 3 bytes [0:3] (allowed: 1, 2, 4, 8)"
    t = one(byte=1, endbyte=0, type="float", byteorder="little")
    assert dec(t, "00f9bc4b42") == {"v": 50.934544}
    assert dec(t, "00" + struct.pack("<d", 2.5).hex()) == {"v": 2.5}
    assert err(one(byte=0, endbyte=0, type="boolean"), "") == (
        "Asset path:v, Error: can't read boolean from 0 bytes [0:0] (allowed: 1)"
    )


def test_endbyte_without_byte_counts_from_the_end():
    t = one(endbyte=-3, bytelength=2, type="uint")
    assert dec(t, "ff00010203") == {"v": 0x0102}
    assert dec(t, "010203") == {"v": 0x0102}
    assert err(t, "0102") == "Asset path:v, Error: can't extract [-1:1] from 2 bytes"


def test_too_short_messages():
    assert err(one(byte=3, bytelength=2, type="uint"), "010203") == (
        "Asset path:v, Error: can't extract [3:5] from 3 bytes"
    )
    assert err(one(byte=0, type="string"), "") == "Asset path:v, Error: can't extract [0:1] from 0 bytes"


def test_first_failing_statement_is_reported():
    t = {"sense": [
        {"asset": "a", "value": {"byte": 0, "type": "uint"}},
        {"asset": "b", "value": {"byte": 5, "type": "uint"}},
        {"asset": "c", "value": {"byte": 9, "type": "uint"}},
    ]}
    assert err(t, "00") == "Asset path:b, Error: can't extract [5:6] from 1 bytes"


def test_switch_selector_error_names_the_switch_pointer():
    t = {"sense": [
        {"asset": "a", "value": "x"},
        {"switch": {"byte": 4, "type": "uint"}, "on": [{"default": True, "do": []}]},
    ]}
    assert err(t, "00") == "Asset path:/sense/1/switch, Error: can't extract [4:5] from 1 bytes"


def test_error_inside_the_branch_that_runs():
    t = {"sense": [{"switch": {"byte": 0, "type": "uint"}, "on": [
        {"case": 1, "do": [{"asset": "deep.x", "value": {"byte": 3, "bytelength": 2, "type": "int"}}]},
        {"case": 2, "do": [{"asset": "y", "value": {"byte": 1, "type": "int"}}]},
    ]}]}
    assert err(t, "0100") == "Asset path:deep.x, Error: can't extract [3:5] from 2 bytes"
    assert dec(t, "0205") == {"y": 5}
    assert dec(t, "03") == {}


# -- switch -----------------------------------------------------------------------------------

def sw(selector: dict, *entries) -> dict:
    return {"sense": [{"switch": selector, "on": list(entries)}]}


def do(value: str) -> list:
    return [{"asset": "r", "value": value}]


def test_first_equal_case_wins():
    t = sw({"byte": 0, "type": "uint"}, {"case": 1, "do": do("first")}, {"case": 1, "do": do("second")})
    assert dec(t, "01") == {"r": "first"}


def test_default_anywhere_in_the_list_runs_only_without_a_match():
    t = sw({"byte": 0, "type": "uint"}, {"default": True, "do": do("default")}, {"case": 2, "do": do("two")})
    assert dec(t, "02") == {"r": "two"}
    assert dec(t, "03") == {"r": "default"}


def test_no_match_and_no_default_runs_nothing():
    t = sw({"byte": 0, "type": "uint"}, {"case": 2, "do": do("two")})
    assert dec(t, "05") == {}


def test_numbers_never_equal_strings():
    t = sw({"byte": 0, "type": "uint"}, {"case": "1", "do": do("string one")}, {"default": True, "do": do("default")})
    assert dec(t, "01") == {"r": "default"}
    t = sw({"byte": 0, "type": "string"}, {"case": 49, "do": do("number")}, {"case": "1", "do": do("string")})
    assert dec(t, "31") == {"r": "string"}


def test_boolean_selector_equals_no_case():
    t = sw({"byte": 0, "type": "boolean"}, {"case": 1, "do": do("one")}, {"default": True, "do": do("default")})
    assert dec(t, "01") == {"r": "default"}
    assert dec(t, "00") == {"r": "default"}


def test_float_selector_compares_its_printed_value():
    t = sw({"byte": 0, "bytelength": 4, "type": "float"},
           {"case": 0.1, "do": do("tenth")}, {"case": 1, "do": do("one")}, {"default": True, "do": do("other")})
    assert dec(t, "3dcccccd") == {"r": "tenth"}
    assert dec(t, "3f800000") == {"r": "one"}
    assert dec(t, "7fc00000") == {"r": "other"}  # NaN equals nothing


def test_integer_selector_equals_an_integral_float_case():
    t = sw({"byte": 0, "type": "int"}, {"case": -1.0, "do": do("minus one")})
    assert dec(t, "ff") == {"r": "minus one"}


def test_hex_and_string_selectors():
    t = sw({"byte": 0, "bytelength": 2, "type": "hex"}, {"case": "0a0b", "do": do("hex")}, {"case": "0A0B", "do": do("upper")})
    assert dec(t, "0a0b") == {"r": "hex"}
    t = sw({"byte": 0, "endbyte": 0, "type": "string"}, {"case": "on", "do": do("ON")}, {"case": "off", "do": do("OFF")})
    assert dec(t, "6f6666") == {"r": "OFF"}
    assert dec(t, "6f6e") == {"r": "ON"}


def test_many_cases_dispatch():
    t = sw({"byte": 0, "type": "uint"}, *({"case": i, "do": do(f"c{i}")} for i in range(40)))
    assert dec(t, "00") == {"r": "c0"}
    assert dec(t, "27") == {"r": "c39"}
    assert dec(t, "28") == {}


def test_constant_switch_selector():
    t = sw("b", {"case": "a", "do": do("A")}, {"case": "b", "do": do("B")})
    assert dec(t, b"") == {"r": "B"}


def test_nested_switches():
    t = sw({"byte": 0, "type": "uint"},
           {"case": 1, "do": [
               {"asset": "kind", "value": "one"},
               {"switch": {"byte": 1, "type": "uint"}, "on": [
                   {"case": 7, "do": [{"asset": "sub.seven", "value": {"byte": 2, "type": "uint"}}]},
                   {"default": True, "do": [{"asset": "sub.other", "value": {"byte": 1, "type": "uint"}}]},
               ]},
               {"asset": "after", "value": "yes"},
           ]})
    assert dec(t, "010709") == {"kind": "one", "sub": {"seven": 9}, "after": "yes"}
    assert dec(t, "0108") == {"kind": "one", "sub": {"other": 8}, "after": "yes"}
    assert err(t, "0107") == "Asset path:sub.seven, Error: can't extract [2:3] from 2 bytes"


# -- output shape ---------------------------------------------------------------------------------

def test_dotted_assets_build_objects_in_template_order():
    t = {"sense": [
        {"asset": "b.y", "value": "1"},
        {"asset": "a", "value": "2"},
        {"asset": "b.x", "value": "3"},
    ]}
    assert json_text(dec(t, b"")) == '{"b":{"y":"1","x":"3"},"a":"2"}'


def test_later_write_wins_and_replaces_non_objects():
    t = {"sense": [
        {"asset": "a", "value": "scalar"},
        {"asset": "a.b", "value": "nested"},
        {"asset": "c.d", "value": "obj"},
        {"asset": "c", "value": "scalar again"},
        {"asset": "e", "value": "1"},
        {"asset": "e", "value": "2"},
    ]}
    assert json_text(dec(t, b"")) == '{"a":{"b":"nested"},"c":"scalar again","e":"2"}'


def test_writes_after_a_switch_merge_into_existing_objects():
    t = {"sense": [
        {"asset": "g.a", "value": "1"},
        {"switch": {"byte": 0, "type": "uint"}, "on": [{"case": 1, "do": [{"asset": "g.b", "value": "2"}]}]},
        {"asset": "g.c", "value": "3"},
    ]}
    assert json_text(dec(t, "01")) == '{"g":{"a":"1","b":"2","c":"3"}}'
    assert json_text(dec(t, "00")) == '{"g":{"a":"1","c":"3"}}'


# -- locations -------------------------------------------------------------------------------------

LOC = {"sense": [
    {"asset": "gps.lat", "custom_type": "location_lat", "value": {"byte": 0, "bytelength": 4, "type": "float"}},
    {"asset": "gps.long", "custom_type": "location_long", "value": {"byte": 4, "bytelength": 4, "type": "float"}},
    {"asset": "speed", "value": {"byte": 8, "type": "uint"}},
]}


def test_locations_are_collected():
    tr = translate(compile_template(LOC), bytes.fromhex("424bbcf940de981c07"))
    assert tr.value == {"gps": {"lat": 50.934544, "long": 6.956068}, "speed": 7}
    assert tr.locations == {"lat": 50.934544, "long": 6.956068}


def test_locations_none_without_location_statements():
    assert translate(compile_template(one(byte=0, type="uint")), b"\x01").locations is None


def test_nan_location_is_left_out():
    tr = translate(compile_template(LOC), bytes.fromhex("7fc0000040de981c07"))
    assert tr.value["gps"]["lat"] is None
    assert tr.locations == {"long": 6.956068}


def test_locations_from_reference_path_too():
    # Invalid UTF-8 later in the template sends the fast path to the reference decoder.
    t = {"sense": [*LOC["sense"], {"asset": "s", "value": {"byte": 0, "endbyte": 0, "type": "hex"}}]}
    c = compile_template(t)
    assert c.decode_with_locations(bytes.fromhex("424bbcf940de981c07"))[1] == {"lat": 50.934544, "long": 6.956068}


# -- compile cache & inputs --------------------------------------------------------------------------

def test_compiled_once_per_canonical_template():
    clear_cache()
    a = compile_template({"sense": [{"asset": "x", "value": {"type": "uint", "byte": 0}}]})
    b = compile_template({"sense": [{"value": {"byte": 0, "type": "uint"}, "asset": "x"}]})
    c = compile_template('{"sense":[{"asset":"x","value":{"byte":0,"type":"uint"}}]}')
    assert a is b is c
    assert compile_template(a) is a
    d = compile_template({"sense": [{"asset": "x", "value": {"type": "uint", "byte": 1}}]})
    assert d is not a
    clear_cache()
    assert compile_template({"sense": [{"asset": "x", "value": {"type": "uint", "byte": 0}}]}) is not a


def test_model_input_compiles():
    model = parse_template(one(byte=0, type="uint"))
    assert compile_template(model).decode(b"\x05") == {"v": 5}


def test_payload_types():
    c = compile_template(one(byte=0, bytelength=2, type="hex"))
    for p in (b"\x01\x02", bytearray(b"\x01\x02"), memoryview(b"\x01\x02")):
        assert c.decode(p) == {"v": "0102"}


def test_translation_error_is_a_bcl_error():
    assert issubclass(TranslationError, BclError)


def test_generated_source_reads_once_per_struct_group():
    c = compile_template({"sense": [
        {"asset": "a", "value": {"byte": 0, "type": "uint"}},
        {"asset": "b", "value": {"byte": 1, "bytelength": 2, "type": "int"}},
        {"asset": "c", "value": {"byte": 5, "bytelength": 4, "type": "float"}},
        {"asset": "d", "value": {"byte": 9, "bytelength": 2, "type": "int", "byteorder": "little"}},
    ]})
    assert c.source.count("unpack_from") == 2  # one big-endian group (with a pad byte), one little-endian
    assert c.decode(bytes.fromhex("01fffe0000424bbcf90100")) == {"a": 1, "b": -2, "c": 50.934544, "d": 1}


# -- regressions found by the property tests ------------------------------------------------------

def test_string_switch_selector_is_decoded_even_if_no_case_can_match():
    t = sw({"byte": 0, "bytelength": 2, "type": "string"}, {"default": True, "do": []})
    assert err(t, "0080") == "Asset path:/sense/0/switch, Error: bytes [0:2] are not valid UTF-8 (invalid start byte)"


def test_overwritten_string_is_still_decoded():
    t = {"sense": [
        {"asset": "a", "value": {"type": "string", "byte": 2}},
        {"asset": "a", "value": {"type": "boolean", "byte": 0}},
    ]}
    assert err(t, "000080") == "Asset path:a, Error: bytes [2:3] are not valid UTF-8 (invalid start byte)"


def test_deepest_nesting_allowed_compiles_and_decodes():
    inner: dict = {"asset": "x.y", "value": {"byte": 32, "type": "uint"}}
    for depth in range(32):
        inner = {"switch": {"byte": 31 - depth, "type": "uint"}, "on": [
            {"case": 0, "do": [inner]},
            {"default": True, "do": [{"asset": f"d{depth}", "value": "other"}]},
        ]}
    t = {"sense": [inner]}
    assert dec(t, bytes(32) + b"\x07") == {"x": {"y": 7}}
    assert dec(t, bytes(31) + b"\x01\x07") == {"d0": "other"}
    assert err(t, bytes(32)) == "Asset path:x.y, Error: can't extract [32:33] from 32 bytes"
