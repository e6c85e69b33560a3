"""nce_uplink_received_total{protocol="LWM2M"} counts the LwM2M messages that carry values
(Send, notifications, read results), as the UDP and CoAP counters count theirs (issue 17)."""

from __future__ import annotations

from aiocoap.numbers.codes import Code

from tests._lwm2m_server_helpers import registered_client, wait_for
from tests.conftest import make_config, sim


def metric(gw, line_start: str) -> float:
    text = gw.metrics.render().decode()
    (line,) = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(line.split()[-1])


async def test_lwm2m_sends_are_counted_as_received(tmp_path, start_gateway):
    device = sim(17)
    gw = await start_gateway(make_config(tmp_path), [device])
    client = await registered_client(gw, device)
    try:
        for value in (21.5, 22.0, 22.5):
            assert (await client.send({"/3303/0/5700": value})).code == Code.CHANGED
        await wait_for(lambda: metric(gw, 'nce_messages_stored_total{protocol="LWM2M"}') == 3)
        assert metric(gw, 'nce_uplink_received_total{protocol="LWM2M"}') == 3
    finally:
        await client.close()
