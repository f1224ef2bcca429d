"""The C++ runtime's pre/post-processing, RLE and JSON against the Python implementation (issue 7, item 2).

Builds runtime/ with CMake (no libtorch; ~20 s), writes fixtures with lapmask.preprocess/postprocess, PIL and
pycocotools, and runs the C++ test binaries on them: resize bit-exact vs PIL, masks/boxes identical to
postprocess_static, RLE strings identical to pycocotools, prediction JSON identical to prediction_json.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.runtime.cmake_build import run

SUITES = ("resized_hw", "resize", "prepare", "bilinear", "paste", "rle", "json", "image")


def _fixture_binary(build: Path) -> Path:
    return build / "lapmask_runtime_fixture_tests"


def test_unit_tests_pass(runtime_build: Path) -> None:
    r = run([runtime_build / "lapmask_runtime_unit_tests"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failure(s)" in r.stdout
    assert len(re.findall(r"^\[ ok \]", r.stdout, re.M)) >= 10


@pytest.mark.parametrize("suite", SUITES)
def test_fixture_suite_matches_python(runtime_build: Path, runtime_fixtures: tuple[Path, dict[str, int]],
                                      suite: str) -> None:
    root, counts = runtime_fixtures
    r = run([_fixture_binary(runtime_build), suite, root])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(rf"{suite}: (\d+) case\(s\) passed", r.stdout)
    assert m and int(m.group(1)) == counts[suite] > 0, r.stdout


def test_ctest_runs_every_suite(runtime_build: Path, runtime_fixtures: tuple[Path, dict[str, int]]) -> None:
    root, _ = runtime_fixtures
    r = run(["ctest", "--test-dir", runtime_build, "--output-on-failure"], env={"LAPMASK_RUNTIME_FIXTURES": str(root)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert f"0 tests failed out of {1 + len(SUITES)}" in r.stdout, r.stdout[-2000:]


def test_ctest_skips_without_fixtures(runtime_build: Path) -> None:
    r = run([_fixture_binary(runtime_build), "resize"], env={"LAPMASK_RUNTIME_FIXTURES": ""})
    assert r.returncode == 77 and "skipped" in r.stdout


@pytest.mark.parametrize("suite,victim", [("resize", "resize/005_out.npy"), ("paste", "paste/001_masks.npy"),
                                          ("bilinear", "bilinear/003_out.npy"), ("rle", "rle/010_counts.txt"),
                                          ("json", "json/001_expected.json")])
def test_a_changed_expectation_fails(runtime_build: Path, runtime_fixtures: tuple[Path, dict[str, int]],
                                     tmp_path: Path, suite: str, victim: str) -> None:
    """The comparisons can fail: one altered expected value makes the suite report a difference."""
    root, _ = runtime_fixtures
    copy = tmp_path / "fixtures"
    shutil.copytree(root / suite, copy / suite)
    target = copy / victim
    if target.suffix == ".npy":
        a = np.load(target)
        flat = a.reshape(-1)
        if a.dtype == np.bool_:
            flat[flat.size // 2] = ~flat[flat.size // 2]
        elif a.dtype == np.float32:
            flat[flat.size // 2] = np.nextafter(flat[flat.size // 2], np.float32(2))
        else:
            flat[flat.size // 2] ^= 1
        np.save(target, a)
    elif target.name.endswith("_counts.txt"):
        s = target.read_text()
        target.write_text(s[:-1] + chr(ord(s[-1]) ^ 1))
    else:
        target.write_text(target.read_text().replace('"score": 0.', '"score": 1.', 1))
    r = run([_fixture_binary(runtime_build), suite, copy])
    assert r.returncode == 1, r.stdout
    assert "FAIL" in r.stdout


def test_lapmask_infer_errors_are_actionable(runtime_build: Path, tmp_path: Path) -> None:
    infer = runtime_build / "lapmask_infer"
    r = run([infer])
    assert r.returncode == 2 and "usage: lapmask_infer" in r.stderr
    r = run([infer, tmp_path / "missing.engine", tmp_path / "x.png"])
    assert r.returncode == 2 and "model file not found" in r.stderr
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not a model")
    r = run([infer, pt, tmp_path / "x.png"])
    assert r.returncode == 2 and "built without libtorch" in r.stderr
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    r = run([infer, onnx, tmp_path / "x.png"])
    assert r.returncode == 2 and "lapmask build-engine" in r.stderr
    r = run([infer, onnx, tmp_path / "x.png", "--bogus"])
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0")
    meta = {"format": "lapmask-deploy", "format_version": 1, "class_names": ["a"], "category_ids": [1],
            "min_size_test": 256, "max_size_test": 512, "mask_thr": 0.5, "flavour": "standard"}
    (tmp_path / "model.engine.json").write_text(json.dumps(meta))
    r = run([infer, engine, tmp_path / "x.png"], env={"LAPMASK_TRT_PLUGINS": ""})
    assert r.returncode == 2 and ("built without TensorRT" in r.stderr or "deserialise" in r.stderr), r.stderr
    (tmp_path / "model.engine.json").write_text(json.dumps({**meta, "flavour": "plugins"}))
    r = run([infer, engine, tmp_path / "x.png"], env={"LAPMASK_TRT_PLUGINS": ""})
    assert r.returncode == 2 and "--plugin" in r.stderr, r.stderr
    (tmp_path / "model.engine.json").write_text(json.dumps({**meta, "mask_thr": "high"}))
    r = run([infer, engine, tmp_path / "x.png"])
    assert r.returncode == 2 and '"mask_thr" must be a number' in r.stderr, r.stderr


def test_tensorrt_backend_compiles_against_headers(runtime_build: Path) -> None:
    """Compile-only check of the TensorRT back end (there is no libnvinfer to link on CPU machines)."""
    cache = (runtime_build / "CMakeCache.txt").read_text()
    m = re.search(r"^TensorRT_INCLUDE_DIR:PATH=(.*)$", cache, re.M)
    if not m or m.group(1).endswith("NOTFOUND"):
        pytest.skip("no TensorRT headers (set TensorRT_ROOT or export them into .third_party/tensorrt)")
    if not re.search(r"^CUDAToolkit_BIN_DIR:PATH=(?!.*NOTFOUND).+$", cache, re.M):
        pytest.skip("TensorRT headers found but no CUDA toolkit (cuda_runtime_api.h): the back end needs both")
    objects = list(runtime_build.glob("CMakeFiles/lapmask_runtime_trt_check.dir/**/backend_tensorrt.cpp.o"))
    assert objects and objects[0].stat().st_size > 0
