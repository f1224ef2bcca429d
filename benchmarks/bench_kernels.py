"""Benchmark liblapmask_kernels against the PyTorch fast paths (not a test).

Cases (R50_3x at 800x1216, spec 1.2 / 6):
  dynamic filter: F1 [1, 64, 200, 304], raw offsets [1, 27, 200, 304], 100 instance kernels [100, 576];
                  PyTorch ``lapmask.ops.dynamic_deform_filter`` vs split/sigmoid + ``clib.deform_conv``.
  Matrix NMS:     K = 500 binary masks [500, 200, 304], 80 classes; ``lapmask.ops.matrix_nms`` vs ``clib.matrix_nms``.
Both paths run interleaved in the same process; medians over --repeats after --warmup. CUDA timings are added when
torch sees a GPU and the library has the CUDA kernels.

    python benchmarks/bench_kernels.py [--out results.json] [--repeats 7]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lapmask.ops import clib, dynamic_deform_filter, matrix_nms, split_offset_mask


def _time(fns: dict[str, Callable[[], torch.Tensor]], repeats: int, warmup: int, cuda: bool) -> dict[str, float]:
    """Median milliseconds per function; calls are interleaved so both see the same machine state."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for it in range(warmup + repeats):
        for name, fn in fns.items():
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            if it >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _filter_inputs(h: int, w: int, c: int, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, c, h, w, generator=g)
    raw = torch.randn(1, 27, h, w, generator=g) * 2.0  # offsets of a few pixels, modulation around 0.5
    kernels = torch.randn(n, c * 9, generator=g) * 0.05
    return feat.to(device), raw.to(device), kernels.to(device)


def _nms_inputs(k: int, h: int, w: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blob masks with many near-duplicates (what Matrix NMS sees after the 0.2 threshold)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centers = torch.rand(k // 5 + 1, 2, generator=g) * torch.tensor([h, w])
    radii = 5 + torch.rand(k // 5 + 1, generator=g) * 40
    pick = torch.randint(centers.shape[0], (k,), generator=g)
    jitter = torch.randn(k, 2, generator=g) * 3
    c = centers[pick] + jitter
    r = radii[pick] * (1 + 0.1 * torch.randn(k, generator=g))
    masks = (((yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2)
             < r[:, None, None] ** 2).float()
    labels = torch.randint(80, (k,), generator=g, dtype=torch.int32)
    scores = torch.sort(torch.rand(k, generator=g), descending=True).values
    return masks.to(device), labels.to(device), scores.to(device)


def bench_filter(args: argparse.Namespace, device: str) -> dict:
    feat, raw, kernels = _filter_inputs(args.height, args.width, args.channels, args.instances, device)
    n, c = kernels.shape[0], args.channels

    def c_path() -> torch.Tensor:
        off, mask = split_offset_mask(raw)
        return clib.deform_conv(feat, kernels.view(n, c, 3, 3), off.contiguous(), mask.contiguous())[0]

    fns = {"torch": lambda: dynamic_deform_filter(feat, raw, kernels), "clib": c_path}
    with torch.no_grad():
        ms = _time(fns, args.repeats, args.warmup, device == "cuda")
        diff = float((fns["torch"]() - fns["clib"]()).abs().max())
    return {"case": "dynamic_filter", "device": device,
            "shape": {"feature": list(feat.shape), "offsets": list(raw.shape), "kernels": list(kernels.shape)},
            "torch_ms": ms["torch"], "clib_ms": ms["clib"], "speedup": ms["torch"] / ms["clib"],
            "max_abs_diff": diff}


def bench_nms(args: argparse.Namespace, device: str) -> dict:
    masks, labels, scores = _nms_inputs(args.nms_k, args.height, args.width, device)
    fns = {"torch": lambda: matrix_nms(masks, labels, scores, "gaussian", 2.0),
           "clib": lambda: clib.matrix_nms(masks, labels, scores, "gaussian", 2.0)}
    with torch.no_grad():
        ms = _time(fns, args.repeats, args.warmup, device == "cuda")
        diff = float((fns["torch"]() - fns["clib"]()).abs().max())
    return {"case": "matrix_nms", "device": device, "shape": {"masks": list(masks.shape)},
            "torch_ms": ms["torch"], "clib_ms": ms["clib"], "speedup": ms["torch"] / ms["clib"],
            "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="write JSON here (default: print)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--height", type=int, default=200, help="F1 / mask height (800 / 4)")
    ap.add_argument("--width", type=int, default=304, help="F1 / mask width (1216 / 4)")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--nms-k", type=int, default=500)
    args = ap.parse_args(argv)
    devices = ["cpu"]
    if torch.cuda.is_available() and clib.has_cuda():
        devices.append("cuda")
    results = [bench(args, d) for d in devices for bench in (bench_filter, bench_nms)]
    report = {
        "benchmark": "bench_kernels", "lib": str(clib.find_library()), "build_info": clib.build_info(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "gpu": torch.cuda.get_device_name() if "cuda" in devices else None,
        "repeats": args.repeats, "warmup": args.warmup, "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        for r in results:
            print(f"{r['case']:>15} {r['device']}: torch {r['torch_ms']:.1f} ms, clib {r['clib_ms']:.1f} ms "
                  f"(x{r['speedup']:.1f}, max |diff| {r['max_abs_diff']:.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
