"""Template validation: one test per rule, exact pointer and message."""

from __future__ import annotations

import json

import pytest

from bcl import Problem, TemplateError, compile_template, parse_template, validate
from bcl.model import Constant, Mapping, Selector, Switch, ValueType


def problems(template) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in validate(template)]


def value(**selector) -> dict:
    """A template with one mapping whose value is `selector`."""
    return {"sense": [{"asset": "a", "value": selector}]}


def switch(*entries, selector=None) -> dict:
    return {"sense": [{"switch": selector or {"byte": 0, "type": "uint"}, "on": list(entries)}]}


V = "/sense/0/value"


# -- top level ---------------------------------------------------------------

def test_template_must_be_an_object():
    assert problems([]) == [("", "template must be a JSON object")]


def test_missing_sense():
    assert problems({"name": "x"}) == [("", 'missing sense: a template needs a list of statements under "sense"')]


def test_sense_must_be_a_list():
    assert problems({"sense": {}}) == [("/sense", "sense must be a list of statements")]


def test_name_comment_version_must_be_strings():
    assert problems({"name": 1, "comment": [], "version": 1.0, "sense": []}) == [
        ("/name", "name must be a string"),
        ("/comment", "comment must be a string"),
        ("/version", "version must be a string"),
    ]


def test_unknown_top_level_key():
    assert problems({"sense": [], "foo": 1}) == [
        ("/foo", 'unknown key "foo" (allowed here: name, comment, version, sense)')
    ]


def test_empty_sense_is_valid():
    assert problems({"sense": []}) == []


# -- statements ----------------------------------------------------------------

def test_statement_must_be_an_object():
    assert problems({"sense": [1]}) == [("/sense/0", "statement must be an object")]


def test_not_a_statement():
    assert problems({"sense": [{"comment": "x"}]}) == [
        ("/sense/0", "not a statement: a statement has asset and value (a mapping) or switch and on (a control statement)")
    ]


def test_mapping_and_switch_in_one_statement():
    assert problems({"sense": [{"asset": "a", "value": "b", "switch": "c", "on": []}]}) == [
        ("/sense/0", "a statement is either a mapping (asset, value) or a switch (switch, on), not both")
    ]


def test_mapping_without_value():
    assert problems({"sense": [{"asset": "a"}]}) == [
        ("/sense/0", "mapping without value: add a selector object or a string constant")
    ]


def test_mapping_without_asset():
    assert problems({"sense": [{"value": "a"}]}) == [
        ("/sense/0", "mapping without asset: add the asset name the value goes to")
    ]


def test_switch_without_on():
    assert problems({"sense": [{"switch": "a"}]}) == [("/sense/0", "switch without on: add the list of cases")]


def test_on_without_switch():
    assert problems({"sense": [{"on": [{"default": True, "do": []}]}]}) == [
        ("/sense/0", "on without switch: add the selector the cases compare with")
    ]


def test_asset_with_empty_segment():
    assert problems({"sense": [{"asset": "a..b", "value": "x"}]}) == [
        ("/sense/0/asset", 'asset "a..b" has an empty name between dots')
    ]


@pytest.mark.parametrize("asset", ["", 5, None])
def test_asset_must_be_a_non_empty_string(asset):
    assert problems({"sense": [{"asset": asset, "value": "x"}]}) == [
        ("/sense/0/asset", 'asset must be a non-empty string such as "temperature" or "gps.lat"')
    ]


def test_asset_depth_limit():
    assert problems({"sense": [{"asset": ".".join(["a"] * 65), "value": "x"}]}) == [
        ("/sense/0/asset", "asset nests deeper than 64 levels")
    ]
    assert problems({"sense": [{"asset": ".".join(["a"] * 64), "value": "x"}]}) == []


def test_unknown_key_in_mapping():
    assert problems({"sense": [{"asset": "a", "value": "x", "unit": "C"}]}) == [
        ("/sense/0/unit", 'unknown key "unit" (allowed here: asset, value, comment, custom_type)')
    ]


def test_custom_type_must_be_a_location():
    assert problems({"sense": [{"asset": "a", "value": "x", "custom_type": "location"}]}) == [
        ("/sense/0/custom_type", 'custom_type must be location_lat or location_long, not "location"')
    ]


def test_custom_type_of_any_json_type_is_reported_not_crashed():
    # Regression (property test): an unhashable custom_type crashed the dict lookup.
    assert problems({"sense": [{"asset": "a", "value": "x", "custom_type": []}]}) == [
        ("/sense/0/custom_type", "custom_type must be location_lat or location_long, not []")
    ]


def test_custom_type_needs_a_number():
    assert problems({"sense": [{"asset": "a", "value": "x", "custom_type": "location_lat"}]}) == [
        ("/sense/0/custom_type", "custom_type location_lat needs a number: the value must read type int, uint or float")
    ]
    t = {"sense": [{"asset": "a", "value": {"byte": 0, "bytelength": 4, "type": "hex"}, "custom_type": "location_long"}]}
    assert problems(t) == [
        ("/sense/0/custom_type", "custom_type location_long needs a number: the value must read type int, uint or float")
    ]


def test_value_must_be_string_or_selector():
    assert problems({"sense": [{"asset": "a", "value": 3}]}) == [
        ("/sense/0/value", "value must be a string constant or a selector object")
    ]


def test_switch_must_be_selector_or_string():
    assert problems({"sense": [{"switch": 1, "on": [{"default": True, "do": []}]}]}) == [
        ("/sense/0/switch", "switch must be a selector object or a string constant")
    ]


def test_comment_must_be_a_string():
    assert problems({"sense": [{"asset": "a", "value": "x", "comment": 1}]}) == [
        ("/sense/0/comment", "comment must be a string")
    ]


# -- switch entries ------------------------------------------------------------------

def test_on_must_be_a_list():
    assert problems({"sense": [{"switch": "a", "on": {}}]}) == [("/sense/0/on", "on must be a list of cases")]


def test_on_needs_a_case():
    assert problems(switch()) == [("/sense/0/on", "on needs at least one case")]


def test_case_entry_must_be_an_object():
    assert problems(switch(1)) == [("/sense/0/on/0", "case entry must be an object")]


def test_case_without_do():
    assert problems(switch({"case": 1})) == [("/sense/0/on/0", "case without do: add the list of statements to run")]


def test_default_without_do():
    assert problems(switch({"default": True})) == [
        ("/sense/0/on/0", "default without do: add the list of statements to run")
    ]


def test_do_must_be_a_list():
    assert problems(switch({"case": 1, "do": {}})) == [("/sense/0/on/0/do", "do must be a list of statements")]


def test_two_defaults():
    assert problems(switch({"default": True, "do": []}, {"case": 1, "do": []}, {"default": True, "do": []})) == [
        ("/sense/0/on/2/default", "two defaults: a switch has one default, the first is /sense/0/on/0")
    ]


def test_case_and_default_in_one_entry():
    assert problems(switch({"case": 1, "default": True, "do": []})) == [
        ("/sense/0/on/0", "an entry is either a case or the default, not both")
    ]


def test_entry_needs_case_or_default():
    assert problems(switch({"do": []})) == [("/sense/0/on/0", 'entry needs "case": VALUE or "default": true')]


@pytest.mark.parametrize("bad", [True, None, [1], {"a": 1}])
def test_case_value_must_be_number_or_string(bad):
    assert problems(switch({"case": bad, "do": []})) == [
        ("/sense/0/on/0/case", f"case value must be a number or a string, not {json.dumps(bad)}")
    ]


def test_case_value_nan_is_refused():
    assert problems(switch({"case": float("nan"), "do": []})) == [
        ("/sense/0/on/0/case", "case value must be a number or a string, not NaN")
    ]


def test_default_must_be_true():
    assert problems(switch({"default": False, "do": []})) == [
        ("/sense/0/on/0/default", "default must be true, not false")
    ]


def test_unknown_key_in_case():
    assert problems(switch({"case": 1, "do": [], "then": []})) == [
        ("/sense/0/on/0/then", 'unknown key "then" (allowed here: case, default, do, comment)')
    ]


def test_switch_depth_limit():
    inner: dict = {"asset": "x", "value": "y"}
    for _ in range(33):
        inner = {"switch": "k", "on": [{"case": "k", "do": [inner]}]}
    (ptr, msg), = problems({"sense": [inner]})
    assert msg == "switches nest deeper than 32 levels"
    assert ptr == "/sense/0" + "/on/0/do/0" * 32


def test_problem_deep_inside_nested_switches_has_full_pointer():
    t = switch(
        {"case": 0, "do": []},
        {"case": 1, "do": [
            {"asset": "x", "value": "c"},
            {"asset": "y", "value": "c"},
            {"asset": "z", "value": {"byte": 1, "bytelength": 3, "type": "int"}},
        ]},
    )
    t["sense"].insert(0, {"asset": "first", "value": "c"})
    assert problems(t) == [
        ("/sense/1/on/1/do/2/value/bytelength", "bytelength 3 is not allowed for type int (allowed: 1, 2, 4, 8)")
    ]


# -- selectors -----------------------------------------------------------------------

def test_unknown_type():
    assert problems(value(byte=0, type="double")) == [
        (f"{V}/type", 'unknown type "double" (expected int, uint, float, boolean, string or hex)')
    ]


def test_selector_needs_type():
    assert problems(value(byte=0)) == [
        (V, "selector without type: add one of int, uint, float, boolean, string or hex")
    ]


@pytest.mark.parametrize(
    "vtype,length,allowed",
    [("int", 3, "1, 2, 4, 8"), ("uint", 16, "1, 2, 4, 8"), ("float", 2, "4, 8"), ("boolean", 2, "1")],
)
def test_bytelength_not_allowed_for_type(vtype, length, allowed):
    assert problems(value(byte=0, bytelength=length, type=vtype)) == [
        (f"{V}/bytelength", f"bytelength {length} is not allowed for type {vtype} (allowed: {allowed})")
    ]


@pytest.mark.parametrize("vtype,length", [("int", 8), ("uint", 1), ("float", 4), ("float", 8), ("boolean", 1), ("string", 17), ("hex", 300)])
def test_bytelength_allowed_for_type(vtype, length):
    assert problems(value(byte=0, bytelength=length, type=vtype)) == []


def test_float_needs_explicit_bytelength():
    assert problems(value(byte=0, type="float")) == [
        (V, "type float needs a bytelength of 4 or 8 (bytelength defaults to 1)")
    ]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bytelength_must_be_positive_integer(bad):
    assert problems(value(byte=0, bytelength=bad, type="string")) == [
        (f"{V}/bytelength", "bytelength must be a positive integer")
    ]


def test_bytelength_with_byte_and_endbyte():
    assert problems(value(byte=0, endbyte=0, bytelength=2, type="hex")) == [
        (f"{V}/bytelength", "bytelength is not allowed together with byte and endbyte (the range from byte to endbyte sets the length)")
    ]


def test_positive_endbyte():
    assert problems(value(endbyte=2, bytelength=1, type="uint")) == [
        (f"{V}/endbyte", "endbyte must be 0 or negative (it counts back from the end of the payload)")
    ]


def test_negative_byte():
    assert problems(value(byte=-1, type="uint")) == [
        (f"{V}/byte", "byte must not be negative (count from the end with endbyte)")
    ]


@pytest.mark.parametrize("bad", [True, 1.0, "0", None])
def test_byte_must_be_an_integer(bad):
    assert problems(value(byte=bad, type="uint")) == [(f"{V}/byte", "byte must be an integer")]


def test_endbyte_must_be_an_integer():
    assert problems(value(endbyte="-1", type="uint")) == [(f"{V}/endbyte", "endbyte must be an integer")]


def test_selector_needs_byte_or_endbyte():
    assert problems(value(type="uint")) == [(V, "selector without byte or endbyte: say where the value starts")]


def test_endbyte_zero_without_byte_reads_nothing():
    assert problems(value(endbyte=0, type="uint")) == [
        (f"{V}/endbyte", "endbyte 0 leaves no byte to read (without byte, reading starts at endbyte; bytelength defaults to 1)")
    ]


def test_endbyte_without_byte_cannot_read_past_the_end():
    assert problems(value(endbyte=-2, bytelength=4, type="uint")) == [
        (f"{V}/bytelength", "bytelength 4 reaches past the end of the payload: endbyte -2 leaves 2 bytes")
    ]
    assert problems(value(endbyte=-4, bytelength=4, type="uint")) == []


def test_bad_byteorder():
    assert problems(value(byte=0, type="uint", byteorder="middle")) == [
        (f"{V}/byteorder", 'byteorder must be "big" or "little", not "middle"')
    ]


def test_signed_as_in_1nce_docs_is_accepted_when_it_agrees():
    # help.1nce.com's Energy Saver example carries "type": "int", "signed": true.
    assert problems(value(byte=0, bytelength=2, type="int", signed=True)) == []
    assert problems(value(byte=0, type="uint", signed=False)) == []


def test_signed_must_agree_with_type():
    assert problems(value(byte=0, type="uint", signed=True)) == [
        (f"{V}/signed", "signed: true contradicts type uint (use type int)")
    ]
    assert problems(value(byte=0, type="int", signed=False)) == [
        (f"{V}/signed", "signed: false contradicts type int (use type uint)")
    ]
    assert problems(value(byte=0, bytelength=4, type="float", signed=True)) == [
        (f"{V}/signed", "signed applies only to types int and uint")
    ]
    assert problems(value(byte=0, type="int", signed="yes")) == [(f"{V}/signed", "signed must be true or false")]


def test_unknown_selector_key():
    assert problems(value(byte=0, type="uint", bytelenght=2)) == [
        (f"{V}/bytelenght", 'unknown key "bytelenght" (allowed here: type, byte, endbyte, bytelength, byteorder, signed, comment)')
    ]


def test_pointer_escapes_slash_and_tilde():
    assert problems({"sense": [], "a/b~c": 1}) == [
        ("/a~1b~0c", 'unknown key "a/b~c" (allowed here: name, comment, version, sense)')
    ]


def test_non_string_key_in_python_input():
    assert problems({"sense": [], 3: 1}) == [("/3", "keys must be strings, not 3")]


# -- limits that keep hostile input from crashing the codec ------------------------------------

def test_lone_surrogates_are_not_text():
    # Valid JSON, but no UTF-8 form: the translated JSON could not be sent.
    assert problems('{"sense": [{"asset": "a", "value": "\\ud800"}]}') == [
        ("/sense/0/value", "a constant must be Unicode text (it has a lone surrogate)")
    ]
    assert problems('{"sense": [{"asset": "\\udfff", "value": "x"}]}') == [
        ("/sense/0/asset", "asset must be Unicode text (it has a lone surrogate)")
    ]


def test_offsets_are_bounded():
    assert problems(value(byte=2**31, type="uint")) == [(f"{V}/byte", "byte must be at most 2147483647")]
    assert problems(value(endbyte=-(2**31), bytelength=1, type="uint")) == [
        (f"{V}/endbyte", "endbyte must be at least -2147483647")
    ]
    assert problems(value(byte=0, bytelength=2**40, type="hex")) == [
        (f"{V}/bytelength", "bytelength must be at most 2147483647")
    ]
    assert problems(value(byte=2**31 - 1, bytelength=2**31 - 1, type="hex")) == []


def test_huge_case_values():
    assert problems(switch({"case": 10**400, "do": []})) == [
        ("/sense/0/on/0/case", "case value is too large to equal anything a selector reads")
    ]
    assert problems(switch({"case": 2**1024, "do": []})) == []


def test_values_that_cannot_be_printed_are_named_by_type():
    assert problems({"sense": [{"asset": "a", "value": "x", "custom_type": 10**5000}]}) == [
        ("/sense/0/custom_type", "custom_type must be location_lat or location_long, not <int>")
    ]


# -- JSON text ------------------------------------------------------------------------------

def test_invalid_json_text():
    assert problems('{"sense": [') == [("", "not valid JSON: Expecting value at line 1 column 12")]


def test_duplicate_keys_in_json_text():
    assert problems('{"sense": [{"asset": "a", "value": {"byte": 0, "byte": 1, "type": "uint"}}]}') == [
        ("/sense/0/value/byte", 'duplicate key "byte" (JSON keeps only the last one)')
    ]


def test_nan_in_json_text():
    assert problems('{"sense": [{"asset": "a", "value": {"byte": NaN, "type": "uint"}}]}') == [
        ("", "not valid JSON: NaN is not a JSON number")
    ]


def test_json_nested_too_deeply():
    assert problems("[" * 100000) == [("", "not valid JSON: nested too deeply")]


def test_text_that_is_not_utf8():
    assert problems(b'{"sense": [], "name": "\xff"}') == [
        ("", "not valid JSON: not UTF-8 text (invalid start byte at byte 23)")
    ]


# -- all problems at once --------------------------------------------------------------------

def test_every_problem_is_listed():
    t = {
        "name": 5,
        "extra": True,
        "sense": [
            {"asset": "t", "value": {"byte": -1, "bytelength": 3, "type": "int"}},
            {"asset": "ok", "value": "fine"},
            {"switch": {"byte": 0, "type": "uint"}, "on": [
                {"case": 1},
                {"default": True, "do": []},
                {"default": True, "do": [{"asset": "x", "value": {"byte": 0, "endbyte": 1, "type": "hex"}}]},
            ]},
            {"nothing": 1},
        ],
    }
    expected = [
        ("/extra", 'unknown key "extra" (allowed here: name, comment, version, sense)'),
        ("/name", "name must be a string"),
        ("/sense/0/value/byte", "byte must not be negative (count from the end with endbyte)"),
        ("/sense/0/value/bytelength", "bytelength 3 is not allowed for type int (allowed: 1, 2, 4, 8)"),
        ("/sense/2/on/0", "case without do: add the list of statements to run"),
        ("/sense/2/on/2/do/0/value/endbyte", "endbyte must be 0 or negative (it counts back from the end of the payload)"),
        ("/sense/2/on/2/default", "two defaults: a switch has one default, the first is /sense/2/on/1"),
        ("/sense/3", "not a statement: a statement has asset and value (a mapping) or switch and on (a control statement)"),
    ]
    assert problems(t) == expected
    with pytest.raises(TemplateError) as exc:
        parse_template(t)
    assert [(p.pointer, p.message) for p in exc.value.problems] == expected
    text = str(exc.value)
    assert text.splitlines()[0] == "invalid template: 8 problems"
    assert text.splitlines()[1] == '  /extra: unknown key "extra" (allowed here: name, comment, version, sense)'
    assert len(text.splitlines()) == 9


def test_problem_str_shows_root():
    assert str(Problem("", "template must be a JSON object")) == "(template): template must be a JSON object"


def test_compile_refuses_invalid_template():
    with pytest.raises(TemplateError) as exc:
        compile_template({"sense": [{"asset": "a", "value": {"byte": 0, "type": "float"}}]})
    assert exc.value.problems == [Problem("/sense/0/value", "type float needs a bytelength of 4 or 8 (bytelength defaults to 1)")]


# -- the model ---------------------------------------------------------------------------------

def test_model_of_a_valid_template():
    t = parse_template({
        "name": "n", "version": "1.0.0",
        "sense": [
            {"asset": "gps.lat", "value": {"byte": 1, "bytelength": 4, "type": "float", "byteorder": "little"},
             "custom_type": "location_lat", "comment": "latitude"},
            {"switch": {"endbyte": -1, "type": "uint"}, "on": [
                {"case": 3, "do": [{"asset": "k", "value": "three"}]},
                {"default": True, "do": []},
            ]},
            {"asset": "all", "value": {"byte": 0, "endbyte": 0, "type": "hex"}},
        ],
    })
    m, sw, span = t.sense
    assert t.name == "n" and t.version == "1.0.0" and t.comment is None
    assert isinstance(m, Mapping) and m.path == ("gps", "lat") and m.custom_type == "location_lat"
    assert m.comment == "latitude"
    assert m.value == Selector(ValueType.FLOAT, 1, None, 4, "little", "/sense/0/value")
    assert isinstance(sw, Switch) and sw.selector == Selector(ValueType.UINT, None, -1, 1, "big", "/sense/1/switch")
    assert [c.value for c in sw.cases] == [3] and sw.default is not None and sw.default.do == ()
    assert sw.cases[0].do[0].value == Constant("three", "/sense/1/on/0/do/0/value")
    assert span.value.bytelength is None and span.value.is_span
