"""Training throughput (images/s) per preset on the synthetic dataset, with the trainer users run; JSON output.

Each preset runs in a fresh process (no shared allocator or thread state) through ``lapmask.engine.Trainer``:
data loading, target assignment, losses, backward, gradient clamp and the optimizer step all count. The first
``--warmup`` iterations are dropped (allocator and oneDNN warm-up); the median seconds per iteration over the
rest give images/s = batch / median. Images are the embedded synthetic set (256 px), resized by each preset's own
training transform (R50_3x: shortest edge 640..800), so the per-image cost is the preset's real one.

    python benchmarks/bench_train.py --amp --out benchmarks/results/train_cpu.json   # fp32 and bf16 rows
    python benchmarks/bench_train.py --presets lite_R18 --iters 30 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere inside the checkout

# (preset, batch): R50_3x at its official per-GPU batch of 2 (16 images over 8 GPUs); tiny and lite at their own.
DEFAULT_CASES = [("tiny_R18", 8), ("lite_R18", 8), ("R50_3x", 2)]


def measure(preset: str, batch: int, iters: int, warmup: int, threads: int, data: Path, amp: bool = False) -> dict:
    """Train ``warmup + iters`` iterations of ``preset`` and return the timing summary (one process).

    ``amp``: bfloat16 autocast on CPU (``lapmask.engine.trainer.amp_dtype``), as ``lapmask demo`` trains."""
    import torch

    from export.bench.stats import summarize
    from lapmask.config import get_preset
    from lapmask.data.coco import CocoInstanceDataset
    from lapmask.engine.distributed import DistInfo
    from lapmask.engine.progress import read_jsonl
    from lapmask.engine.trainer import Trainer, TrainOptions

    torch.set_num_threads(threads)
    cfg = get_preset(preset)
    # The synthetic labels 0..5 index any head; an official preset keeps its 80-way head (the cost it really has).
    ds = CocoInstanceDataset.from_config(cfg, data / "annotations" / "instances_train.json", data / "train",
                                         is_train=True)
    with tempfile.TemporaryDirectory() as out:
        opts = TrainOptions(out_dir=Path(out), max_iter=warmup + iters, ims_per_batch=batch, num_workers=1, seed=0,
                            amp=amp, checkpoint_period=0, log_period=1, progress=False, keep_checkpoints=1)
        t0 = time.perf_counter()
        Trainer(cfg, ds, opts, DistInfo(device=torch.device("cpu"))).train()
        wall = time.perf_counter() - t0
        rows = [r for r in read_jsonl(Path(out) / "metrics.jsonl") if "time_per_iter_s" in r]
    st = summarize([r["time_per_iter_s"] for r in rows[warmup:]])  # the harness's statistics (p50 = median)
    med = st["p50"]
    return {"preset": preset, "batch": batch, "threads": threads, "amp": amp, "timed_iterations": st["n"],
            "median_s_per_iter": med, "min_s_per_iter": st["min"], "max_s_per_iter": st["max"],
            "images_per_s": batch / med, "train_sizes": list(cfg.input.min_size_train), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=None,
                    help="default: tiny_R18 and lite_R18 (batch 8), R50_3x (batch 2)")
    ap.add_argument("--batch", type=int, default=None, help="override every preset's batch")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations per preset (default 10)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed first iterations (default 10: oneDNN builds "
                    "kernels per input shape, bf16 ones slowly)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--amp", action="store_true", help="also measure bfloat16 mixed precision (CPU with native bf16)")
    ap.add_argument("--data", default="", help="synthetic dataset folder (default: generated in a temp folder)")
    ap.add_argument("--out", default="", help="JSON file (default: print only)")
    ap.add_argument("--one", nargs=2, metavar=("PRESET", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--one-amp", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        r = measure(args.one[0], int(args.one[1]), args.iters, args.warmup, args.threads, Path(args.data),
                    amp=args.one_amp)
        print("RESULT " + json.dumps(r))
        return
    cases = [(p, args.batch or dict(DEFAULT_CASES).get(p, 2)) for p in (args.presets or [c[0] for c in DEFAULT_CASES])]
    from export.bench.machine import machine_info
    from lapmask.engine.machine_speed import cpu_speed

    machine = machine_info()  # load average at the start, like the other benchmarks
    speed = {"start": cpu_speed(args.threads, args.amp)}  # and the CPU's speed, which drifts (machine_speed.py)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "synth"
        if not args.data:
            from lapmask.data.synth import ensure_synthetic

            ensure_synthetic(data, 64, 4, 256, 0)
        results = []
        runs = [(p, b, amp) for p, b in cases for amp in ((False, True) if args.amp else (False,))]
        for preset, batch, amp in runs:  # fresh process per (preset, precision)
            cmd = [sys.executable, __file__, "--one", preset, str(batch), "--iters", str(args.iters), "--warmup",
                   str(args.warmup), "--threads", str(args.threads), "--data", str(data)] + (["--one-amp"] * amp)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"{preset} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results.append(json.loads(line[0][len("RESULT "):]))
            r = results[-1]
            print(f"{preset} {'bf16' if amp else 'fp32'}: {r['images_per_s']:.2f} images/s (batch {batch}, median "
                  f"{r['median_s_per_iter']:.2f} "
                  f"s/iteration over {r['timed_iterations']}, {args.threads} threads)", flush=True)
    speed["end"] = cpu_speed(args.threads, args.amp)
    doc = {"machine": machine, "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
           "cpu_matmul_gflops": speed,
           "what": "training images/s (data, targets, losses, backward, optimizer step)", "results": results}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
