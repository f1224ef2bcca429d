"""`lapmask eval`, `lapmask data synth`, `lapmask train` (incl. a real Ctrl-C) and the inference loop."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_utils import ctrl_c_when, subprocess_env, tiny_config

from lapmask.cli import main as cli_main
from lapmask.engine.checkpoint import load_checkpoint, save_checkpoint
from lapmask.engine.evaluator import METRICS
from lapmask.engine.inference_loop import SplitPaths, evaluate_predictor
from lapmask.model.lapmask import build_model


class OraclePredictor:
    """Returns the ground truth of the image it is shown (found by its pixels): a perfect model."""

    def __init__(self, split: SplitPaths) -> None:
        from lapmask.data.coco import read_image_bgr
        from lapmask.data.masks import segmentation_to_bitmask

        d = json.loads(split.ann_file.read_text())
        label_of = {c["id"]: k for k, c in enumerate(sorted(d["categories"], key=lambda c: c["id"]))}
        self.by_pixels = {}
        for im in d["images"]:
            bgr = read_image_bgr(str(split.image_root / im["file_name"]), im["height"], im["width"])
            anns = [a for a in d["annotations"] if a["image_id"] == im["id"]]
            masks = np.stack([segmentation_to_bitmask(a["segmentation"], im["height"], im["width"]) for a in anns])
            self.by_pixels[bgr.tobytes()] = {"masks": masks.astype(bool),
                                             "labels": np.array([label_of[a["category_id"]] for a in anns]),
                                             "scores": np.linspace(0.9, 0.5, len(anns)),
                                             "boxes": np.zeros((len(anns), 4), np.float32)}

    def __call__(self, bgr: np.ndarray) -> dict[str, np.ndarray]:
        return self.by_pixels[bgr.tobytes()]


def test_inference_loop_scores_a_perfect_predictor_at_ap_1(synth_dir, tmp_path):
    split = SplitPaths.from_data_dir(synth_dir, "val")
    m = evaluate_predictor(OraclePredictor(split), split, out_dir=tmp_path, progress=False, distributed=False)
    assert m["segm"]["AP"] == pytest.approx(1.0) and m["bbox"]["AP"] == pytest.approx(1.0)
    assert m["inference"]["num_images"] == 3 and m["inference"]["num_failed"] == 0
    res = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(res) == m["inference"]["num_instances"] > 0
    ids = {c["id"] for c in json.loads(split.ann_file.read_text())["categories"]}
    assert {r["category_id"] for r in res} <= ids  # the dataset's own (non-contiguous) ids
    with pytest.raises(ValueError, match="differ"):
        evaluate_predictor(OraclePredictor(split), split, category_ids=list(range(6)), progress=False,
                           distributed=False)


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    cfg = tiny_config()
    return save_checkpoint(tmp_path / "w" / "model.pth", build_model(cfg).state_dict(), cfg)


def test_eval_command_writes_metrics_and_results(synth_dir, tiny_weights, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = cli_main(["eval", "--weights", str(tiny_weights), "--data", str(synth_dir), "--out", str(out),
                   "--device", "cpu", "--no-progress", "--threads", "1"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(METRICS) <= set(m["segm"]) and set(METRICS) <= set(m["bbox"])
    assert set(m["per_class"]) == set(tiny_config().class_names)
    assert m["inference"]["num_images"] == 3
    assert isinstance(json.loads((out / "coco_instances_results.json").read_text()), list)
    table = capsys.readouterr().out
    assert "| segm |" in table and "| bbox |" in table and "| circle |" in table
    # default output folder: next to the weights
    assert cli_main(["eval", "--weights", str(tiny_weights), "--data", str(synth_dir), "--no-progress",
                     "--max-images", "1"]) == 0
    assert json.loads((tiny_weights.parent / "eval_val" / "metrics.json").read_text())["inference"]["num_images"] == 1


def test_eval_command_errors_are_actionable(synth_dir, tmp_path, monkeypatch, capsys):
    assert cli_main(["eval", "--data", str(synth_dir)]) == 2
    assert "--weights is required" in capsys.readouterr().err
    assert cli_main(["eval", "--data", str(tmp_path), "--weights", "x.pth"]) == 2
    assert "instances_val.json" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "export.predictors", None)  # the deploy package is absent
    assert cli_main(["eval", "--data", str(synth_dir), "--backend", "ort", "--model", "m.onnx"]) == 2
    assert "pip install" in capsys.readouterr().err


def test_data_synth_command(tmp_path):
    assert cli_main(["data", "synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "1", "--size",
                     "64"]) == 0
    d = json.loads((tmp_path / "d" / "annotations" / "instances_train.json").read_text())
    assert len(d["images"]) == 2 and len(list((tmp_path / "d" / "val").glob("*.png"))) == 1


def test_train_command_ctrl_c_saves_then_resume_finishes(synth_dir, tmp_path):
    """A real SIGINT to the whole process group (what a terminal's Ctrl-C does), DataLoader workers included."""
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(tiny_config(max_iter=400).to_dict()))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lapmask", "train", "--config", str(cfg_file), "--data", str(synth_dir),
           "--out", str(out), "--num-workers", "2", "--threads", "1", "--log-period", "1", "--no-progress"]
    log = out / "metrics.jsonl"
    code, err = ctrl_c_when(cmd, lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, cwd=tmp_path,
                            env=subprocess_env(), timeout=120)
    assert code == 130, err
    assert "--resume" in err
    name = (out / "last_checkpoint").read_text().strip()
    it = load_checkpoint(out / name)["iteration"]
    assert 2 <= it < 400 and name == f"model_{it:07d}.pth"
    rc = subprocess.run(cmd + ["--resume", "--max-iter", str(it + 2), "--num-workers", "0"], cwd=tmp_path,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rc.returncode == 0, rc.stderr
    assert load_checkpoint(out / "model_final.pth")["iteration"] == it + 2
