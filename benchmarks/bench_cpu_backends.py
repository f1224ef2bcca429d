"""CPU latency of the static deploy graph: PyTorch eager vs TorchScript vs ONNX Runtime (fp32); JSON output.

All backends run the same graph (``DeployLapMask``: uint8 image in, the five deploy outputs out) on the same
input with the same thread count. Iterations are INTERLEAVED (eager, TorchScript, ORT, eager, ...) so that
load from other processes hits every backend alike; median and p90 come from the same run, and the load average
is recorded. On a loaded machine prefer ``--threads 1``: oversubscribed OpenMP threads make PyTorch eager times
explode (10x, spin-waiting) while ONNX Runtime's pool degrades gently, which flatters ORT. Weights are random
(latency does not depend on them: the static path always processes K_pre candidates).

    python benchmarks/bench_cpu_backends.py                       # R50_3x @ 800x1216 and lite_R18 @ 256x352
    python benchmarks/bench_cpu_backends.py --presets lite_R18 --runs 20 --threads 2 --out results.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"R50_3x": (800, 1216), "lite_R18": (256, 352)}
IMAGE_SIZE = {"R50_3x": (800, 1199), "lite_R18": (256, 341)}  # a COCO-like resized image inside the canvas


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]


def bench_preset(preset: str, runs: int, warmup: int, threads: int, dcn_forms: list[str], folder: Path) -> dict:
    import onnxruntime as ort
    import torch

    from export.onnx_export import ExportOptions, export_onnx
    from export.torchscript import export_torchscript, load_torchscript
    from lapmask.config import get_preset
    from lapmask.inference import DeployLapMask
    from lapmask.model.lapmask import build_model

    torch.set_num_threads(threads)
    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    hw, (ih, iw) = SIZES[preset], IMAGE_SIZE[preset]
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 3, *hw), dtype=torch.uint8, generator=g)
    size = torch.tensor([[ih, iw]], dtype=torch.int32)
    feeds = {"image": image.numpy(), "image_size": size.numpy()}

    t = time.perf_counter()
    export_torchscript(model, cfg, folder / f"{preset}.pt", validate=False, trace_hw=(256, 352))
    ts_export_s = time.perf_counter() - t
    scripted, _ = load_torchscript(folder / f"{preset}.pt")
    sessions, onnx_export_s = {}, {}
    for form in dcn_forms:
        t = time.perf_counter()
        path = folder / f"{preset}_{form}.onnx"
        export_onnx(model, cfg, path, ExportOptions(dcn_form=form), validate=False, trace_hw=(256, 352))
        onnx_export_s[form] = time.perf_counter() - t
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sessions[form] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    eager = DeployLapMask(model).eval()

    backends = {"pytorch_eager": lambda: eager(image, size), "torchscript": lambda: scripted(image, size)}
    for form, s in sessions.items():
        backends[f"ort_fp32_{form}"] = (lambda s=s: s.run(None, feeds))
    times: dict[str, list[float]] = {k: [] for k in backends}
    with torch.no_grad():
        for i in range(warmup + runs):
            for name, fn in backends.items():
                t = time.perf_counter()
                out = fn()
                dt = (time.perf_counter() - t) * 1000
                if i >= warmup:
                    times[name].append(dt)
        # the outputs agree (random weights: typically zero detections, so compare the counts)
        ref = [x.numpy() for x in eager(image, size)]
    for s in sessions.values():
        got = s.run(None, feeds)
        assert int(got[4][0]) == int(ref[4][0]) and int(got[0][0]) == int(ref[0][0]), "ORT and PyTorch disagree"
    del out
    res = {name: {"median_ms": statistics.median(v), "p90_ms": p90(v), "min_ms": min(v), "runs_ms": v}
           for name, v in times.items()}
    eager_med = res["pytorch_eager"]["median_ms"]
    ratios = {name: r["median_ms"] / eager_med for name, r in res.items()}
    return {"preset": preset, "input_hw": list(hw), "image_size": [ih, iw], "k_pre": cfg.inference.k_pre,
            "max_dets": cfg.inference.max_per_img, "threads": threads, "runs": runs, "warmup": warmup,
            "backends": res, "median_ratio_to_eager": ratios, "export_seconds": {"torchscript": ts_export_s,
                                                                                  **onnx_export_s}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations (TorchScript profiles its first runs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dcn-forms", nargs="+", default=["gridsample", "deformconv"])
    ap.add_argument("--out", default="benchmarks/results/cpu_backends.json")
    args = ap.parse_args(argv)

    import onnxruntime
    import torch

    doc = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "python": sys.version.split()[0], "torch": torch.__version__,
                       "onnxruntime": onnxruntime.__version__, "cpu_count": os.cpu_count()},
           "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            load_before = os.getloadavg()  # other processes' load makes CPU timings noisy: record it
            r = bench_preset(preset, args.runs, args.warmup, args.threads, args.dcn_forms, Path(tmp))
            r["loadavg_1_5_15_before_after"] = [list(load_before), list(os.getloadavg())]
            doc["results"].append(r)
            for name, b in r["backends"].items():
                print(f"{preset:9s} {name:24s} median {b['median_ms']:9.1f} ms  p90 {b['p90_ms']:9.1f} ms  "
                      f"x{r['median_ratio_to_eager'][name]:.2f} of eager", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
