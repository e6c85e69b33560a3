"""Configuration: defaults for every key, TOML, environment overrides, clear errors."""

from __future__ import annotations

import pytest

from gateway.config import DEFAULT_RETRY_SCHEDULE, ConfigError, load_config


def test_defaults_without_a_file():
    config = load_config(environ={})
    assert (config.store.path, config.store.retention_days) == ("data/gateway.db", 7.0)
    assert (config.udp.bind, config.udp.port) == ("0.0.0.0", 4445)
    assert (config.coap.bind, config.coap.port) == ("0.0.0.0", 5683)
    assert (config.api.bind, config.api.port) == ("127.0.0.1", 8080)
    assert config.webhooks == []


def test_toml_file_and_environment_overrides(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("""
[store]
path = "/var/lib/g.db"
retention_days = 3
[coap]
port = 0
[[webhooks]]
name = "a"
url = "https://example.com/:iccid:"
headers = { "X-Key" = "v" }
event_types = ["TELEMETRY_DATA"]
json_payload_enabled = true
""")
    config = load_config(path, environ={"NCE_UDP_PORT": "5000", "NCE_STORE_RETENTION_DAYS": "2.5",
                                        "NCE_UDP_ENABLED": "false", "OTHER": "x"})
    assert config.store.path == "/var/lib/g.db" and config.store.retention_days == 2.5
    assert config.udp.port == 5000 and config.udp.enabled is False and config.coap.port == 0
    (hook,) = config.webhooks
    assert (hook.name, hook.url, hook.headers, hook.event_types, hook.json_payload_enabled) == (
        "a", "https://example.com/:iccid:", {"X-Key": "v"}, ["TELEMETRY_DATA"], True)
    assert hook.retry_schedule == list(DEFAULT_RETRY_SCHEDULE) and hook.ca_file is None


@pytest.mark.parametrize("text, message", [
    ("[udp]\nport = 70000", "udp.port: 70000 is not a port number"),
    ("[udp]\nprot = 1", "udp: unknown key(s) prot"),
    ("[nope]\na = 1", "unknown section(s) nope"),
    ("[udp]\nport = 'x'", "udp.port: expected an integer, got 'x'"),
    ("[[webhooks]]\nname = 'a'\nurl = 'ftp://x'", "webhooks[0].url: must start with https://"),
    ("[[webhooks]]\nname = 'a'\nurl = 'https://x'\nevent_types = ['FOO']", "webhooks[0].event_types: unknown FOO"),
    ("[[webhooks]]\nname = 'a'\nurl = 'https://x'\n[[webhooks]]\nname = 'a'\nurl = 'https://y'",
     "webhooks[1].name: 'a' is used twice"),
    ("[[webhooks]]\nurl = 'https://x'", "webhooks[0]:"),
    ("[store\n", "config file"),
    ("[store]\nurl = 'mysql://db/x'", "store.url: must be sqlite:///path or postgresql://..."),
])
def test_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", environ={})


def test_webhook_header_injection_is_refused(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text('[[webhooks]]\nname = "a"\nurl = "https://x"\nheaders = { "X-A" = "1\\r\\nEvil: 2" }\n')
    with pytest.raises(ConfigError, match=r"webhooks\[0\].headers: header 'X-A' has characters not allowed"):
        load_config(path, environ={})


def _typed_keys():
    """(section, key, type) of every scalar key of every [section]: the check must be generic."""
    import dataclasses

    from gateway.config import _SECTIONS

    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            yield section, f.name, f.type


WRONG_TOML = {int: ('"44777"', "4445.5", "true"), float: ('"1.5"', "true"), bool: ('"true"', "1"),
              str: ("5", "[]")}
EXPECTED = {int: "expected an integer", float: "expected a number", bool: "expected true or false",
            str: "expected a string"}


@pytest.mark.parametrize("section, key, kind", [k for k in _typed_keys() if k[2] in WRONG_TOML])
def test_every_typed_key_refuses_a_toml_value_of_another_type(tmp_path, section, key, kind):
    for wrong in WRONG_TOML[kind]:
        path = tmp_path / "t.toml"
        path.write_text(f"[{section}]\n{key} = {wrong}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert str(info.value).startswith(f"{section}.{key}: {EXPECTED[kind]}, got ")


@pytest.mark.parametrize("section, key, kind", [k for k in _typed_keys() if k[2] in (int, float, bool)])
def test_every_typed_key_converts_and_checks_its_environment_override(section, key, kind):
    variable = f"NCE_{section.upper()}_{key.upper()}"
    for wrong in {int: ("4445.5", "x", ""), float: ("x", "nan", "inf"), bool: ("maybe",)}[kind]:
        with pytest.raises(ConfigError) as info:
            load_config(environ={variable: wrong})
        message = str(info.value)
        assert message.startswith(f"{section}.{key} ({variable}): expected "), message
    good = {int: ("7", 7), float: ("2.5", 2.5), bool: ("yes", True)}[kind]
    try:
        config = load_config(environ={variable: good[0]})
    except ConfigError as exc:  # a range rule of that key, not its type
        assert "expected" not in str(exc)
    else:
        assert getattr(getattr(config, section), key) == good[1]


def test_the_issue_17_examples(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[udp]\nport = "44777"\n')
    with pytest.raises(ConfigError, match=r"^udp.port: expected an integer, got '44777'$"):
        load_config(path, environ={})
    path.write_text("[udp]\nport = 4445.5\n")
    with pytest.raises(ConfigError, match=r"^udp.port: expected an integer, got 4445.5$"):
        load_config(path, environ={})
    path.write_text('[[webhooks]]\nname = "a"\nurl = "https://x"\nheaders = { "X-A" = 1 }\n')
    with pytest.raises(ConfigError, match=r"^webhooks\[0\].headers.X-A: expected a string, got 1$"):
        load_config(path, environ={})
    path.write_text('[[webhooks]]\nname = "a"\nurl = "https://x"\nretry_schedule = ["5"]\n')
    with pytest.raises(ConfigError, match=r"^webhooks\[0\].retry_schedule\[0\]: expected a number, got '5'$"):
        load_config(path, environ={})
    assert load_config(environ={"NCE_LOG_LEVEL": "DEBUG", "NCE_UDP_PORT": " 5000 "}).udp.port == 5000


def test_store_url_defaults_to_the_sqlite_path_and_comes_from_the_environment(tmp_path):
    assert load_config(environ={}).store.resolved_url() == "sqlite:///data/gateway.db"
    config = load_config(environ={"NCE_STORE_URL": "postgresql://nce@db.example/nce"})
    assert config.store.resolved_url() == "postgresql://nce@db.example/nce"
