"""End to end through the CLI: lapmask export (with its own validation) -> compare -> predict --backend ort."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_testlib import K_PRE, MAX_DETS, engineered_model, smooth_image
from PIL import Image

from lapmask.cli import main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """An engineered checkpoint, two PNG images in a dataset-like folder, and a CLI export of them."""
    from lapmask.engine.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("cli")
    model, cfg = engineered_model()
    ckpt = save_checkpoint(root / "lite.pth", model.state_dict(), cfg)
    (root / "data" / "val").mkdir(parents=True)
    for i, (h, w) in enumerate(((200, 260), (190, 250))):
        bgr = smooth_image(h, w, 20 + i)[0].permute(1, 2, 0).numpy()
        Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(root / "data" / "val" / f"im{i}.png")
    return root, ckpt


def test_export_prints_one_line_then_next_commands(workspace, capsys):
    root, ckpt = workspace
    out = root / "lite.onnx"
    rc = main(["export", "--onnx", str(out), "--weights", str(ckpt), "--height", "256", "--width", "352",
               "--k-pre", str(K_PRE), "--max-dets", str(MAX_DETS)])
    text = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert text[0].startswith(f"exported {out} (") and " MB" in text[0] and text[0].rstrip().endswith("validated")
    assert " s" in text[0] and "256x352" in text[0]
    assert text[1] == "next:" and any("lapmask compare" in t and str(out) in t for t in text[2:])
    assert out.is_file() and Path(str(out) + ".json").is_file()


def test_compare_passes_on_the_export_and_fails_on_a_tampered_copy(workspace, capsys):
    import onnx
    from onnx import numpy_helper

    root, ckpt = workspace
    model = root / "lite.onnx"
    if not model.is_file():
        pytest.skip("needs test_export_prints_one_line_then_next_commands")
    report = root / "report.json"
    rc = main(["compare", "--weights", str(ckpt), "--backend", "ort", "--model", str(model), "--data",
               str(root / "data"), "--json", str(report)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(report.read_text())
    assert doc["ok"] and len(doc["images"]) == 2 and all(i["num_dets"] == [MAX_DETS] * 2 for i in doc["images"])
    assert "ort matches PyTorch on 2 image(s)" in text

    m = onnx.load(str(model))
    w = next(t for t in m.graph.initializer if t.name == "model.ins_head.kernel_lap1_pred.weight")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.5, w.name))
    bad = root / "tampered.onnx"
    onnx.save(m, str(bad))
    rc = main(["compare", "--weights", str(ckpt), "--backend", "ort", "--model", str(bad),
               str(root / "data" / "val" / "im0.png")])
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL" in text and "DOES NOT match" in text


def test_predict_with_the_ort_backend(workspace, capsys):
    root, _ = workspace
    model = root / "lite.onnx"
    if not model.is_file():
        pytest.skip("needs test_export_prints_one_line_then_next_commands")
    rc = main(["predict", str(root / "data" / "val" / "im0.png"), "--backend", "ort", "--model", str(model),
               "--out", str(root / "pred")])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((root / "pred" / "im0.json").read_text())
    assert (doc["height"], doc["width"]) == (200, 260) and len(doc["instances"]) == MAX_DETS
    scores = [i["score"] for i in doc["instances"]]
    assert scores == sorted(scores, reverse=True)
    assert {i["category"] for i in doc["instances"]} <= set(json.loads(
        Path(str(model) + ".json").read_text())["class_names"])


def test_compare_refuses_another_preset(workspace, capsys, tmp_path):
    from lapmask.config import get_preset
    from lapmask.engine.checkpoint import save_checkpoint
    from lapmask.model.lapmask import build_model

    root, _ = workspace
    model = root / "lite.onnx"
    if not model.is_file():
        pytest.skip("needs test_export_prints_one_line_then_next_commands")
    cfg = get_preset("lite_R34")
    other = save_checkpoint(tmp_path / "r34.pth", build_model(cfg).state_dict(), cfg)
    rc = main(["compare", "--weights", str(other), "--backend", "ort", "--model", str(model),
               str(root / "data" / "val" / "im0.png")])
    assert rc == 2 and "exported from preset 'lite_R18'" in capsys.readouterr().err
