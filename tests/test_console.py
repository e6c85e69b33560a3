"""The web console over HTTP: sign-in, sessions and CSRF, each page with real data, roles
(what a role may not do is neither offered nor accepted), login throttling per browser."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from api_support import EMAILS, start_api
from conftest import make_config, sim
from console_support import ConsoleClient, send_udp, wait_stored

BLUEPRINT = {"name": "reading", "protocolFilter": ["UDP"]}


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), sims=[sim(10), sim(11), sim(12, "Disabled")])


@pytest.fixture
async def browser(api):
    client = ConsoleClient(f"http://127.0.0.1:{api.gateway.api_port}")
    yield client
    await client.close()


async def test_pages_need_a_session(browser):
    status, _, response = await browser.get("/console/sims?status=Enabled", allow_redirects=False)
    assert status == 303
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == ("/console/login", {"next": ["/console/sims?status=Enabled"]})
    status, _, response = await browser.get("/", allow_redirects=False)
    assert (status, response.headers["Location"]) == (302, "/console/")


async def test_sign_in_sets_a_private_cookie_and_sign_out_ends_the_session(api, browser):
    status, html, _ = await browser.get("/console/login")
    assert status == 200 and "Sign in with your management API user." in html
    status, _, response = await browser.post("/console/login", {"username": EMAILS["Owner"],
                                                                "password": "correct horse battery staple"},
                                             allow_redirects=False)
    assert (status, response.headers["Location"]) == (303, "/console/")
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("nce_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP on the loopback; see test_secure_cookie_setting
    status, html, response = await browser.get("/console/")
    assert status == 200 and "<h1>Dashboard</h1>" in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    status, _, response = await browser.post("/console/logout", {}, allow_redirects=False)
    assert (status, response.headers["Location"]) == (303, "/console/login")
    status, _, response = await browser.get("/console/", allow_redirects=False)
    assert status == 303


async def test_wrong_password_and_stale_login_form(browser):
    status, html, _ = await browser.login(password="not the password")
    assert status == 400 and "Bad credentials: unknown user or wrong password." in html
    status, html, _ = await browser.post("/console/login", {"username": EMAILS["Owner"],
                                                            "password": "correct horse battery staple",
                                                            "_csrf": "forged"})
    assert status == 403 and "The sign-in form expired; try again." in html


async def test_login_throttling_counts_the_browser_not_the_loopback(api, browser):
    api.gateway.api_auth.limiter.per_user = 3
    for _ in range(3):
        status, _, _ = await browser.login(password="wrong password here")
        assert status == 400
    status, html, _ = await browser.login()
    assert status == 429 and "Too many failed logins; try again in" in html
    # the API's own login from the loopback, for another user, is not held up by the browser's failures
    assert api.gateway.api_auth.limiter.retry_after(EMAILS["Admin"], "127.0.0.1") == 0
    assert api.gateway.api_auth.limiter._ips.keys() == {"127.0.0.1"}  # the browser's address (also loopback here)


async def test_forged_post_without_csrf_is_refused_and_changes_nothing(api, browser):
    await browser.login()
    status, text, _ = await browser.post("/console/sims/8988280660000000010", {"status": "Disabled"}, csrf=False)
    assert status == 403 and "CSRF check failed" in text
    assert api.gateway.registry.by_iccid["8988280660000000010"].status == "Enabled"


async def test_dashboard_shows_traffic_states_and_busiest_devices(api, browser):
    for _ in range(3):
        send_udp(api, 10, b"hello")
    send_udp(api, 11, b"hi")
    await wait_stored(api, 4)
    await browser.login()
    status, html, _ = await browser.get("/console/")
    assert status == 200
    assert "<strong>4</strong> messages in the last hour, peak" in html
    assert '<a href="/console/sims?status=Enabled">Offline</a></td><td class="num">2</td>' in html
    assert '<a href="/console/sims?status=Enabled">Online</a></td><td class="num">0</td>' in html
    assert '<a href="/console/sims?status=Disabled">Disabled</a></td><td class="num">1</td>' in html
    busiest = html[html.index('<ol class="busiest">'):html.index("</ol>")]
    assert busiest.index("8988280660000000010") < busiest.index("8988280660000000011")
    assert '<span class="num">3</span>' in busiest and '<span class="num">1</span>' in busiest
    status, fragment, _ = await browser.get("/console/fragments/traffic", headers={"X-Requested-With": "fetch"})
    assert status == 200 and fragment.lstrip().startswith('<figure class="chart"')


async def test_sims_search_status_change_and_export(api, browser):
    await browser.login()
    status, html, _ = await browser.get("/console/sims?status=Disabled")
    assert status == 200 and "8988280660000000012" in html and "8988280660000000010" not in html
    status, html, _ = await browser.post("/console/sims/8988280660000000012",
                                         {"status": "Enabled", "next": "/console/sims?status=Disabled"})
    assert status == 200 and "SIM 8988280660000000012: status &#39;Enabled&#39; saved" in html
    assert api.gateway.registry.by_iccid["8988280660000000012"].status == "Enabled"
    status, html, _ = await browser.get("/console/sims?iccid=8988280660000000012")
    row = html[html.index("<tbody>"):]
    assert "500 of 500 MB" in row and "250 of 250 SMS" in row and '<span class="state OFFLINE">offline</span>' in row
    status, html, _ = await browser.post("/console/sims/8988280660000000012",
                                         {"status": "Enabled", "imei_lock": "true", "next": "/console/sims"})
    assert "SIM 8988280660000000012: status &#39;Enabled&#39;, imei_lock True saved" in html
    assert (await api.client("Owner").get("/v1/sims/8988280660000000012")).body["imei_lock"] is True
    status, csv_text, response = await browser.get("/console/sims/export?q=ip_address:127.0.0.11")
    assert status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert csv_text.splitlines()[0] == "iccid,imsi,ip_address,msisdn,imei,label,status"
    assert [line.split(",")[0] for line in csv_text.splitlines()[1:]] == ["8988280660000000011"]


async def test_device_page_history_live_fragment_and_paging(api, browser):
    for i in range(27):
        send_udp(api, 10, f"m{i:02d}".encode())
    await wait_stored(api, 27)
    await browser.login()
    status, html, _ = await browser.get("/console/devices/8988280660000000010")
    assert status == 200 and "Device <span class=\"mono\">8988280660000000010</span>" in html
    newest = base64.b64encode(b"m26").decode()  # sent last; received_ms ties are ordered by seq
    assert f"<code>{newest}</code>" in html and f"<code>{base64.b64encode(b'm01').decode()}</code>" not in html
    assert 'rel="next">Older</a>' in html
    older = html.split('href="/console/devices/8988280660000000010?next=')[1].split('"')[0]
    status, page2, _ = await browser.get(f"/console/devices/8988280660000000010?next={older}")
    assert f"<code>{base64.b64encode(b'm01').decode()}</code>" in page2
    send_udp(api, 10, b"live")
    await wait_stored(api, 28)
    status, rows, _ = await browser.get("/console/devices/8988280660000000010/fragments/history",
                                        headers={"X-Requested-With": "fetch"})
    assert status == 200 and rows.index(base64.b64encode(b"live").decode()) < rows.index(newest)
    assert "<p>No positions.</p>" in html
    status, events, _ = await browser.get("/console/devices/8988280660000000010/fragments/events",
                                          headers={"X-Requested-With": "fetch"})
    assert status == 200 and "No lifecycle, error or location events." in events
    assert events.lstrip().startswith('<div class="events-live" data-live=')
    assert "device 8988280660000000010 has no LwM2M registration" in html


async def test_template_editor_shows_problems_at_their_pointer_and_tests_hex(api, browser):
    await browser.login()
    await browser.get("/console/templates/new")
    bad = {"endianness": "little", "assets": [{"name": "t", "type": "no-such-type"}]}
    status, html, _ = await browser.post("/console/templates/new", {"name": "bad", "protocol_UDP": "1",
                                                                    "template": json.dumps(bad)})
    assert status == 400 and 'The template was refused:' in html and '<code class="pointer">' in html
    assert json.dumps(bad).replace('"', "&#34;") in html  # the text as typed comes back
    with open("examples/blueprint-template.json") as f:
        blueprint = f.read()
    status, html, _ = await browser.post("/console/templates/new/test", {"name": "blueprint", "protocol_UDP": "1",
                                                                         "template": blueprint,
                                                                         "payload_hex": "016354322e322e31"})
    assert status == 200 and "<h2>Test result</h2>" in html
    from bcl import message_test
    from gateway.templates import template_text
    expected = message_test(template_text(json.loads(blueprint))[1], bytes.fromhex("016354322e322e31"))
    assert json.dumps(json.loads(expected["translatedPayload"]), indent=2).replace('"', "&#34;") in html
    status, html, _ = await browser.post("/console/templates/new", {"name": "blueprint", "protocol_UDP": "1",
                                                                    "template": blueprint})
    assert status == 200 and "template &#39;blueprint&#39; saved" in html
    template_id = api.gateway.templates.list()[0]["id"]
    status, html, _ = await browser.post(f"/console/templates/{template_id}/status", {"status": "ACTIVE"})
    assert "template &#39;blueprint&#39; is ACTIVE" in html
    assert api.gateway.templates.list()[0]["status"] == "ACTIVE"


async def test_user_role_is_offered_nothing_it_may_not_do_and_forgery_is_refused(api, browser):
    await browser.login("User")
    status, html, _ = await browser.get("/console/")
    assert status == 200 and 'href="/console/users"' not in html
    status, html, _ = await browser.get("/console/users")
    assert status == 403 and "role User may not call GET /v1/users" in html
    await browser.get("/console/")  # a page with a CSRF token of this session
    status, html, _ = await browser.post("/console/users", {"userId": "mallory@example.com",
                                                            "password": "0123456789ab", "role": "Owner"})
    assert "mallory@example.com: role User may not call POST /v1/users" in html
    assert "mallory@example.com" not in {u.username for u in api.gateway.api_auth._by_id.values()}


async def test_owner_creates_and_changes_users(api, browser):
    await browser.login()
    await browser.get("/console/users")
    status, html, _ = await browser.post("/console/users", {"userId": "new@example.com",
                                                            "password": "0123456789ab", "role": "Admin"})
    assert "user new@example.com created" in html
    status, html, _ = await browser.post("/console/users/new@example.com", {"role": "User", "status": "Disabled"})
    assert "new@example.com: role User, status Disabled saved" in html
    user = next(u for u in api.gateway.api_auth._by_id.values() if u.username == "new@example.com")
    assert (user.role, user.enabled) == ("User", False)
    log = html[html.index('<table class="admin-log">'):html.index("</table>", html.index('<table class="admin-log">'))]
    owner = EMAILS["Owner"]
    assert log.index(f"{owner} (Owner) PATCH /v1/users/new@example.com: 200") < log.index(
        f"{owner} (Owner) POST /v1/users: 201")


async def test_webhook_created_tested_and_shown(api, browser, receiver, ca_file):
    api.gateway.config.api.webhook_ca_file = ca_file
    await browser.login()
    await browser.get("/console/integrations")
    status, html, _ = await browser.post("/console/integrations/webhooks", {
        "name": "sink", "url": receiver.url, "headers": "X-Token: s3cret", "event_TELEMETRY_DATA": "1"})
    assert status == 200 and "webhook &#39;sink&#39; created" in html
    integration_id = html.split('action="/console/integrations/')[1].split("/")[0]
    status, html, _ = await browser.post(f"/console/integrations/{integration_id}/test", {})
    assert "test: SUCCESS" in html
    await receiver.wait_for(1)
    assert receiver.events[0]["type"] == "TEST_MESSAGE"
    assert receiver.requests[0][1]["X-Token"] == "s3cret"
    status, html, _ = await browser.get(f"/console/integrations/{integration_id}")
    assert "INTEGRATION_ACTIVE" in html and receiver.url in html
    receiver.status = 503  # the receiver fails: its last error shows on the dashboard and the page
    send_udp(api, 10, b"to a failing receiver")
    worker = next(w for w in api.gateway.integrations.workers.values() if w.handle.name == "sink")
    for _ in range(200):
        if worker.last_error:
            break
        await asyncio.sleep(0.05)
    status, html, _ = await browser.get("/console/")
    assert "webhook answered HTTP 503" in html
    status, html, _ = await browser.get(f"/console/integrations/{integration_id}")
    assert "<dt>Last error</dt>" in html and "webhook answered HTTP 503" in html


async def test_secure_cookie_setting(api, browser):
    await browser.get("/console/login")
    api.gateway.config.console.secure_cookie = True  # (a Secure login cookie would not come back over http)
    status, _, response = await browser.post("/console/login", {"username": EMAILS["Owner"],
                                                                "password": "correct horse battery staple"},
                                             allow_redirects=False)
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("nce_console="))
    assert status == 303 and "Secure" in cookie


async def test_aws_integration_created_and_edited_secret_never_shown(api, browser):
    await browser.login()
    await browser.get("/console/integrations")
    status, html, _ = await browser.post("/console/integrations/aws", {
        "name": "cloud", "mode": "iot_data", "region": "eu-central-1", "externalId": "s3cret-external-id",
        "roleArn": "arn:aws:iam::123456789012:role/nce", "event_TELEMETRY_DATA": "1"})
    assert status == 200 and "AWS integration &#39;cloud&#39; created" in html, html[:3000]
    assert "s3cret-external-id" not in html and 'value="eu-central-1"' in html
    integration_id = html.split('action="/console/integrations/')[1].split("/")[0]
    status, html, _ = await browser.post(f"/console/integrations/{integration_id}/aws", {
        "mode": "iot_data", "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/nce",
        "event_TELEMETRY_DATA": "1", "event_ERROR": "1"})
    assert "saved" in html and 'value="eu-west-1"' in html and "s3cret-external-id" not in html
    got = (await api.client("Owner").get(f"/v1/integrate/clouds/{integration_id}")).body
    assert got["connection"]["region"] == "eu-west-1"
    assert [e["type"] for e in got["eventTypes"]] == ["TELEMETRY_DATA", "ERROR"]
    row = next(r for r in api.gateway.store.list_integrations() if r["uuid"] == integration_id)
    assert row["config"]["external_id"] != "" and "s3cret" not in str(got)


async def test_device_controller_card_sends_udp_to_the_port_of_the_last_uplink(api, browser):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:  # listens where it sends from
        device.bind(("127.0.0.10", 0))
        port = device.getsockname()[1]
        device.sendto(b"uplink", ("127.0.0.1", api.gateway.udp_port))
        await wait_stored(api, 1)
        await browser.login()
        status, html, _ = await browser.get("/console/devices/8988280660000000010")
        card = html[html.index('<section class="card" id="controller">'):]
        assert f"last uplink from 127.0.0.10:{port} over UDP" in card
        assert f'name="port" type="number" min="1" max="65535" size="6" value="{port}"' in card
        status, html, _ = await browser.post("/console/devices/8988280660000000010/controller",
                                             {"protocol": "UDP", "port": str(port), "payload": "on",
                                              "payloadType": "STRING", "next": "/console/devices/8988280660000000010"})
        assert status == 200
        assert f"UDP message to port {port} for device 8988280660000000010 is being sent now." in html
        device.settimeout(5)
        assert device.recvfrom(100) == (b"on", ("127.0.0.1", api.gateway.udp_port))
    for _ in range(100):
        status, html, _ = await browser.get("/console/devices/8988280660000000010")
        if '<span class="state SUCCEEDED">SUCCEEDED</span>' in html:
            break
        await asyncio.sleep(0.05)
    row = html[html.index("Recent device actions"):]
    assert f"<td>UDP</td>" in row and f":{port} on</td>" in row and "SUCCEEDED" in row
    status, html, _ = await browser.post("/console/devices/8988280660000000010/controller",
                                         {"protocol": "COAP", "port": "70000", "requestType": "GET", "path": "/x",
                                          "next": "/console/devices/8988280660000000010"})
    assert "COAP: " in html and "port" in html
