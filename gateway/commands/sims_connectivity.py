"""``nce-gateway sims status|usage|events|topup|extend|imei-lock``: a SIM's connectivity.

They run in their own process against the store. The changing ones (topup, extend, imei-lock)
go through the connectivity service like the API (gateway/commands/connectivity_runtime.py:
the same checks, events to integrations), are written to the administration log, and are in
force in the running gateway when the command returns (gateway/control.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date, datetime, timedelta, timezone

from rich.console import Console
from rich.table import Table

from inspector import bindings as sql
from inspector import sms as sms_repo

from ..cli import CommandError, add_config_argument
from ..connectivity.location import rat_name
from ..connectivity.quota import QUOTA_EXPIRED_BLOCK, TopupRefused
from ..connectivity.service import DATA_QUOTA_BLOCK, IMEI_LOCK_BLOCK, MB
from . import config_of, in_force, store_of
from .connectivity_runtime import cli_connectivity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="a SIM's connectivity: session, address, RAT, cell, IMEI, block, quota",
                       description="What the mobile core last reported about a SIM over RADIUS accounting.")
    p.add_argument("iccid")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_config_argument(p)
    p.set_defaults(func=status)

    p = sub.add_parser("usage", help="data (from RADIUS accounting) and SMS (MT, MO) per day")
    p.add_argument("iccid")
    p.add_argument("--days", type=int, default=30, help="how many days back from today (default 30)")
    add_config_argument(p)
    p.set_defaults(func=usage)

    p = sub.add_parser("events", help="a SIM's network events, newest first")
    p.add_argument("iccid")
    p.add_argument("--limit", type=int, default=20)
    add_config_argument(p)
    p.set_defaults(func=events)

    p = sub.add_parser("topup", help="add one quota of data and SMS to a SIM (lifts a quota block)",
                       description="Add [connectivity] data_quota_mb and sms_quota (or --data-mb/--sms) to the SIM's "
                                   "lifetime quotas; a SIM blocked because its data quota was used up is unblocked. "
                                   "Refused when the quota expired: extend it first (sims extend).")
    p.add_argument("iccid")
    p.add_argument("--data-mb", type=float, help="MB of data to add (default: one quota)")
    p.add_argument("--sms", type=int, help="SMS to add (default: one quota)")
    add_config_argument(p)
    p.set_defaults(func=topup)

    p = sub.add_parser("extend", help="extend SIMs' lifetime by connectivity.lifetime_years (lifts QUOTA_EXPIRED)",
                       description="Extend the lifetime of the SIMs' quotas by [connectivity] lifetime_years: from "
                                   "their expiry date, or from now when it has passed. A SIM blocked because its "
                                   "quota expired is unblocked (POST /v1/sims/extension does the same).")
    p.add_argument("iccid", nargs="+")
    add_config_argument(p)
    p.set_defaults(func=extend)

    p = sub.add_parser("imei-lock", help="lock a SIM to an IMEI (or unlock it)",
                       description="Lock the SIM to --imei, or to the IMEI it was last seen with; an accounting "
                                   "report with another IMEI then blocks it. --off unlocks.")
    p.add_argument("iccid")
    p.add_argument("--imei", help="15-digit IMEI (default: the IMEI of the SIM's last session)")
    p.add_argument("--off", action="store_true", help="remove the lock")
    add_config_argument(p)
    p.set_defaults(func=imei_lock)


def _ms(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-"


def _known(store, iccid: str):
    sim = store.get_sim(iccid)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {iccid}")
    return sim


def status(args: argparse.Namespace) -> int:
    store = store_of(args)
    sim = _known(store, args.iccid)
    row = store.read_with(sql.get, sim.iccid)
    quota = store.read_with(sql.quotas, sim.iccid).get((sim.iccid, "data"))
    default_total = int(config_of(args).connectivity.data_quota_mb * MB)
    total, used = (quota["total"], quota["used"]) if quota else (default_total, 0)
    info = {
        "iccid": sim.iccid, "imsi": sim.imsi, "status": sim.status,
        "online": bool(row and row.ip_address), "address": row.ip_address if row and row.ip_address else sim.ip_address,
        "address_source": "radius" if row and row.ip_address else "static",
        "session": row.session_id if row else None, "session_start": _ms(row.session_started_ms) if row else "-",
        "apn": row.apn if row else None, "rat": rat_name(row.rat_type) if row else None,
        "imei": row.imeisv if row else None, "location": json.loads(row.location) if row and row.location else None,
        "blocked": row.block_reason if row else None, "imei_lock": sim.imei_lock, "locked_imei": sim.imei,
        "data_left_mb": round(max(0, total - used) / MB, 6), "data_total_mb": total / MB,
        "last_report": _ms(row.updated_ms) if row else "-",
    }
    resets = store.read_with(sql.resets, sim.iccid, 1)
    if resets:
        info["last_reset"] = f"{resets[0]['state']} ({resets[0]['reason']}, {_ms(resets[0]['requested_ms'])})"
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    table = Table("field", "value", show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value if value is not None else "-"))
    Console().print(table)
    return 0


def usage(args: argparse.Namespace) -> int:
    store = store_of(args)
    sim = _known(store, args.iccid)
    end = datetime.now(timezone.utc).date()
    start = end - timedelta(days=max(0, args.days))
    data = {day: (rx, tx) for day, rx, tx in store.read_with(sql.daily_usage, sim.iccid, start.isoformat(),
                                                              end.isoformat())}
    sms = store.read_with(sms_repo.sms_daily, sim.iccid, start.isoformat(), end.isoformat())
    days = sorted(set(data) | set(sms))
    table = Table("day (UTC)", "to device (RX) MB", "from device (TX) MB", "total MB", "SMS MT", "SMS MO")
    for day in days:
        rx, tx = data.get(day, (0, 0))
        mt, mo = sms.get(day, (0, 0))
        table.add_row(day, f"{rx / MB:.6f}", f"{tx / MB:.6f}", f"{(rx + tx) / MB:.6f}", str(mt), str(mo))
    Console().print(table)
    print(f"{len(days)} day(s) with traffic since {date.isoformat(start)}")
    return 0


def events(args: argparse.Namespace) -> int:
    store = store_of(args)
    sim = _known(store, args.iccid)
    total, bodies = store.read_with(sql.device_events, sim.iccid, ["NETWORK_EVENT"], 0, max(1, args.limit))
    table = Table("time", "event", "description")
    for body in bodies:
        event = json.loads(body)
        net = event["networkEvent"]
        table.add_row(_ms(int(event["received"])), net["type"], net.get("description", ""))
    Console().print(table)
    print(f"{len(bodies)} of {total} network event(s)")
    return 0


def topup(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    sim = _known(store, args.iccid)
    c = config.connectivity
    data = int((args.data_mb if args.data_mb is not None else c.data_quota_mb) * MB)
    sms = args.sms if args.sms is not None else c.sms_quota
    if data < 0 or sms < 0:
        raise CommandError("--data-mb and --sms must not be negative")

    async def run() -> bool:
        async with cli_connectivity(config, store) as service:
            blocked = service.directory.block_reason(sim.iccid) == DATA_QUOTA_BLOCK
            await service.topup([sim.iccid], data, sms)
            return blocked and service.directory.block_reason(sim.iccid) is None

    try:
        lifted = asyncio.run(run())
    except TopupRefused as exc:
        raise CommandError(str(exc)) from None
    in_force(args)
    print(f"{sim.iccid}: +{data / MB:g} MB, +{sms} SMS" + ("; unblocked" if lifted else ""))
    return 0


def extend(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    iccids = list(dict.fromkeys(args.iccid))
    for iccid in iccids:
        _known(store, iccid)

    async def run() -> list[str]:
        async with cli_connectivity(config, store) as service:
            blocked = {i for i in iccids if service.directory.block_reason(i) == QUOTA_EXPIRED_BLOCK}
            await service.extend(iccids)
            return [i for i in iccids if i in blocked and service.directory.block_reason(i) is None]

    lifted = asyncio.run(run())
    in_force(args)
    for iccid in iccids:
        expiry = store.read_with(sql.quota_expiry, iccid)
        print(f"{iccid}: lifetime extended to {_ms(expiry)}" + ("; unblocked" if iccid in lifted else ""))
    return 0


def imei_lock(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    sim = _known(store, args.iccid)
    if args.off:
        store.update_sim(sim.iccid, imei_lock=False)
        row = store.read_with(sql.get, sim.iccid)
        lifted = row is not None and row.block_reason == IMEI_LOCK_BLOCK
        if lifted:
            asyncio.run(_unblock(config, store, sim.iccid))
        in_force(args)
        print(f"{sim.iccid}: IMEI lock off" + ("; unblocked" if lifted else ""))
        return 0
    imei = args.imei
    if imei is None:
        row = store.read_with(sql.get, sim.iccid)
        imei = (row.imeisv or "")[:14] if row and row.imeisv else sim.imei
        if not imei:
            raise CommandError(f"{sim.iccid} has never reported an IMEI: give one with --imei")
    if not imei.isdigit() or len(imei) not in (14, 15, 16):
        raise CommandError(f"--imei: expected 14 to 16 digits, got {imei!r}")
    store.update_sim(sim.iccid, imei=imei, imei_lock=True)
    in_force(args)
    print(f"{sim.iccid}: locked to IMEI {imei}")
    return 0


async def _unblock(config, store, iccid: str) -> None:
    async with cli_connectivity(config, store) as service:
        await service.set_block(iccid, None)
