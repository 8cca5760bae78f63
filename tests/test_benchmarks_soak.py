"""benchmarks/soak.py at a tiny scale: the real soak (world 4, 10,000 + 200 calls) is run by
hand, out of the default test run."""
import json

import pytest


@pytest.mark.timeout(60)
def test_soak_tiny_passes_and_writes_json(tmp_path, capsys):
    from benchmarks.soak import main

    out = tmp_path / "soak.json"
    rc = main(["--world", "2", "--small", "50", "--large", "2", "--large-elements", "65536",
               "--timeout", "50", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "PASS" in printed
    data = json.loads(out.read_text())
    assert data["benchmark"] == "soak" and data["passed"] is True and data["error"] is None
    assert data["rss_growth_max_pct"] < 10 and data["calls_per_s"] > 0
    assert [r["rank"] for r in data["rows"]] == [0, 1]
    for row in data["rows"]:
        assert (row["small_calls"], row["large_calls"]) == (50, 2)
        for key in ("rss_warm_kb", "rss_end_kb", "rss_growth_pct", "objects_warm",
                    "objects_end", "engine_end", "time_s"):
            assert key in row
