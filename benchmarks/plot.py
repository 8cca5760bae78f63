"""Draw the dtrain-versus-gloo chart from a communication benchmark's JSON.

    python -m benchmarks.allreduce --world 2 4 --json allreduce.json
    python -m benchmarks.plot allreduce.json [-o allreduce.png]

Top panel: time per call against message size, log-log, one line per (library, world size);
bottom panel: dtrain's time / gloo's at each size, one line per world size (below 1.0, dtrain
is faster). The JSON of ``python -m benchmarks.p2p --json p2p.json`` works too: its one-way
send/recv time, at world 2. Rows without a gloo figure (torch not installed) give dtrain's
line alone. The output defaults to the JSON's name with .png. Drawing needs matplotlib
(pip install "dtrain[plot]"); reading the JSON into lines (``chart``) does not.
"""
import argparse
import json
from pathlib import Path

from benchmarks._procs import describe, fmt_bytes, fmt_time

LIBRARIES = ("dtrain", "gloo")
# per benchmark: (title, the rows' time key for library L, the rows' ratio key)
KINDS = {"allreduce": ("all_reduce SUM float32: time per call", "{lib}_s", "ratio"),
         "p2p": ("send/recv float32: one-way time (ping-pong / 2)", "{lib}_one_way_s",
                 "one_way_ratio")}


def chart(results):
    """The lines to draw from a benchmark's JSON (a dict), sorted by message size:
    ``{"title", "subtitle", "times": {(library, world): (bytes, seconds)},
    "ratios": {world: (bytes, ratios)}}``, each (bytes, values) a pair of lists."""
    kind = results.get("benchmark")
    if kind not in KINDS:
        raise ValueError(f"not a benchmark JSON this can plot: 'benchmark' is {kind!r}, "
                         f"expected one of {sorted(KINDS)}")
    title, time_key, ratio_key = KINDS[kind]
    times, ratios = {}, {}
    for row in sorted(results["rows"], key=lambda r: (r.get("world", 2), r["bytes"])):
        world = row.get("world", 2)  # p2p rows: two processes
        for lib in LIBRARIES:
            _append(times, (lib, world), row["bytes"], row.get(time_key.format(lib=lib)))
        _append(ratios, world, row["bytes"], row.get(ratio_key))
    meta = results.get("meta")
    return {"title": title, "subtitle": _describe(meta) if meta else "",
            "times": times, "ratios": ratios}


def _append(lines, key, x, y):
    if y is not None:  # None: not measured (no torch)
        xs, ys = lines.setdefault(key, ([], []))
        xs.append(x)
        ys.append(y)


def _describe(meta):
    try:
        return describe(meta)
    except (KeyError, IndexError, TypeError):
        return str(meta.get("date", ""))


def draw(lines, out):
    """Write ``chart(...)``'s lines to an image file, with matplotlib's Agg backend."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError:
        raise SystemExit('plotting needs matplotlib: pip install "dtrain[plot]"') from None
    fig = Figure(figsize=(8, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    worlds = sorted({world for _, world in lines["times"]})
    color = {world: f"C{i}" for i, world in enumerate(worlds)}
    for (lib, world), (xs, ys) in sorted(lines["times"].items(), key=lambda kv: kv[0][::-1]):
        top.loglog(xs, ys, marker="o", color=color[world],
                   linestyle="-" if lib == "dtrain" else "--", label=f"{lib}, world {world}")
    top.set(ylabel="time (median)", title=lines["title"])
    top.yaxis.set_major_formatter(FuncFormatter(lambda y, _: fmt_time(y)))
    seconds = [y for _, ys in lines["times"].values() for y in ys]
    if max(seconds) < 30 * min(seconds):  # under 1.5 decades: label the minor ticks too
        top.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: fmt_time(y)))
    top.legend()
    top.grid(True, which="major", alpha=0.3)
    highest = 1.0
    for world, (xs, ys) in sorted(lines["ratios"].items()):
        bottom.semilogx(xs, ys, marker="o", color=color.get(world), label=f"world {world}")
        highest = max(highest, *ys)
    bottom.axhline(1.0, color="gray", linewidth=1)
    bottom.set(xlabel="message size", ylabel="dtrain / gloo", ylim=(0, highest * 1.1))
    bottom.grid(True, alpha=0.3)
    sizes = sorted({x for xs, _ in lines["times"].values() for x in xs})
    bottom.xaxis.set_major_locator(FixedLocator(sizes))  # a tick at each measured size
    bottom.xaxis.set_minor_locator(NullLocator())
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(round(x))))
    if lines["subtitle"]:
        fig.suptitle(lines["subtitle"], fontsize="x-small")
    fig.savefig(out, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON written by a benchmark's --json")
    parser.add_argument("-o", "--output", type=Path, help="image file (default: RESULTS.png)")
    args = parser.parse_args(argv)
    try:
        lines = chart(json.loads(args.results.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"cannot read {args.results}: {e}") from None
    out = args.output or args.results.with_suffix(".png")
    draw(lines, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
