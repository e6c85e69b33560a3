"""Login throttling under concurrency (issue 19, item 3): real parallel HTTP requests from real
loopback addresses (127.0.0.1, 127.0.0.2, ...) against a running gateway."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import aiohttp

from gateway.api.throttle import LoginLimiter, client_key
from tests.api_support import EMAILS, PASSWORD, basic, start_api
from tests.conftest import make_config

LIMITS = {"login_max_failures_per_user": 5, "login_max_failures_per_ip": 20, "login_window_seconds": 900}


async def _login(base: str, email: str, password: str, source: str = "127.0.0.1") -> tuple[int, float, dict]:
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"{base}/oauth/token", json={"grant_type": "client_credentials"},
                                headers=basic(email, password)) as response:
            body = await response.json()
            return response.status, time.perf_counter() - started, body


async def test_parallel_guesses_for_one_user_get_exactly_the_limit(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path, api=LIMITS), roles=("Owner",))
    # 60 wrong passwords at once: exactly 5 are checked, the other 55 refused unchecked
    answers = await asyncio.gather(*(_login(api.base, EMAILS["Owner"], f"wrong password {i}") for i in range(60)))
    assert Counter(status for status, _, _ in answers) == {400: 5, 429: 55}
    assert all(body["errorCode"] == "TooManyRequests" for status, _, body in answers if status == 429)
    assert all(body["errorCode"] == "BadCredentials" for status, _, body in answers if status == 400)
    # and the window stays closed for this user, even with the right password, from any address
    status, elapsed, body = await _login(api.base, EMAILS["Owner"], PASSWORD, source="127.0.0.2")
    assert status == 429 and elapsed < 0.3, (status, elapsed)
    assert 800 <= int(re.search(r"try again in (\d+) s", body["message"]).group(1)) <= 900
    rendered = api.gateway.metrics.render().decode()
    assert 'nce_api_logins_total{outcome="throttled"} 56.0' in rendered
    assert 'nce_api_logins_total{outcome="bad_credentials"} 5.0' in rendered


async def test_parallel_guesses_from_one_address_get_exactly_the_limit(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path, api=LIMITS), roles=("Owner",))
    answers = await asyncio.gather(*(_login(api.base, f"guess{i}@example.com", "wrong password!")
                                     for i in range(60)))
    assert Counter(status for status, _, _ in answers) == {400: 20, 429: 40}
    # another address is not blocked by this one
    status, _, _ = await _login(api.base, EMAILS["Owner"], PASSWORD, source="127.0.0.2")
    assert status == 200


async def test_legitimate_login_stays_fast_during_a_burst(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path, api=LIMITS), roles=("Owner",))
    # what one login costs on this machine now (argon2id; the machine may be busy)
    single = min([(await _login(api.base, EMAILS["Owner"], PASSWORD, source="127.0.0.3"))[1] for _ in range(2)])
    burst = [asyncio.ensure_future(_login(api.base, f"guess{i}@example.com", "wrong password!"))
             for i in range(60)]
    await asyncio.sleep(0.05)  # the burst is queued
    status, elapsed, _ = await _login(api.base, EMAILS["Owner"], PASSWORD, source="127.0.0.2")
    results = await asyncio.gather(*burst)
    assert status == 200
    # served round-robin: it waits for the check running and about one more of the burst (plus,
    # the first time, the dummy hash for unknown users), not for the twenty queued before it
    burst_time = max(t for _, t, _ in results)
    assert burst_time > 10 * single * 0.8, (burst_time, single)  # the burst really queued 20 checks
    assert elapsed < 0.35 * burst_time, (elapsed, single, burst_time)


async def test_the_check_queue_is_bounded(start_gateway, tmp_path):
    config = make_config(tmp_path, api={**LIMITS, "login_max_pending_checks": 3})
    api = await start_api(start_gateway, config, roles=("Owner",))
    sources = [f"127.0.1.{i}" for i in range(1, 11)]  # ten addresses, under every per-address limit
    answers = await asyncio.gather(*(_login(api.base, f"u{i}@example.com", "wrong password!", source=s)
                                     for i, s in enumerate(sources)))
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {400: 3, 429: 7}, statuses
    assert all(t < 0.5 for status, t, _ in answers if status == 429)  # refused at once, not queued
    busy = [body for status, _, body in answers if status == 429]
    assert "at once" in busy[0]["message"]
    # refused for load, not for guessing: those addresses may log in right after
    assert (await _login(api.base, EMAILS["Owner"], PASSWORD, source=sources[-1]))[0] == 200
    assert api.gateway.api_auth.checks.pending == 0


def test_limiter_counts_before_the_check_and_releases_on_success():
    now = [0.0]
    limiter = LoginLimiter(per_user=2, per_ip=3, window_seconds=60, clock=lambda: now[0])
    first, second = limiter.reserve("a", "10.0.0.1"), limiter.reserve("a", "10.0.0.1")
    assert limiter.reserve("a", "10.0.0.1") == 60.0  # two in flight: the third waits, unchecked
    limiter.failed(first)
    limiter.succeeded(second)  # right password: its slot and the finished failure are given back
    third = limiter.reserve("a", "10.0.0.1")
    assert not isinstance(third, float)
    limiter.failed(third)
    fourth = limiter.reserve("b", "10.0.0.1")  # the address has 2 of 3 (first, third)
    assert not isinstance(fourth, float)
    assert limiter.reserve("c", "10.0.0.1") == 60.0
    limiter.cancel(fourth)  # no check happened: the slot comes back
    assert not isinstance(limiter.reserve("c", "10.0.0.1"), float)
    now[0] = 61.0
    assert not isinstance(limiter.reserve("c", "10.0.0.1"), float)


def test_ipv6_clients_are_counted_per_64():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("unknown") == "unknown"
