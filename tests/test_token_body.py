"""``POST /oauth/token`` read as OAuth2 clients and curl send it (issue 17).

curl is the independent client: ``curl -u USER:PW -d 'grant_type=client_credentials'`` is the
RFC 6749 form; ``curl -d '{"grant_type": ...}'`` without ``-H`` labels JSON as a form; and a
request with no Content-Type at all must not answer "Missing attributes 'grant_type'".
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from tests.api_support import EMAILS, PASSWORD, start_api
from tests.conftest import make_config

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")


def curl(url: str, *args: str) -> dict:
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "-u", f"{EMAILS['Owner']}:{PASSWORD}", *args, url],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("args", [
    ("-d", "grant_type=client_credentials"),                                     # the OAuth2 form
    ("-d", '{"grant_type":"client_credentials"}'),                                # JSON labelled as a form
    ("-H", "Content-Type: application/json", "-d", '{"grant_type":"client_credentials"}'),
    ("-H", "Content-Type:", "-d", '{"grant_type":"client_credentials"}'),         # no Content-Type: JSON
    ("-H", "Content-Type:", "-d", "grant_type=client_credentials"),               # no Content-Type: form
], ids=["form", "json-as-form", "json", "json-untyped", "form-untyped"])
async def test_token_bodies_as_clients_send_them(start_gateway, tmp_path, args):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner",))
    body = await asyncio.to_thread(curl, f"{api.base}/oauth/token", *args)
    assert (body["status_code"], body["token_type"], body["userId"]) == (200, "bearer", EMAILS["Owner"])
