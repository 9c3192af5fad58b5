"""Turning raw results into results.json, report.md and rate-distortion plots."""

from __future__ import annotations

import json
import math
import platform
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fpcodec.bench.bdrate import bd_rate
from fpcodec.bench.metrics import ssim_db
from fpcodec.codec.atomic import atomic_file


def _ok(r: dict) -> bool:
    return "bytes" in r and "error" not in r and "skipped" not in r


def _fps(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else math.nan  # nothing was run (the source itself)


def _nanmean(xs: list[float]) -> float:
    """Mean of the measured values (rows cached before a metric existed lack it)."""
    v = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def aggregate(results: list[dict]) -> dict[str, dict]:
    """Per codec setting, totals over the clips it ran on."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if _ok(r):
            groups[f"{r['family']} | {r['setting']}"].append(r)
    out = {}
    for key, rs in groups.items():
        px = sum(r["frames"] * r["width"] * r["height"] for r in rs)
        nbytes = sum(r["bytes"] for r in rs)
        src = sum(r["source_bytes"] for r in rs)
        sq = sum(r["mse"] * r["frames"] * r["width"] * r["height"] for r in rs)
        frames = sum(r["frames"] for r in rs)
        out[key] = {
            "family": rs[0]["family"],
            "setting": rs[0]["setting"],
            "codec": rs[0]["codec"],
            "lossless": rs[0]["lossless"],
            "clips": len(rs),
            "bytes": nbytes,
            "source_bytes": src,
            "ratio": nbytes / max(src, 1),
            "bpp": 8.0 * nbytes / max(px, 1),
            "pd": float(np.mean([r["pd"] for r in rs])),
            "psnr": 10 * math.log10(255**2 / (sq / px)) if sq > 0 else math.inf,
            "ssim": _nanmean([r.get("ssim", math.nan) for r in rs]),
            "ms_ssim": _nanmean([r.get("ms_ssim", math.nan) for r in rs]),
            "exact": all(r.get("exact") for r in rs),
            "max_abs_error": max(r.get("max_abs_error", 0) for r in rs),
            "enc_fps": _fps(frames, sum(r["enc_s"] for r in rs)),
            "dec_fps": _fps(frames, sum(r["dec_s"] for r in rs)),
            "peak_mb": max((r.get("enc_peak_rss_mb") or math.nan for r in rs), default=math.nan),
        }
    return out


def curves(agg: dict[str, dict]) -> dict[str, list[dict]]:
    fam: dict[str, list[dict]] = defaultdict(list)
    for a in agg.values():
        if not a["lossless"]:
            fam[a["family"]].append(a)
    return {k: sorted(v, key=lambda a: a["bpp"]) for k, v in fam.items()}


# The qualities BD-rates are taken at: (key, what a row's value is on the fitted scale).
# SSIM and MS-SSIM saturate at 1, where a cubic in raw SSIM would fit a few thousandths
# and overstate differences near 1, so both are fitted in dB, -10 log10(1 - value)
# (bench/bdrate.py); a clip's value is the mean over its measured frames, and an
# aggregate curve pools 1 - SSIM over clips before taking the dB, as PSNR pools MSE.
BD_METRICS: dict[str, Callable[[dict], float]] = {
    "pd": lambda r: r.get("pd", math.nan),
    "psnr": lambda r: r.get("psnr", math.nan),
    "ssim": lambda r: ssim_db(r.get("ssim", math.nan)),
    "ms_ssim": lambda r: ssim_db(r.get("ms_ssim", math.nan)),
}
BD_LABELS = {"pd": "PD", "psnr": "PSNR", "ssim": "SSIM (dB)", "ms_ssim": "MS-SSIM (dB)"}


def per_clip_bd_by_clip(
    results: list[dict], anchor: str, test: str, metric: str = "pd"
) -> dict[str, float]:
    """BD-rate of `test` against `anchor` at equal `metric` (a BD_METRICS key), clip by
    clip: the clips both ran on with at least two points each; nan where their ranges
    do not meet or the metric was not measured.

    The aggregate curves average PD over clips but total the bytes, so moving bits
    between clips moves the aggregate BD-rate without any clip getting better; the
    per-clip figures cannot be moved that way."""
    q = BD_METRICS[metric]
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        if _ok(r) and not r["lossless"] and r["family"] in (anchor, test):
            by[(r["family"], r["clip"])].append(r)
    out = {}
    for clip in sorted({c for f, c in by if f == test}):
        a, b = by.get((anchor, clip), []), by[(test, clip)]
        if len(a) >= 2 and len(b) >= 2:
            out[clip] = bd_rate(
                [r["bytes"] for r in a],
                [q(r) for r in a],
                [r["bytes"] for r in b],
                [q(r) for r in b],
            )
    return out


def per_clip_bd(results: list[dict], anchor: str, test: str, metric: str = "pd") -> list[float]:
    """per_clip_bd_by_clip's values, in clip order."""
    return list(per_clip_bd_by_clip(results, anchor, test, metric).values())


def _curve_quality(p: dict, metric: str) -> float:
    """A point of an aggregate curve on the fitted scale."""
    if metric in ("ssim", "ms_ssim"):
        return ssim_db(p.get(metric, math.nan))
    return p[metric]


def bd_table(agg: dict[str, dict], default_predictor: str, results: list[dict]) -> list[dict]:
    cs = curves(agg)
    test = f"fpcodec lossy ({default_predictor})"
    ours = cs.get(test)
    rows = []
    if not ours:
        return rows
    refs = [k for k in ("x264", "x265", "av1-444", "av1", "webp-lossy") if k in cs]
    refs += [k for k in cs if k.startswith("fpcodec lossy") and k != test]
    for ref in refs:
        a = cs[ref]
        row: dict = {"test": test, "anchor": ref}
        for metric in BD_METRICS:
            row[f"bd_rate_{metric}"] = bd_rate(
                [p["bpp"] for p in a],
                [_curve_quality(p, metric) for p in a],
                [p["bpp"] for p in ours],
                [_curve_quality(p, metric) for p in ours],
            )
            clips = per_clip_bd(results, ref, test, metric)
            known = [x for x in clips if math.isfinite(x)]
            row[f"bd_rate_{metric}_clip_mean"] = float(np.mean(known)) if known else math.nan
            row[f"bd_rate_{metric}_clip_median"] = float(np.median(known)) if known else math.nan
            row[f"clips_won_{metric}"] = sum(x < 0 for x in known)
            row[f"clips_compared_{metric}"] = len(known)
        # the names the report used before it measured more than PD
        row["clips_won"], row["clips_compared"] = row["clips_won_pd"], row["clips_compared_pd"]
        rows.append(row)
    return rows


def per_clip_bd_table(results: list[dict], default_predictor: str, anchor: str) -> list[dict]:
    """One row per clip: BD-rate of the default predictor's lossy curve against
    `anchor` at equal PD, PSNR, SSIM and MS-SSIM."""
    test = f"fpcodec lossy ({default_predictor})"
    cols = {m: per_clip_bd_by_clip(results, anchor, test, m) for m in BD_METRICS}
    clips = sorted(set().union(*(c.keys() for c in cols.values())))
    return [
        {"clip": c, "anchor": anchor, **{m: cols[m].get(c, math.nan) for m in BD_METRICS}}
        for c in clips
    ]


def _lossless_gifs(results: list[dict]) -> dict[str, dict[str, dict]]:
    """Lossless results on GIF sources: clip -> codec family -> result."""
    by: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in results:
        if _ok(r) and r["lossless"] and r.get("source_kind") == "gif":
            by[r["clip"]][r["family"]] = r
    return by


def per_file_wins(results: list[dict], ours_family: str) -> dict:
    """For each lossless anchor: on how many GIFs is fpcodec's lossless file smaller?"""
    by = _lossless_gifs(results)
    wins = {}
    for anchor in ("gif", "gifsicle", "webp", "apng", "ffv1", "x264-lossless"):
        pairs = [
            (v[ours_family]["bytes"], v[anchor]["bytes"])
            for v in by.values()
            if ours_family in v and anchor in v
        ]
        if pairs:
            wins[anchor] = {"smaller": sum(a < b for a, b in pairs), "of": len(pairs)}
    return wins


def per_file_table(results: list[dict], ours_family: str) -> list[dict]:
    """One row per GIF: lossless bytes of fpcodec and the GIF anchors, and whether
    fpcodec decodes it faster than the GIF plays (frames / total display time)."""
    rows = []
    for clip, fams in sorted(_lossless_gifs(results).items()):
        ours = fams.get(ours_family)
        if ours is None:
            continue
        # results cached before durations were recorded lack them: any codec's will do
        dur = next((r["duration_s"] for r in fams.values() if r.get("duration_s")), None)
        play = ours["frames"] / dur if dur else math.nan
        dec = _fps(ours["frames"], ours["dec_s"])
        rows.append(
            {
                "clip": clip,
                "frames": ours["frames"],
                "size": f"{ours['width']}x{ours['height']}",
                "source_bytes": ours["source_bytes"],
                "fpcodec": ours["bytes"],
                "gifsicle": fams.get("gifsicle", {}).get("bytes"),
                "webp": fams.get("webp", {}).get("bytes"),
                "ratio": ours["bytes"] / max(ours["source_bytes"], 1),
                "enc_fps": _fps(ours["frames"], ours["enc_s"]),
                "dec_fps": dec,
                "play_fps": play,
                "realtime": bool(dec >= play) if math.isfinite(play) else None,
            }
        )
    return rows


def predictor_table(agg: dict[str, dict], leaderboard: list[dict]) -> list[dict]:
    """Every predictor side by side: one-step PD, lossless bytes and codec speed; a
    `+float` row is the float network the integer predictor was quantised from."""
    lb = {r["predictor"]: r for r in leaderboard}
    names = sorted(
        {
            a["family"].rsplit("(", 1)[1].rstrip(")")
            for a in agg.values()
            if a["family"].startswith("fpcodec lossless")
        }
    )
    rows = []
    for p in names:
        pal = agg.get(f"fpcodec lossless ({p}) | lossless")
        pix = agg.get(f"fpcodec lossless, pixels only ({p}) | lossless")
        if pal is None and pix is None:
            continue
        r = lb.get(p, {})
        rows.append(
            {
                "predictor": p,
                "pd": r.get("pd", math.nan),
                "pd_ratio_to_last": r.get("ratio_to_last", math.nan),
                "predict_fps": r.get("fps", math.nan),
                "lossless_bytes": pal["bytes"] if pal else None,
                "pixel_bytes": pix["bytes"] if pix else None,
                "enc_fps": (pal or pix)["enc_fps"],
                "dec_fps": (pal or pix)["dec_fps"],
                "pixel_enc_fps": pix["enc_fps"] if pix else math.nan,
                "pixel_dec_fps": pix["dec_fps"] if pix else math.nan,
            }
        )
    return rows


def _fmt(x: float, nd: int = 3) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:.{nd}f}"


def write_plots(agg: dict[str, dict], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return []
    files = []
    cs = curves(agg)
    if not cs:  # a lossless-only run has no rate-distortion curves to draw
        return files
    for metric, label, name in (
        ("pd", "perceptual distance (lower is better)", "rd_pd.png"),
        ("psnr", "PSNR dB (higher is better)", "rd_psnr.png"),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 5))
        for fam, pts in sorted(cs.items()):
            xs = [p["bpp"] for p in pts]
            ys = [p[metric] for p in pts if math.isfinite(p[metric])]
            if len(ys) != len(xs):
                continue
            style = "-o" if fam.startswith("fpcodec") else "--s"
            ax.plot(xs, ys, style, label=fam, markersize=3)
        ax.set_xscale("log")
        # a log axis over less than a decade labels its minor ticks too, and those
        # labels ran into each other: label the major ticks only, in plain numbers
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("bits per pixel (log)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def write_report(
    out: Path, results: list[dict], leaderboard: list[dict], meta: dict, default_predictor: str
) -> dict:
    agg = aggregate(results)
    bds = bd_table(agg, default_predictor, results)
    wins = per_file_wins(results, f"fpcodec lossless ({default_predictor})")
    plots = write_plots(agg, out)
    lb = summarise_leaderboard(leaderboard)
    files = per_file_table(results, f"fpcodec lossless ({default_predictor})")
    preds = predictor_table(agg, lb)
    payload = {
        "meta": {
            **meta,
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": platform.processor(),
            },
        },
        "results": [{k: v for k, v in r.items() if k != "strip"} for r in results],
        "aggregate": agg,
        "lossless_by_source": {
            kind: aggregate([r for r in results if r.get("source_kind") == kind])
            for kind in sorted({r.get("source_kind") for r in results if _ok(r)})
        },
        "bd_rate": bds,
        "bd_rate_per_clip": {
            b["anchor"]: per_clip_bd_table(results, default_predictor, b["anchor"]) for b in bds
        },
        "per_file_wins": wins,
        "per_file": files,
        "predictors": preds,
        "leaderboard": lb,
        "leaderboard_raw": [{k: v for k, v in r.items() if k != "strip"} for r in leaderboard],
    }
    # the caller has checked whether replacing a report was asked for (--force)
    with atomic_file(out / "results.json", force=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, default=float))
    with atomic_file(out / "report.md", force=True) as tmp:
        tmp.write_text(markdown(payload, plots, default_predictor))
    return payload


def summarise_leaderboard(rows: list[dict]) -> list[dict]:
    by = defaultdict(list)
    for r in rows:
        if "pd" in r:
            by[r["predictor"]].append(r)
    base = {r["clip"]: r["pd"] for r in by.get("last", [])}
    out = []
    for p, rs in by.items():
        ratios = [r["pd"] / base[r["clip"]] for r in rs if base.get(r["clip"])]
        out.append(
            {
                "predictor": p,
                "pd": float(np.mean([r["pd"] for r in rs])),
                "ratio_to_last": float(
                    np.mean([r["pd"] for r in rs])
                    / np.mean([base[r["clip"]] for r in rs if r["clip"] in base])
                )
                if base
                else math.nan,
                "clips_better_than_last": sum(x < 1 for x in ratios),
                "clips": len(rs),
                "fps": float(np.median([r["fps"] for r in rs])),
            }
        )
    return sorted(out, key=lambda r: r["pd"])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def codec_label(a: dict) -> str:
    """A table row's name: the family, and the setting where it adds something
    ("fpcodec lossless (last)", not "fpcodec lossless (last) (lossless)")."""
    setting = str(a["setting"])
    if setting in a["family"] or (setting == "lossless" and "lossless" in a["family"]):
        return a["family"]
    return f"{a['family']} ({setting})"


def _lossless_rows(lossless: list[dict]) -> list[str]:
    return _table(
        [
            "codec",
            "clips",
            "total bytes",
            "x source",
            "bpp",
            "exact",
            "PSNR",
            "encode fps",
            "decode fps",
            "peak MB",
        ],
        [
            [
                codec_label(a),
                str(a["clips"]),
                f"{a['bytes']:,}",
                _fmt(a["ratio"]),
                _fmt(a["bpp"]),
                "yes" if a["exact"] else "NO",
                _fmt(a["psnr"], 2),
                _fmt(a["enc_fps"], 1),
                _fmt(a["dec_fps"], 1),
                _fmt(a["peak_mb"], 0),
            ]
            for a in lossless
        ],
    )


BD_METHOD = (
    "BD-rate: log(bytes) fitted as a cubic in quality on each curve (fewer points: the "
    "highest degree they allow), the mean difference over the quality interval both "
    "curves span; negative: fpcodec needs fewer bytes for the same quality. SSIM and "
    "MS-SSIM saturate at 1, where a cubic in raw SSIM fits differences of thousandths "
    "and overstates them, so both are taken in dB, -10 log10(1 - SSIM), which turns the "
    "saturating end into a scale as even as PSNR's (an aggregate point pools 1 - SSIM "
    "over clips, as PSNR pools squared error). SSIM: scikit-image, uniform 7x7 "
    "window, per RGB channel, averaged; MS-SSIM: Wang et al. 2003 (11-tap Gaussian, "
    "sigma 1.5, five scales, 2x2 mean downsampling; frames under 176 pixels use the "
    "scales they have, weights renormalised: four at 128x128), per RGB channel, "
    "averaged. Both on up to 8 evenly spaced frames per clip, over the whole frame. "
    "Aggregate: one curve per codec (bytes totalled, quality averaged over clips); per "
    "clip: each clip's own curves, then mean, median and clips won."
)


def _pct(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else _fmt(x, 1) + "%"


def _bd_markdown(bds: list[dict], per_clip: dict[str, list[dict]]) -> list[str]:
    ms = list(BD_METRICS)
    lines = ["", "## BD-rate (negative: fpcodec needs fewer bits for the same quality)", ""]
    lines += [BD_METHOD, "", "Aggregate curves:", ""]
    lines += _table(
        ["test", "anchor"] + [f"at equal {BD_LABELS[m]}" for m in ms],
        [
            [b["test"], b["anchor"]] + [_pct(b.get(f"bd_rate_{m}", math.nan)) for m in ms]
            for b in bds
        ],
    )
    lines += ["", "Per clip (each clip's own curves): mean / median / clips won:", ""]
    lines += _table(
        ["test", "anchor"] + [BD_LABELS[m] for m in ms],
        [
            [b["test"], b["anchor"]]
            + [
                f"{_pct(b.get(f'bd_rate_{m}_clip_mean', math.nan))} / "
                f"{_pct(b.get(f'bd_rate_{m}_clip_median', math.nan))} / "
                f"{b.get(f'clips_won_{m}', 0)} of {b.get(f'clips_compared_{m}', 0)}"
                for m in ms
            ]
            for b in bds
        ],
    )
    for anchor, rows in per_clip.items():
        if not rows:
            continue
        opened = " open" if anchor == "x264" else ""
        lines += [
            "",
            f"<details{opened}><summary>Per clip against {anchor}</summary>",
            "",
        ]
        lines += _table(
            ["clip"] + [BD_LABELS[m] for m in ms],
            [[r["clip"]] + [_pct(r[m]) for m in ms] for r in rows],
        )
        lines += ["", "</details>"]
    return lines


def markdown(p: dict, plots: list[str], default_predictor: str) -> str:
    agg = p["aggregate"]
    m = p["meta"]
    tools = ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).items())
    lines = [
        "# fpcodec benchmark",
        "",
        f"Corpus `{m.get('corpus')}`: {m.get('clips')} clips. fpcodec {m.get('version')} "
        f"(code {m.get('code_version')}). Every number comes from files written and decoded "
        "by each format's real decoder. bpp = 8 x bytes / (frames x width x height); "
        "perceptual distance (PD) is the catz redmean distance averaged over visible pixels "
        "and frames, then over clips; PSNR pools the squared error over all visible pixels; "
        "SSIM and MS-SSIM average up to 8 frames per clip. peak MB: the largest resident set of "
        "the "
        "encoding process over the clips (fpcodec: the benchmark worker during encode, "
        "which also holds the clip; gifsicle and aomenc: the tool's own process; Pillow "
        "and PyAV anchors: the worker over encode and decode).",
        "",
        f"Tools: {tools}. Command: `{m.get('command')}`",
        "",
    ]
    notes = m.get("anchor_settings") or {}
    if notes:
        lines += ["Anchor settings: " + "; ".join(f"{k}: {v}" for k, v in notes.items()), ""]
    if m.get("skipped"):
        lines += ["Skipped: " + "; ".join(sorted(set(m["skipped"]))), ""]
    if m.get("errors"):
        lines += ["Errors: " + "; ".join(sorted(set(m["errors"]))[:10]), ""]
    by_kind = p.get("lossless_by_source") or {"": agg}
    for kind, kagg in by_kind.items():
        lossless = sorted((a for a in kagg.values() if a["lossless"]), key=lambda a: a["bytes"])
        if not lossless:
            continue
        title = f", {kind} sources" if kind else ""
        lines += [f"## Lossless{title} (sorted by total bytes)", ""]
        lines += _lossless_rows(lossless)
        lines.append("")
    if p["per_file_wins"]:
        lines += ["", f"Per GIF, fpcodec lossless ({default_predictor}) is smaller than:", ""]
        for k, v in p["per_file_wins"].items():
            share = 100 * v["smaller"] / max(v["of"], 1)
            lines.append(f"- {k}: {v['smaller']} of {v['of']} files ({share:.0f}%)")
    if p.get("per_file"):
        rows = p["per_file"]
        rt = [r for r in rows if r["realtime"] is not None]
        med_dec = float(np.median([r["dec_fps"] for r in rows]))
        med_margin = float(np.median([r["dec_fps"] / r["play_fps"] for r in rt])) if rt else 0
        lines += [
            "",
            f"Decoding ({default_predictor}, one process): median {med_dec:.1f} frames/s; "
            f"faster than real-time playback on {sum(r['realtime'] for r in rt)} of {len(rt)} "
            f"GIFs; median decode speed / playback speed {med_margin:.2f}.",
            "",
            "<details><summary>Per GIF (lossless bytes; real-time: decode frames/s at least "
            "the GIF's own frames/s)</summary>",
            "",
        ]
        lines += _table(
            [
                "clip",
                "frames",
                "size",
                "GIF bytes",
                "fpcodec",
                "x GIF",
                "gifsicle -O3",
                "WebP lossless",
                "decode fps",
                "playback fps",
                "real-time",
            ],
            [
                [
                    r["clip"],
                    str(r["frames"]),
                    r["size"],
                    f"{r['source_bytes']:,}",
                    f"{r['fpcodec']:,}",
                    _fmt(r["ratio"]),
                    f"{r['gifsicle']:,}" if r["gifsicle"] else "-",
                    f"{r['webp']:,}" if r["webp"] else "-",
                    _fmt(r["dec_fps"], 1),
                    _fmt(r["play_fps"], 1),
                    {True: "yes", False: "no", None: "-"}[r["realtime"]],
                ]
                for r in rows
            ],
        )
        lines += ["", "</details>"]
    if p.get("predictors"):
        lines += [
            "",
            "## Predictors",
            "",
            "One-step PD from true frames (the leaderboard), total lossless bytes (GIF "
            "structure coding where it applies, and the pixel path alone, where the "
            "prediction is all that matters) and codec speed. `+float` rows run the "
            "float network the integer predictor was quantised from (benchmark only: "
            "float inference is not reproducible across machines).",
            "",
        ]
        lines += _table(
            [
                "predictor",
                "one-step PD",
                "x last",
                "predict fps",
                "lossless bytes",
                "pixel-path bytes",
                "encode fps",
                "decode fps",
                "pixel-path enc/dec fps",
            ],
            [
                [
                    r["predictor"],
                    _fmt(r["pd"], 3),
                    _fmt(r["pd_ratio_to_last"], 3),
                    _fmt(r["predict_fps"], 1),
                    f"{r['lossless_bytes']:,}" if r["lossless_bytes"] else "-",
                    f"{r['pixel_bytes']:,}" if r["pixel_bytes"] else "-",
                    _fmt(r["enc_fps"], 1),
                    _fmt(r["dec_fps"], 1),
                    f"{_fmt(r['pixel_enc_fps'], 1)} / {_fmt(r['pixel_dec_fps'], 1)}",
                ]
                for r in p["predictors"]
            ],
        )
    lossy = sorted(
        (a for a in agg.values() if not a["lossless"]), key=lambda a: (a["family"], a["bpp"])
    )
    lines += ["", "## Near-lossless and lossy", ""]
    lines += _table(
        [
            "codec",
            "setting",
            "bpp",
            "PD",
            "PSNR",
            "SSIM",
            "MS-SSIM",
            "max abs err",
            "encode fps",
            "decode fps",
            "peak MB",
        ],
        [
            [
                a["family"],
                a["setting"],
                _fmt(a["bpp"]),
                _fmt(a["pd"], 2),
                _fmt(a["psnr"], 2),
                _fmt(a["ssim"], 4),
                _fmt(a.get("ms_ssim", math.nan), 4),
                str(a["max_abs_error"]),
                _fmt(a["enc_fps"], 1),
                _fmt(a["dec_fps"], 1),
                _fmt(a["peak_mb"], 0),
            ]
            for a in lossy
        ],
    )
    if p["bd_rate"]:
        lines += _bd_markdown(p["bd_rate"], p.get("bd_rate_per_clip") or {})
    if p["leaderboard"]:
        lines += ["", "## Prediction leaderboard (one step ahead from true frames)", ""]
        lines += _table(
            ["predictor", "PD", "x last", "clips better than last", "frames/s"],
            [
                [
                    r["predictor"],
                    _fmt(r["pd"], 3),
                    _fmt(r["ratio_to_last"], 3),
                    f"{r['clips_better_than_last']} of {r['clips']}",
                    _fmt(r["fps"], 1),
                ]
                for r in p["leaderboard"]
            ],
        )
    # a size class no clip of this run has would be an empty "| 0 | n/a" row
    speed = [row for row in m.get("speed") or [] if row.get("clips")]
    if speed:
        lines += ["", "## Speed of the default predictor by frame size (frames/s, 2 CPU cores)", ""]
        lines += _table(
            [
                "frame size",
                "clips",
                "lossless encode",
                "lossless decode",
                "lossy encode",
                "lossy decode",
            ],
            [
                [
                    row["size"],
                    str(row["clips"]),
                    _fmt(row["enc_lossless"], 1),
                    _fmt(row["dec_lossless"], 1),
                    _fmt(row["enc_lossy"], 1),
                    _fmt(row["dec_lossy"], 1),
                ]
                for row in speed
            ],
        )
    if plots:
        lines += ["", "## Rate-distortion", ""] + [f"![{pl}]({pl})" for pl in plots]
    if m.get("strips"):
        lines += [
            "",
            "## Prediction strips",
            "",
            "Rows: inputs t-3..t-1 and the truth; then per predictor (leaderboard order) "
            "its prediction and error map (x4).",
            "",
        ]
        lines += [f"![{s}]({s})" for s in m["strips"]]
    return "\n".join(lines) + "\n"


def speed_rows(results: list[dict], default_predictor: str) -> list[dict]:
    rows = []
    classes = {
        "128x128": lambda r: r["width"] * r["height"] <= 128 * 128,
        "480x270": lambda r: r["width"] == 480 and r["height"] == 270,
    }
    for name, pick in classes.items():
        sel = [r for r in results if _ok(r) and pick(r) and r["codec"] == "fpcodec"]

        def fps(fam: str, key: str, sel=sel) -> float:
            rs = [r for r in sel if r["family"] == fam]
            return (
                sum(r["frames"] for r in rs) / max(sum(r[key] for r in rs), 1e-9)
                if rs
                else math.nan
            )

        clips = {r["clip"] for r in sel}
        rows.append(
            {
                "size": name,
                "clips": len(clips),
                "enc_lossless": fps(f"fpcodec lossless ({default_predictor})", "enc_s"),
                "dec_lossless": fps(f"fpcodec lossless ({default_predictor})", "dec_s"),
                "enc_lossy": fps(f"fpcodec lossy ({default_predictor})", "enc_s"),
                "dec_lossy": fps(f"fpcodec lossy ({default_predictor})", "dec_s"),
            }
        )
    return rows
