"""``nce-gateway template``: check and try translation templates; manage the stored ones."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import sys
from pathlib import Path

from bcl import TemplateError, compile_template
from bcl.cli import test_file, validate_file
from bcl.firmware import LANGUAGES, CodegenRefused, generate

from ..cli import CommandError, add_config_argument
from ..pipeline import TRANSLATOR_ERROR
from ..templates import PROTOCOLS, TemplateRefused, TemplateService, why_nothing
from . import in_force, store_of
from .output import add_format_argument, emit


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("template", help="Energy Saver translation templates (BCL)")
    sub = parser.add_subparsers(dest="template_command", metavar="ACTION", required=True)

    p = sub.add_parser("validate", help="check a template file; prints every problem (exit 1) or OK (exit 0)")
    p.add_argument("file")
    p.set_defaults(func=validate)

    p = sub.add_parser("test", help="translate one payload with a template file; prints the JSON (exit 0) "
                                    "or the errors (exit 1), as the gateway would report them")
    p.add_argument("file")
    payload = p.add_mutually_exclusive_group(required=True)
    payload.add_argument("--payload-hex", help="the payload as hex bytes")
    payload.add_argument("--payload-b64", help="the payload as base64")
    p.set_defaults(func=test)

    p = sub.add_parser("codegen", help="generate a firmware encoder (C99 header and source, or Python) that "
                                       "packs the template's values into the bytes it translates")
    p.add_argument("file")
    p.add_argument("--lang", choices=LANGUAGES, default="c", help="c (device firmware) or python (emulators)")
    p.add_argument("--name", help="prefix of the files, type and function (default: the template's name)")
    p.add_argument("--out", metavar="DIR", help="write the files to DIR (default: print them)")
    p.set_defaults(func=codegen)

    p = sub.add_parser("add", help="store a template (in force in the running gateway when the command returns)")
    p.add_argument("file")
    p.add_argument("--name", required=True)
    p.add_argument("--protocol", action="append", choices=PROTOCOLS, required=True, dest="protocols",
                   help="UDP and/or COAP (repeat the option for both)")
    p.add_argument("--active", action="store_true", help="make it the ACTIVE template of these protocols")
    add_config_argument(p)
    p.set_defaults(func=add)

    p = sub.add_parser("list", help="stored templates")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_templates)

    p = sub.add_parser("set-status", help="activate or deactivate a stored template")
    p.add_argument("id")
    p.add_argument("status", choices=("ACTIVE", "INACTIVE"))
    add_config_argument(p)
    p.set_defaults(func=set_status)


def validate(args: argparse.Namespace) -> int:
    code, text = validate_file(args.file)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def test(args: argparse.Namespace) -> int:
    try:
        payload = (bytes.fromhex(args.payload_hex) if args.payload_hex is not None
                   else base64.b64decode(args.payload_b64, validate=True))
    except (ValueError, binascii.Error):
        raise CommandError("the payload is not valid hex/base64") from None
    code, text = test_file(args.file, payload)
    if code == 0 and json.loads(text)["translatedPayload"] == {}:
        # what the running gateway does with such a payload (gateway/templates.py)
        template = compile_template(Path(args.file).read_text(encoding="utf-8")).template
        code, text = 1, f"{TRANSLATOR_ERROR}: {why_nothing(template, payload)}"
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def codegen(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
        files = generate(text, args.lang, args.name)
    except OSError as exc:
        raise CommandError(f"{args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{args.file}: not UTF-8 text") from None
    except TemplateError as exc:
        raise CommandError(str(exc)) from None
    except CodegenRefused as exc:
        raise CommandError(f"cannot generate an encoder: {exc}") from None
    if args.out is None:
        for name, body in files.items():
            print(f"/* ---- {name} ---- */" if args.lang == "c" else f"# ---- {name} ----")
            print(body)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (out / name).write_text(body, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


def _service(args: argparse.Namespace) -> TemplateService:
    """The same rules as the API, run synchronously against the store of the config."""
    store = store_of(args)

    async def run(fn, *a):  # noqa: ANN001, ANN202 - the service's read/write hook
        return fn(*a)
    service = TemplateService(store, write=run, read=run)
    service.reload()
    return service


def add(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"{args.file}: {exc.strerror}") from None
    service = _service(args)
    try:
        row = asyncio.run(service.create(name=args.name, template=text, protocols=args.protocols,
                                         status="ACTIVE" if args.active else "INACTIVE"))
    except TemplateRefused as exc:
        raise CommandError(str(exc)) from None
    in_force(args)
    print(f"{row['id']}: {row['name']} ({', '.join(row['protocols'])}) {row['status']}")
    return 0


def list_templates(args: argparse.Namespace) -> int:
    rows = [{"id": row["id"], "name": row["name"], "protocolFilter": row["protocols"], "status": row["status"]}
            for row in _service(args).list()]
    columns = [("id", "ID"), ("name", "Name"), ("protocolFilter", "Protocols"), ("status", "Status")]
    emit(args.format, columns, rows, footer=f"{len(rows)} template(s)")
    return 0


def set_status(args: argparse.Namespace) -> int:
    try:
        row = asyncio.run(_service(args).update(args.id, status=args.status))
    except TemplateRefused as exc:
        raise CommandError(str(exc)) from None
    in_force(args)
    print(f"{row['id']}: {row['status']}")
    return 0
