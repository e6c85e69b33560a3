"""Pure parts of connectivity: User-Location-Info, RAT types, the [radius] configuration."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config
from gateway.connectivity.location import LocationError, decode_uli, rat_name


@pytest.mark.parametrize("hex_value, expected", [
    ("0032f4030921b8e8", {"type": "CGI", "mcc": "234", "mnc": "30", "lac": 0x0921, "ci": 0xB8E8}),  # SPEC §8
    ("8232f210426d32f21000013e02", {"type": "TAI+ECGI", "mcc": "232", "mnc": "01", "tac": 0x426D,
                                    "eci": 0x13E02}),  # SPEC §8
    ("0162f2200102abcd", {"type": "SAI", "mcc": "262", "mnc": "02", "lac": 0x0102, "sac": 0xABCD}),
    ("0262f22001020aff", {"type": "RAI", "mcc": "262", "mnc": "02", "lac": 0x0102, "rac": 0x0A}),
    ("8062f2201234", {"type": "TAI", "mcc": "262", "mnc": "02", "tac": 0x1234}),
    ("8113001412345678", {"type": "ECGI", "mcc": "310", "mnc": "410", "eci": 0x2345678}),
])
def test_user_location_info(hex_value, expected):
    assert decode_uli(bytes.fromhex(hex_value)) == expected


@pytest.mark.parametrize("hex_value, message", [
    ("", "empty"), ("0732f403", "unknown User-Location-Info type 7"),
    ("0032f4030921b8", "CGI User-Location-Info needs 8 octets, got 7"), ("00aaf4030921b8e8", "not BCD"),
])
def test_bad_user_location_info(hex_value, message):
    with pytest.raises(LocationError, match=message):
        decode_uli(bytes.fromhex(hex_value))


def test_rat_names():
    assert [rat_name(bytes([c])) for c in (1, 2, 6, 8, 9, 10, 42)] == [
        "UTRAN", "GERAN", "EUTRAN", "NB-IoT", "LTE-M", "NR", "42"]
    assert rat_name(None) is None


def test_radius_config(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[radius]\nenabled = true\nclients = { "10.0.0.5" = "s3cret" }\n')
    config = load_config(path, environ={})
    assert config.radius.clients == {"10.0.0.5": "s3cret"} and config.radius.port == 1813
    assert "s3cret" not in repr(config)
    for body, message in [
        ('[radius]\nenabled = true\n', "at least one accounting client"),
        ('[radius]\nclients = { "pgw" = "x" }\n', "'pgw' is not an IP address"),
        ('[radius]\nclients = { "10.0.0.5" = "" }\n', "the shared secret is empty"),
        ('[connectivity]\nlifetime_years = 0\n', "lifetime_years >= 1"),
        ('[[webhooks]]\nname = "w"\nurl = "https://x"\nevent_types = ["USAGE", "NOPE"]\n', "unknown NOPE"),
    ]:
        path.write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_config(path, environ={})
