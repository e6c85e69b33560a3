"""The example client written for the 1NCE API works against the gateway with only its base URL changed."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from inspector.records import MessageRecord, Pending
from tests.api_support import EMAILS, start_api, write_password_file
from tests.conftest import make_config, sim


async def test_example_client_against_the_gateway(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file})
    # creating the webhook needs Owner or Admin (docs/api.md, access class integrate)
    api = await start_api(start_gateway, config, [sim(10), sim(11)], roles=("Admin",))
    now = int(time.time() * 1000)
    await api.gateway.committer.write(api.gateway.store.commit, [
        Pending(MessageRecord(sim(10).iccid, ("UDP", "COAP")[i % 2], now - 250 * 1000 + i * 1000, b"%d" % i), [])
        for i in range(250)])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_examples.api_client_example", "--base-url", api.base,
        "--user", EMAILS["Admin"], "--password-file", write_password_file(tmp_path),
        "--webhook-url", receiver.url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["token"] == {"expires_in": 3600, "token_type": "bearer"}
    assert [s["iccid"] for s in summary["sims"]] == [sim(10).iccid, sim(11).iccid]
    assert summary["history"]["messages"] == 250 and summary["history"]["protocols"] == ["COAP", "UDP"]
    assert summary["webhook"]["state"] == "INTEGRATION_ACTIVE"
    assert summary["webhook"]["test"]["testStatus"] == "SUCCESS"
    assert receiver.of_type("TEST_MESSAGE")[0]["integration"]["name"] == "api-client-example"
