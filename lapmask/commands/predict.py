"""``lapmask predict IMAGE... --weights W [--config C] [--no-resize] [--score-thr T] [--static] --out DIR``."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lapmask.commands.common import add_config, add_debug, add_weights


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files (PNG/JPEG)")
    add_config(p)
    add_weights(p, required=False)
    p.add_argument("--backend", default="pytorch", choices=["pytorch", "torchscript", "ort", "trt"],
                   help="pytorch (default), or a deployed model given with --model")
    p.add_argument("--model", help="exported model for --backend torchscript|ort|trt (.pt / .onnx / .engine)")
    p.add_argument("--no-resize", action="store_true", help="native size: pad only, no test-time resize")
    p.add_argument("--score-thr", type=float, default=0.0, help="filter final outputs (default 0: keep all)")
    p.add_argument("--static", action="store_true", help="run the fixed-size deploy path (what ONNX/TRT run)")
    p.add_argument("--device", default="cpu", help="torch device for --backend pytorch (cpu, cuda)")
    p.add_argument("--out", required=True, help="output folder for <image>.png overlays and <image>.json")
    add_debug(p)


def _predictor(args: argparse.Namespace):
    """Return (callable bgr -> result, class_names, category_ids)."""
    if args.backend == "pytorch":
        if not args.weights:
            raise ValueError("--weights is required for --backend pytorch")
        from lapmask.engine.checkpoint import load_model
        from lapmask.inference import Predictor

        model, cfg = load_model(args.weights, args.config, args.device)
        return Predictor(model, cfg, resize=not args.no_resize, static=args.static), cfg.class_names, cfg.category_ids
    if not args.model:
        raise ValueError(f"--backend {args.backend} needs --model (the exported .onnx or .engine)")
    from export.predictors import load_predictor  # composition root: lazy reach into the deployment package

    pred = load_predictor(args.backend, args.model, resize=not args.no_resize)
    return pred, pred.class_names, pred.category_ids


def run(args: argparse.Namespace) -> int:
    from lapmask.postprocess import prediction_json
    from lapmask.preprocess import load_image_bgr
    from lapmask.visualize import overlay

    predictor, names, ids = _predictor(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        t = time.time()
        bgr = load_image_bgr(path)
        result = predictor(bgr)
        doc = prediction_json(Path(path).name, bgr.shape[0], bgr.shape[1], result, names, ids, args.score_thr)
        stem = Path(path).stem
        (out / f"{stem}.json").write_text(json.dumps(doc))
        keep = result["scores"] >= args.score_thr
        overlay(bgr, {k: v[keep] for k, v in result.items()}, names).save(out / f"{stem}.png")
        print(f"{path}: {len(doc['instances'])} instances ({time.time() - t:.2f} s) -> {out / stem}.png/.json")
    return 0
