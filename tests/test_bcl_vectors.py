"""Every worked example of ../shared/reference/bcl-vectors.json, exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bcl import TranslationError, compile_template, encode, json_text, same_json


def _vectors_path() -> Path:
    here = Path(__file__).resolve().parents[2] / "shared/reference/bcl-vectors.json"
    if here.exists():
        return here
    shared = os.environ.get("NCE_SHARED")
    if shared:
        return Path(shared) / "reference/bcl-vectors.json"
    return here  # missing: the load below fails loudly, it does not skip


VECTORS = json.loads(_vectors_path().read_text(encoding="utf-8"))["vectors"]
BY_NAME = {v["name"]: v for v in VECTORS}


def test_vector_file_has_the_known_examples():
    assert len(VECTORS) >= 12
    assert {"sdk-blueprint-energy-saver", "vehicle-position", "too-short-payload"} <= set(BY_NAME)


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_fast_decoder(vec):
    compiled = compile_template(vec["template"])
    payload = bytes.fromhex(vec["payload_hex"])
    if "error" in vec:
        with pytest.raises(TranslationError) as exc:
            compiled.decode(payload)
        assert vec["error"] in str(exc.value)
    else:
        got = compiled.decode(payload)
        assert got == vec["expected"]
        # Same JSON text too: floats print as the shortest decimal, key order as in the template.
        assert json_text(got) == json_text(vec["expected"])


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_reference_decoder(vec):
    compiled = compile_template(vec["template"])
    payload = bytes.fromhex(vec["payload_hex"])
    if "error" in vec:
        with pytest.raises(TranslationError) as exc:
            compiled.decode_reference(payload)
        assert vec["error"] in str(exc.value)
    else:
        assert compiled.decode_reference(payload) == vec["expected"]


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_from_json_text(vec):
    # The API stores templates as JSON strings; text and object give one compiled template.
    text = json.dumps(vec["template"], indent=1)
    assert compile_template(text) is compile_template(vec["template"])


def test_too_short_payload_message_is_exactly_1nces():
    vec = BY_NAME["too-short-payload"]
    with pytest.raises(TranslationError) as exc:
        compile_template(vec["template"]).decode(bytes.fromhex(vec["payload_hex"]))
    assert str(exc.value) == "Asset path:Temperature, Error: can't extract [200:201] from 2 bytes"
    assert exc.value.asset_path == "Temperature"
    assert exc.value.detail == "can't extract [200:201] from 2 bytes"


@pytest.mark.parametrize("vec", [v for v in VECTORS if "expected" in v], ids=lambda v: v["name"])
def test_vector_encodes_back(vec):
    payload = encode(vec["template"], vec["expected"])
    assert same_json(compile_template(vec["template"]).decode(payload), vec["expected"])


def test_vector_payloads_are_what_the_encoder_writes_when_fully_determined():
    for name in ("vehicle-position", "full-maintenance", "full-position", "sdk-blueprint-energy-saver", "int16-little-endian"):
        vec = BY_NAME[name]
        assert encode(vec["template"], vec["expected"]).hex() == vec["payload_hex"], name
