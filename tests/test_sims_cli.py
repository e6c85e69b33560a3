"""SIM import (all or nothing, every bad row named), list, set-status, through the CLI."""

from __future__ import annotations

import json

import pytest

from gateway.cli import main as cli
from inspector.sqlite import SqliteStore


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n')
    return str(path)


GOOD = """iccid,imsi,ip_address,msisdn,imei,label,status
8988280666000000010,901405100000010,10.0.0.10,882285100000010,,a,Enabled
89882806660000000111,901405100000011,10.0.0.11,,356938035643809,b,Disabled
"""


def test_import_list_and_set_status(tmp_path, config, capsys):
    (tmp_path / "sims.csv").write_text(GOOD)
    assert cli(["sims", "import", str(tmp_path / "sims.csv"), "--config", config]) == 0
    assert "imported 2 SIM(s)" in capsys.readouterr().out
    assert cli(["sims", "list", "--format", "json", "--config", config]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {"iccid": "8988280666000000010", "imsi": "901405100000010", "ip_address": "10.0.0.10",
         "msisdn": "882285100000010", "imei": None, "label": "a", "status": "Enabled"},
        {"iccid": "89882806660000000111", "imsi": "901405100000011", "ip_address": "10.0.0.11",
         "msisdn": None, "imei": "356938035643809", "label": "b", "status": "Disabled"}]
    assert cli(["sims", "set-status", "89882806660000000111", "Enabled", "--config", config]) == 0
    assert SqliteStore(tmp_path / "g.db").get_sim("89882806660000000111").status == "Enabled"
    assert cli(["sims", "set-status", "8988280666000000099", "Enabled", "--config", config]) == 1
    assert "no SIM with ICCID 8988280666000000099" in capsys.readouterr().err
    assert cli(["sims", "list", "--format", "csv", "--config", config]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "iccid,imsi,ip_address,msisdn,imei,label,status"


def test_bad_rows_are_all_reported_and_nothing_is_imported(tmp_path, config, capsys):
    (tmp_path / "good.json").write_text(json.dumps([
        {"iccid": "8988280666000000030", "imsi": "901405100000030", "ip_address": "10.0.0.30"}]))
    assert cli(["sims", "import", str(tmp_path / "good.json"), "--config", config]) == 0
    (tmp_path / "bad.csv").write_text("""iccid,imsi,ip_address,status
898828066600000001,901405100000010,10.0.0.10,Enabled
8988280666000000011,90140510000001,10.0.0.999,Enabled
8988280666000000012,901405100000012,10.0.0.12,Enabled
8988280666000000013,901405100000013,10.0.0.12,Maybe
8988280666000000014,901405100000014,10.0.0.30,Enabled
8988280666000000012,901405100000015,10.0.0.15,Enabled
""")
    assert cli(["sims", "import", str(tmp_path / "bad.csv"), "--config", config]) == 1
    err = capsys.readouterr().err
    assert "nothing imported, 7 problem(s)" in err
    # where: the file's line numbers (the header is line 1)
    assert err.splitlines()[1:] == [
        "  line 2: iccid '898828066600000001' must be 19 or 20 digits",
        "  line 3: imsi '90140510000001' must be 15 digits",
        "  line 3: ip_address '10.0.0.999' is not an IP address",
        "  line 5: ip_address 10.0.0.12 is used twice (first on line 4)",
        "  line 5: status 'Maybe' must be Enabled or Disabled",
        "  line 6: ip_address 10.0.0.30 already belongs to SIM 8988280666000000030",
        "  line 7: iccid 8988280666000000012 appears again (first on line 4)"]
    assert [s.iccid for s in SqliteStore(tmp_path / "g.db").all_sims()] == ["8988280666000000030"]


def test_missing_file_and_header(tmp_path, config, capsys):
    assert cli(["sims", "import", str(tmp_path / "none.csv"), "--config", config]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "nohead.csv").write_text("8988280666000000010,901405100000010,10.0.0.10\n")
    assert cli(["sims", "import", str(tmp_path / "nohead.csv"), "--config", config]) == 1
    assert "needs a header row" in capsys.readouterr().err


def test_a_missing_column_or_value_is_named(tmp_path, config, capsys):
    (tmp_path / "noimsi.csv").write_text("iccid,ip_address\n8988280666000000010,10.0.0.10\n")
    assert cli(["sims", "import", str(tmp_path / "noimsi.csv"), "--config", config]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"  {tmp_path / 'noimsi.csv'}: the header row has no imsi column (it has iccid, ip_address; "
        "needed: iccid, imsi, ip_address)"]
    (tmp_path / "short.csv").write_text("iccid,imsi,ip_address\n\n8988280666000000010,901405100000010\n")
    assert cli(["sims", "import", str(tmp_path / "short.csv"), "--config", config]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == ["  line 3: ip_address is missing"]
    (tmp_path / "sims.json").write_text(json.dumps([{"iccid": "8988280666000000010", "ip_address": "10.0.0.10"}]))
    assert cli(["sims", "import", str(tmp_path / "sims.json"), "--config", config]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == ["  item 1: imsi is missing"]


def test_an_import_keeps_changes_made_since_unless_replace(tmp_path, config, capsys):
    """make run imports examples/sims.csv on every start: a SIM enabled since stays enabled."""
    (tmp_path / "sims.csv").write_text(GOOD)
    assert cli(["sims", "import", str(tmp_path / "sims.csv"), "--config", config]) == 0
    assert cli(["sims", "set-status", "89882806660000000111", "Enabled", "--config", config]) == 0
    more = GOOD + "8988280666000000012,901405100000012,10.0.0.12,,,c,Enabled\n"
    (tmp_path / "sims.csv").write_text(more)
    capsys.readouterr()
    assert cli(["sims", "import", str(tmp_path / "sims.csv"), "--config", config]) == 0
    assert capsys.readouterr().out == (f"imported 1 SIM(s) from {tmp_path / 'sims.csv'}; 2 already registered, "
                                       "left as they are (--replace overwrites them)\n")
    store = SqliteStore(tmp_path / "g.db")
    assert sorted((s.iccid, s.status) for s in store.all_sims()) == [
        ("8988280666000000010", "Enabled"), ("89882806660000000111", "Enabled"), ("8988280666000000012", "Enabled")]
    # a registered SIM's row is not written, so its IP conflicts with nothing
    (tmp_path / "moved.csv").write_text("iccid,imsi,ip_address\n8988280666000000010,901405100000010,10.0.0.11\n")
    assert cli(["sims", "import", str(tmp_path / "moved.csv"), "--config", config]) == 0
    assert store.get_sim("8988280666000000010").ip_address == "10.0.0.10"
    assert cli(["sims", "import", str(tmp_path / "moved.csv"), "--replace", "--config", config]) == 1
    assert "line 2: ip_address 10.0.0.11 already belongs to SIM 89882806660000000111" in capsys.readouterr().err
    assert cli(["sims", "import", str(tmp_path / "sims.csv"), "--replace", "--config", config]) == 0
    assert capsys.readouterr().out == f"imported 3 SIM(s) from {tmp_path / 'sims.csv'} (3 replaced)\n"
    assert store.get_sim("89882806660000000111").status == "Disabled"
