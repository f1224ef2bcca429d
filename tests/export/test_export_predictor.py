"""ONNX Runtime predictor: torch-free, metadata-driven, identical to the PyTorch static predictor; fixed sizes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from export_testlib import K_PRE, MAX_DETS, smooth_image

FIXED = (256, 352)


def _bgr(h: int, w: int, seed: int) -> np.ndarray:
    return smooth_image(h, w, seed)[0].permute(1, 2, 0).numpy().copy()


def test_ort_predictor_equals_pytorch_static_predictor(exports, lite):
    from export.predictors import load_predictor
    from lapmask.inference import Predictor

    model, cfg = lite
    pred = load_predictor("ort", str(exports.onnx()))
    assert pred.class_names == cfg.class_names and pred.category_ids == cfg.category_ids
    ref_pred = Predictor(model, cfg, static=True, k_pre=K_PRE, max_dets=MAX_DETS)
    for hw, seed in (((200, 260), 5), ((300, 180), 6)):  # resized to 256 x 333 and 426 x 256
        bgr = _bgr(*hw, seed)
        got, ref = pred(bgr), ref_pred(bgr)
        assert len(ref["scores"]) == MAX_DETS
        assert got["masks"].dtype == bool and got["masks"].shape == (MAX_DETS, *hw)
        np.testing.assert_array_equal(got["labels"], ref["labels"])
        np.testing.assert_allclose(got["scores"], ref["scores"], atol=1e-4)
        iou = (got["masks"] & ref["masks"]).sum((1, 2)) / np.maximum((got["masks"] | ref["masks"]).sum((1, 2)), 1)
        assert iou.min() >= 0.99
        assert np.abs(got["boxes"] - ref["boxes"]).max() <= 1
        assert pred.last_num_candidates == ref_pred.last_num_candidates


def test_fixed_size_export_pads_into_its_size_and_refuses_larger(exports):
    from export.predictors import load_predictor

    pred = load_predictor("ort", str(exports.onnx(fixed=FIXED)))
    assert pred.fixed_hw == FIXED
    image, hw = pred.prepare(_bgr(200, 260, 7))  # resized to 256 x 333, padded into 256 x 352
    assert image.shape == (1, 3, *FIXED) and hw == (256, 333) and not image[:, :, :, 333:].any()
    out = pred(_bgr(200, 260, 7))
    assert out["masks"].shape[1:] == (200, 260) and len(out["scores"]) == MAX_DETS
    with pytest.raises(ValueError, match="export with --dynamic or a larger --height/--width"):
        pred(_bgr(200, 300, 8))  # resized to 256 x 384: wider than 352


def test_fixed_size_graph_has_static_shapes(exports):
    import onnx

    model = onnx.load(str(exports.onnx(fixed=FIXED)), load_external_data=False)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert dims["image"] == [1, 3, *FIXED] and dims["image_size"] == [1, 2]
    out = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    assert out["masks"] == [1, MAX_DETS, FIXED[0] // 4, FIXED[1] // 4]


def test_ort_predictor_needs_neither_torch_nor_the_model_package(exports, tmp_path):
    """Run the predictor in a fresh interpreter where importing torch fails."""
    np.save(tmp_path / "img.npy", _bgr(200, 260, 5))
    code = f"""
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
from export.predictors import load_predictor
pred = load_predictor('ort', {str(exports.onnx())!r})
out = pred(np.load({str(tmp_path / 'img.npy')!r}))
assert not any(m.startswith('lapmask.model') for m in sys.modules), 'lapmask.model was imported'
print(len(out['scores']), out['masks'].shape)
"""
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(MAX_DETS), f"({MAX_DETS},", "200,", "260)"]


def test_metadata_round_trip(exports, lite):
    from export.metadata import METADATA_FORMAT_VERSION, file_digest, read_onnx_metadata, read_sidecar

    _, cfg = lite
    path = exports.onnx()
    meta = read_onnx_metadata(path)
    # contracts.md section 5
    assert meta["format_version"] == METADATA_FORMAT_VERSION and meta["lapmask_version"]
    assert meta["preset"] == "lite_R18" and meta["config"]["head"]["num_classes"] == cfg.head.num_classes
    assert meta["class_names"] == list(cfg.class_names) and meta["category_ids"] == list(cfg.category_ids)
    assert (meta["min_size_test"], meta["max_size_test"]) == (cfg.input.min_size_test, cfg.input.max_size_test)
    assert meta["mask_thr"] == cfg.inference.mask_thr and meta["precision"] == "fp32"
    assert meta["flavour"] == "standard" and meta["k_pre"] == K_PRE and meta["max_dets"] == MAX_DETS
    assert meta["opset"] == 19 and meta["dynamic_shape"] is True
    side = read_sidecar(path)
    assert side is not None and side["file_sha256"] == file_digest(path) and side["file_bytes"] == path.stat().st_size
    assert {k: v for k, v in side.items() if not k.startswith("file")} == meta
    assert json.loads(json.dumps(meta)) == meta


def test_predictor_rejects_files_without_metadata(tmp_path):
    from onnx import TensorProto as TP
    from onnx import helper, save

    from export.metadata import MetadataError
    from export.predictors.ort import OrtPredictor

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TP.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1])])
    save(helper.make_model(g), str(tmp_path / "plain.onnx"))
    with pytest.raises(MetadataError, match="lapmask export"):
        OrtPredictor(tmp_path / "plain.onnx")
    with pytest.raises(FileNotFoundError):
        OrtPredictor(tmp_path / "missing.onnx")


def test_cuda_provider_error_is_actionable():
    import onnxruntime as ort

    from export.predictors.ort import ProviderError, providers_for

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert providers_for("cuda")[0] == ("CUDAExecutionProvider", {"device_id": 0})
        assert providers_for("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    else:
        for device in ("cuda", "cuda:1"):
            with pytest.raises(ProviderError, match="onnxruntime-gpu"):
                providers_for(device)
    for bad in ("tpu", "cuda:x", "cudax"):
        with pytest.raises(ValueError, match="unknown device"):
            providers_for(bad)
