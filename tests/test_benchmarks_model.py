"""benchmarks/model.py: the fit recovers known parameters from synthetic times, and the
predictions are the closed forms of docs/performance.md. No processes, well under 2 s."""
import json
import math

import pytest

from benchmarks import model

GAMMA = 0.25e-9  # s/B, held fixed as in the real fit
SIZES = [4, 1024, 4096, 16384, 65536, 262144, 2**20, 4 * 2**20, 16 * 2**20]


def synthetic(name, params, worlds=(2, 4), sizes=SIZES):
    return [(n, m, model.predict(name, params, n, m)) for n in worlds for m in sizes]


@pytest.mark.parametrize("name,params", [
    ("mailbox", {"alpha": 30e-6, "alpha_peer": 12e-6, "beta_mem": 0.2e-9}),
    ("shared", {"alpha": 150e-6, "alpha_peer": 40e-6, "beta_mem": 0.3e-9}),
    ("direct", {"alpha": 110e-6, "alpha_peer": 35e-6, "beta": 0.5e-9, "gamma": GAMMA}),
    ("ring", {"alpha": 95e-6, "beta": 0.6e-9, "gamma": GAMMA}),
    ("one-way", {"alpha": 45e-6, "beta": 0.15e-9}),
])
def test_fit_recovers_known_parameters(name, params):
    got = model.fit(name, synthetic(name, params), {"gamma": GAMMA})
    assert got.keys() == params.keys()
    for key, value in params.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key


def test_fit_with_noise_stays_close():
    params = {"alpha": 95e-6, "beta": 0.6e-9, "gamma": GAMMA}
    points = [(n, m, t * (1.02 if i % 2 else 0.98))
              for i, (n, m, t) in enumerate(synthetic("ring", params))]
    got = model.fit("ring", points, {"gamma": GAMMA})
    assert got["alpha"] == pytest.approx(95e-6, rel=0.05)
    assert got["beta"] == pytest.approx(0.6e-9, rel=0.05)


def test_fit_keeps_costs_non_negative():
    # times that a line with a negative latency would fit best: the fit gives 0 instead
    points = synthetic("mailbox", {"alpha": -10e-6, "alpha_peer": 30e-6, "beta_mem": 0.03e-9},
                       sizes=[4, 4096, 65536])
    got = model.fit("mailbox", points)
    assert got["alpha"] == 0.0 and got["alpha_peer"] > 0 and got["beta_mem"] >= 0


def test_predictions_are_the_closed_forms():
    a, o, b, g = 100e-6, 30e-6, 0.8e-9, GAMMA
    n, m = 64, 2**20
    assert model.predict("ring", {"alpha": a, "beta": b, "gamma": g}, n, m) == pytest.approx(
        2 * (n - 1) * a + 2 * (n - 1) / n * m * b + (n - 1) / n * m * g)
    assert model.predict("direct", {"alpha": a, "alpha_peer": o, "beta": b, "gamma": g},
                         n, m) == pytest.approx(a + (n - 1) * o + (n - 1) * m * b + n * m * g)
    # shared: per chunk one wait on each peer at two ranks, two from three on
    shared = {"alpha": a, "alpha_peer": o, "beta_mem": b}
    m = 5 * model.chunk_bytes(4)
    assert model.predict("shared", shared, 4, m) == pytest.approx(5 * (a + 6 * o) + 2.5 * m * b)
    m = 3 * model.chunk_bytes(2)
    assert model.predict("shared", shared, 2, m) == pytest.approx(3 * (a + o) + 3 * m * b)
    assert model.predict("mailbox", {"alpha": a, "alpha_peer": o, "beta_mem": b}, 2, 4096) \
        == pytest.approx(a + o + 2 * 4096 * b)


def test_network_params_and_crossover():
    fitted = {"alpha": 100e-6, "alpha_peer": 30e-6, "beta": 0.2e-9, "gamma": GAMMA}
    net = model.network_params(fitted, 10, 25e-6)
    assert net["alpha"] == pytest.approx(125e-6)
    assert net["beta"] == pytest.approx(0.8e-9)  # 10 Gb/s = 1.25 GB/s
    assert model.network_params(fitted, 100, 0)["beta"] == pytest.approx(0.2e-9)  # host-bound
    ring = {"alpha": 125e-6, "beta": 0.8e-9, "gamma": GAMMA}
    n = 16
    cross = model.crossover(net, ring, n)
    assert model.predict("direct", net, n, cross) == pytest.approx(
        model.predict("ring", ring, n, cross))
    assert model.predict("direct", net, n, cross / 2) < model.predict("ring", ring, n, cross / 2)
    assert model.crossover(net, {**ring, "alpha": 0.0}, n) == 0.0


def test_main_on_synthetic_json(tmp_path, capsys):
    truth = {"mailbox": {"alpha": 30e-6, "alpha_peer": 12e-6, "beta_mem": 0.2e-9},
             "shared": {"alpha": 150e-6, "alpha_peer": 40e-6, "beta_mem": 0.3e-9},
             "direct": {"alpha": 110e-6, "alpha_peer": 35e-6, "beta": 0.5e-9, "gamma": GAMMA},
             "ring": {"alpha": 95e-6, "beta": 0.6e-9, "gamma": GAMMA}}

    def write(name, network):
        rows = []
        for n in (2, 4):
            for m in SIZES:
                row = {"world": n, "elements": m // 4, "bytes": m}
                name = model.algorithm_of(row, network)
                # 2 cores: at world 4 two ranks share each core, and take twice as long
                row["dtrain_s"] = model.predict(name, truth[name], n, m) * max(1, n / 2)
                rows.append(row)
        path = tmp_path / name
        path.write_text(json.dumps({"benchmark": "allreduce", "meta": {"nproc": 2},
                                    "rows": rows}))
        return str(path)

    out = tmp_path / "model.json"
    model.main([write("shm.json", False), "--net", write("net.json", True),
                "--gamma-ns", str(GAMMA * 1e9), "--json", str(out)])
    assert "crossover" in capsys.readouterr().out
    data = json.loads(out.read_text())
    for name, params in truth.items():
        for key, value in params.items():
            assert data["fits"][name]["params"][key] == pytest.approx(value, rel=1e-6)
    rows = data["predictions"]
    assert len(rows) == 2 * 5 * 4
    big = next(r for r in rows if (r["link_gbps"], r["ranks"], r["bytes"]) == (10, 8, 64 * 2**20))
    assert big["best_s"] == big["ring_s"] and big["dtrain_picks"] == "ring"
    assert big["best_busbw_Bps"] <= 1.25e9 * (1 + 1e-9)  # never faster than the link
    assert math.isfinite(rows[-1]["hier_s"])
