"""message_test and the CLI functions behind `nce-gateway template validate|test`."""

from __future__ import annotations

import json

import pytest

from bcl import TemplateError, TranslationError, json_text, message_test
from bcl.cli import test_file, validate_file

SDK = {"sense": [{"switch": {"byte": 0, "bytelength": 1, "type": "int"}, "on": [{"case": 1, "do": [
    {"asset": "data_type", "value": "Energy_Saver"},
    {"asset": "battery_level", "value": {"byte": 1, "bytelength": 1, "type": "uint"}},
    {"asset": "signal_strength", "value": {"byte": 2, "bytelength": 1, "type": "uint"}},
    {"asset": "software_version", "value": {"byte": 3, "bytelength": 5, "type": "string"}},
]}]}]}
SDK_PAYLOAD = bytes.fromhex("016354322e322e31")
SDK_JSON = '{"data_type":"Energy_Saver","battery_level":99,"signal_strength":84,"software_version":"2.2.1"}'


def test_message_test_sdk_blueprint():
    assert message_test(SDK, SDK_PAYLOAD) == {
        "translatedPayload": SDK_JSON,
        "reducedBytes": len(SDK_JSON) - 8,  # 95 - 8
        "energyUsageReduction": 1.131,
    }
    assert len(SDK_JSON) == 95


def test_message_test_accepts_template_text():
    assert message_test(json.dumps(SDK), SDK_PAYLOAD)["reducedBytes"] == 87


def test_reduced_bytes_counts_utf8_bytes_and_may_be_negative():
    t = {"sense": [{"asset": "s", "value": {"byte": 0, "bytelength": 2, "type": "string"}}]}
    r = message_test(t, "é".encode())
    assert r["translatedPayload"] == '{"s":"é"}'
    assert r["reducedBytes"] == 10 - 2
    t = {"sense": []}
    assert message_test(t, bytes(10)) == {"translatedPayload": "{}", "reducedBytes": -8, "energyUsageReduction": -0.104}


def test_message_test_errors():
    with pytest.raises(TranslationError):
        message_test(SDK, b"\x01")
    with pytest.raises(TemplateError):
        message_test({"sense": 1}, b"")


def test_json_text_is_compact_and_unescaped():
    assert json_text({"a": {"b": 1.5}, "c": "ü"}) == '{"a":{"b":1.5},"c":"ü"}'


def test_validate_file_ok(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"name": "sdk", **SDK}))
    code, text = validate_file(path)
    assert code == 0
    assert json.loads(text) == {
        "valid": True, "name": "sdk", "version": None,
        "assets": ["data_type", "battery_level", "signal_strength", "software_version"],
    }


def test_validate_file_lists_every_problem(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"sense": [{"asset": "a", "value": {"byte": -1, "type": "double"}}], "x": 1}))
    code, text = validate_file(path)
    assert code == 1
    assert text.splitlines() == [
        "invalid template: 3 problems",
        '  /x: unknown key "x" (allowed here: name, comment, version, sense)',
        '  /sense/0/value/type: unknown type "double" (expected int, uint, float, boolean, string or hex)',
        "  /sense/0/value/byte: byte must not be negative (count from the end with endbyte)",
    ]


def test_validate_file_missing_and_not_json(tmp_path):
    code, text = validate_file(tmp_path / "nope.json")
    assert code == 1 and text == f"cannot read {tmp_path / 'nope.json'}: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert validate_file(bad) == (
        1, "invalid template: 1 problem\n  (template): not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"
    )
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe")
    assert validate_file(binary) == (1, f"cannot read {binary}: not UTF-8 text (invalid start byte at byte 0)")


def test_test_file_ok(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(SDK))
    code, text = test_file(path, SDK_PAYLOAD)
    assert code == 0
    assert json.loads(text) == {
        "translatedPayload": json.loads(SDK_JSON), "reducedBytes": 87, "energyUsageReduction": 1.131,
    }


def test_test_file_translation_error(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"sense": [{"asset": "Temperature", "value": {"byte": 200, "type": "uint"}}]}))
    assert test_file(path, b"\x01\x02") == (
        1, "Translator[UserPayloadError]: Asset path:Temperature, Error: can't extract [200:201] from 2 bytes"
    )


def test_test_file_invalid_template(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"sense": [{"asset": "a"}]}')
    assert test_file(path, b"") == (
        1, "invalid template: 1 problem\n  /sense/0: mapping without value: add a selector object or a string constant"
    )
