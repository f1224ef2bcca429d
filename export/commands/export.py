"""``lapmask export --onnx OUT.onnx | --torchscript OUT.pt --config C [--weights W] ...``: the static deploy graph.

Module level stays argparse-only (``lapmask --help`` must not import torch); ``run`` imports the exporters.
"""
from __future__ import annotations

import argparse
import sys

FLAVOURS = ("standard", "plugins")  # == export.flavours.FLAVOURS (a test keeps them equal)
DCN_FORMS = ("gridsample", "deformconv")  # == export.flavours.DCN_FORMS


def add_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model")
    out.add_argument("--torchscript", metavar="OUT.pt", help="write a TorchScript model (torch.jit.trace)")
    p.add_argument("--config", help="preset name (e.g. R50_3x, lite_R18) or a .json config; default: the checkpoint's")
    p.add_argument("--weights", help="lapmask checkpoint; without it the weights are random (latency benchmarks only)")
    p.add_argument("--fp16", action="store_true", help="float16 network, float32 scores/areas/NMS/sampling coordinates")
    p.add_argument("--flavour", choices=FLAVOURS, default="standard",
                   help="standard: standard ONNX ops only; plugins: lapmask::DynamicDeformConv/MatrixNMS nodes (OPS.md)")
    p.add_argument("--dcn-form", choices=DCN_FORMS, default=None,
                   help="standard flavour's dynamic filter: gridsample (GridSample+MatMul, default) or deformconv "
                        "(ONNX DeformConv-19)")
    p.add_argument("--height", type=int, help="fixed input height (multiple of 32); with --width")
    p.add_argument("--width", type=int, help="fixed input width (multiple of 32); with --height")
    p.add_argument("--dynamic", action="store_true", help="dynamic H and W (the default when no size is given)")
    p.add_argument("--batch", type=int, default=1, help="fixed batch size of the graph (default 1)")
    p.add_argument("--k-pre", type=int, help="candidates kept by the first TopK (default: config, 500; <= 3840)")
    p.add_argument("--max-dets", type=int, help="output slots K (default: config, 100; <= 3840)")
    p.add_argument("--opset", type=int, default=19, help="ONNX opset (>= 19 for DeformConv, >= 16 otherwise; <= 20)")
    p.add_argument("--device", default="cpu", help="--torchscript: device to trace on (the trace records it: cuda for a GPU file); "
                   "ONNX is always traced on cpu")
    p.add_argument("--no-validate", action="store_true", help="skip the graph checks and the ONNX Runtime comparison")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights when --weights is not given")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def _size(args: argparse.Namespace) -> tuple[int, int] | None:
    if (args.height is None) != (args.width is None):
        raise ValueError("give both --height and --width (multiples of 32), or neither (dynamic)")
    if args.height is not None and args.dynamic:
        raise ValueError("--dynamic and --height/--width exclude each other")
    return None if args.height is None else (args.height, args.width)


def _model(args: argparse.Namespace):
    import torch

    if args.weights:
        from lapmask.engine.checkpoint import load_model

        return load_model(args.weights, args.config)
    if not args.config:
        raise ValueError("give --config (a preset or .json) when exporting without --weights")
    from lapmask.config import load_config
    from lapmask.model.lapmask import build_model

    cfg = load_config(args.config)
    torch.manual_seed(args.seed)
    print(f"warning: no --weights: exporting RANDOMLY INITIALISED {cfg.name} weights (seed {args.seed}); fine for "
          "latency benchmarks, useless for predictions", file=sys.stderr)
    return build_model(cfg).eval(), cfg


def run(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    hw = _size(args)
    if args.flavour == "plugins" and args.dcn_form is not None:
        raise ValueError("--dcn-form applies to the standard flavour; the plugins flavour uses "
                         "lapmask::DynamicDeformConv")
    from export.onnx_export import ExportOptions

    opts = ExportOptions(flavour=args.flavour, dcn_form=args.dcn_form or "gridsample", fp16=args.fp16, input_hw=hw,
                         batch=args.batch, k_pre=args.k_pre, max_dets=args.max_dets, opset=args.opset)
    # Arguments are checked before the (slow) model build; the exporters check again.
    from export.checks import check_export_args
    from lapmask.config import load_config

    if args.config:
        cfg0 = load_config(args.config)
        o = opts.resolved(cfg0)
        check_export_args(cfg0, flavour=o.flavour, dcn_form=o.dcn_form, opset=None if args.torchscript else o.opset,
                          input_hw=o.input_hw, k_pre=o.k_pre, max_dets=o.max_dets, batch=o.batch, fp16=o.fp16)
    model, cfg = _model(args)
    if args.torchscript:
        from export.torchscript import export_torchscript

        res = export_torchscript(model, cfg, args.torchscript, opts, validate=not args.no_validate, device=args.device)
    else:
        from export.onnx_export import export_onnx

        res = export_onnx(model, cfg, args.onnx, opts, validate=not args.no_validate)
    kind = "TorchScript" if args.torchscript else f"ONNX opset {opts.opset} {opts.flavour}"
    shape = "dynamic HxW" if hw is None or args.torchscript else f"{hw[0]}x{hw[1]}"
    print(f"exported {res.path} ({res.bytes / 2**20:.1f} MB, {kind}, {'fp16' if opts.fp16 else 'fp32'}, {shape}, "
          f"K_pre {res.metadata['k_pre']}, max_dets {res.metadata['max_dets']}) in {time.perf_counter() - t0:.1f} s"
          + ("" if res.validation is None else " -- validated"))
    for note in getattr(res, "notes", []):
        print(f"note: {note}")
    print(_next_commands(args, res.path, cfg.name))
    return 0


def _next_commands(args: argparse.Namespace, path: object, preset: str) -> str:
    w = f"--weights {args.weights}" if args.weights else "--weights W.pth"
    lines = ["next:"]
    if args.torchscript:
        lines += [f"  lapmask compare --config {preset} {w} --backend torchscript --model {path} IMAGE...",
                  f"  C++: torch::jit::load(\"{path}\") (libtorch; inputs image uint8 [1,3,H,W], image_size int32 [1,2])"]
        return "\n".join(lines)
    lines += [f"  lapmask predict IMAGE... --backend ort --model {path} --out predictions/",
              f"  lapmask compare --config {preset} {w} --backend ort --model {path} IMAGE..."]
    import importlib.util

    if importlib.util.find_spec("export.commands.build_engine") is not None:
        stem = str(path).removesuffix(".onnx")
        lines.append(f"  lapmask build-engine {path} --out {stem}.engine")
    return "\n".join(lines)
