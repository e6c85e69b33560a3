"""One UDP port shared by N worker processes, each source address always on the same worker.

Linux spreads the datagrams of a ``SO_REUSEPORT`` group over its sockets by a hash of the
4-tuple, unless a classic BPF program attached with ``SO_ATTACH_REUSEPORT_CBPF`` picks the
socket: the program's return value is the index of the socket in the group (the order the
sockets joined). The program here hashes the IPv4 source address only, not the port:

- a SIM is one address (1NCE gives each SIM its own IP), so its DTLS session, CoAP exchange
  cache, Block1 transfers and LwM2M registration live in one process;
- LwM2M clients that open a new source port per request (``coap-node``) and NATs that move a
  device's port still land on the process holding their registration;
- it is the key Linux IPVS's ``sh`` scheduler uses between hosts, so the two levels agree.

:func:`worker_for` computes the same function in Python, so a process can tell which worker
serves a device. The index only stays meaningful while the group keeps its order: the
supervisor (gateway/supervisor.py) creates the N sockets itself, keeps them open and hands
socket k to worker k, so a worker that dies and restarts gets the same socket back (its
datagrams wait in the socket buffer meanwhile) and no other worker's sources move.
IPv4 only (the gateway's UDP sockets are IPv4); a datagram whose header cannot be read makes
the program return 0 (worker 0).
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)
SKF_NET_OFF = -0x100000  # classic BPF: offsets from the network (IP) header
MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant (2^32 / golden ratio)

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_ALU_MUL_K = 0x24
_MISC_TAX = 0x07
_ALU_RSH_K = 0x74
_ALU_XOR_X = 0xAC
_ALU_MOD_K = 0x94
_RET_A = 0x16


def source_hash(ip: str) -> int:
    """The 32-bit hash of an IPv4 source address, as the BPF program computes it."""
    h = (int(ipaddress.IPv4Address(ip)) * MULTIPLIER) & 0xFFFFFFFF
    return h ^ (h >> 16)


def worker_for(ip: str, workers: int) -> int:
    """The index of the worker that receives the datagrams of ``ip`` among ``workers``."""
    return source_hash(ip) % workers if workers > 1 else 0


def program(workers: int) -> list[tuple[int, int, int, int]]:
    """The classic BPF program: (code, jt, jf, k) per instruction."""
    if workers < 1:
        raise ValueError("at least one worker")
    return [
        (_LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) & 0xFFFFFFFF),  # A = IPv4 source address (host order)
        (_ALU_MUL_K, 0, 0, MULTIPLIER),                         # A *= MULTIPLIER (32-bit)
        (_MISC_TAX, 0, 0, 0),                                   # X = A
        (_ALU_RSH_K, 0, 0, 16),                                 # A >>= 16
        (_ALU_XOR_X, 0, 0, 0),                                  # A ^= X
        (_ALU_MOD_K, 0, 0, workers),                            # A %= workers
        (_RET_A, 0, 0, 0),                                      # socket index A
    ]


def attach(sock: socket.socket, workers: int) -> None:
    """Attach the program to the reuseport group of ``sock`` (any member will do)."""
    code = b"".join(struct.pack("=HBBI", *insn) for insn in program(workers))
    filters = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("=HxxxxxxQ" if struct.calcsize("P") == 8 else "=HxxI",
                        len(code) // 8, ctypes.addressof(filters))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def bind_group(bind: str, port: int, workers: int, kind: int = socket.SOCK_DGRAM) -> list[socket.socket]:
    """``workers`` sockets on one address and port (port 0: the first one's), in group order,
    with the source-address program attached (UDP only). The caller owns and closes them."""
    socks: list[socket.socket] = []
    try:
        for _ in range(workers):
            sock = socket.socket(socket.AF_INET, kind)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((bind, port))
            port = sock.getsockname()[1]
        if kind == socket.SOCK_DGRAM and workers > 1:
            attach(socks[0], workers)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks
