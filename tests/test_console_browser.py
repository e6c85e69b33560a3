"""The web console in a real browser: Debian's chromium driven by Playwright (no browser
download). Sign-in, every page without script or CSP errors, a User-role account that is offered
no user administration, a template edited and tested, a device action against an emulated LwM2M
device, a message appearing live, and the phone-sized viewport and keyboard."""

from __future__ import annotations

import asyncio
import base64
import shutil

import pytest

from api_support import EMAILS, PASSWORD, start_api
from conftest import make_config, sim
from console_support import send_udp, wait_stored
from tests._lwm2m_server_helpers import registered_client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (apt-get install chromium)")
DEVICE = sim(10)


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), sims=[DEVICE, sim(11), sim(12, "Disabled")])


@pytest.fixture
async def chromium():
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM,
                                          args=["--no-sandbox", "--headless", "--disable-gpu"])
        yield browser
        await browser.close()


class Watched:
    """A page whose console errors (script errors, CSP violations) and failed requests are kept."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # a missing asset or a server error (4xx answers to refused forms are the pages' own)
        page.on("response", lambda r: self.problems.append(f"{r.status} {r.url}")
                if r.status == 404 or r.status >= 500 else None)


async def signed_in(chromium, api, role: str = "Owner", **context) -> Watched:
    page = await (await chromium.new_context(**context)).new_page()
    watched = Watched(page)
    base = f"http://127.0.0.1:{api.gateway.api_port}"
    await page.goto(f"{base}/console/")
    assert page.url.startswith(f"{base}/console/login")
    await page.get_by_label("User name (e-mail)").fill(EMAILS[role])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/console/")
    return watched


async def test_every_page_renders_without_errors(api, chromium):
    send_udp(api, 10, b"hello")
    await wait_stored(api, 1)
    watched = await signed_in(chromium, api)
    page = watched.page
    expected = {"Dashboard": "Dashboard", "SIMs": "SIMs", "Devices": "Devices", "Locator": "Device Locator",
                "Energy Saver": "Energy Saver templates",
                "Integrations": "Integrations", "Endpoints": "Device endpoints", "Users": "Users and roles"}
    for link, heading in expected.items():
        await page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()
        await page.wait_for_load_state()
        assert (await page.locator("h1").inner_text()).startswith(heading)
        assert await page.locator("nav [aria-current=page]").inner_text() == link
    await page.goto(page.url.replace("/console/users", f"/console/devices/{DEVICE.iccid}"))
    assert await page.locator("table.history tbody tr").count() == 1
    assert await page.locator("table.history code").inner_text() == base64.b64encode(b"hello").decode()
    assert watched.problems == []


async def test_user_role_is_not_offered_user_administration(api, chromium):
    watched = await signed_in(chromium, api, "User")
    page = watched.page
    nav = page.get_by_role("navigation", name="Main")
    assert await nav.get_by_role("link", name="Users").count() == 0
    await page.goto(page.url + "users")
    assert await page.get_by_role("alert").inner_text() == "role User may not call GET /v1/users"


async def test_template_edited_and_tested(api, chromium):
    watched = await signed_in(chromium, api)
    page = watched.page
    await page.goto(page.url + "templates/new")
    await page.get_by_label("Name").fill("blueprint")
    with open("examples/blueprint-template.json") as f:
        await page.get_by_label("Template (JSON)").fill(f.read())
    await page.get_by_label("Test payload (hex)").fill("016354322e322e31")
    await page.get_by_role("button", name="Test").click()
    await page.wait_for_load_state()
    result = await page.locator("pre.result").inner_text()
    assert '"battery_level": 99' in result
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_load_state()
    assert await page.get_by_role("status").inner_text() == "template 'blueprint' saved"
    await page.get_by_label("Template (JSON)").fill('{"sense": [}')
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_load_state()
    assert "the template is not valid JSON" in await page.get_by_role("alert").inner_text()
    assert watched.problems == []


async def test_device_action_on_an_emulated_lwm2m_device(api, chromium):
    client = await registered_client(api.gateway, DEVICE)
    try:
        watched = await signed_in(chromium, api)
        page = watched.page
        await page.goto(page.url + f"devices/{DEVICE.iccid}")
        lwm2m = page.locator("section.card", has=page.get_by_role("heading", name="LwM2M", exact=True))
        assert "Registered over coap from 127.0.0.10:" in await lwm2m.inner_text()
        events = page.locator("section.card", has=page.get_by_role("heading", name="Events", exact=True))
        assert "LIFECYCLE" in await events.inner_text() and "DEVICE_FIRST_TIME_REGISTERED" in await events.inner_text()
        row = page.locator("table.resources tr", has=page.locator("td.mono", has_text="/3/0/0")).first
        await row.get_by_role("button", name="Read").click()
        await page.wait_for_load_state()
        assert (await page.get_by_role("status").inner_text()).startswith("Action read for resource /3/0/0")
        for _ in range(50):
            await page.reload()
            requests = page.locator("table.requests tbody tr").first
            if "SUCCEEDED" in await requests.inner_text():
                break
            await asyncio.sleep(0.1)
        assert "nce-gateway" in await page.locator("table.requests tbody tr").first.inner_text()
        assert watched.problems == []
    finally:
        await client.close()


async def test_message_appears_live_without_reload(api, chromium):
    watched = await signed_in(chromium, api)
    page = watched.page
    await page.goto(page.url + f"devices/{DEVICE.iccid}")
    assert await page.locator("table.history tbody").inner_text() == "No messages in the last 7 days."
    marker = await page.evaluate("() => { window.__same_page = 42; return window.__same_page; }")
    send_udp(api, 10, b"live one")
    await page.locator("table.history code", has_text=base64.b64encode(b"live one").decode()).wait_for(timeout=10_000)
    client = await registered_client(api.gateway, DEVICE)  # a new event: the first registration
    try:
        await page.locator("ul.events", has_text="DEVICE_FIRST_TIME_REGISTERED").wait_for(timeout=10_000)
    finally:
        await client.close()
    assert await page.evaluate("() => window.__same_page") == marker  # no reload happened
    assert watched.problems == []


async def test_phone_viewport_and_keyboard(api, chromium):
    watched = await signed_in(chromium, api, viewport={"width": 390, "height": 844})
    page = watched.page
    for path in ("", "sims", "devices", f"devices/{DEVICE.iccid}", "locator", "templates", "integrations", "users"):
        await page.goto(f"http://127.0.0.1:{api.gateway.api_port}/console/{path}")
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"/console/{path} is {width} px wide on a 390 px screen"
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"
    assert watched.problems == []


async def test_positions_on_a_plot_without_tiles(api, chromium):
    client = await registered_client(api.gateway, DEVICE)
    try:
        await client.send({"/6/0/0": 52.52, "/6/0/1": 13.405})
        await client.send({"/6/0/0": 52.53, "/6/0/1": 13.41})
        answer = None
        for _ in range(100):
            answer = await api.client("User").get(f"/v1/locate/devices/{DEVICE.iccid}/positions")
            if len(answer.body["coordinates"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert [c["coordinate"] for c in answer.body["coordinates"]] == [[13.41, 52.53], [13.405, 52.52]]
        assert answer.body["coordinates"][0]["source"] == "GPS" and answer.body["pageAmount"] == 1
        watched = await signed_in(chromium, api)
        page = watched.page
        await page.goto(page.url + f"devices/{DEVICE.iccid}")
        assert await page.locator("svg.plot circle").count() == 2
        assert await page.get_by_role("img", name="2 positions").count() == 1
        assert watched.problems == []
    finally:
        await client.close()
