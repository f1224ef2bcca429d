"""``lapmask eval --weights W --data DIR [--config C] [--backend pytorch|torchscript|ort|trt --model M] [--out OUT]``.

Scores a model on ``DIR/annotations/instances_<split>.json`` (images in ``DIR/<split>/``): COCO mask AP (AP, AP50,
AP75, APs, APm, APl), box AP from the mask boxes, per-class mask AP; writes ``coco_instances_results.json`` and
``metrics.json`` to OUT. Deployed models (``--backend torchscript|ort|trt``) run through ``export.predictors``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lapmask.commands.common import add_config, add_debug, add_weights


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p)
    add_weights(p, required=False)
    p.add_argument("--data", required=True, help="COCO-format folder (annotations/instances_<split>.json, <split>/)")
    p.add_argument("--split", default="val", help="split name (default val)")
    p.add_argument("--backend", default="pytorch", choices=["pytorch", "torchscript", "ort", "trt"],
                   help="pytorch (needs --weights) or a deployed model given with --model")
    p.add_argument("--model", help="exported model for --backend torchscript|ort|trt (.pt / .onnx / .engine)")
    p.add_argument("--static", action="store_true", help="pytorch: run the fixed-size deploy path")
    p.add_argument("--no-resize", action="store_true", help="native size: pad only, no test-time resize")
    p.add_argument("--device", default="auto", help="auto (pytorch: CUDA if available; ort/torchscript: cpu; trt: "
                   "cuda), cpu, cuda, cuda:N")
    p.add_argument("--max-images", type=int, default=None, help="score the first N images only")
    p.add_argument("--out", default=None, help="output folder (default: <weights folder>/eval_<split>, or "
                   "./eval_<split>)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug(p)


def build_predict(args: argparse.Namespace):
    """(predict callable, class_names, category_ids) for the chosen backend."""
    if args.backend == "pytorch":
        if not args.weights:
            raise ValueError("--weights is required for --backend pytorch (or use --backend ort|trt --model M)")
        from lapmask.engine.checkpoint import load_model
        from lapmask.engine.distributed import resolve_device
        from lapmask.inference import Predictor

        model, cfg = load_model(args.weights, args.config, resolve_device(args.device))
        return Predictor(model, cfg, resize=not args.no_resize, static=args.static), cfg.class_names, \
            cfg.category_ids
    if not args.model:
        raise ValueError(f"--backend {args.backend} needs --model (the exported .pt, .onnx or .engine)")
    try:
        from export.predictors import load_predictor  # composition root: lazy reach into the deploy package
    except ImportError as e:
        raise RuntimeError(f"--backend {args.backend} needs the lapmask export package ({e}); install it with "
                           "`pip install -e .[onnx]` (ort) or `pip install -e .[trt]` (trt)") from e
    if not Path(args.model).is_file():
        raise FileNotFoundError(f"--model {args.model} not found; export one with `lapmask export` first")
    device = None if args.device == "auto" else args.device
    pred = load_predictor(args.backend, args.model, resize=not args.no_resize, device=device)
    return pred, tuple(pred.class_names), tuple(pred.category_ids)


def default_out(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    src = args.weights if args.backend == "pytorch" else args.model
    return Path(src).parent / f"eval_{args.split}" if src else Path(f"eval_{args.split}")


def run(args: argparse.Namespace) -> int:
    from lapmask.engine.evaluator import format_table
    from lapmask.engine.inference_loop import SplitPaths, evaluate_predictor

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    split = SplitPaths.from_data_dir(args.data, args.split)
    predict, names, ids = build_predict(args)
    out = default_out(args)
    metrics = evaluate_predictor(predict, split, ids, names, out_dir=out, max_images=args.max_images,
                                 progress=not args.no_progress, distributed=False)
    inf = metrics["inference"]
    print(format_table(metrics))
    print(f"{inf['num_images']} images ({inf['images_per_s']:.2f} images/s, {inf['num_instances']} instances"
          + (f", {inf['num_failed']} unreadable" if inf["num_failed"] else "")
          + f") -> {out / 'metrics.json'}, {out / 'coco_instances_results.json'}", file=sys.stderr)
    return 0
