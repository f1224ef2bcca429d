"""Benchmark outputs: the result JSON, a Markdown table (one row per backend; skipped and failed rows carry their
reason) and a PNG plot of latency against mask AP (matplotlib, Agg: no display needed).

Without mask AP (random weights, or classes that do not match the data) the plot shows the latency per backend
split into pre-processing, inference and post-processing instead, and says why AP is missing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

COLUMNS = ("backend", "device", "precision", "status", "mean ms", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "min ms",
           "max ms", "img/s", "pre ms", "infer ms", "post ms", "peak RSS MB", "GPU MB", "mask AP", "AP50", "AP75")
DASH = "-"


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_json(doc: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False, default=str) + "\n")
    return path


def _ms(v: Any) -> str:
    if v is None:
        return DASH
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _num(v: Any, fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def _ap(acc: dict | None, key: str) -> str:
    v = (acc or {}).get(key)
    return DASH if v is None else f"{100 * v:.1f}"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table_row(r: dict[str, Any]) -> list[str]:
    """The Markdown cells of one result row (``COLUMNS``)."""
    head = [r["backend"], r["device"], r["precision"]]
    if r["status"] != "ok":
        reason = r.get("reason") or ""
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        return head + [_cell(f"{r['status']}: {reason}")] + [DASH] * (len(COLUMNS) - 4)
    lat, st, mem, acc = r["latency_ms"], r["stages_ms"], r.get("memory") or {}, r.get("accuracy")
    return head + ["ok"] + [_ms(lat[k]) for k in ("mean", "p50", "p90", "p95", "p99", "min", "max")] + [
        _num(r.get("throughput_ips"), ".2f"), _ms(st["pre"]["mean"]), _ms(st["infer"]["mean"]),
        _ms(st["post"]["mean"]), _num(mem.get("cpu_peak_rss_mb"), ".0f"), _num(mem.get("gpu_peak_mb"), ".0f"),
        _ap(acc, "AP"), _ap(acc, "AP50"), _ap(acc, "AP75")]


def _versions(libs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {libs.get(k) or 'not installed'}" for k in ("torch", "onnxruntime", "tensorrt", "numpy"))


def markdown(doc: dict[str, Any]) -> str:
    """The Markdown report: title, accuracy note, the table, then machine, settings and column definitions."""
    s, m = doc["settings"], doc["machine"]
    gpu = m.get("gpu")
    lines = [f"# LapMask benchmark: {s['preset']}" + (f" ({s['name']})" if s.get("name") else ""), ""]
    if s.get("accuracy_note"):
        lines += [f"**{s['accuracy_note'][0].upper() + s['accuracy_note'][1:]}.**", ""]
    else:
        lines += [f"Mask AP on {s['dataset']['name']}: {s['eval_images']} image(s) scored; weights {s['weights']}.",
                  ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in doc["results"]]
    p99 = "p99 needs >= 100 runs" if s["runs"] < 100 else "p99 over the timed runs"
    lines += [
        "",
        f"- Machine: {m['cpu']} ({m['cpu_count']} logical cores"
        + (f", load average {m['load_average_at_start'][0]} at start" if m.get("load_average_at_start") else "")
        + "); GPU: "
        + (f"{gpu['name']} (sm {gpu['compute_capability']}, CUDA {gpu['cuda_runtime']})" if gpu else "none")
        + f"; {_versions(m['libraries'])}; Python {m['python']}.",
        (f"- Settings: {s['runs']} timed runs after {s['warmup']} warm-up runs per backend, batch 1, "
        f"{s['latency_images']} image(s) cycled from {s['dataset']['name']}; input: {s['input']}; threads: "
        f"{s['threads'] or 'library default'}; K_pre {s['k_pre']}, max_dets {s['max_dets']}; {doc['created']}."),
        (f"- Latency (ms) = pre + infer + post for one image, wall clock, GPU work synchronised; {p99}. "
        "pre = resize + pad (`lapmask.preprocess.prepare_image`), infer = the deploy graph incl. host<->device copies, "
        "post = paste to the original size + threshold + boxes (`lapmask.postprocess.postprocess_static`); "
        "pre/infer/post columns are means; img/s = 1000 / mean."),
        ("- peak RSS MB: high-water resident set of the backend's own process (interpreter and libraries included); "
        "GPU MB: device memory above the CUDA-context baseline (cudaMemGetInfo, sampled per run)."),
        "- mask AP, AP50, AP75: COCO segm AP x100 (pycocotools) through the same three stages.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Latency (p50, ms) vs mask AP per backend, or stacked stage latencies when no row has an AP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in doc["results"] if r["status"] == "ok"]
    with_ap = [r for r in ok if (r.get("accuracy") or {}).get("AP") is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    title = f"LapMask {doc['settings']['preset']} on {(doc['machine'].get('gpu') or {}).get('name') or doc['machine']['cpu']}"
    if with_ap:
        for r in with_ap:
            x, y = r["latency_ms"]["p50"], 100 * r["accuracy"]["AP"]
            ax.scatter([x], [y], s=60, marker="o" if r["precision"] == "fp32" else "s")
            ax.annotate(r["backend"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        xs = [r["latency_ms"]["p50"] for r in with_ap]
        log = max(xs) > 10 * min(xs)  # CPU and GPU rows together span decades
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.2, y=0.15)
        ax.set_xlabel(f"latency p50 per image (ms{', log scale' if log else ''}); circles fp32, squares fp16")
        ax.set_ylabel("mask AP")
        ax.grid(True, which="both", alpha=0.3)
    elif ok:
        names = [r["backend"] for r in ok]
        left = [0.0] * len(ok)
        for stage, colour in (("pre", "#8fb3d9"), ("infer", "#2f6ca3"), ("post", "#e39a4c")):
            vals = [r["stages_ms"][stage]["mean"] for r in ok]
            ax.barh(names, vals, left=left, color=colour, label=stage)
            left = [a + b for a, b in zip(left, vals)]
        for i, total in enumerate(left):
            ax.annotate(f"{total:.1f} ms", (total, i), textcoords="offset points", xytext=(4, 0), va="center",
                        fontsize=8)
        ax.set_xlim(0, max(left) * 1.15)
        ax.invert_yaxis()
        ax.set_xlabel("mean latency per image (ms)")
        ax.legend(loc="lower right")
        title += "\n" + (doc["settings"].get("accuracy_note") or "no mask AP")
    else:
        ax.text(0.5, 0.5, "no backend ran:\n" + "\n".join(f"{r['backend']}: {r['status']}" for r in doc["results"]),
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_reports(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``latency_vs_ap.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(doc, out / "bench.json"), "markdown": out / "bench.md",
             "plot": plot(doc, out / "latency_vs_ap.png")}
    paths["markdown"].write_text(markdown(doc))
    return paths
