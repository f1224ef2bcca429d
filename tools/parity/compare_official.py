#!/usr/bin/env python
"""Compare our converted model with the official outputs dumped by ``run_official.py`` (issue 2 acceptance).

Acceptance: with official-format weights on images of several sizes, our model gives the same instances as the
official code: same count and labels, every instance matched at mask IoU >= 0.999 with |score diff| <= 1e-3.

For each ``official_<config>_<image>[_min<S>].npz`` in ``--official-dir`` this loads
``weights_<config>.pth`` ({"model": official state_dict}), converts it with
``lapmask.convert.convert_official_state_dict``, loads it strictly into ``lapmask.model.build_model(cfg)``, runs
``lapmask.inference.Predictor`` on ``images/<image>.png`` (BGR) with the test size recorded in the npz, and
matches instances per label (Hungarian on 1 - IoU + |score diff|). With ``--intermediates`` it also feeds the
official padded input of each ``..._intermediates.npz`` to our network and reports the max abs difference of every
dumped tensor (FPN p2..p6, category logits, kernels, F1..F3, O1..O3), to bisect a mismatch.

Example: python tools/parity/compare_official.py --official-dir /work/parity --config R50_3x
Exit status 0 = PASS for every compared image, 1 = some FAIL, 2 = could not run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from images import read_bgr
from matching import IOU_MIN, SCORE_TOL, match_instances


def _import_lapmask() -> dict[str, Any]:
    """Import the APIs under test; a clear message if they are not there yet."""
    try:
        import torch

        from lapmask.config import get_preset
        from lapmask.convert import convert_official_state_dict
        from lapmask.inference import Predictor
        try:
            from lapmask.model import build_model
        except ImportError:
            from lapmask.model.lapmask import build_model
    except ImportError as e:
        raise SystemExit(f"compare_official: cannot import the lapmask APIs under test ({e}). It needs "
                         "lapmask.config.get_preset, lapmask.convert.convert_official_state_dict, "
                         "lapmask.model.build_model and lapmask.inference.Predictor; run from the repository root "
                         "with the package importable (pip install -e .).")
    return {"torch": torch, "get_preset": get_preset, "convert": convert_official_state_dict,
            "build_model": build_model, "Predictor": Predictor}


def _build(api: dict[str, Any], official_dir: Path, config: str) -> tuple[Any, Any]:
    torch = api["torch"]
    cfg = api["get_preset"](config)
    wpath = official_dir / f"weights_{config}.pth"
    if not wpath.is_file():
        raise SystemExit(f"compare_official: {wpath} not found; run tools/parity/run_official.py first")
    sd = torch.load(wpath, map_location="cpu", weights_only=True)["model"]
    model = api["build_model"](cfg)
    model.load_state_dict(api["convert"](sd, cfg), strict=True)
    return model.eval().float(), cfg


def _with_test_size(cfg: Any, min_size: int, max_size: int) -> Any:
    if (cfg.input.min_size_test, cfg.input.max_size_test) == (min_size, max_size):
        return cfg
    return cfg.replace(input=dataclasses.replace(cfg.input, min_size_test=min_size, max_size_test=max_size))


def compare_image(pred: dict[str, np.ndarray], ref: Any) -> dict[str, Any]:
    """One image: our Predictor output vs an official npz."""
    m = match_instances(ref["pred_classes"], ref["scores"], ref["pred_masks"],
                        pred["labels"], pred["scores"], pred["masks"])
    box_diff = None
    if m["pairs"]:
        i, j = np.array(m["pairs"]).T
        box_diff = float(np.abs(ref["pred_boxes"][i] - pred["boxes"][j]).max())
    m["max_abs_box_diff"] = box_diff
    del m["pairs"]
    return m


def _match_threads(torch: Any, ref: Any, forced: int | None) -> None:
    """Use the dump's intra-op thread count: float32 CPU convolutions differ across thread counts by ~1e-5
    relative, which already flips a few mask pixels (the official code against itself: min IoU 0.998)."""
    want = forced or (int(ref["torch_threads"]) if "torch_threads" in ref else None)
    if want and torch.get_num_threads() != want:
        torch.set_num_threads(want)


def compare_official_dirs(official_dir: Path, other_dir: Path, configs: list[str]) -> list[dict[str, Any]]:
    """Noise floor: the same official dumps made twice (e.g. another thread count), matched like ours."""
    out = []
    for config in configs:
        for npz in sorted(official_dir.glob(f"official_{config}_img*.npz")):
            other = other_dir / npz.name
            if npz.stem.endswith("_intermediates") or not other.is_file():
                continue
            a, b = np.load(npz), np.load(other)
            r = compare_image({"labels": b["pred_classes"], "scores": b["scores"], "masks": b["pred_masks"],
                               "boxes": b["pred_boxes"]}, a)
            r.update(config=config, file=npz.name, path=f"official vs {other_dir}")
            out.append(r)
            print(f"{'PASS' if r['pass'] else 'FAIL'} {npz.stem} [{r['path']}]: count {r['count_official']}/"
                  f"{r['count_ours']} min_iou={r['min_iou']} max_score_diff={r['max_abs_score_diff']}")
    return out


def compare_intermediates(api: dict[str, Any], model: Any, path: Path, forced: int | None = None) -> dict[str, float]:
    """Max |ours - official| for each dumped tensor, feeding the official padded input to our network."""
    torch = api["torch"]
    ref = np.load(path)
    _match_threads(torch, ref, forced)
    x = torch.from_numpy(ref["input"])
    out: dict[str, float] = {}
    with torch.no_grad():
        feats = model.backbone(x)
        for k, v in feats.items():
            if k in ref:
                out[k] = float(np.abs(v.numpy() - ref[k]).max())
        o = model(x)
    for i, c in enumerate(o["cate"]):
        out[f"cate_l{i}"] = float(np.abs(c.numpy() - ref[f"cate_l{i}"]).max())
        for j in range(3):
            out[f"kernel{j + 1}_l{i}"] = float(np.abs(o["kernel"][i][:, j].numpy() - ref[f"kernel{j + 1}_l{i}"]).max())
    for j in range(3):
        out[f"F{j + 1}"] = float(np.abs(o["mask_feats"][j].numpy() - ref[f"F{j + 1}"]).max())
        out[f"O{j + 1}"] = float(np.abs(o["offsets"][j].numpy() - ref[f"O{j + 1}"]).max())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official-dir", default="/work/parity", help="where run_official.py wrote its files")
    ap.add_argument("--config", nargs="+", default=["R50_3x"], help="preset name(s)")
    ap.add_argument("--images", nargs="*", default=None, help="restrict to these image names (e.g. img480x640)")
    ap.add_argument("--only", default=None, help="regex on the npz stem (e.g. '_min480$' or 'img200')")
    ap.add_argument("--static", action="store_true", help="also check the static fixed-size path (Predictor static)")
    ap.add_argument("--intermediates", action="store_true", help="also compare the dumped intermediate tensors")
    ap.add_argument("--json", default=None, help="summary path (default: <official-dir>/compare_<configs>.json)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: the count recorded in each official npz)")
    ap.add_argument("--vs-official", default=None, metavar="DIR",
                    help="no model: compare the official dumps with another official run in DIR (noise floor)")
    args = ap.parse_args(argv)
    official_dir = Path(args.official_dir)
    if args.vs_official:
        res = compare_official_dirs(official_dir, Path(args.vs_official), args.config)
        return 0 if res and all(r["pass"] for r in res) else 1
    api = _import_lapmask()
    if args.threads:
        api["torch"].set_num_threads(args.threads)
    summary: dict[str, Any] = {"criteria": {"same_count_and_labels": True, "mask_iou_min": IOU_MIN,
                                            "abs_score_diff_max": SCORE_TOL}, "results": []}
    all_pass, n_compared = True, 0
    for config in args.config:
        model, base_cfg = _build(api, official_dir, config)
        pat = re.compile(rf"^official_{re.escape(config)}_(img[^_]+)(_min\d+)?$")
        for npz in sorted(official_dir.glob(f"official_{config}_*.npz")):
            mt = pat.match(npz.stem)
            if not mt or (args.images and mt.group(1) not in args.images) or \
                    (args.only and not re.search(args.only, npz.stem)):
                continue
            ref = np.load(npz)
            _match_threads(api["torch"], ref, args.threads)
            cfg = _with_test_size(base_cfg, int(ref["min_size_test"]), int(ref["max_size_test"]))
            bgr = read_bgr(official_dir / "images" / f"{mt.group(1)}.png")
            modes = [False, True] if args.static else [False]
            for static in modes:
                pred = api["Predictor"](model, cfg, static=static)(bgr)
                r = compare_image(pred, ref)
                r.update(config=config, file=npz.name, path="static" if static else "dynamic",
                         official_candidates=int(ref["num_candidates"]))
                all_pass &= r["pass"]
                n_compared += 1
                summary["results"].append(r)
                print(f"{'PASS' if r['pass'] else 'FAIL'} {npz.stem} [{r['path']}]: count {r['count_official']}/"
                      f"{r['count_ours']} labels_equal={r['labels_equal']} matched={r['matched']} "
                      f"min_iou={r['min_iou']} max_score_diff={r['max_abs_score_diff']} "
                      f"max_box_diff={r['max_abs_box_diff']}", flush=True)
        if args.intermediates:
            for inter in sorted(official_dir.glob(f"official_{config}_*_intermediates.npz")):
                diffs = compare_intermediates(api, model, inter, args.threads)
                summary.setdefault("intermediates", {})[inter.name] = diffs
                worst = sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
                print(f"intermediates {inter.stem}: worst {worst}")
    if n_compared == 0:
        print("compare_official: no official_<config>_<image>.npz matched; nothing compared", file=sys.stderr)
        return 2
    summary["pass"] = bool(all_pass)
    summary["num_compared"] = n_compared
    out = Path(args.json) if args.json else official_dir / f"compare_{'_'.join(args.config)}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"{'PASS' if all_pass else 'FAIL'}: {n_compared} comparisons; summary -> {out}")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
