"""Send one message as an emulated device and print the gateway's answer.

    python -m firmware_examples.emulator udp  --source-ip 127.0.0.10 --payload 'hello'
    python -m firmware_examples.emulator udp  --source-ip 127.0.0.10 --source-port 3000 --listen 60
    python -m firmware_examples.emulator coap --source-ip 127.0.0.10 --topic sensors/temp --payload-hex 0102
    python -m firmware_examples.emulator lwm2m --source-ip 127.0.0.10 --iccid 8988280666000000010 \
        --bootstrap --send /3303/0/5700=21.5 --stay 30

Each emulated SIM sends from its own loopback address (the SIM's ip_address in the registry),
because the gateway knows a device by its source IP alone.
"""

from __future__ import annotations

import argparse
import socket
import sys

from .coap_client import CoapClient


def payload_of(args: argparse.Namespace) -> bytes:
    if args.payload_hex is not None:
        return bytes.fromhex(args.payload_hex)
    return args.payload.encode("utf-8")


def send_udp(host: str, port: int, source_ip: str, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_ip, 0))
        sock.sendto(payload, (host, port))


def udp_and_listen(host: str, port: int, source_ip: str, source_port: int, payload: bytes, seconds: float) -> int:
    """Send the uplink, then print each datagram that reaches the same socket for ``seconds``
    (what the gateway's Device Controller sends): like a device that listens where it sends from."""
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_ip, source_port))
        sock.sendto(payload, (host, port))
        print(f"sent {len(payload)} bytes over UDP from {source_ip}:{sock.getsockname()[1]}", flush=True)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                break
            print(f"received {len(data)} bytes from {addr[0]}:{addr[1]}: {data.hex()}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firmware_examples.emulator",
                                     description="Send one message as an emulated device.")
    parser.add_argument("protocol", choices=("udp", "coap", "coaps", "lwm2m"))
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (default 4445 for udp, 5683 for coap and onboarding)")
    parser.add_argument("--coaps-port", type=int, default=5684, help="coaps: the DTLS port (default 5684)")
    parser.add_argument("--source-ip", default="127.0.0.10", help="the SIM's IP address to send from")
    parser.add_argument("--source-port", type=int, default=0, help="udp: the port to send from (default: any)")
    parser.add_argument("--listen", type=float, default=0.0, metavar="SECONDS",
                        help="udp: after sending, print what arrives on the same socket for this long")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--payload", default="hello from an emulated device", help="payload as UTF-8 text")
    group.add_argument("--payload-hex", help="payload as hex bytes")
    parser.add_argument("--topic", help="CoAP: the t= query (topic)")
    parser.add_argument("--path", default="/", help="CoAP: request path (default /)")
    parser.add_argument("--non", action="store_true", help="CoAP: send non-confirmable")
    parser.add_argument("--timeout", type=float, default=10.0, help="CoAP: seconds to wait for the answer")
    parser.add_argument("--iccid", help="LwM2M: the endpoint name (the SIM's ICCID)")
    parser.add_argument("--bootstrap", action="store_true",
                        help="LwM2M: bootstrap first (POST /bs) and register where the bootstrap server says")
    parser.add_argument("--send", nargs="*", default=[], metavar="PATH=VALUE",
                        help="LwM2M: values to Send after registering, e.g. /3303/0/5700=21.5")
    parser.add_argument("--lifetime", type=int, default=300, help="LwM2M: registration lifetime (s)")
    parser.add_argument("--stay", type=float, default=0.0,
                        help="LwM2M: seconds to stay registered and answer reads/observes before de-registering")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.protocol == "lwm2m":
        return run_lwm2m(args)
    payload = payload_of(args)
    if args.protocol == "coaps":
        return run_coaps(args, payload)
    if args.protocol == "udp" and args.listen > 0:
        return udp_and_listen(args.host, args.port or 4445, args.source_ip, args.source_port, payload, args.listen)
    if args.protocol == "udp":
        send_udp(args.host, args.port or 4445, args.source_ip, payload)
        print(f"sent {len(payload)} bytes over UDP from {args.source_ip} (UDP has no answer)")
        return 0
    with CoapClient((args.host, args.port or 5683), args.source_ip) as client:
        result = client.post(args.path, payload, topic=args.topic, confirmable=not args.non, timeout=args.timeout)
    detail = f" {result.payload.decode('utf-8', 'replace')}" if result.payload else ""
    print(f"{result.code}{detail}")
    return 0 if result.ok else 2


def run_coaps(args: argparse.Namespace, payload: bytes) -> int:
    """Onboard like the SDK's os_auth (GET /bootstrap), then POST over DTLS with the PSK."""
    import asyncio

    from .device import CoapsDevice, OnboardingError, os_auth

    try:
        onboarding = os_auth((args.host, args.port or 5683), args.source_ip, timeout=args.timeout)
    except OnboardingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"onboarded: ICCID {onboarding.iccid}, PSK of {len(onboarding.psk)} characters")

    async def post() -> str:
        async with CoapsDevice((args.host, args.coaps_port), onboarding, args.source_ip) as device:
            return await device.post(payload, topic=args.topic, confirmable=not args.non, path=args.path)
    try:
        code = asyncio.run(post())
    except (TimeoutError, OSError) as exc:
        print(f"error: DTLS: {exc}", file=sys.stderr)
        return 2
    print(code)
    return 0 if code.startswith("2.") else 2


def run_lwm2m(args: argparse.Namespace) -> int:
    import asyncio

    from .lwm2m_client import parse_values, run_once

    if not args.iccid:
        print("lwm2m needs --iccid (the endpoint name is the SIM's ICCID)", file=sys.stderr)
        return 2
    uri = f"coap://{args.host}:{args.port or 5683}"
    try:
        return asyncio.run(run_once(args.iccid, args.source_ip, uri if args.bootstrap else None,
                                    None if args.bootstrap else uri, parse_values(args.send), args.lifetime,
                                    args.stay))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
