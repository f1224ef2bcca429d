"""Pieces of the benchmark harness without a full run: backend selection, bench configs, CLI errors, data layouts,
the mask-AP pass (perfect and empty predictions, and one in-process PyTorch worker job), report rendering."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.bench.backends import BACKENDS, expand_selection, get_backend
from export.bench.dataset import class_mismatch, load_split, mask_ap, resolve_data_dir, synthetic_dataset
from export.bench.harness import BenchSettings, is_bench_config, load_bench_config
from export.bench.report import COLUMNS, markdown, plot, table_row
from lapmask.cli import main

REPO = Path(__file__).resolve().parents[2]


# ---- selection and configs ----

def test_expand_selection_groups_and_order():
    names = [s.name for s in BACKENDS]
    assert [s.name for s in expand_selection(["all"])] == names
    assert {s.device for s in expand_selection(["cpu"])} == {"cpu"}
    assert {s.device for s in expand_selection(["gpu"])} == {"cuda"}
    assert [s.name for s in expand_selection(["ort", "pytorch-cpu"])] == ["pytorch-cpu", "ort-cpu", "ort-cuda"]
    trt = expand_selection(["trt"])
    assert {(s.precision, s.flavour) for s in trt} == {("fp32", "standard"), ("fp16", "standard"),
                                                         ("fp32", "plugins"), ("fp16", "plugins")}
    assert all(s.artefact for s in BACKENDS if s.family != "pytorch")
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'.*ort-cpu"):
        expand_selection(["tensorflow"])
    assert get_backend("trt-fp16").precision == "fp16"


def test_shipped_bench_configs_load():
    files = sorted((REPO / "benchmarks" / "configs").glob("*.json"))
    assert len(files) >= 3
    for f in files:
        assert is_bench_config(str(f))
        s = BenchSettings(**load_bench_config(f))
        s.check()
        assert expand_selection(list(s.backends))
        from lapmask.config import load_config

        load_config(s.config)  # names a real preset


def test_bench_config_errors(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"model": "lite_R18", "runz": 3}))
    with pytest.raises(ValueError, match="unknown bench config keys.*runz"):
        load_bench_config(bad)
    assert not is_bench_config(str(tmp_path / "missing.json"))
    model_cfg = tmp_path / "m.json"
    model_cfg.write_text(json.dumps({"base": "lite_R18"}))
    assert not is_bench_config(str(model_cfg))  # a model config is passed through to load_config
    with pytest.raises(ValueError, match="--runs 0"):
        BenchSettings(runs=0).check()
    with pytest.raises(ValueError, match="--size"):
        BenchSettings(size=(16, 64)).check()


def test_flags_override_bench_config(tmp_path):
    import argparse

    from export.commands.bench import add_arguments, settings_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--config", str(REPO / "benchmarks/configs/smoke.json"), "--runs", "7", "--size", "96x128",
                         "--backends", "ort-cpu", "--out", str(tmp_path)])
    s = settings_from_args(args)
    assert (s.runs, s.warmup, s.size, s.backends, s.config) == (7, 2, (96, 128), ("ort-cpu",), "lite_R18")
    assert s.synthetic_size == 64 and s.out == str(tmp_path)


def test_cli_errors_and_listing(capsys, tmp_path):
    assert main(["bench", "--list-backends"]) == 0
    listed = capsys.readouterr().out
    assert all(s.name in listed for s in BACKENDS)
    assert main(["bench", "--config", "lite_R18", "--runs", "0", "--out", str(tmp_path)]) == 2
    assert "--runs 0" in capsys.readouterr().err
    assert main(["bench", "--config", "lite_R18", "--size", "64by64", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--config", "lite_R18"]) == 2  # --out missing
    assert "--out" in capsys.readouterr().err


# ---- data ----

def _coco_folder(root: Path, ann: str, images: str) -> Path:
    (root / Path(ann).parent).mkdir(parents=True)
    (root / images).mkdir(parents=True)
    (root / ann).write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    return root


def test_data_layouts(tmp_path):
    coco = resolve_data_dir(_coco_folder(tmp_path / "coco", "annotations/instances_val2017.json", "val2017"))
    assert coco.ann_file.endswith("instances_val2017.json") and coco.image_root.endswith("val2017")
    mine = resolve_data_dir(_coco_folder(tmp_path / "synth", "annotations/instances_val.json", "val"))
    assert mine.image_root.endswith("val")
    with pytest.raises(FileNotFoundError, match="instances_val2017.json \\+ val2017/"):
        resolve_data_dir(_coco_folder(tmp_path / "odd", "annotations/instances_test.json", "test"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        resolve_data_dir(tmp_path / "nope")


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("synth"), n_val=2, size=64)


def test_mask_ap_perfect_and_empty(tiny_split):
    """Ground-truth masks as predictions score AP 1; no predictions score 0 (the pass, not pycocotools, is tested)."""
    from lapmask.data.masks import segmentation_to_bitmask

    records, names, ids = load_split(tiny_split)
    gt = json.loads(Path(tiny_split.ann_file).read_text())
    label_of = {c: i for i, c in enumerate(ids)}
    seen = iter(records)

    def perfect(bgr: np.ndarray) -> dict:
        rec = next(seen)
        anns = [a for a in gt["annotations"] if a["image_id"] == rec["id"]]
        assert bgr.shape[:2] == (rec["height"], rec["width"])
        masks = np.stack([segmentation_to_bitmask(a["segmentation"], rec["height"], rec["width"]) for a in anns])
        return {"masks": masks, "scores": np.linspace(1.0, 0.5, len(anns)),
                "labels": np.array([label_of[a["category_id"]] for a in anns])}

    acc = mask_ap(perfect, records, tiny_split.ann_file, ids)
    assert acc["AP"] == pytest.approx(1.0) and acc["AP50"] == pytest.approx(1.0) and acc["images"] == 2
    empty = mask_ap(lambda bgr: {"masks": np.zeros((0, 64, 64), bool), "scores": np.zeros(0), "labels":
                                 np.zeros(0, int)}, records, tiny_split.ann_file, ids)
    assert empty["AP"] == 0.0 and empty["instances"] == 0
    assert class_mismatch(names, ids, names, ids) is None
    assert "differ" in class_mismatch(("a",) * len(names), ids, names, ids)


def test_worker_job_in_process_with_ap(tiny_split, tmp_path):
    """A pytorch-cpu worker job with an accuracy pass, run in this process: the fixed --size path resizes the
    image for the network and pastes masks back to the original size for scoring."""
    import torch

    from export.bench.runner import run_job
    from lapmask.engine.checkpoint import save_checkpoint
    from tests.helpers import engineered_model

    model = engineered_model(cate_bias=-1.0)
    ckpt = save_checkpoint(tmp_path / "m.pth", model.state_dict(), model.cfg)
    records, _, _ = load_split(tiny_split)
    job = {"backend": "pytorch-cpu", "weights": str(ckpt), "config": None, "artefact": None, "gpu": 0,
           "threads": 1, "resize": False, "size": [64, 96], "runs": 2, "warmup": 1, "latency_records": records[:1],
           "eval": {"records": records, "ann_file": tiny_split.ann_file}}
    threads = torch.get_num_threads()
    try:
        r = run_job(job)
    finally:
        torch.set_num_threads(threads)
    assert r["status"] == "ok" and r["input_hw"] == [64, 96]
    assert r["detections_mean"] > 0  # the engineered weights detect something, so post-processing is exercised
    acc = r["accuracy"]
    assert acc["images"] == 2 and acc["instances"] > 0
    for k in ("AP", "AP50", "AP75"):
        assert 0.0 <= acc[k] <= 1.0


# ---- report ----

def _doc(results: list[dict]) -> dict:
    return {"schema": "lapmask-bench/1", "created": "2026-01-01T00:00:00+00:00",
            "machine": {"cpu": "Test CPU", "cpu_count": 4, "gpu": None, "python": "3.11",
                        "libraries": {"torch": "2", "onnxruntime": "1", "tensorrt": None, "numpy": "2"}},
            "settings": {"preset": "lite_R18", "name": None, "runs": 100, "warmup": 10, "latency_images": 8,
                         "dataset": {"name": "synthetic-val"}, "input": "official", "threads": None, "k_pre": 500,
                         "max_dets": 100, "accuracy_note": None, "eval_images": 32, "weights": "w.pth"},
            "results": results}


def _ok(name: str, p50: float, ap: float | None) -> dict:
    lat = {"n": 100, "mean": p50 * 1.1, "std": 1.0, "p50": p50, "p90": p50 * 1.2, "p95": p50 * 1.3,
           "p99": p50 * 1.5, "min": p50 * 0.9, "max": p50 * 2}
    stage = {k: v / 3 for k, v in lat.items() if k != "n"}
    return {"backend": name, "device": "cpu", "precision": "fp32", "status": "ok", "reason": None,
            "latency_ms": lat, "stages_ms": {"pre": stage, "infer": stage, "post": stage},
            "throughput_ips": 1000 / lat["mean"], "memory": {"cpu_peak_rss_mb": 500.0},
            "accuracy": None if ap is None else {"AP": ap, "AP50": ap + 0.2, "AP75": ap - 0.05}}


def test_report_with_ap_and_failures(tmp_path):
    doc = _doc([_ok("pytorch-cpu", 120.0, 0.412), _ok("ort-cpu", 80.0, 0.411),
                {"backend": "trt-fp16", "device": "cuda", "precision": "fp16", "status": "failed",
                 "reason": "export failed: a | b\nsecond line"}])
    md = markdown(doc)
    row = table_row(doc["results"][0])
    assert len(row) == len(COLUMNS)
    assert row[COLUMNS.index("mask AP")] == "41.2" and row[COLUMNS.index("AP50")] == "61.2"
    assert row[COLUMNS.index("p99 ms")] == "180.0" and row[COLUMNS.index("p50 ms")] == "120.0"
    failed = next(ln for ln in md.splitlines() if ln.startswith("| trt-fp16 |"))
    assert "failed: export failed: a \\| b second line" in failed  # one line, pipes escaped
    assert failed.count(" | ") == len(COLUMNS) - 1
    assert "Mask AP on synthetic-val: 32 image(s) scored" in md
    png = plot(doc, tmp_path / "p.png")
    with Image.open(png) as im:
        assert im.width >= 400 and im.height >= 300
    assert png.stat().st_size > 5_000
    only_failed = plot(_doc([doc["results"][2]]), tmp_path / "f.png")
    assert only_failed.stat().st_size > 1_000
