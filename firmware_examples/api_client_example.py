"""A script for the 1NCE management API: token, SIMs, a device's message history, a webhook.

Written against the public 1NCE API (https://api.1nce.com/management-api) with nothing but the
Python standard library; it runs unchanged against nce-gateway when only the base URL changes:

    python -m firmware_examples.api_client_example --user me@example.com --password-file pw.txt \\
        --webhook-url https://hooks.example.com/1nce                           # 1NCE
    python -m firmware_examples.api_client_example --base-url http://127.0.0.1:8080/management-api \\
        --user me@example.com --password-file pw.txt --webhook-url https://...  # the gateway

Credentials may also come from NCE_API_USER / NCE_API_PASSWORD, the base URL from NCE_API_BASE.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_BASE = "https://api.1nce.com/management-api"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class OnceApi:
    """The few calls this script needs, as any client of the 1NCE API makes them."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None

    def _call(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return (json.loads(raw) if raw else None), dict(response.headers)
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None

    def login(self, user: str, password: str) -> dict:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        answer, _ = self._call("POST", "/oauth/token", body={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})
        self.token = answer["access_token"]
        return answer

    def all_sims(self, page_size: int = 100) -> list[dict]:
        sims: list[dict] = []
        page = 1
        while True:
            answer, headers = self._call("GET", "/v1/sims", query={"page": page, "pageSize": page_size})
            sims.extend(answer)
            if page >= int(headers.get("X-Total-Pages", "1")):
                return sims
            page += 1

    def device_history(self, device_id: str, start: str | None = None, page_size: int = 100,
                       max_pages: int = 100) -> list[dict]:
        items: list[dict] = []
        token = None
        for _ in range(max_pages):
            query = {"pageSize": page_size, "startDateTime": start, "nextToken": token}
            answer, _ = self._call("GET", f"/v1/inspect/devices/{urllib.parse.quote(device_id)}/history", query=query)
            items.extend(answer["items"])
            token = answer.get("nextToken")
            if not token:
                break
        return items

    def create_webhook(self, name: str, url: str, event_types: list[str]) -> dict:
        body = {"name": name, "url": url, "headers": {}, "jsonPayloadEnabled": True,
                "eventTypes": [{"type": t, "version": "1.0.0"} for t in event_types]}
        answer, _ = self._call("POST", "/v1/integrate/clouds/webhooks", body=body)
        return answer

    def test_webhook(self, integration_id: str) -> dict:
        answer, _ = self._call("POST", f"/v1/integrate/clouds/webhooks/{integration_id}/test")
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("NCE_API_BASE", DEFAULT_BASE))
    parser.add_argument("--user", default=os.environ.get("NCE_API_USER"))
    parser.add_argument("--password-file", help="first line is the password (else NCE_API_PASSWORD)")
    parser.add_argument("--webhook-url", help="create a webhook to this https URL and test it")
    parser.add_argument("--webhook-name", default="api-client-example")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    args = parser.parse_args(argv)
    password = os.environ.get("NCE_API_PASSWORD")
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    if not args.user or password is None:
        parser.error("credentials needed: --user and --password-file (or NCE_API_USER, NCE_API_PASSWORD)")

    api = OnceApi(args.base_url)
    summary: dict[str, Any] = {}
    try:
        login = api.login(args.user, password)
        summary["token"] = {"expires_in": login["expires_in"], "token_type": login["token_type"]}
        sims = api.all_sims()
        summary["sims"] = [{"iccid": s["iccid"], "ip_address": s["ip_address"], "status": s["status"]} for s in sims]
        if sims:
            history = api.device_history(sims[0]["iccid"])
            summary["history"] = {"device": sims[0]["iccid"], "messages": len(history),
                                  "protocols": sorted({m["protocol"] for m in history}),
                                  "first": history[0] if history else None}
        if args.webhook_url:
            hook = api.create_webhook(args.webhook_name, args.webhook_url, ["TELEMETRY_DATA", "ERROR"])
            summary["webhook"] = {"id": hook["id"], "state": hook["state"], "test": api.test_webhook(hook["id"])}
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"token valid for {summary['token']['expires_in']} s; {len(summary['sims'])} SIM(s)")
        if "history" in summary:
            h = summary["history"]
            print(f"device {h['device']}: {h['messages']} message(s), protocols {', '.join(h['protocols']) or '-'}")
        if "webhook" in summary:
            w = summary["webhook"]
            print(f"webhook {w['id']}: {w['state']}, test {w['test']['testStatus']}: {w['test']['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
