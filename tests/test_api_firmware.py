"""``POST /v1/optimize/templates/codegen``: the firmware encoder of a template, through the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bcl.firmware import generate
from tests.api_support import start_api
from tests.conftest import make_config

TEMPLATE = (Path(__file__).resolve().parents[1] / "examples/blueprint-template.json").read_text()


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), roles=("Owner", "API"))


async def test_codegen_from_text_and_from_a_stored_template(api):
    client = api.client("API")  # any role that reads templates
    answer = await client.post("/v1/optimize/templates/codegen", json={"template": TEMPLATE, "name": "blueprint"})
    assert answer.status == 200, answer.text
    assert answer.body == {"lang": "c", "files": [{"name": n, "content": t} for n, t in
                                                  generate(TEMPLATE, "c", "blueprint").items()]}
    row = await api.gateway.templates.create(name="bp", template=TEMPLATE, protocols=["UDP"], status="INACTIVE")
    stored = await client.post("/v1/optimize/templates/codegen", json={"templateId": row["id"], "lang": "python"})
    assert stored.status == 200
    assert [f["name"] for f in stored.body["files"]] == ["sdk_blueprint_energy_saver.py"]
    assert "def encode(v: Values) -> bytes:" in stored.body["files"][0]["content"]


async def test_codegen_errors(api):
    client = api.client("Owner")
    path = "/v1/optimize/templates/codegen"
    refused = await client.post(path, json={"template": {"sense": [
        {"asset": "a", "value": {"byte": 0, "endbyte": 0, "type": "float"}},
        {"asset": "b", "value": {"byte": 0, "endbyte": -1, "type": "float"}}]}})
    assert refused.status == 400
    assert refused.body["errors"][0]["message"].startswith("cannot generate an encoder: the only path: no payload")
    invalid = await client.post(path, json={"template": json.dumps({"sense": [{"asset": "a"}]})})
    assert invalid.status == 400 and "mapping without value" in invalid.text
    assert (await client.post(path, json={"templateId": "nope"})).status == 404
    both = await client.post(path, json={"template": TEMPLATE, "templateId": "x"})
    assert both.status == 400 and "either template" in both.text
    assert (await client.post(path, json={"template": TEMPLATE, "lang": "rust"})).status == 400
    assert (await api.client().post(path, json={"template": TEMPLATE})).status == 401
