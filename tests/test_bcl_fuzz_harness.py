"""The atheris harness's check function, run without atheris (CI has no fuzzer)."""

from __future__ import annotations

import json
import random

import pytest

from fuzz.bcl_fuzz import check, vectors_path

VECTORS = vectors_path()


def test_seeds_in_text_mode():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    for vec in vectors:
        check(b"\x00" + json.dumps(vec["template"]).encode() + b"\x00" + bytes.fromhex(vec["payload_hex"]))


def test_random_inputs_in_every_mode():
    rng = random.Random(3)
    for i in range(600):
        data = bytes([i % 3]) + rng.randbytes(rng.randint(0, 80))
        check(data)


def test_check_reports_disagreement(monkeypatch):
    # The harness must flag a decoder that disagrees with the reference.
    import bcl.compile as compile_module

    compiled = compile_module.compile_template({"sense": [{"asset": "a", "value": {"byte": 0, "type": "uint"}}]})
    monkeypatch.setattr(type(compiled), "decode_reference", lambda self, p: {"a": -1})
    text = b'\x00{"sense": [{"asset": "a", "value": {"byte": 0, "type": "uint"}}]}\x00\x05'
    with pytest.raises(AssertionError, match="disagree"):
        check(text)
