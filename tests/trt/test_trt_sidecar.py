"""Engine sidecars: reading, validation and mismatch detection (TensorRT version, GPU, plugin library hash), all
before anything is deserialized."""
from __future__ import annotations

import json
import sys

import pytest
from trt_testlib import fake_engine, lite_metadata, tiny_onnx

HERE = {"tensorrt_version": "10.9.0", "gpu_name": "NVIDIA A100", "compute_capability": "8.0"}


def test_read_sidecar_roundtrip(tmp_path):
    from export.trt_checks import ENGINE_KEYS, read_engine_sidecar

    onnx_path = tiny_onnx(tmp_path / "m.onnx")
    eng = fake_engine(tmp_path / "m.engine", onnx_path)
    meta = read_engine_sidecar(eng)
    assert all(k in meta for k in ENGINE_KEYS)
    assert meta["class_names"] == lite_metadata()["class_names"] and meta["onnx_file"] == "m.onnx"
    assert meta["file_bytes"] == eng.stat().st_size


def test_missing_sidecar_and_missing_keys(tmp_path):
    from export.trt_checks import EngineCompatibilityError, read_engine_sidecar

    eng = tmp_path / "lonely.engine"
    eng.write_bytes(b"plan")
    with pytest.raises(EngineCompatibilityError, match="has no sidecar"):
        read_engine_sidecar(eng)
    # an ONNX-style sidecar (metadata but no engine keys) is not an engine sidecar
    (tmp_path / "lonely.engine.json").write_text(json.dumps({**lite_metadata(), "file_bytes": 4}))
    with pytest.raises(EngineCompatibilityError, match="tensorrt_version"):
        read_engine_sidecar(eng)
    with pytest.raises(FileNotFoundError):
        read_engine_sidecar(tmp_path / "absent.engine")


def test_engine_changed_after_sidecar(tmp_path):
    from export.trt_checks import EngineCompatibilityError, read_engine_sidecar

    eng = fake_engine(tmp_path / "m.engine")
    eng.write_bytes(eng.read_bytes()[:-1] + b"!")  # same size, other bytes
    with pytest.raises(EngineCompatibilityError, match="changed after its sidecar"):
        read_engine_sidecar(eng)
    assert read_engine_sidecar(eng, check_file=False)["tensorrt_version"] == "10.9.0"


def test_no_problems_when_everything_matches(tmp_path):
    from export.trt_checks import read_engine_sidecar, sidecar_problems

    meta = read_engine_sidecar(fake_engine(tmp_path / "m.engine"))
    assert sidecar_problems(meta, **HERE) == []


@pytest.mark.parametrize("change, needle", [
    ({"tensorrt_version": "10.8.0"}, "built with TensorRT 10.9.0, this is TensorRT 10.8.0"),
    ({"compute_capability": "8.6", "gpu_name": "NVIDIA RTX A6000"}, "compute capability 8.0"),
    ({"gpu_name": "NVIDIA A30"}, "built on NVIDIA A100, this GPU is NVIDIA A30"),
])
def test_version_and_gpu_mismatch(tmp_path, change, needle):
    from export.trt_checks import EngineCompatibilityError, check_engine_sidecar, read_engine_sidecar, sidecar_problems

    eng = fake_engine(tmp_path / "m.engine")
    meta = read_engine_sidecar(eng)
    runtime = {**HERE, **change}
    problems = sidecar_problems(meta, **runtime)
    assert len(problems) == 1 and needle in problems[0]
    with pytest.raises(EngineCompatibilityError) as e:
        check_engine_sidecar(meta, eng, **runtime)
    assert needle in str(e.value) and "lapmask build-engine m.onnx --out" in str(e.value)


def test_same_capability_other_gpu_can_be_allowed(tmp_path):
    from export.trt_checks import read_engine_sidecar, sidecar_problems

    meta = read_engine_sidecar(fake_engine(tmp_path / "m.engine"))
    assert sidecar_problems(meta, **{**HERE, "gpu_name": "NVIDIA A30"}, allow_other_gpu=True) == []
    # but never across compute capabilities
    assert sidecar_problems(meta, **{**HERE, "gpu_name": "X", "compute_capability": "9.0"}, allow_other_gpu=True)


def test_plugin_library_hash(tmp_path):
    from export.metadata import file_digest
    from export.trt_checks import read_engine_sidecar, sidecar_problems

    lib = tmp_path / "liblapmask_trt_plugins.so"
    lib.write_bytes(b"version one")
    meta = read_engine_sidecar(fake_engine(tmp_path / "m.engine", plugin_sha=file_digest(lib)))
    assert sidecar_problems(meta, **HERE, plugin_library=lib) == []
    missing = sidecar_problems(meta, **HERE, plugin_library=None)
    assert len(missing) == 1 and "uses lapmask plugins" in missing[0]
    lib.write_bytes(b"version two")  # rebuilt library: stale for this engine
    stale = sidecar_problems(meta, **HERE, plugin_library=lib)
    assert len(stale) == 1 and "is stale" in stale[0] and file_digest(lib)[:12] in stale[0]


def test_all_problems_are_reported_together(tmp_path):
    from export.trt_checks import read_engine_sidecar, sidecar_problems

    lib = tmp_path / "lib.so"
    lib.write_bytes(b"a")
    meta = read_engine_sidecar(fake_engine(tmp_path / "m.engine", plugin_sha="0" * 64))
    problems = sidecar_problems(meta, tensorrt_version="11.1.0", gpu_name="H100", compute_capability="9.0",
                                plugin_library=lib)
    assert len(problems) == 3


def test_predictor_checks_sidecar_before_tensorrt(tmp_path, monkeypatch):
    """The TRT predictor refuses a sidecar-less engine without importing TensorRT; with a good sidecar and no
    TensorRT it says what to install."""
    from export.predictors import load_predictor
    from export.trt_checks import EngineCompatibilityError
    from export.trt_engine import TensorRTMissingError

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    eng = tmp_path / "bare.engine"
    eng.write_bytes(b"plan")
    with pytest.raises(EngineCompatibilityError, match="has no sidecar"):
        load_predictor("trt", str(eng))
    good = fake_engine(tmp_path / "m.engine")
    with pytest.raises(TensorRTMissingError, match="pip install tensorrt"):
        load_predictor("trt", str(good))


def test_find_plugin_library_order(tmp_path, monkeypatch):
    import export.trt_checks as tc

    monkeypatch.setattr(tc, "REPO_ROOT", tmp_path)
    monkeypatch.delenv(tc.PLUGIN_LIBRARY_ENV, raising=False)
    assert tc.find_plugin_library() is None
    default = tmp_path / "build" / "lib" / tc.PLUGIN_LIBRARY_NAME
    default.parent.mkdir(parents=True)
    default.write_bytes(b"d")
    recorded, env, explicit = (tmp_path / n for n in ("rec.so", "env.so", "arg.so"))
    for p in (recorded, env, explicit):
        p.write_bytes(b"x")
    assert tc.find_plugin_library() == default
    assert tc.find_plugin_library(sidecar={"plugin_library_path": str(recorded)}) == recorded
    monkeypatch.setenv(tc.PLUGIN_LIBRARY_ENV, str(env))
    assert tc.find_plugin_library(sidecar={"plugin_library_path": str(recorded)}) == env
    assert tc.find_plugin_library(explicit) == explicit
    with pytest.raises(tc.PluginLibraryError, match="not found"):
        tc.find_plugin_library(tmp_path / "missing.so")
