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
    for expected in ("row 1: iccid '898828066600000001' must be 19 or 20 digits",
                     "row 2: imsi '90140510000001' must be 15 digits",
                     "row 2: ip_address '10.0.0.999' is not an IP address",
                     "row 4: ip_address 10.0.0.12 is used twice (first in row 3)",
                     "row 4: status 'Maybe' must be Enabled or Disabled",
                     "row 5: ip_address 10.0.0.30 already belongs to SIM 8988280666000000030",
                     "row 6: iccid 8988280666000000012 appears again (first in row 3)"):
        assert expected in err
    assert [s.iccid for s in SqliteStore(tmp_path / "g.db").all_sims()] == ["8988280666000000030"]


def test_missing_file_and_header(tmp_path, config, capsys):
    assert cli(["sims", "import", str(tmp_path / "none.csv"), "--config", config]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "nohead.csv").write_text("8988280666000000010,901405100000010,10.0.0.10\n")
    assert cli(["sims", "import", str(tmp_path / "nohead.csv"), "--config", config]) == 1
    assert "needs a header row" in capsys.readouterr().err
