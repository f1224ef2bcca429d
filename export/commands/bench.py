"""``lapmask bench --config C [--weights W] [--data DIR] [--backends ...] [--runs N] [--warmup N] [--size HxW]
--out DIR``: latency (and mask AP with trained weights) per backend and precision (``export.bench``).

``--config`` takes a preset name, a model-config JSON, or a bench config (``benchmarks/configs/*.json``, which
names the model and the defaults of every flag; flags given here override it).
"""
from __future__ import annotations

import argparse
import sys

from lapmask.commands.common import add_debug


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="preset (e.g. lite_R18, R50_3x), model-config .json, or bench config .json "
                                     "(benchmarks/configs/); default lite_R18, or the checkpoint's config")
    p.add_argument("--weights", help="trained lapmask checkpoint: adds mask AP; without it the weights are random "
                                     "and only latency is measured")
    p.add_argument("--data", help="COCO folder (annotations/instances_val2017.json + val2017/) or a lapmask dataset "
                                  "(annotations/instances_val.json + val/); default: the synthetic val split")
    p.add_argument("--backends", nargs="+", metavar="NAME",
                   help="backends or groups: all (default), cpu, gpu, pytorch, torchscript, ort, trt, or names such "
                        "as ort-cpu trt-fp16 (see --list-backends)")
    p.add_argument("--runs", type=int, help="timed runs per backend (default 100; p99 needs >= 100)")
    p.add_argument("--warmup", type=int, help="untimed warm-up runs per backend (default 10)")
    p.add_argument("--size", metavar="HxW", help="fixed input size: images are resized to HxW and exports are fixed "
                                                 "to it (default: the preset's official test-time resize)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: library default)")
    p.add_argument("--latency-images", type=int, help="distinct images cycled through the timed runs (default 8)")
    p.add_argument("--eval-images", type=int, help="score mask AP on the first N images only (default: the split)")
    p.add_argument("--timeout", type=float, help="seconds allowed per backend worker (default 3600)")
    p.add_argument("--out", help="output folder: bench.json, bench.md, latency_vs_ap.png, artefacts/, logs/")
    p.add_argument("--list-backends", action="store_true", help="list the backends and whether they can run here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug(p)


def list_backends(gpu: int = 0) -> str:
    from export.bench.backends import BACKENDS, unavailable_reason

    rows = []
    for s in BACKENDS:
        why = unavailable_reason(s, gpu)
        rows.append(f"  {s.name:<18} {s.label:<30} {s.device:<5} {s.precision:<5} "
                    + ("available" if why is None else f"unavailable: {why}"))
    return "backends:\n" + "\n".join(rows)


def settings_from_args(args: argparse.Namespace):  # -> export.bench.harness.BenchSettings
    """Bench config (if --config is one) overridden by the flags that were given."""
    from export.bench.harness import BenchSettings, is_bench_config, load_bench_config, settings_with
    from export.trt_engine import parse_hw

    base = BenchSettings(**load_bench_config(args.config)) if is_bench_config(args.config) else \
        BenchSettings(config=args.config)
    if not args.out:
        raise ValueError("--out DIR is required (where bench.json, bench.md and the plot go)")
    return settings_with(base, weights=args.weights, data=args.data,
                         backends=tuple(args.backends) if args.backends else None, runs=args.runs,
                         warmup=args.warmup, size=parse_hw(args.size, "--size"), threads=args.threads,
                         latency_images=args.latency_images, eval_images=args.eval_images,
                         timeout_s=args.timeout, out=args.out, progress=False if args.no_progress else None)


def run(args: argparse.Namespace) -> int:
    if args.list_backends:
        print(list_backends())
        return 0
    from export.bench.harness import run_benchmark

    settings = settings_from_args(args)
    doc, paths = run_benchmark(settings)
    print(paths["markdown"].read_text())
    failed = [r["backend"] for r in doc["results"] if r["status"] == "failed"]
    ran = sum(r["status"] == "ok" for r in doc["results"])
    skipped = sum(r["status"] == "skipped" for r in doc["results"])
    print(f"{ran} backend(s) measured, {skipped} skipped, {len(failed)} failed -> {paths['json']}, "
          f"{paths['markdown']}, {paths['plot']}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {settings.out}/logs/)", file=sys.stderr)
    return 1 if failed or not ran else 0
