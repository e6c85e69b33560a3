"""bench/uplink.py's interleaved rounds: the echo, the gateway, and the A/B gateway of another
checkout, each a real process loaded by the real generator (short runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import uplink

ROOT = Path(__file__).resolve().parents[1]


def test_rounds_interleave_echo_gateway_and_the_other_checkout(capsys):
    rows = uplink.main(["--seconds", "0.6", "--sims", "4", "--window", "8", "--compare", "--repeats", "2",
                        "--ab", str(ROOT)])
    names = [row[0] for row in rows]
    assert len(rows) == 6
    assert names[0] == "#1 bare UDP echo (asyncio)" and names[3] == "#2 bare UDP echo (asyncio)"
    for name in (names[1], names[4]):
        assert re.fullmatch(r"#\d gateway \(asyncio, full, [\d,]+ stored\)", name), name
    assert re.fullmatch(rf"#2 gateway of {re.escape(str(ROOT))} \(full, [\d,]+ stored\)", names[5]), names[5]
    for row in rows:
        assert row[4] == 0  # no failed request
        assert row[6] > 0  # messages per server CPU-s
    assert rows[0][7] == "1.00" and rows[3][7] == "1.00"  # the echo against itself
    for gateway, echo in ((rows[1], rows[0]), (rows[2], rows[0]), (rows[4], rows[3])):
        assert gateway[7] == f"{gateway[6] / echo[6]:.2f}"
    stored = int(re.search(r"([\d,]+) stored", names[1]).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert stored > 0
    assert "÷ echo of its round" in capsys.readouterr().out


def test_bad_repeats_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        uplink.main(["--repeats", "0"])
    assert exit_.value.code == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
