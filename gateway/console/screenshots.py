"""Screenshots of the console's main pages for docs/console.md, made with Debian's chromium.

``python -m gateway.console.screenshots --out docs/console`` (or ``make console-screenshots``)
starts a gateway on a temporary store with three SIMs, a registered LwM2M device, a little
traffic and the SDK blueprint's template, signs in as an Owner and saves one PNG per page at
1280×800 and the dashboard at 390×844 (a phone). Needs ``pip install -e '.[test]'`` (Playwright)
and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from firmware_examples.lwm2m_client import LwM2MClient
from inspector import accounts as store_accounts
from inspector.records import Sim

from .. import accounts
from ..app import Gateway
from ..config import load_config

EMAIL, PASSWORD = "owner@example.com", "screenshot-password"
SIMS = [Sim(iccid=f"89882806660000000{n}", imsi=f"9014051000000{n}", ip_address=f"127.0.0.{n}", label=label,
            status=status) for n, label, status in ((10, "pump-1", "Enabled"), (11, "meter-7", "Enabled"),
                                                    (12, "spare", "Disabled"))]
PAGES = [("dashboard", ""), ("sims", "sims"), ("device", f"devices/{SIMS[1].iccid}"), ("locator", "locator"),
         ("templates", "templates"),
         ("integrations", "integrations"), ("users", "users")]


async def _prepare(store_dir: Path) -> tuple[Gateway, LwM2MClient]:
    config = load_config(environ={})
    config.store.path = str(store_dir / "gateway.db")
    config.udp.port = config.coap.port = config.coaps.port = config.api.port = 0
    gateway = Gateway(config)
    gateway.store.upsert_sims(SIMS)
    await gateway.start()
    await gateway.committer.write(store_accounts.create_account, gateway.store, EMAIL,
                                  accounts.hash_password(PASSWORD), "Owner")
    await gateway.api_auth.reload()
    template = json.loads((Path(__file__).parents[2] / "examples" / "blueprint-template.json").read_text())
    await gateway.templates.create(name="blueprint", template=template, protocols=["UDP"], status="ACTIVE")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((SIMS[0].ip_address, 0))
        for i in range(40):
            s.sendto(bytes([1, 99 - i, 70]) + b"2.2.1", ("127.0.0.1", gateway.udp_port))
    client = await LwM2MClient.start(SIMS[1].iccid, SIMS[1].ip_address)
    await client.register(f"coap://127.0.0.1:{gateway.coap_port}")
    await client.send({"/3303/0/5700": 21.5})
    for lat, lon in ((52.5200, 13.4050), (52.5205, 13.4092), (52.5189, 13.4131)):
        await client.send({"/6/0/0": lat, "/6/0/1": lon})
    await _geofences(gateway)
    await asyncio.sleep(1.5)  # the group commits of the traffic above
    return gateway, client


async def _geofences(gateway: Gateway) -> None:
    """A circle and a polygon for the Locator page (as the geofence route stores them)."""
    from inspector import geofences
    from inspector.geofences import GeofenceRow

    from ..locator.geometry import circle, polygon

    square = [[13.40, 52.51], [13.42, 52.51], [13.42, 52.53], [13.40, 52.53], [13.40, 52.51]]
    for n, (name, kind, shape) in enumerate((("depot", "circle", circle([13.405, 52.52], 500)),
                                             ("city block", "polygon", polygon([square])))):
        row = GeofenceRow(f"00000000-0000-4000-8000-00000000000{n}", name, kind, None, shape.geometry(),
                          ["ENTER", "EXIT"], ["GPS", "CellTower"], 1_700_000_000_000, 1_700_000_000_000)
        await gateway.committer.write(gateway.store.write_with, geofences.insert, row)
    await gateway.locator.reload()


async def take(out: Path) -> list[Path]:
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        gateway, client = await _prepare(Path(tmp))
        base = f"http://127.0.0.1:{gateway.api_port}/console"
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                                  args=["--no-sandbox", "--headless", "--disable-gpu"])
                for name, viewport in (("desktop", {"width": 1280, "height": 800}),
                                       ("phone", {"width": 390, "height": 844})):
                    page = await (await browser.new_context(viewport=viewport)).new_page()
                    await page.goto(f"{base}/login")
                    await page.get_by_label("User name (e-mail)").fill(EMAIL)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.wait_for_url(f"{base}/")
                    for page_name, path in (PAGES if name == "desktop" else PAGES[:1]):
                        await page.goto(f"{base}/{path}")
                        target = out / f"{page_name}{'' if name == 'desktop' else '-phone'}.png"
                        await page.screenshot(path=str(target), full_page=False)
                        saved.append(target)
                        print(f"saved {target}", file=sys.stderr)
                await browser.close()
        finally:
            await client.close()
            await gateway.stop()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.console.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/console", help="folder for the PNG files (default: docs/console)")
    args = parser.parse_args(argv)
    saved = asyncio.run(take(Path(args.out)))
    print(f"{len(saved)} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
