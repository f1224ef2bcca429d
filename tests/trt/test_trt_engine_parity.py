"""Engines from the ``standard`` and ``plugins`` ONNX of lite_R18 (fp32 and fp16), the TensorRT predictor against
ONNX Runtime (scores 1e-4, labels equal, mask IoU >= 0.99 for fp32; the fp16 tolerances of export.compare), and
the sidecar checks in front of deserialization. Need TensorRT and a GPU: skipped with the reason elsewhere."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.trt


@pytest.fixture(scope="module", autouse=True)
def _gpu():
    """TensorRT without a usable GPU: skip with the reason (the engines need one)."""
    from export.trt_engine import NoGpuError, gpu_info

    try:
        return gpu_info(0)
    except NoGpuError as e:
        pytest.skip(str(e))


def _export_testlib():
    """tests/export/export_testlib.py (the engineered lite_R18 with well separated scores, parity assertions)."""
    path = Path(__file__).resolve().parents[1] / "export" / "export_testlib.py"
    spec = importlib.util.spec_from_file_location("lapmask_export_testlib", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lib():
    return _export_testlib()


@pytest.fixture(scope="module")
def exports(lib, tmp_path_factory):
    model, cfg = lib.engineered_model()
    return lib.Exports(model, cfg, tmp_path_factory.mktemp("trt_exports")), cfg


@pytest.fixture(scope="module")
def engines(exports, plugin_build, tmp_path_factory):
    """{(flavour, fp16): engine path}, built once per module."""
    from export.trt_engine import BuildOptions, build_engine

    ex, _ = exports
    folder = tmp_path_factory.mktemp("engines")
    cache = folder / "timing.cache"
    out = {}
    for flavour, fp16 in (("standard", False), ("plugins", False), ("standard", True), ("plugins", True)):
        onnx_path = ex.onnx(flavour, "gridsample", fp16)
        engine = folder / f"{flavour}_{'fp16' if fp16 else 'fp32'}.engine"
        plugins = str(plugin_build["lib"]) if flavour == "plugins" else None
        build_engine(onnx_path, engine, BuildOptions(plugins=plugins, timing_cache=str(cache), workspace_mb=2048))
        out[(flavour, fp16)] = engine
    return out


def _ort(path: Path, flavour: str, image, size) -> list[np.ndarray]:
    from export.predictors.ort import make_session

    return make_session(str(path), flavour).run(None, {"image": image, "image_size": size})


@pytest.mark.parametrize("flavour", ["standard", "plugins"])
def test_engine_and_sidecar(engines, exports, plugin_build, flavour):
    import tensorrt as trt

    from export.metadata import file_digest
    from export.trt_checks import read_engine_sidecar

    engine = engines[(flavour, False)]
    meta = read_engine_sidecar(engine)
    assert meta["tensorrt_version"] == trt.__version__ and meta["flavour"] == flavour
    assert meta["precision"] == "fp32" and meta["strongly_typed"] is True
    assert meta["profiles"][0]["max"] == [1, 3, 512, 512]
    want = file_digest(plugin_build["lib"]) if flavour == "plugins" else None
    assert meta["plugin_library_sha256"] == want
    assert meta["onnx_sha256"] == file_digest(exports[0].onnx(flavour, "gridsample", False))


@pytest.mark.parametrize("flavour", ["standard", "plugins"])
def test_trt_matches_onnxruntime_fp32(engines, exports, lib, plugin_build, flavour):
    from export.predictors.trt import TrtPredictor

    ex, cfg = exports
    if flavour == "plugins" and lib.plugins_available():
        pytest.skip(f"ONNX Runtime cannot run the plugins flavour here: {lib.plugins_available()}")
    pred = TrtPredictor(engines[(flavour, False)], plugins=plugin_build["lib"])
    for i, hw in enumerate(lib.SIZES):
        image, size = lib.deploy_inputs(hw, seed=20 + i)
        ref = _ort(ex.onnx(flavour, "gridsample", False), flavour, image.numpy(), size.numpy())
        got = pred.infer(image.numpy(), size.numpy())
        lib.assert_parity(ref, got, cfg.inference.mask_thr)


@pytest.mark.parametrize("flavour", ["standard", "plugins"])
def test_fp16_engine_parity(engines, exports, lib, plugin_build, flavour):
    from export.compare import Tolerances, compare_raw
    from export.predictors.trt import TrtPredictor
    from export.trt_checks import read_engine_sidecar

    ex, cfg = exports
    engine = engines[(flavour, True)]
    assert read_engine_sidecar(engine)["precision"] == "fp16"
    pred = TrtPredictor(engine, plugins=plugin_build["lib"])
    for i, hw in enumerate(lib.SIZES):
        image, size = lib.deploy_inputs(hw, seed=30 + i)
        ref = _ort(ex.onnx("standard", "gridsample", False), "standard", image.numpy(), size.numpy())  # fp32
        report = compare_raw(ref, pred.infer(image.numpy(), size.numpy()), cfg.inference.mask_thr,
                             Tolerances.for_precision("fp16"))
        assert report.ok, report.summary()


def test_predictor_callable_interface(engines):
    from export.predictors import load_predictor

    pred = load_predictor("trt", str(engines[("standard", False)]))
    bgr = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    out = pred(bgr)
    assert set(out) >= {"scores", "labels", "masks", "boxes"}
    assert out["masks"].shape[1:] == (300, 420) and out["masks"].dtype == bool
    assert len(pred.class_names) == len(pred.category_ids) > 0


def test_sidecar_checks_block_deserialization(engines, plugin_build, tmp_path):
    from export.predictors.trt import TrtPredictor
    from export.trt_checks import EngineCompatibilityError

    for key, value, needle in (("tensorrt_version", "0.0.1", "built with TensorRT 0.0.1"),
                               ("compute_capability", "1.0", "compute capability 1.0")):
        engine = tmp_path / f"{key}.engine"
        shutil.copy(engines[("standard", False)], engine)
        meta = json.loads(Path(f"{engines[('standard', False)]}.json").read_text())
        meta[key] = value
        Path(f"{engine}.json").write_text(json.dumps(meta))
        with pytest.raises(EngineCompatibilityError, match=needle):
            TrtPredictor(engine)
    stale = tmp_path / "liblapmask_trt_plugins.so"
    stale.write_bytes(plugin_build["lib"].read_bytes() + b"\0")
    with pytest.raises(EngineCompatibilityError, match="is stale"):
        TrtPredictor(engines[("plugins", False)], plugins=stale)


def test_cli_end_to_end(exports, plugin_build, tmp_path, capsys):
    from lapmask.cli import main

    ex, _ = exports
    onnx_path = ex.onnx("plugins", "gridsample", False)
    out = tmp_path / "cli.engine"
    rc = main(["build-engine", str(onnx_path), "--out", str(out), "--plugins", str(plugin_build["lib"]),
               "--max-shape", "320x320", "--opt-shape", "256x288"])
    assert rc == 0 and out.is_file() and Path(f"{out}.json").is_file()
    assert "wrote" in capsys.readouterr().out
