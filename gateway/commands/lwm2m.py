"""``nce-gateway lwm2m``: device actions and registrations, through the store.

The CLI is its own process: it writes the action into the store and waits (polling the
store) for the running gateway to carry it out and write the result.

    nce-gateway lwm2m read 8988280666000000010 /3/0
    nce-gateway lwm2m write 8988280666000000010 /3303/0/5750 kitchen
    nce-gateway lwm2m write 8988280666000000010 /3/0/14 -03:00      (a value may start with "-")
    nce-gateway lwm2m execute 8988280666000000010 /3/0/4
    nce-gateway lwm2m observe 8988280666000000010 /3303/0/5700      (observe-end: unobserve)
    nce-gateway lwm2m discover 8988280666000000010 /3303
    nce-gateway lwm2m write-attributes 8988280666000000010 /3303/0/5700 pmin=10 pmax=60 st=0.5
    nce-gateway lwm2m create 8988280666000000010 /3303/1 5750=cellar
    nce-gateway lwm2m delete 8988280666000000010 /3303/1
    nce-gateway lwm2m read-composite 8988280666000000010 /3/0/0 /3303/0/5700
    nce-gateway lwm2m write-composite 8988280666000000010 /3303/0/5750=garage /1/0/1=600
    nce-gateway lwm2m registrations
"""

from __future__ import annotations

import argparse
import json
import re
import time

from .. import audit
from ..cli import CommandError, add_config_argument
from ..lwm2m import storage
from ..lwm2m.actions import FINAL, ActionError, new_record, to_api, validate
from ..lwm2m.service import load_objects
from . import config_of, store_of
from .output import add_format_argument, emit


DASH_HELP = ("A value that starts with '-' and a digit, '.', ':' or '+' is taken as a value (-03:00, -1.5); "
             "for any other value starting with '-', put -- before it: ... /3/0/14 -- -x")
_DASH_VALUE = re.compile(r"^-[^-A-Za-z]")


def values_may_start_with_a_dash(parser: argparse.ArgumentParser) -> None:
    """Let ``-03:00`` or ``-1.5`` be a positional value: argparse takes only plain negative numbers
    (``-1``, ``-1.5``) for values and everything else starting with ``-`` for an option. None of
    these commands has an option that starts with '-' and a non-letter, so nothing is lost."""
    parser._negative_number_matcher = _DASH_VALUE  # type: ignore[attr-defined]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("lwm2m", help="LwM2M device actions and registrations",
                                 description="LwM2M device actions (carried out by the running gateway) and "
                                             "registrations.")
    sub = parser.add_subparsers(dest="lwm2m_command", metavar="ACTION", required=True)
    for name, action, extra, text in (
            ("read", "read", None, "read a resource of a registered device"),
            ("write", "write", "value", "write a resource of a registered device"),
            ("execute", "execute", "arguments", "execute a resource of a registered device"),
            ("observe", "observe-start", None, "observe a resource of a registered device"),
            ("unobserve", "observe-end", None, "stop observing a resource"),
            ("discover", "discover", None, "list the instances, resources and attributes under /O[/I[/R]]"),
            ("write-attributes", "write-attributes", "attributes",
             "set notification attributes: pmin=SECONDS pmax=SECONDS gt=N lt=N st=N (NAME= removes one)"),
            ("create", "create", "resources", "create object instance /O/I with RID=VALUE resources"),
            ("delete", "delete", None, "delete object instance /O/I"),
            ("read-composite", "read-composite", "paths", "read several paths at once (LwM2M 1.1+, SenML)"),
            ("write-composite", "write-composite", "assignments",
             "write several resources at once: PATH=VALUE ... (LwM2M 1.1+, SenML)")):
        p = sub.add_parser(name, help=text, description=text, epilog=DASH_HELP)
        values_may_start_with_a_dash(p)
        p.add_argument("iccid")
        if extra == "paths":
            p.add_argument("paths", nargs="+", metavar="PATH", help="resource addresses, e.g. /3/0/0 /3303/0/5700")
        elif extra == "assignments":
            p.add_argument("assignments", nargs="+", metavar="PATH=VALUE", help="e.g. /3303/0/5750=kitchen")
        else:
            p.add_argument("path", help="resource address, e.g. /3/0 or /3303/0/5700")
        if extra == "value":
            p.add_argument("value", help="the value, as text (converted to the resource's type)")
        elif extra == "arguments":
            p.add_argument("arguments", nargs="?", help="execute arguments (text)")
        elif extra == "attributes":
            p.add_argument("attributes", nargs="+", metavar="NAME=VALUE", help="pmin, pmax, gt, lt, st")
        elif extra == "resources":
            p.add_argument("resources", nargs="+", metavar="RID=VALUE", help="e.g. 5750=kitchen 5701=Cel")
        p.add_argument("--when-active", action="store_true",
                       help="SEND_WHEN_ACTIVE: send at the device's next Register/Update")
        p.add_argument("--attempts", type=int, default=1, help="send attempts, 1-5 (default 1)")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result (default 60)")
        p.add_argument("--no-wait", action="store_true", help="print the request id and return")
        add_config_argument(p)
        p.set_defaults(func=run_action, action=action)

    p = sub.add_parser("request", help="show a device action request")
    p.add_argument("id")
    add_config_argument(p)
    p.set_defaults(func=show_request)

    p = sub.add_parser("registrations", help="list stored LwM2M registrations")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_registrations)


def run_action(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    sim = store.get_sim(args.iccid)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    path, data = action_data(args)
    mode = "SEND_WHEN_ACTIVE" if args.when_active else "SEND_NOW"
    try:
        fields = validate(args.action, path, data, mode, args.attempts, load_objects(config.lwm2m.objects_dir))
    except ActionError as exc:
        raise CommandError(str(exc)) from None
    conn = store.connection()
    if mode == "SEND_NOW":
        row = conn.execute("SELECT expires_ms FROM lwm2m_registrations WHERE iccid = ?", (args.iccid,)).fetchone()
        grace = config.lwm2m.registration_grace_seconds * 1000
        if row is None or row[0] + grace < time.time() * 1000:
            raise CommandError(f"device {args.iccid} is not registered with the LwM2M server "
                               "(use --when-active to send at its next registration)")
    record = new_record(args.iccid, sim.ip_address, fields)
    storage.insert_action(conn, record)
    audit.record_cli_change(store, args)  # the administration log, as for the API's POST
    if args.no_wait:
        print(record["id"])
        return 0
    deadline = time.monotonic() + args.timeout
    current = record
    while time.monotonic() < deadline:
        current = storage.get_action(conn, record["id"]) or current
        if current["status"] in FINAL:
            break
        time.sleep(0.2)
    print(json.dumps(to_api(current), indent=2))
    if current["status"] == "SUCCEEDED":
        return 0
    if current["status"] in FINAL:
        return 2
    print(f"still {current['status']} after {args.timeout:g} s (is the gateway running?); "
          f"see: nce-gateway lwm2m request {record['id']}")
    return 3


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{item!r} is not {what}=VALUE")
        out[key] = value
    return out


def action_data(args: argparse.Namespace) -> tuple[str, str | None]:
    """The action's resourceAddress and data, as the API takes them, from the arguments."""
    if args.action == "read-composite":
        return "/", ",".join(args.paths)
    if args.action == "write-composite":
        return "/", json.dumps(_pairs(args.assignments, "PATH"), ensure_ascii=False)
    if args.action == "create":
        return args.path, json.dumps(_pairs(args.resources, "RID"), ensure_ascii=False)
    if args.action == "write-attributes":
        return args.path, "&".join(args.attributes)
    data = getattr(args, "value", None)
    return args.path, data if data is not None else getattr(args, "arguments", None)


def show_request(args: argparse.Namespace) -> int:
    record = storage.get_action(store_of(args).connection(), args.id)
    if record is None:
        raise CommandError(f"no action request {args.id}")
    print(json.dumps(to_api(record), indent=2))
    return 0


def list_registrations(args: argparse.Namespace) -> int:
    rows = storage.load_registrations(store_of(args).connection())
    items = [dict(zip(storage.REGISTRATION_COLUMNS, r)) for r in rows]
    shown = [{"iccid": item["iccid"], "registration": item["id"],
              "address": f"{item['transport']}://{item['ip']}:{item['port']}", "lifetime": item["lifetime"],
              "binding": item["binding"] + (" (queue)" if item["queue"] else ""), "version": item["version"],
              "expires": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["expires_ms"] / 1000))}
             for item in sorted(items, key=lambda i: i["iccid"])]
    columns = [("iccid", "ICCID"), ("registration", "registration"), ("address", "address"),
               ("lifetime", "lifetime"), ("binding", "binding"), ("version", "LwM2M"), ("expires", "expires")]
    emit(args.format, columns, shown, records=items, footer=f"{len(items)} registration(s)")
    return 0
