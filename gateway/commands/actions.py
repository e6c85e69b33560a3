"""``nce-gateway actions``: Device Controller requests (UDP, CoAP) and the list of every action request.

The CLI is its own process: ``send`` writes the request into the store (same checks and limits
as the API); the running gateway picks it up within ``[controller] poll_interval_seconds`` and
sends it (at once when the device was heard from recently, else with its next uplink). Without
``--no-wait`` the command waits for the result.

    nce-gateway actions send 8988280666000000010 udp --port 3000 --payload enable_sensor
    nce-gateway actions send 8988280666000000010 coap --port 5683 --method PUT --path /led?state=on --payload 1
    nce-gateway actions send 8988280666000000010 coap --port 5683 --method GET --path /time --when-active --no-wait
    nce-gateway actions list --device 8988280666000000010 --active
    nce-gateway actions show REQUEST_ID
"""

from __future__ import annotations

import argparse
import json
import time

from inspector import device_actions as store_sql

from .. import action_requests, audit
from ..cli import CommandError, add_config_argument
from ..controller import METHODS, ControllerError, new_record, validate
from . import config_of, store_of
from .output import add_format_argument, emit


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("actions", help="Device Controller requests (UDP, CoAP) and action requests",
                                 description="Send UDP datagrams and CoAP requests to devices (carried out by the "
                                             "running gateway); list and show action requests of every protocol.")
    sub = parser.add_subparsers(dest="actions_command", metavar="COMMAND", required=True)

    p = sub.add_parser("send", help="send a UDP datagram or a CoAP request to a device")
    p.add_argument("iccid")
    p.add_argument("protocol", choices=("udp", "coap"))
    p.add_argument("--port", type=int, required=True, help="the device's port")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--payload", help="payload as UTF-8 text")
    group.add_argument("--payload-base64", help="payload as base64")
    p.add_argument("--method", choices=tuple(METHODS), default="GET", help="coap: request method (default GET)")
    p.add_argument("--path", default="", help="coap: path with an optional ?query, e.g. /led?state=on")
    p.add_argument("--when-active", action="store_true", help="SEND_WHEN_ACTIVE: send with the next uplink")
    p.add_argument("--attempts", type=int, default=1, help="coap: send attempts, 1-5 (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result (default 60)")
    p.add_argument("--no-wait", action="store_true", help="print the request id and return")
    add_config_argument(p)
    p.set_defaults(func=send)

    p = sub.add_parser("list", help="list action requests of every protocol (newest first)")
    p.add_argument("--device", help="only this ICCID")
    p.add_argument("--protocol", choices=("UDP", "COAP", "LWM2M"))
    state = p.add_mutually_exclusive_group()
    state.add_argument("--active", action="store_true", help="SCHEDULED and IN_PROGRESS only")
    state.add_argument("--archived", action="store_true", help="SUCCEEDED, FAILED and CANCELLED only")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_requests)

    p = sub.add_parser("show", help="show one action request (any protocol)")
    p.add_argument("id")
    add_config_argument(p)
    p.set_defaults(func=show)


def body_of(args: argparse.Namespace) -> dict:
    """The API body these arguments stand for."""
    body: dict = {"port": args.port, "requestMode": "SEND_WHEN_ACTIVE" if args.when_active else "SEND_NOW"}
    if args.payload is not None:
        body.update(payload=args.payload, payloadType="STRING")
    elif args.payload_base64 is not None:
        body.update(payload=args.payload_base64, payloadType="BASE64")
    if args.protocol == "coap":
        body.update(requestType=args.method, path=args.path, sendAttempts=args.attempts)
    return body


def send(args: argparse.Namespace) -> int:
    config = config_of(args).controller
    store = store_of(args)
    sim = store.get_sim(args.iccid)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    if sim.status != "Enabled":
        raise CommandError(f"device {args.iccid} is {sim.status}: nothing is sent to it")
    try:
        fields = validate(args.protocol.upper(), body_of(args), config.max_payload_bytes)
    except ControllerError as exc:
        raise CommandError(str(exc)) from None
    record = new_record(args.iccid, sim.ip_address, fields, config.expiry_seconds)
    conn = store.connection()
    refused = store_sql.insert(conn, record, config.max_queued_per_device, config.max_queued_total)
    if refused == "device":
        raise CommandError(f"device {args.iccid} has {config.max_queued_per_device} open requests already")
    if refused == "total":
        raise CommandError(f"{config.max_queued_total} requests are open already")
    audit.record_cli_change(store, args)  # the administration log, as for the API's POST
    if args.no_wait:
        print(record["id"])
        return 0
    deadline = time.monotonic() + args.timeout
    current = action_requests.item(conn, record["id"])
    while time.monotonic() < deadline and current is not None and current["status"] not in action_requests.FINAL:
        time.sleep(0.2)
        current = action_requests.item(conn, record["id"])
    print(json.dumps(current, indent=2))
    if current is not None and current["status"] == "SUCCEEDED":
        return 0
    if current is not None and current["status"] in action_requests.FINAL:
        return 2
    print(f"not finished after {args.timeout:g} s (it waits for the device's next uplink, or the gateway is not "
          f"running); see: nce-gateway actions show {record['id']}")
    return 3


def list_requests(args: argparse.Namespace) -> int:
    statuses = action_requests.ACTIVE if args.active else action_requests.FINAL if args.archived else ()
    items, total = action_requests.page(store_of(args).connection(), iccid=args.device, statuses=statuses,
                                        protocols=(args.protocol,) if args.protocol else (), limit=args.limit)
    rows = [{**i, "request": json.dumps(i["requestData"], separators=(",", ":")),
             "result": json.dumps(i["resultData"], separators=(",", ":")) if i["resultData"] else ""} for i in items]
    columns = [("id", "id"), ("deviceId", "ICCID"), ("protocol", "protocol"), ("status", "status"),
               ("mode", "mode"), ("created", "created"), ("request", "request"), ("result", "result")]
    emit(args.format, columns, rows, records=items, footer=f"{len(items)} of {total} request(s)")
    return 0


def show(args: argparse.Namespace) -> int:
    found = action_requests.item(store_of(args).connection(), args.id)
    if found is None:
        raise CommandError(f"no action request {args.id}")
    print(json.dumps(found, indent=2))
    return 0
