"""Unit tests: record splitting/packing, ClientHello parsing, configuration."""

from __future__ import annotations

import pytest

from gateway.transports.dtls import DtlsConfig
from gateway.transports.dtls.config import iana_suite_name, mbedtls_suite_names
from gateway.transports.dtls.records import pack_datagrams, parse_client_hello, split_records
from tests.dtls_support import client_hello


def rec(ct: int, epoch: int, seq: int, body: bytes) -> bytes:
    return bytes([ct, 0xFE, 0xFD]) + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big") + len(body).to_bytes(2, "big") + body


def test_split_records():
    a, b = rec(22, 0, 1, b"x" * 10), rec(23, 1, 7, b"y" * 300)
    assert split_records(a + b) == [a, b]
    assert split_records(b"") == []
    assert split_records(a + b[:-1]) is None
    assert split_records(a + b[:5]) is None


def test_pack_datagrams_cuts_at_record_boundaries():
    recs = [rec(22, 0, i, bytes([i]) * 500) for i in range(5)]  # 513 bytes each
    stream = b"".join(recs)
    assert pack_datagrams(stream, 1400) == [recs[0] + recs[1], recs[2] + recs[3], recs[4]]
    assert pack_datagrams(stream, 10_000) == [stream]
    big = rec(23, 1, 9, b"z" * 2000)
    assert pack_datagrams(recs[0] + big, 1400) == [recs[0], big]  # an oversized record goes alone


def test_parse_client_hello():
    hello = client_hello()
    info = parse_client_hello(hello)
    assert info is not None and len(info.random) == 32 and info.cookie == b""
    assert parse_client_hello(hello[:40]) is None
    assert parse_client_hello(b"\x17" + hello[1:]) is None
    bad_sid = bytearray(hello)
    bad_sid[13 + 12 + 2 + 32] = 200  # session_id length > 32
    assert parse_client_hello(bytes(bad_sid)) is None


def test_config_suites():
    assert DtlsConfig().ciphers[0] == "TLS_PSK_WITH_AES_128_CCM_8"
    assert mbedtls_suite_names(("TLS_PSK_WITH_AES_128_CCM_8", "tls-psk-with-aes-128-gcm-sha256")) == (
        "TLS-PSK-WITH-AES-128-CCM-8",
        "TLS-PSK-WITH-AES-128-GCM-SHA256",
    )
    assert iana_suite_name("TLS-PSK-WITH-AES-128-CCM") == "TLS_PSK_WITH_AES_128_CCM"
    with pytest.raises(ValueError):
        DtlsConfig(ciphers=("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",))
    with pytest.raises(ValueError):
        DtlsConfig(ciphers=())
    with pytest.raises(ValueError):
        DtlsConfig(retransmit_min=2, retransmit_max=1)
    assert DtlsConfig(idle_timeout=1).effective_sweep_interval == 0.25
    assert DtlsConfig().effective_sweep_interval == 5.0
