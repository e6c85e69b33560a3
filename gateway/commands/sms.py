"""``nce-gateway sms``: send an MT SMS, list a SIM's SMS, show the SMPP link and the outbox."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import urllib.error
import urllib.request

from rich.console import Console
from rich.table import Table

from inspector import sms as repo
from inspector.records import Pending
from integrators.manager import StoreRouter

from ..api.timefmt import format_time
from ..cli import CommandError, add_config_argument
from ..connectivity.quota import MT, QuotaDefaults, SmsRefused, sms_charge, sms_used_up_event
from ..sms.mt import SmsRequestError, build_mt
from .. import audit
from . import config_of, store_of

LIST_COLUMNS = ("id", "direction", "status", "submit_date", "delivery_date", "dcs", "parts", "payload", "error")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sms", help="send and list SMS (SMPP to the SMSC)",
                                 description="SMS of the SIMs: MT SMS are queued in the store and sent by the "
                                             "running gateway ([sms] in the config; docs/sms.md).")
    sub = parser.add_subparsers(dest="sms_command", metavar="ACTION", required=True)

    p = sub.add_parser("send", help="queue an MT SMS to a SIM's MSISDN",
                       description="Queue an MT SMS; the running gateway sends it (within a second). Text goes "
                                   "as GSM 7-bit when possible, else UCS-2; long texts are concatenated.")
    p.add_argument("iccid")
    p.add_argument("text")
    p.add_argument("--dcs", type=int, choices=(0, 4, 8), help="0 GSM 7-bit, 8 UCS-2, 4 binary (TEXT is hex)")
    p.add_argument("--source", help="source address (default: [sms] source_address)")
    add_config_argument(p)
    p.set_defaults(func=send)

    p = sub.add_parser("list", help="list a SIM's SMS, newest first")
    p.add_argument("iccid")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_config_argument(p)
    p.set_defaults(func=list_sms)

    p = sub.add_parser("status", help="the SMPP link (from the running gateway's /health) and SMS counts")
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_config_argument(p)
    p.set_defaults(func=status)


def send(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    sim = store.get_sim(args.iccid)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    if not sim.enabled:
        raise CommandError(f"SIM {sim.iccid} is {sim.status}: a disabled SIM cannot receive SMS")
    body: dict = {"payload": args.text}
    if args.dcs is not None:
        body["dcs"] = args.dcs
    if args.source:
        body["source_address"] = args.source
    now = time.time_ns() // 1_000_000
    try:
        new = build_mt(sim, body, default_source=config.sms.source_address,
                       validity_hours=config.sms.validity_hours, now_ms=now)
        charge = sms_charge(QuotaDefaults.of(config.connectivity), sim.iccid, MT, now)
        sms_id = repo.queue_mt(store, new, now, charge)
    except SmsRequestError as exc:
        raise CommandError(str(exc)) from None
    except SmsRefused as exc:
        raise CommandError(f"{exc.reason}: {exc}") from None
    if charge.used_up:
        store.commit([Pending(None, [sms_used_up_event(sim, now, StoreRouter(store).routes("NETWORK_EVENT"))])])
    audit.record_cli_change(store, args)  # the administration log, as for the API's POST
    print(f"SMS {sms_id} queued for {sim.iccid} ({sim.msisdn}), {len(new.parts)} part(s)")
    if not config.sms.enabled:
        print("note: [sms] enabled is false in this configuration: no gateway with it will send the SMS",
              file=sys.stderr)
    return 0


def _row(r: dict) -> dict:
    return {"id": r["id"], "direction": r["direction"], "status": r["status"],
            "submit_date": format_time(r["submit_ms"]),
            "delivery_date": format_time(r["delivery_ms"]) if r["delivery_ms"] else "",
            "dcs": r["dcs"], "parts": r["parts"], "payload": r["payload"], "error": r["error"] or ""}


def list_sms(args: argparse.Namespace) -> int:
    store = store_of(args)
    if store.get_sim(args.iccid) is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    total, rows = repo.list_sms(store, args.iccid, limit=args.limit)
    out = [_row(r) for r in rows]
    if args.format == "json":
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, LIST_COLUMNS)
        writer.writeheader()
        writer.writerows(out)
    else:
        table = Table(*(c.replace("_", " ").capitalize() for c in LIST_COLUMNS))
        for r in out:
            table.add_row(*(str(r[c]) for c in LIST_COLUMNS))
        Console().print(table)
        print(f"{len(out)} of {total} SMS")
    return 0


def status(args: argparse.Namespace) -> int:
    config = config_of(args)
    counts = repo.counts_by_status(store_of(args))
    host = "127.0.0.1" if config.api.bind in ("0.0.0.0", "::", "") else config.api.bind
    link: dict | str
    try:
        with urllib.request.urlopen(f"http://{host}:{config.api.port}/health", timeout=3) as answer:
            link = json.loads(answer.read()).get("sms") or "SMS is not enabled in the running gateway"
    except (OSError, urllib.error.URLError, ValueError) as exc:
        link = f"no running gateway answered at http://{host}:{config.api.port}/health ({exc})"
    report = {"configured": {"enabled": config.sms.enabled, "smsc": f"{config.sms.host}:{config.sms.port}",
                             "tls": config.sms.tls, "system_id": config.sms.system_id,
                             "sms_quota": config.connectivity.sms_quota},
              "link": link, "counts": counts}
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    c = report["configured"]
    print(f"configured: enabled={c['enabled']} smsc={c['smsc']} tls={c['tls']} system_id={c['system_id']!r} "
          f"sms_quota={c['sms_quota']} (connectivity.sms_quota)")
    if isinstance(link, dict):
        print(f"link: {link['state']}" + (f" (last error: {link['last_error']})" if link.get("last_error") else "")
              + f", binds={link['binds']}, throttled={link['throttled']}")
    else:
        print(f"link: {link}")
    for key in sorted(counts):
        print(f"{key}: {counts[key]}")
    return 0
