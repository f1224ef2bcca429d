"""Forward latency (PyTorch eager, CPU or CUDA) and peak memory per preset; JSON output.

Each (preset, size) runs in a fresh process so peak RSS belongs to that model alone.
Usage: python benchmarks/bench_forward.py [--runs 5] [--out benchmarks/results/forward_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

DEFAULT_CASES = [("R50_3x", 800, 1216), ("lite_R18", 256, 384)]


def measure(preset: str, h: int, w: int, runs: int, device: str, static: bool) -> dict:
    import torch

    from lapmask.config import get_preset
    from lapmask.inference import DeployLapMask
    from lapmask.model.lapmask import build_model

    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval().to(device)
    deploy = DeployLapMask(model)
    image = torch.randint(0, 255, (1, 3, h, w), dtype=torch.uint8, device=device)
    size = torch.tensor([[h, w]], dtype=torch.int32, device=device)
    x = deploy.normalize(image, size)

    def step():
        with torch.no_grad():
            out = deploy(image, size) if static else model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    step()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1000)
    return {"preset": preset, "input": [h, w], "device": device, "what": "network + static post" if static else
            "network forward", "runs": runs, "median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="")
    ap.add_argument("--one", nargs=3, metavar=("PRESET", "H", "W"), help=argparse.SUPPRESS)
    ap.add_argument("--static", action="store_true", help="also time the full static deploy path")
    args = ap.parse_args()
    if args.one:
        res = [measure(args.one[0], int(args.one[1]), int(args.one[2]), args.runs, args.device, s)
               for s in ([False, True] if args.static else [False])]
        print(json.dumps(res))
        return
    rows = []
    for preset, h, w in DEFAULT_CASES:
        cmd = [sys.executable, __file__, "--one", preset, str(h), str(w), "--runs", str(args.runs),
               "--device", args.device] + (["--static"] if args.static else [])
        rows += json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    import torch

    doc = {"machine": platform.processor() or platform.machine(), "cpus": __import__("os").cpu_count(),
           "torch": torch.__version__, "results": rows}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
