"""``lapmask compare --config C --weights W --backend ort|torchscript|trt --model M [--data DIR | IMAGES...]``.

PyTorch (the static path, eager) and the backend see exactly the same prepared inputs (the backend predictor's
pre-processing, so fixed-size exports are padded the same way); their raw outputs are compared per output and
per instance (``export.compare``). Exits 1 when a tolerance is exceeded.
"""
from __future__ import annotations

import argparse

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", help="image files (or use --data DIR)")
    p.add_argument("--data", help="folder of images (searched recursively; a dataset's val/ is preferred)")
    p.add_argument("--max-images", type=int, default=20, help="at most this many images from --data (default 20)")
    p.add_argument("--config", help="preset or .json config (default: the checkpoint's)")
    p.add_argument("--weights", required=True, help="lapmask checkpoint the model was exported from")
    p.add_argument("--backend", required=True, choices=["ort", "torchscript", "trt"])
    p.add_argument("--model", required=True, help="exported model (.onnx, .pt, .engine)")
    p.add_argument("--device", default=None, help="backend device (cpu, cuda); PyTorch runs on cpu")
    p.add_argument("--no-resize", action="store_true", help="native size: pad only, no test-time resize")
    p.add_argument("--score-atol", type=float, help="override the score tolerance (fp32 2e-3, fp16 2e-2)")
    p.add_argument("--mask-iou", type=float, help="override the per-instance mask IoU bar (fp32 0.99, fp16 0.85)")
    p.add_argument("--json", help="also write the report as JSON here")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def image_list(args: argparse.Namespace) -> list[str]:
    """Images from the positional arguments, else from --data (val/ first when it exists)."""
    from pathlib import Path

    if args.images and args.data:
        raise ValueError("give image files or --data DIR, not both")
    if args.images:
        return list(args.images)
    if not args.data:
        raise ValueError("give image files or --data DIR")
    root = Path(args.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root} is not a folder")
    base = root / "val" if (root / "val").is_dir() else root
    files = sorted(str(f) for f in base.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {base}")
    return files[: args.max_images]


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from export.compare import CompareReport, Tolerances, compare_raw
    from export.predictors import load_predictor
    from lapmask.engine.checkpoint import load_model
    from lapmask.inference.deploy_module import DeployLapMask
    from lapmask.preprocess import load_image_bgr

    files = image_list(args)
    model, cfg = load_model(args.weights, args.config)
    pred = load_predictor(args.backend, args.model, resize=not args.no_resize, device=args.device)
    if not (hasattr(pred, "prepare") and hasattr(pred, "infer")):
        raise ValueError(f"the {args.backend} predictor has no prepare()/infer() pair; it cannot be compared")
    meta = pred.metadata
    if meta.get("preset") != cfg.name:
        raise ValueError(f"{args.model} was exported from preset {meta.get('preset')!r}, the weights/config are "
                         f"{cfg.name!r}; compare a model with the checkpoint it was exported from")
    tol = Tolerances.for_precision(meta.get("precision", "fp32"))
    if args.score_atol is not None:
        tol = dataclasses.replace(tol, score_atol=args.score_atol)
    if args.mask_iou is not None:
        tol = dataclasses.replace(tol, mask_iou=args.mask_iou)
    reference = DeployLapMask(model, int(meta["k_pre"]), int(meta["max_dets"])).eval()
    report = CompareReport(tolerances=tol)
    for f in files:
        image, hw = pred.prepare(load_image_bgr(f))
        size = np.array([hw] * image.shape[0], dtype=np.int32)
        with torch.no_grad():
            ref = [t.float().numpy() if t.is_floating_point() else t.numpy()
                   for t in reference(torch.from_numpy(image), torch.from_numpy(size))]
        got = pred.infer(image, size)
        compare_raw(ref, got, cfg.inference.mask_thr, tol, names=[Path(f).name] * image.shape[0], report=report)
    print(report.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    print(f"{args.backend} {'matches' if report.ok else 'DOES NOT match'} PyTorch on {len(files)} image(s)")
    return 0 if report.ok else 1
