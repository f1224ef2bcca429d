"""Synthetic dataset: determinism, separate val seed, size statistics, annotation fidelity, loading, CLI."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from lapmask.classes import SYNTH_CATEGORY_IDS, SYNTH_CLASS_NAMES
from lapmask.data.coco import BrokenRecordsWarning, CocoInstanceDataset
from lapmask.data.masks import mask_to_xywh, segmentation_to_bitmask
from lapmask.data.synth import dataset_statistics, ensure_synthetic, generate_synthetic, main


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return generate_synthetic(out, n_train=80, n_val=6, size=256, seed=0), out


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_deterministic_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_synthetic(a, 4, 2, size=128, seed=3)
    generate_synthetic(b, 4, 2, size=128, seed=3)
    fa, fb = _files(a), _files(b)
    assert set(fa) == set(fb) and len(fa) == 4 + 2 + 3
    assert all(fa[k] == fb[k] for k in fa)
    c = tmp_path / "c"
    generate_synthetic(c, 4, 2, size=128, seed=4)  # other training seed: train changes, val (own seed) does not
    fc = _files(c)
    assert fc["train/000001.png"] != fa["train/000001.png"]
    assert fc["val/000001.png"] == fa["val/000001.png"]
    assert fc["annotations/instances_val.json"] == fa["annotations/instances_val.json"]


def test_workers_give_byte_identical_files(tmp_path):
    """Rendering in 2 processes (several chunks of 25 images, annotation ids given afterwards) writes exactly the
    files one process writes."""
    one, two = tmp_path / "one", tmp_path / "two"
    generate_synthetic(one, 60, 2, size=64, seed=5)
    generate_synthetic(two, 60, 2, size=64, seed=5, workers=2)
    f1, f2 = _files(one), _files(two)
    assert set(f1) == set(f2) and len(f1) == 60 + 2 + 3
    assert all(f1[k] == f2[k] for k in f1)
    ids = [a["id"] for a in json.loads(f2["annotations/instances_train.json"])["annotations"]]
    assert ids == list(range(1, len(ids) + 1))


def test_val_differs_from_train(synth):
    paths, out = synth
    tr = np.asarray(Image.open(paths["train_images"] / "000001.png"))
    va = np.asarray(Image.open(paths["val_images"] / "000001.png"))
    assert not np.array_equal(tr, va)
    jt, jv = (json.loads(paths[k].read_text()) for k in ("train_json", "val_json"))
    assert jt["annotations"][:3] != jv["annotations"][:3]
    assert (len(jt["images"]), len(jv["images"])) == (80, 6)


def test_statistics_constraints(synth):
    paths, _ = synth
    st = dataset_statistics(paths["train_json"])
    assert st["overall"]["small"] >= 0.30  # >= 30 % COCO-small (area < 32^2)
    assert st["overall"]["box_gt_96x96"] > 0.05 and st["overall"]["large"] > 0  # some larger than 96x96
    assert 2 <= st["instances_per_image"]["min"] and st["instances_per_image"]["max"] <= 8
    assert set(st["per_class"]) == set(SYNTH_CLASS_NAMES)
    assert all(s["n"] > 0 for s in st["per_class"].values())
    assert 0.1 < st["polygon_fraction"] < 0.95  # both polygons and RLEs are exercised


def test_annotations_match_masks_and_images(synth):
    paths, _ = synth
    d = json.loads(paths["train_json"].read_text())
    assert [c["id"] for c in d["categories"]] == list(SYNTH_CATEGORY_IDS)
    assert [c["name"] for c in d["categories"]] == list(SYNTH_CLASS_NAMES)
    by_image: dict[int, list[np.ndarray]] = {}
    for a in d["annotations"]:
        m = segmentation_to_bitmask(a["segmentation"], 256, 256)
        assert m.sum() == a["area"] > 0
        assert mask_to_xywh(m) == a["bbox"]
        assert a["iscrowd"] == 0
        by_image.setdefault(a["image_id"], []).append(m)
    for masks in list(by_image.values())[:20]:
        total = np.stack(masks).sum(0)
        assert total.max() == 1  # visible masks never overlap (occluded parts are not annotated)


def test_loads_cleanly_as_coco_dataset(synth):
    paths, _ = synth
    with warnings.catch_warnings():
        warnings.simplefilter("error", BrokenRecordsWarning)
        ds = CocoInstanceDataset(paths["val_json"], paths["val_images"], is_train=True, min_sizes=(320,),
                                 max_size=512)
    assert ds.category_ids == SYNTH_CATEGORY_IDS and ds.class_names == SYNTH_CLASS_NAMES
    item = ds[(0, 0)]
    assert item["image"].shape == (3, 320, 320)
    assert len(item["instances"]["labels"]) >= 2


def test_ensure_synthetic_reuses_and_regenerates(tmp_path):
    p = ensure_synthetic(tmp_path, 2, 1, size=96)
    mtime = p["train_json"].stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, 2, 1, size=96)["train_json"].stat().st_mtime_ns == mtime
    ensure_synthetic(tmp_path, 3, 1, size=96)
    assert len(json.loads(p["train_json"].read_text())["images"]) == 3


def test_main_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "s"), "--train", "3", "--val", "2", "--size", "128", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 train + 2 val" in out and "| circle |" in out
    assert (tmp_path / "s" / "annotations" / "instances_val.json").is_file()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "t"), "--train", "0", "--val", "0"])
