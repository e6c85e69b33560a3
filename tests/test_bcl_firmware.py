"""Generated firmware encoders (C99 and Python) against the gateway's decoder.

For every vector of ../shared/reference/bcl-vectors.json and for templates drawn by Hypothesis
(the strategies of test_bcl_properties), the generated C is compiled with gcc under
``-Wall -Wextra -Werror -pedantic -std=c99``, run on values, and its bytes decoded by the
gateway give the same values back; the generated Python gives the same bytes. Example counts
are small and derandomized so `make test` stays fast; ``make test-firmware-deep`` runs more
(BCL_FIRMWARE_EXAMPLES).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bcl import TemplateError, TranslationError, compile_template, encode, same_json
from bcl.firmware import CodegenRefused, generate, plan_of
from gateway.cli import main
from tests.firmware_support import (build_driver, driver_line, load_python, needs_gcc, python_outcome, run_driver,
                                    values_from_payload)
from tests.test_bcl_properties import invertible_templates, templates
from tests.test_bcl_vectors import VECTORS

EXAMPLES = int(os.environ.get("BCL_FIRMWARE_EXAMPLES", "25"))
FIRMWARE_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                    HealthCheck.filter_too_much])
GOOD_VECTORS = [v for v in VECTORS if "error" not in v]


def roundtrip(template: dict, payload: bytes, workdir: Path) -> str:
    """Encode the values `payload` translates to with the generated C and Python; check the
    decoder gives them back. Returns the outcome (hex or "error N")."""
    compiled = compile_template(template)
    expected = compiled.decode(payload)
    plan = plan_of(template)
    values, canonical = values_from_payload(template, plan, payload)
    binary = build_driver(template, plan, workdir)
    (c_out,) = run_driver(binary, [driver_line(plan, values)])
    assert python_outcome(load_python(template), values) == c_out
    if c_out.startswith("error"):
        # Only reads whose bytes do not come back from their value (a boolean from 0x05, a NaN)
        # may make two reads of the same bytes disagree.
        assert c_out == "error -3" and not canonical, c_out
        return c_out
    got = compiled.decode(bytes.fromhex(c_out))
    assert same_json(got, expected), (got, expected)
    assert json.dumps(got) == json.dumps(expected)  # the same key order too
    return c_out


@needs_gcc
@pytest.mark.parametrize("vec", GOOD_VECTORS, ids=[v["name"] for v in GOOD_VECTORS])
def test_vectors_round_trip_through_generated_c_and_python(vec, tmp_path):
    out = roundtrip(vec["template"], bytes.fromhex(vec["payload_hex"]), tmp_path)
    assert not out.startswith("error")


def test_sdk_blueprint_struct_and_bytes():
    vec = next(v for v in VECTORS if v["name"] == "sdk-blueprint-energy-saver")
    header = generate(vec["template"], "c", "blueprint")["blueprint.h"]
    assert "    uint8_t battery_level; /* asset battery_level (uint) */" in header
    assert "    char software_version[5]; /* asset software_version (string) */" in header
    assert "    int8_t sel_0; /* switch /sense/0 (int) */" in header
    assert "#define BLUEPRINT_MAX_LENGTH 8 " in header
    module = load_python(vec["template"])
    payload = module["encode"](module["Values"](battery_level=99, signal_strength=84, software_version="2.2.1",
                                                sel_0=1))
    assert payload.hex() == vec["payload_hex"]


@needs_gcc
@FIRMWARE_SETTINGS
@given(templates, st.binary(min_size=12, max_size=24))
def test_generated_encoders_invert_the_decoder(tmp_path_factory, template, payload):
    try:
        compile_template(template).decode(payload)
    except TranslationError:
        assume(False)
    try:
        plan_of(template)
    except CodegenRefused:
        assume(False)  # refusals have their own tests below
    roundtrip(template, payload, tmp_path_factory.mktemp("fw"))


@needs_gcc
@FIRMWARE_SETTINGS
@given(invertible_templates())
def test_generated_encoders_on_random_values(tmp_path_factory, case):
    template, values = case
    out = roundtrip(template, encode(template, values), tmp_path_factory.mktemp("fw"))
    assert not out.startswith("error")


# -- errors the generated code returns -------------------------------------------------------------

MIXED = {"name": "mixed", "sense": [{"switch": {"byte": 0, "type": "uint"}, "on": [
    {"case": 1, "do": [{"asset": "level", "value": {"byte": 1, "bytelength": 1, "type": "uint"}}]},
    {"case": 2, "do": [{"asset": "level", "value": {"byte": 1, "bytelength": 2, "type": "uint"}},
                       {"asset": "name", "value": {"byte": 3, "endbyte": 0, "type": "string"}}]}]}]}


@needs_gcc
def test_value_out_of_range_buffer_too_small_and_bad_utf8(tmp_path):
    plan = plan_of(MIXED)
    assert [(f.name, f.family, f.width) for f in plan.fields] == [
        ("level", "int", 2), ("name", "string", None), ("sel_0", "int", 1)]
    binary = build_driver(MIXED, plan, tmp_path)
    lines = ["300 - 1",            # 300 does not fit the 1-byte level of case 1
             "255 - 1",
             "300 6869 2",         # case 2: 2-byte level and a string sized by the payload
             "300 ff 2",           # not UTF-8
             "7 - 3"]              # no case 3 and no default: only the selector is read
    assert run_driver(binary, lines) == ["error -2", "01ff", "02012c6869", "error -2", "03"]
    module = load_python(MIXED)
    assert python_outcome(module, {"level": 300, "name": "", "sel_0": 1}) == "error -2"
    assert python_outcome(module, {"level": 300, "name": "hi", "sel_0": 2}) == "02012c6869"
    # the caller's buffer: a 3-byte buffer is too short for 5 bytes
    (tmp_path / "small.c").write_text(
        '#include "enc.h"\n#include <stdio.h>\nint main(void)\n{\n    enc_values_t v;\n    uint8_t buf[3];\n'
        '    v.level = 300;\n    v.name = "hi";\n    v.name_len = 2;\n    v.sel_0 = 2;\n'
        '    printf("%d %d\\n", enc_encode(&v, buf, sizeof(buf)), ENC_ERR_BUFFER);\n    return 0;\n}\n')
    result = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-pedantic", "-std=c99", "-o",
                             str(tmp_path / "small"), str(tmp_path / "small.c"), str(tmp_path / "enc.c")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert subprocess.run([str(tmp_path / "small")], capture_output=True, text=True).stdout == "-1 -1\n"


@needs_gcc
def test_a_string_that_is_the_whole_payload(tmp_path):
    # found by Hypothesis: the length check "n < 0" of an unsigned n did not build with -Werror
    template = {"sense": [{"asset": "s", "value": {"byte": 0, "endbyte": 0, "type": "string"}}]}
    assert roundtrip(template, "héllo".encode(), tmp_path) == "héllo".encode().hex()
    (empty,) = run_driver(tmp_path / "driver", ["-"])
    assert empty == ""


@needs_gcc
def test_reads_sharing_bytes_must_agree(tmp_path):
    vec = next(v for v in VECTORS if v["name"] == "full-maintenance")
    plan = plan_of(vec["template"])
    values, _ = values_from_payload(vec["template"], plan, bytes.fromhex(vec["payload_hex"]))
    binary = build_driver(vec["template"], plan, tmp_path)
    good = driver_line(plan, values)
    bad = driver_line(plan, {**values, "message_code": 7})  # byte 0 is the switch's selector too
    assert run_driver(binary, [good, bad]) == [vec["payload_hex"], "error -3"]


# -- layouts the generator refuses -------------------------------------------------------------------

def test_refuses_a_replaced_string_whose_bytes_another_read_sets():
    template = {"sense": [{"asset": "a", "value": {"byte": 0, "bytelength": 3, "type": "string"}},
                          {"asset": "b", "value": {"byte": 1, "bytelength": 1, "type": "uint"}},
                          {"asset": "a", "value": "replaced"}]}
    with pytest.raises(CodegenRefused, match=r"the string read of a at /sense/0/value is replaced by a later "
                                             r"write, but its bytes may hold b"):
        plan_of(template)


def test_refuses_numbers_no_payload_length_suits():
    template = {"sense": [{"asset": "a", "value": {"byte": 0, "endbyte": 0, "type": "float"}},
                          {"asset": "b", "value": {"byte": 0, "endbyte": -1, "type": "float"}}]}
    with pytest.raises(CodegenRefused, match="no payload length gives the byte\\+endbyte reads \\(a, b\\) widths"):
        plan_of(template)


def test_refuses_a_float_selector_whose_width_follows_a_string():
    template = {"sense": [{"switch": {"byte": 0, "endbyte": -2, "type": "float"}, "on": [
        {"case": 0.1, "do": [{"asset": "tail", "value": {"byte": 2, "endbyte": 0, "type": "hex"}}]}]}]}
    with pytest.raises(CodegenRefused, match="the float switch selector at /sense/0/switch runs to endbyte"):
        plan_of(template)


def test_refuses_too_many_paths():
    switch = {"switch": {"byte": 0, "type": "uint"}, "on": [{"case": i, "do": []} for i in range(7)]}
    template = {"sense": [switch, switch, switch]}  # 8 * 8 * 8 = 512 paths
    with pytest.raises(CodegenRefused, match="more than 256 execution paths"):
        plan_of(template)


def test_invalid_template_is_a_template_error():
    with pytest.raises(TemplateError):
        generate({"sense": [{"asset": "a"}]}, "c")


# -- the command line ----------------------------------------------------------------------------------

def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``nce-gateway template codegen ARGS`` in this process (exit code, stdout, stderr)."""
    code = main(["template", "codegen", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_the_files(tmp_path, capsys):
    vec = next(v for v in VECTORS if v["name"] == "sdk-blueprint-energy-saver")
    (tmp_path / "t.json").write_text(json.dumps(vec["template"]))
    code, out, err = _cli(capsys, str(tmp_path / "t.json"), "--lang", "c", "--name", "blueprint",
                          "--out", str(tmp_path / "gen"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["blueprint.c", "blueprint.h"]
    assert out.splitlines() == [f"wrote {tmp_path / 'gen' / 'blueprint.h'}", f"wrote {tmp_path / 'gen' / 'blueprint.c'}"]
    assert (tmp_path / "gen" / "blueprint.h").read_text() == generate(vec["template"], "c", "blueprint")["blueprint.h"]
    code, out, err = _cli(capsys, str(tmp_path / "t.json"), "--lang", "python")  # no --out: printed
    assert code == 0 and "def encode(v: Values) -> bytes:" in out


def test_cli_refusal_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "t.json").write_text(json.dumps({"sense": [
        {"asset": "a", "value": {"byte": 0, "endbyte": 0, "type": "float"}},
        {"asset": "b", "value": {"byte": 0, "endbyte": -1, "type": "float"}}]}))
    code, out, err = _cli(capsys, str(tmp_path / "t.json"), "--lang", "c")
    assert code == 1 and out == ""
    assert err.startswith("error: cannot generate an encoder: the only path: no payload length gives")
    code, _, err = _cli(capsys, str(tmp_path / "missing.json"))
    assert code == 1 and err == f"error: {tmp_path / 'missing.json'}: No such file or directory\n"
