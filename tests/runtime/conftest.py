"""Session fixtures: CMake builds of runtime/ (without and with libtorch) and the Python-made fixtures.

Set LAPMASK_RUNTIME_BUILD_DIR to keep the builds between sessions (incremental rebuilds instead of ~20 s / ~60 s).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.runtime.cmake_build import build_dir, cmake_build, require_toolchain, trt_options
from tests.runtime.fixtures import write_all


@pytest.fixture(scope="session")
def runtime_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runtime/ built without libtorch (pre/post-processing, RLE, JSON, tests, lapmask_infer); TensorRT back end
    compiled as a check when headers are found (TensorRT_ROOT or .third_party/tensorrt)."""
    require_toolchain()
    build = build_dir(tmp_path_factory, "runtime-notorch")
    seconds = cmake_build(build, ["-DLAPMASK_RUNTIME_TORCH=OFF", *trt_options()])
    print(f"\nruntime build without libtorch: {seconds:.1f} s")
    return build


@pytest.fixture(scope="session")
def runtime_torch_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runtime/ with the TorchScript back end (libtorch from the installed torch wheel)."""
    require_toolchain()
    pytest.importorskip("torch")
    build = build_dir(tmp_path_factory, "runtime-torch")
    seconds = cmake_build(build, ["-DLAPMASK_RUNTIME_TORCH=ON", "-DLAPMASK_RUNTIME_TENSORRT=OFF"])
    print(f"\nruntime build with libtorch: {seconds:.1f} s")
    return build


@pytest.fixture(scope="session")
def runtime_fixtures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """(fixture folder, cases per suite) written by tests/runtime/fixtures.py."""
    root = tmp_path_factory.mktemp("runtime_fixtures")
    t0 = time.time()
    counts = write_all(root)
    print(f"\nruntime fixtures: {counts} in {time.time() - t0:.1f} s")
    return root, counts
