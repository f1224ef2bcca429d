#!/usr/bin/env python
"""Run the OFFICIAL LapMask code on CPU and dump reference outputs for the numerical-fidelity acceptance.

Our harness (no official code in here): it imports the user's checkouts of tjqansthd/LapMask and
facebookresearch/detectron2 with the runtime stubs of ``official_env`` and drives their own test-time path:

    detectron2 ``DatasetMapper(cfg, is_train=False)`` (PIL read -> BGR, ResizeShortestEdge MIN/MAX_SIZE_TEST with
    PIL bilinear, height/width = original size)  ->  ``build_model(cfg)`` (adet ``LapMask``) in eval mode, float32
    ->  ``Instances`` (pred_classes, scores, pred_masks, pred_boxes).

Per config it (1) builds the model from ``configs/LapMask/<name>.yaml`` and checks its state_dict against the
official key list, (2) creates deterministic weights (``official_weights``; saved once as
``weights_<name>.pth`` = ``{"model": state_dict}``, reused afterwards), (3) runs every image and writes
``official_<name>_<image>[_min<S>].npz`` (+ one ``..._intermediates.npz``), and a ``summary_<name>.json``.

Example (from the repository root):
    python tools/parity/run_official.py --lapmask-root /work/parity/LapMask \
        --detectron2-root /work/parity/detectron2 --out-dir /work/parity --configs R50_3x
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))  # repository root: lapmask.ops supplies the DCN reference

from images import DEFAULT_IMAGES, write_images
from official_env import build_official, check_keys, official_cfg, setup_official
from official_weights import calibrate_, official_state_dict, randomize_


class Recorder:
    """Wraps the official module-level helpers and hooks the official modules to record what one image did."""

    def __init__(self, lm: Any, model: torch.nn.Module) -> None:
        self.lm, self.model = lm, model
        self.rec: dict[str, Any] = {}
        self.keep_tensors = False
        self._orig = {"DynamicDeformConv": lm.DynamicDeformConv, "matrix_nms": lm.matrix_nms}
        lm.DynamicDeformConv = self._dcn
        lm.matrix_nms = self._matrix_nms
        model.backbone.register_forward_pre_hook(self._bb_in)
        model.backbone.register_forward_hook(self._bb_out)
        model.ins_head.register_forward_hook(self._ins_out)
        model.mask_head.register_forward_hook(self._mask_out)

    def reset(self, keep_tensors: bool) -> None:
        self.rec, self.keep_tensors = {"num_candidates": []}, keep_tensors

    def restore(self) -> None:
        self.lm.DynamicDeformConv = self._orig["DynamicDeformConv"]
        self.lm.matrix_nms = self._orig["matrix_nms"]

    # --- wrappers (call the official function unchanged, record its inputs/outputs) ---
    def _dcn(self, feat, kernel, offset_mask, **kw):
        self.rec["num_candidates"].append(int(kernel.shape[0]))
        return self._orig["DynamicDeformConv"](feat, kernel, offset_mask, **kw)

    def _matrix_nms(self, cate_labels, seg_masks, sum_masks, cate_scores, **kw):
        out = self._orig["matrix_nms"](cate_labels, seg_masks, sum_masks, cate_scores, **kw)
        self.rec.update(nms_in_labels=cate_labels.numpy().copy(), nms_in_scores=cate_scores.numpy().copy(),
                        nms_in_areas=sum_masks.numpy().copy(), nms_out_scores=out.numpy().copy())
        return out

    # --- hooks ---
    def _bb_in(self, m, args):
        self.rec["padded_hw"] = tuple(args[0].shape[-2:])
        if self.keep_tensors:
            self.rec["input"] = args[0].numpy().copy()

    def _bb_out(self, m, args, out):
        if self.keep_tensors:
            for k, v in out.items():
                self.rec[k] = v.numpy().copy()

    def _ins_out(self, m, args, out):
        cate, (k1, k2, k3) = out
        per_level = []
        for c in cate:  # the official eval path: sigmoid -> point NMS -> > SCORE_THR
            s = self.lm.point_nms(c.sigmoid(), kernel=2)
            per_level.append(int((s > self.model.score_threshold).sum()))
        self.rec["candidates_per_level"] = per_level
        if self.keep_tensors:
            for i, c in enumerate(cate):
                self.rec[f"cate_l{i}"] = c.numpy().copy()
                for j, k in enumerate((k1, k2, k3), 1):
                    self.rec[f"kernel{j}_l{i}"] = k[i].numpy().copy()

    def _mask_out(self, m, args, out):
        if self.keep_tensors:
            feats, offs = out
            for j in range(3):
                self.rec[f"F{j + 1}"] = feats[j].numpy().copy()
                self.rec[f"O{j + 1}"] = offs[j].numpy().copy()


def _load_or_make_weights(args: argparse.Namespace, name: str, model: torch.nn.Module, cal_paths: list[Path],
                          summary: dict[str, Any]) -> None:
    """Load ``weights_<name>.pth`` strictly, or create it (``official_weights``) and reload it."""
    from detectron2.data import DatasetMapper

    wpath = Path(args.out_dir) / f"weights_{name}.pth"
    if wpath.is_file() and not args.remake_weights:
        model.load_state_dict(torch.load(wpath, map_location="cpu", weights_only=True)["model"], strict=True)
        print(f"[{name}] loaded {wpath}")
        return
    # calibrate at the config's own test size on the default images, whatever the other options say
    cal_mapper = DatasetMapper(official_cfg(args.lapmask_root, name), is_train=False)
    cal_inputs = [cal_mapper({"file_name": str(p), "image_id": i}) for i, p in enumerate(cal_paths)]
    randomize_(model, args.seed)
    summary["calibration"] = calibrate_(model, cal_inputs, args.seed, target_candidates=args.target_candidates)
    torch.save({"model": official_state_dict(model)}, wpath)
    model.load_state_dict(torch.load(wpath, map_location="cpu", weights_only=True)["model"], strict=True)
    print(f"[{name}] wrote {wpath}: {summary['calibration']}")


def _run_image(model: torch.nn.Module, cfg: Any, rec: Recorder, inputs: dict[str, Any],
               keep_tensors: bool) -> tuple[dict[str, np.ndarray], dict[str, Any], float]:
    """The official test-time call on one mapped input; returns the npz content, the intermediates and seconds."""
    rec.reset(keep_tensors)
    t0 = time.perf_counter()
    with torch.no_grad():
        inst = model([inputs])[0]["instances"]
    dt = time.perf_counter() - t0
    n = len(inst)
    res = {
        "pred_classes": inst.pred_classes.numpy().astype(np.int64) if n else np.zeros(0, np.int64),
        "scores": inst.scores.numpy().astype(np.float32) if n else np.zeros(0, np.float32),
        "pred_masks": inst.pred_masks.numpy().astype(bool) if n else
        np.zeros((0, inputs["height"], inputs["width"]), bool),
        "pred_boxes": inst.pred_boxes.tensor.numpy().astype(np.float32) if n else np.zeros((0, 4), np.float32),
        "image_hw": np.array([inputs["height"], inputs["width"]]),
        "resized_hw": np.array(inputs["image"].shape[-2:]),
        "padded_hw": np.array(rec.rec["padded_hw"]),
        "min_size_test": np.array(cfg.INPUT.MIN_SIZE_TEST), "max_size_test": np.array(cfg.INPUT.MAX_SIZE_TEST),
        # float32 CPU convolutions are not bit-identical across thread counts; compare with the same count
        "torch_threads": np.array(torch.get_num_threads()),
        "candidates_per_level": np.array(rec.rec["candidates_per_level"]),
        "num_candidates": np.array(rec.rec["num_candidates"][0] if rec.rec["num_candidates"] else 0),
    }
    for k in ("nms_in_labels", "nms_in_scores", "nms_in_areas", "nms_out_scores"):
        if k in rec.rec:
            res[k] = rec.rec[k]
    inter = {}
    if keep_tensors:
        inter = {k: v for k, v in rec.rec.items() if isinstance(v, np.ndarray) and v.ndim >= 2}
        inter.update(image_sizes=res["resized_hw"], num_candidates=res["num_candidates"],
                     torch_threads=res["torch_threads"])
    return res, inter, dt


def _image_info(res: dict[str, np.ndarray], dt: float) -> dict[str, Any]:
    """A one-line JSON-able digest of one image's run (counts, sizes, mask coverage, score range, NMS decays)."""
    n = len(res["scores"])
    areas = res["pred_masks"].reshape(n, -1).mean(1) if n else np.zeros(0)
    info = {"runtime_s": round(dt, 2), "resized_hw": [int(v) for v in res["resized_hw"]],
            "padded_hw": [int(v) for v in res["padded_hw"]],
            "candidates": int(res["num_candidates"]),
            "candidates_per_level": [int(v) for v in res["candidates_per_level"]],
            "after_area_filter_and_nms_pre": len(res.get("nms_in_scores", [])),
            "instances": n, "classes": sorted({int(c) for c in res["pred_classes"]}),
            "mask_fraction_min_median_max":
                [round(float(q), 4) for q in np.quantile(areas, [0, .5, 1])] if n else [],
            "empty_masks": int((areas == 0).sum()),
            "score_min_max": [float(res["scores"].min()), float(res["scores"].max())] if n else []}
    if "nms_in_scores" in res:
        decay = res["nms_out_scores"] / np.maximum(res["nms_in_scores"], 1e-12)
        info["nms_decayed_lt_0.99"] = int((decay < 0.99).sum())
    return info


def run_config(args: argparse.Namespace, name: str, image_paths: list[Path], cal_paths: list[Path],
               lm: Any) -> dict[str, Any]:
    """Build, check keys, load/make weights, run every image and write the npz files and the summary."""
    from detectron2.data import DatasetMapper

    out_dir = Path(args.out_dir)
    cfg = official_cfg(args.lapmask_root, name, args.min_size_test, args.max_size_test)
    torch.manual_seed(args.seed)
    model = build_official(cfg)
    sd = model.state_dict()
    summary: dict[str, Any] = {"config": name, "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
                               "max_size_test": cfg.INPUT.MAX_SIZE_TEST, "torch_threads": torch.get_num_threads(),
                               "torch_version": torch.__version__, "num_tensors": len(sd),
                               "num_elements": int(sum(v.numel() for v in sd.values()))}
    tsv = Path(args.keys_dir) / f"keys_{name}.tsv"
    if tsv.is_file():
        problems = check_keys(sd, tsv)
        summary["keys_match_official_list"] = not problems
        print(f"[{name}] state_dict vs {tsv.name}: {'identical keys, order and shapes' if not problems else problems}")
    _load_or_make_weights(args, name, model, cal_paths, summary)
    model.eval()

    mapper = DatasetMapper(cfg, is_train=False)
    rec = Recorder(lm, model)
    # files at the yaml's own test size have no suffix; an overridden size is named in the file
    overridden = args.min_size_test is not None or args.max_size_test is not None
    suffix = f"_min{cfg.INPUT.MIN_SIZE_TEST}" if overridden else ""
    summary["images"] = {}
    try:
        for i, path in enumerate(image_paths):
            inputs = mapper({"file_name": str(path), "image_id": i})
            res, inter, dt = _run_image(model, cfg, rec, inputs, path.stem == args.intermediates_image)
            np.savez_compressed(out_dir / f"official_{name}_{path.stem}{suffix}.npz", **res)
            if inter:
                np.savez_compressed(out_dir / f"official_{name}_{path.stem}{suffix}_intermediates.npz", **inter)
            info = summary["images"][path.stem] = _image_info(res, dt)
            print(f"[{name}] {path.stem}{suffix}: {json.dumps(info)}", flush=True)
    finally:
        rec.restore()
    (out_dir / f"summary_{name}{suffix}.json").write_text(json.dumps(summary, indent=1))
    return summary


def check_all_keys(args: argparse.Namespace) -> int:
    """Build each config (official init) and compare its state_dict with the official key list."""
    bad = 0
    for name in args.configs:
        model = build_official(official_cfg(args.lapmask_root, name))
        sd = model.state_dict()
        problems = check_keys(sd, Path(args.keys_dir) / f"keys_{name}.tsv")
        bad += bool(problems)
        n = sum(v.numel() for v in sd.values())
        verdict = "keys, order and shapes identical" if not problems else problems
        print(f"[{name}] {len(sd)} tensors, {n:,} elements: {verdict}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lapmask-root", required=True, help="checkout of tjqansthd/LapMask (work tree)")
    ap.add_argument("--detectron2-root", required=True, help="checkout of facebookresearch/detectron2 (work tree)")
    ap.add_argument("--out-dir", default="/work/parity")
    ap.add_argument("--configs", nargs="+", default=["R50_3x"])
    ap.add_argument("--images", nargs="*", default=None, help="image names (default: all of images.DEFAULT_IMAGES)")
    ap.add_argument("--min-size-test", type=int, default=None, help="override INPUT.MIN_SIZE_TEST (default: yaml)")
    ap.add_argument("--max-size-test", type=int, default=None, help="override INPUT.MAX_SIZE_TEST (default: yaml)")
    ap.add_argument("--keys-dir", default="/work/shared/design/official-keys")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-candidates", type=int, default=150)
    ap.add_argument("--remake-weights", action="store_true")
    ap.add_argument("--intermediates-image", default="img427x640", help="image whose intermediates are dumped")
    ap.add_argument("--keys-only", action="store_true", help="only build each config and check its state_dict keys")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    image_paths = write_images(out_dir / "images")
    cal_paths = list(image_paths)  # all default images, the first one for the norm/offset/mask calibration
    if args.images:
        known = {p.stem: p for p in image_paths}
        unknown = [n for n in args.images if n not in known]
        if unknown:
            raise SystemExit(f"unknown images {unknown}; choose from {[n for n, _, _ in DEFAULT_IMAGES]}")
        image_paths = [known[n] for n in args.images]
    lm = setup_official(args.lapmask_root, args.detectron2_root)
    if args.keys_only:
        return check_all_keys(args)
    for name in args.configs:
        run_config(args, name, image_paths, cal_paths, lm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
