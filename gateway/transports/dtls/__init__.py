"""DTLS 1.2 PSK termination on python-mbedtls (see docs/dtls.md).

:class:`DtlsServer` is a socket-less engine: the CoAP transport owns the UDP
socket, feeds every datagram to :meth:`DtlsServer.datagram_received` and gets
decrypted application data back through ``on_application_data``.
"""

from .config import PSK_SUITES, DtlsConfig
from .server import MAX_PSK_LEN, Addr, DtlsServer, DtlsSession, DtlsStats, HandshakeRefused

__all__ = ["Addr", "DtlsConfig", "DtlsServer", "DtlsSession", "DtlsStats", "HandshakeRefused", "MAX_PSK_LEN",
           "PSK_SUITES"]
