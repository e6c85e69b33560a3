"""bench/store_commit.py: both layouts commit every uplink and are compared to the old one (a short run)."""

from __future__ import annotations

from bench import store_commit


def test_both_layouts_run_and_the_ratio_is_to_the_index_in_the_commit(capsys):
    rows = store_commit.main(["--batches", "3", "--batch", "50", "--sims", "7", "--repeats", "1", "--fill-every", "2"])
    assert [row[0].split(" ")[1] for row in rows] == ["index", "device_messages"]
    assert rows[0][4] == "1.00" and float(rows[1][4]) > 0
    assert "uplinks per writer CPU-s" in capsys.readouterr().out
