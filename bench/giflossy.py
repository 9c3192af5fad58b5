"""The GIF lossy report: every setting against the lossless file and gifsicle --lossy.

    python -m fpcodec.bench.giflossy RESULTS_JSON OUT_DIR [--command CMD] [--commit SHA]

Reads the rows of an `fpcodec bench` run over GIFs (predictor `last`, max-errors
and qualities, anchors gifsicle-lossy and jxl) and writes OUT_DIR/results.json and
OUT_DIR/report.md with, per clip and in total: bytes relative to the lossless file
at every setting (and whether any is larger), the bytes at the highest-distance
quality whose perceptual distance is at most 1.5, and the BD-rate against
`gifsicle -O3 --lossy` at equal perceptual distance.

fpcodec's curve is its Pareto front (no point is kept that another beats on both
bytes and distance), with the lossless file as its first point. The BD-rate is
computed twice: with bench/bdrate.py (cubic fits of log-rate, the usual
Bjontegaard method) and with piecewise-linear interpolation of log-rate over the
shared distance interval, which a front of near-vertical steps does not make
oscillate; both are reported.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np

from .bdrate import bd_rate

OURS = "fpcodec"
FAMILIES = ("fpcodec lossless (last)", "fpcodec near-lossless (last)", "fpcodec lossy (last)")


def _ours(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["codec"] == OURS and r.get("family") in FAMILIES]


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(bytes, distance) points no other point beats on both, by distance."""
    front = []
    for b, d in sorted(points, key=lambda p: (p[1], p[0])):
        if not front or b < front[-1][0]:
            front.append((b, d))
    return front


def bd_linear(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Percent rate change of curve b against curve a (each (bytes, distance), a
    Pareto front), log-rate interpolated linearly in distance over the shared range."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    lo = max(a[0][1], b[0][1])
    hi = min(a[-1][1], b[-1][1])
    if not hi > lo:
        return math.nan
    xs = np.linspace(lo, hi, 512)

    def interp(c):
        return np.interp(xs, [p[1] for p in c], [math.log(p[0]) for p in c])

    return float((math.exp(float(np.mean(interp(b) - interp(a)))) - 1) * 100)


def clip_summary(rows: list[dict]) -> dict:
    ours = _ours(rows)
    lossless = next(r for r in ours if r["setting"] == "lossless")
    settings = {
        r["setting"]: {
            "bytes": r["bytes"],
            "vs_lossless": r["bytes"] / lossless["bytes"],
            "pd": r["pd"],
            "codings": r.get("codings"),
        }
        for r in ours
    }
    gs = sorted(
        [(r["bytes"], r["pd"]) for r in rows if r["codec"] == "gifsicle-lossy" and r.get("pd")],
        key=lambda p: p[1],
    )
    front = pareto([(r["bytes"], r["pd"]) for r in ours])
    gfront = pareto(gs)
    qs = [r for r in ours if r["setting"].startswith("Q=") and r["pd"] <= 1.5]
    q15 = min(qs, key=lambda r: r["bytes"]) if qs else None
    anchors = {
        r["codec"] + " " + r["setting"]: r["bytes"]
        for r in rows
        if r["codec"] in ("gif", "gifsicle", "jxl")
    }
    return {
        "clip": lossless["clip"],
        "frames": lossless["frames"],
        "size": f"{lossless['width']}x{lossless['height']}",
        "source_bytes": lossless["source_bytes"],
        "lossless_bytes": lossless["bytes"],
        "settings": settings,
        "larger_than_lossless": sorted(
            s for s, v in settings.items() if v["bytes"] > lossless["bytes"]
        ),
        "quality_at_pd_1_5": None
        if q15 is None
        else {"setting": q15["setting"], "vs_lossless": q15["bytes"] / lossless["bytes"]},
        "gifsicle_lossy": [{"bytes": b, "pd": d} for b, d in gs],
        "gifsicle_pd_range": [gs[0][1], gs[-1][1]] if gs else None,
        "fpcodec_front": [{"bytes": b, "pd": d} for b, d in front],
        "bd_rate_vs_gifsicle_cubic": bd_rate(
            [p[0] for p in gfront],
            [p[1] for p in gfront],
            [p[0] for p in front],
            [p[1] for p in front],
        ),
        "bd_rate_vs_gifsicle_linear": bd_linear(gfront, front),
        "anchors": anchors,
    }


def summarise(results: list[dict]) -> dict:
    by_clip: dict[str, list[dict]] = {}
    for r in results:
        if r.get("source_kind") == "gif" and "error" not in r:
            by_clip.setdefault(r["clip"], []).append(r)
    clips = [
        clip_summary(rows)
        for _, rows in sorted(by_clip.items())
        if any(r["codec"] == OURS and r["setting"] == "lossless" for r in _ours(rows))
    ]
    settings = sorted({s for c in clips for s in c["settings"]}, key=_setting_order)
    total_lossless = sum(c["lossless_bytes"] for c in clips)
    totals = {
        s: sum(c["settings"][s]["bytes"] for c in clips if s in c["settings"]) / total_lossless
        for s in settings
    }
    lin = [c["bd_rate_vs_gifsicle_linear"] for c in clips]
    cub = [c["bd_rate_vs_gifsicle_cubic"] for c in clips]
    fin = [x for x in lin if math.isfinite(x)]
    return {
        "clips": clips,
        "total_vs_lossless": totals,
        "total_source_bytes": sum(c["source_bytes"] for c in clips),
        "total_lossless_bytes": total_lossless,
        "any_setting_larger_than_lossless": any(c["larger_than_lossless"] for c in clips),
        "bd_rate_vs_gifsicle_linear": {
            "mean": statistics.fmean(fin) if fin else math.nan,
            "median": statistics.median(fin) if fin else math.nan,
            "clips_won": sum(x < 0 for x in fin),
            "clips": len(fin),
        },
        "bd_rate_vs_gifsicle_cubic_median": statistics.median([x for x in cub if math.isfinite(x)])
        if any(math.isfinite(x) for x in cub)
        else math.nan,
    }


def _setting_order(s: str) -> tuple[int, float]:
    if s == "lossless":
        return (0, 0)
    kind, _, v = s.partition("=")
    return (1 if kind == "E" else 2, float(v))


def _f(x: float, nd: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{nd}f}"


def _cubic(x: float) -> str:
    """A cubic fit through a front of near-vertical steps can swing by orders of
    magnitude: such a value is shown as unstable (results.json keeps it)."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.1f}%" if abs(x) <= 100 else "unstable"


def markdown(summary: dict, command: str, commit: str, plot: str | None = None) -> str:
    clips = summary["clips"]
    settings = list(summary["total_vs_lossless"])
    lines = [
        "# GIF sources: lossy and near-lossless settings against lossless and gifsicle --lossy",
        "",
        f"Commit `{commit}`. Command:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"{len(clips)} held-out GIFs of the corpus ({summary['total_source_bytes']:,} bytes of "
        f"GIF; fpcodec lossless {summary['total_lossless_bytes']:,} bytes). Real files, "
        "decoded back by the real decoder; distance is the benchmark's perceptual distance "
        "(`pd`, bench/metrics.py; 0 = exact).",
        "",
        "## Bytes relative to the lossless file, in total",
        "",
        "| setting | " + " | ".join(settings) + " |",
        "|---|" + "---|" * len(settings),
        "| total | " + " | ".join(_f(summary["total_vs_lossless"][s]) for s in settings) + " |",
        "",
        "No setting is larger than lossless on any clip: "
        + (
            "**no, some are** (see below)"
            if summary["any_setting_larger_than_lossless"]
            else "**yes**"
        )
        + ".",
        "",
        "## Per clip: bytes relative to lossless (distance)",
        "",
        "| clip | frames | lossless / GIF | " + " | ".join(settings) + " |",
        "|---|---|---|" + "---|" * len(settings),
    ]
    for c in clips:
        cells = []
        for s in settings:
            v = c["settings"].get(s)
            cells.append("–" if v is None else f"{v['vs_lossless']:.3f} ({v['pd']:.2f})")
        lines.append(
            f"| {c['clip']} | {c['frames']} | {c['lossless_bytes'] / c['source_bytes']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    bd = summary["bd_rate_vs_gifsicle_linear"]
    lines += [
        "",
        "## Against gifsicle -O3 --lossy=20..200, at equal perceptual distance",
        "",
        f"BD-rate (piecewise-linear log-rate over the shared distance range): mean "
        f"{_f(bd['mean'], 1)}%, median {_f(bd['median'], 1)}%, fpcodec smaller on "
        f"{bd['clips_won']} of {bd['clips']} clips. Cubic (bench/bdrate.py) median: "
        f"{_cubic(summary['bd_rate_vs_gifsicle_cubic_median'])}.",
        "",
        "| clip | gifsicle distance range | gifsicle bytes / lossless fpcodec | BD-rate linear | "
        "BD-rate cubic | quality at distance ≤ 1.5 (bytes / lossless) |",
        "|---|---|---|---|---|---|",
    ]
    for c in clips:
        rng = c["gifsicle_pd_range"]
        gb = [g["bytes"] / c["lossless_bytes"] for g in c["gifsicle_lossy"]]
        q = c["quality_at_pd_1_5"]
        lines.append(
            f"| {c['clip']} | {'–' if rng is None else f'{rng[0]:.2f}–{rng[1]:.2f}'} | "
            f"{'–' if not gb else f'{min(gb):.2f}–{max(gb):.2f}'} | "
            f"{_f(c['bd_rate_vs_gifsicle_linear'], 1)}% | "
            f"{_cubic(c['bd_rate_vs_gifsicle_cubic'])} | "
            f"{'–' if q is None else q['setting'] + ' ' + _f(q['vs_lossless'])} |"
        )
    names = sorted({n for c in clips for n in c["anchors"]})
    full = [n for n in names if all(n in c["anchors"] for c in clips)]
    ratio = summary["total_lossless_bytes"] / summary["total_source_bytes"]
    lines += [
        "",
        "fpcodec's curve is its Pareto front over every setting above ("
        + ", ".join(settings)
        + "), the lossless file first.",
        "",
    ]
    if plot:
        lines += [
            f"![bytes against distance per clip, fpcodec and gifsicle --lossy]({plot})",
            "",
        ]
    lines += [
        "## Lossless anchors, total bytes relative to the source GIFs",
        "",
        "| codec | bytes / GIF |",
        "|---|---|",
        f"| fpcodec lossless | {ratio:.3f} |",
    ]
    for n in full:
        total = sum(c["anchors"][n] for c in clips)
        lines.append(f"| {n} | {total / summary['total_source_bytes']:.3f} |")
    lines.append("")
    return "\n".join(lines)


PLOT = "rd_gif.png"


def write_plot(summary: dict, out: Path) -> str | None:
    """Bytes against distance per clip: fpcodec's every setting and its front from
    the lossless file (distance 0, bytes 1) down, beside gifsicle --lossy and the
    lossless anchors. Bytes relative to the clip's lossless fpcodec file, so that
    clips of every size share an axis; distance on a symmetric-log axis, which keeps
    0 (lossless) on the plot. None where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    clips = summary["clips"]
    cols = min(4, len(clips))
    rows = -(-len(clips) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, c in zip(axes.flat, clips, strict=False):  # a last row may have spare axes
        lossless = c["lossless_bytes"]
        pts = sorted(c["settings"].items(), key=lambda kv: kv[1]["pd"])
        ax.plot(
            [v["pd"] for _, v in pts],
            [v["vs_lossless"] for _, v in pts],
            "o",
            color="tab:blue",
            alpha=0.3,
            markersize=3,
        )
        for key, style, colour, size, label in (
            ("fpcodec_front", "-o", "tab:blue", 4, "fpcodec front"),
            ("gifsicle_lossy", "--s", "tab:red", 3, "gifsicle -O3 --lossy"),
        ):
            curve = c[key]
            ax.plot(
                [q["pd"] for q in curve],
                [q["bytes"] / lossless for q in curve],
                style,
                color=colour,
                markersize=size,
                label=label,
            )
        for name, marker in (("gif source", "^"), ("gifsicle -O3", "v"), ("jxl lossless", "D")):
            if name in c["anchors"]:
                ax.plot([0], [c["anchors"][name] / lossless], marker, markersize=5, label=name)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_title(c["clip"].rsplit(".", 1)[0][:34], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(clips) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("bytes / lossless fpcodec", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("perceptual distance (symlog)", fontsize=8)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / PLOT, dpi=100)
    plt.close(fig)
    return PLOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--command", default="")
    ap.add_argument("--commit", default="")
    a = ap.parse_args()
    data = json.loads(a.results.read_text())
    summary = summarise(data["results"])
    summary["command"] = a.command
    summary["commit"] = a.commit
    summary["tools"] = data.get("meta", {}).get("tools", {})
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")
    plot = write_plot(summary, a.out)
    (a.out / "report.md").write_text(markdown(summary, a.command, a.commit, plot))


if __name__ == "__main__":
    main()
