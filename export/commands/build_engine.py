"""``lapmask build-engine MODEL.onnx --out E.engine [--min-shape/--opt-shape/--max-shape HxW] [--timing-cache F]
[--plugins LIB] [--workspace MB]``: a TensorRT engine + sidecar from an exported lapmask ONNX (export.trt_engine)."""
from __future__ import annotations

import argparse
from pathlib import Path

from lapmask.commands.common import add_debug


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.onnx", help="ONNX written by `lapmask export` (standard or plugins flavour)")
    p.add_argument("--out", required=True, metavar="E.engine",
                   help="engine to write (plain TensorRT plan; the sidecar goes to E.engine.json)")
    for which in ("min", "opt", "max"):
        p.add_argument(f"--{which}-shape", metavar="HxW",
                       help=f"{which} padded input size of the optimisation profile (dynamic exports; multiples of 32;"
                            " default from the model's test sizes)")
    p.add_argument("--timing-cache", metavar="F", help="TensorRT timing cache file: read if present, then updated")
    p.add_argument("--plugins", metavar="LIB",
                   help="liblapmask_trt_plugins.so for plugins-flavour models (default: $LAPMASK_TRT_PLUGINS, "
                        "build/lib/liblapmask_trt_plugins.so)")
    p.add_argument("--workspace", type=int, default=4096, metavar="MB", help="TensorRT workspace limit (default 4096)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    add_debug(p)


def options_from_args(args: argparse.Namespace):  # -> export.trt_engine.BuildOptions
    """Validate the arguments (cheap, before TensorRT is imported) and turn them into BuildOptions."""
    from export.trt_engine import BuildOptions, parse_hw

    model, out = Path(args.model), Path(args.out)
    if model.suffix.lower() != ".onnx":
        raise ValueError(f"{model}: build-engine takes an exported .onnx (lapmask export --onnx OUT.onnx ...)")
    if not model.is_file():
        raise FileNotFoundError(f"model not found: {model}")
    if out.suffix.lower() not in (".engine", ".plan", ".trt"):
        raise ValueError(f"--out {out}: name the engine *.engine (its sidecar becomes <name>.engine.json)")
    if out.resolve() == model.resolve():
        raise ValueError("--out must not overwrite the ONNX model")
    if args.workspace <= 0:
        raise ValueError(f"--workspace {args.workspace}: give the TensorRT workspace limit in MB (> 0)")
    if args.device < 0:
        raise ValueError(f"--device {args.device}: CUDA device indices start at 0")
    if args.plugins and not Path(args.plugins).is_file():
        raise FileNotFoundError(f"--plugins {args.plugins}: no such file (build: trt_plugins/plugins/README.md)")
    return BuildOptions(min_hw=parse_hw(args.min_shape, "--min-shape"), opt_hw=parse_hw(args.opt_shape, "--opt-shape"),
                        max_hw=parse_hw(args.max_shape, "--max-shape"), timing_cache=args.timing_cache,
                        plugins=args.plugins, workspace_mb=args.workspace, device=args.device, verbose=args.verbose)


def run(args: argparse.Namespace) -> int:
    from export.trt_engine import build_engine

    opts = options_from_args(args)
    r = build_engine(args.model, args.out, opts)
    p = r.profile
    print(f"wrote {r.path} ({r.bytes / 2**20:.1f} MB, {r.seconds:.1f} s): TensorRT {r.tensorrt_version}, "
          f"{r.gpu.name} (sm {r.gpu.compute_capability}), {r.precision}, image {p.batch}x3x[{p.min[0]}x{p.min[1]} .. "
          f"{p.opt[0]}x{p.opt[1]} .. {p.max[0]}x{p.max[1]}]; sidecar {r.sidecar}")
    print(f"next: lapmask predict IMAGE --backend trt --model {r.path} --out preds/\n"
          f"      lapmask compare IMAGE... --weights W.pth --backend trt --model {r.path}")
    return 0
