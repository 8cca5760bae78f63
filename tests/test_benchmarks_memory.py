"""benchmarks/memory.py at a tiny scale (dtrain only): the fields are there and the figures are
sane. The targets of issue 7 (f) are judged on the real run, in benchmarks/RESULTS.md."""
import json
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/status")

ELEMENTS = 1 << 20  # 4 MB of float32


@pytest.mark.timeout(60)
def test_memory_tiny_writes_sane_json(tmp_path, capsys):
    from benchmarks.memory import main

    out = tmp_path / "memory.json"
    rc = main(["--elements", str(ELEMENTS), "--calls", "2", "--steps", "2",
               "--dims", "256", "512", "10", "--libs", "dtrain", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "peak reset through /proc/self/clear_refs" in printed
    data = json.loads(out.read_text())
    assert data["benchmark"] == "memory" and data["command"].startswith("python -m benchmarks")
    assert data["meta"]["date"] and data["meta"]["nproc"] >= 1
    assert set(data["targets"]) == {"all_reduce_peak_x_tensor", "ddp_added_x_params"}

    rows = {r["label"]: r for r in data["all_reduce"]}
    assert set(rows) == {"dtrain (shared memory)", "dtrain (DTRAIN_SHM=0)"}
    for r in rows.values():
        assert r["nbytes"] == 4 * ELEMENTS
        assert [x["rank"] for x in r["ranks"]] == [0, 1]
        assert r["baseline_rss"] > 0
        # the tensor itself is allocated and resident during the measured phase
        assert r["allocated"] >= 0.9 * r["nbytes"]
        assert r["peak"] >= r["nbytes"] and r["peak_x_tensor"] >= 1.0
        assert r["peak"] >= r["end"] > 0 and r["anon"] > 0
    # the shared-memory path writes its own lane and reads its peer's
    assert rows["dtrain (shared memory)"]["shmem"] > 0

    ddp = data["ddp"]["dtrain"]
    params = (256 * 512 + 512) + (512 * 10 + 10)
    assert ddp["param_bytes"] == 4 * params
    assert set(ddp["runs"]) == {"off", "ddp", "view"}
    for name, ranks in ddp["runs"].items():
        assert [r["rank"] for r in ranks] == [0, 1]
        for r in ranks:
            assert r["end"] > 0 and r["peak"] >= r["end"]
            # with gradients as bucket views, the buckets hold every gradient once; without,
            # float gradients are reduced where they are and no bucket buffer is made
            assert r["bucket_bytes"] == (ddp["param_bytes"] if name == "view" else 0)
    for name in ("ddp", "view"):
        for key in ("x_params", "peak_x_params", "buckets_x_params", "end", "anon", "shmem"):
            assert key in ddp[name]
    assert (ddp["ddp"]["buckets_x_params"], ddp["view"]["buckets_x_params"]) == (0.0, 1.0)
