"""A local HTTPS webhook receiver that prints each event as it arrives (walkthrough and demo).

    python -m firmware_examples.webhook_sink --port 8443 --ca-out data/sink-ca.pem

It makes its own throw-away certificate authority (trustme) and writes the CA certificate to
``--ca-out``, so the gateway can verify the sink exactly as it verifies a real webhook:
TLS verification stays on, the gateway just trusts this CA file (``ca_file``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web


class Sink:
    """Receives events; ``on_event`` sees each one (the demo counts, the CLI prints)."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.on_event = on_event
        self.counts: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        self.keep = False
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.ca = trustme.CA()

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="not JSON")
        key = event.get("type", "?") + (f"/{event['source']}" if "source" in event else "")
        self.counts[key] += 1
        if self.keep:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return web.Response(status=200)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        site = web.TCPSite(self._runner, host, port, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def write_ca(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(path))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def describe(event: dict[str, Any]) -> str:
    """One line per event, for people watching a terminal."""
    device = event.get("device", {}).get("iccid", "-")
    kind = event["type"]
    if kind == "TELEMETRY_DATA":
        payload = event["payload"]
        value = payload["value"] if payload["type"] == "JSON" else f"base64:{payload['value']}"
        topic = f" t={payload['topic']}" if "topic" in payload else ""
        return f"{kind:<14} {event['source']:<5} {device} {json.dumps(value)[:200]}{topic}"
    if kind == "ERROR":
        return f"{kind:<14} {device} {event['error']['message']}: {event['error']['description']}"
    if kind == "LIFECYCLE":
        return f"{kind:<14} {device} {event['lifecycle']['type']}"
    return f"{kind:<14} {device} {json.dumps({k: v for k, v in event.items() if k not in ('id', 'version')})[:120]}"


async def run(args: argparse.Namespace) -> None:
    sink = Sink(on_event=lambda e: print(describe(e), flush=True))
    sink.write_ca(args.ca_out)  # before listening: whoever connects finds the new CA already
    await sink.start(args.host, args.port)
    print(f"webhook sink listening on https://localhost:{sink.port}/ (CA certificate in {args.ca_out})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_examples.webhook_sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-out", default="data/sink-ca.pem", help="where to write the CA certificate")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
