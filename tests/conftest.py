"""Test options and markers (``slow`` runs with --runslow; ``cuda`` and ``trt`` skip with a reason when absent) and
the session fixture ``kernels_lib``."""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    runslow = config.getoption("--runslow")
    has_cuda = _has_cuda()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    for item in items:
        # get_closest_marker, not item.keywords: folder names (tests/trt/) are keywords too.
        if item.get_closest_marker("slow") and not runslow:
            item.add_marker(pytest.mark.skip(reason="slow test: run with --runslow"))
        if item.get_closest_marker("cuda") and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
        if item.get_closest_marker("trt") and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT (pip install tensorrt) and a GPU"))


# ---------------------------------------------------------------------------------------------------------------
# liblapmask_kernels, shared by tests/ops (C ABI, CUDA kernels) and tests/export (ORT custom ops of the plugins
# flavour), so that neither depends on the other having run first (a clean checkout has no build).


@pytest.fixture(scope="session")
def kernels_lib() -> Iterator[Path]:
    """The kernels library, built once per session from the current sources.

    Order: ``$LAPMASK_KERNELS_LIB`` as given (no build); otherwise an incremental CMake build (about 1 s when
    nothing changed) into ``build/`` with CUDA when a GPU is present (the GPU tests need the CUDA kernels), or into
    the CPU-only ``build/pytest-cpu`` otherwise (no nvcc probe, ~10 s from scratch). Skips with a reason only when
    cmake or a C++ compiler is missing.
    """
    import torch

    from lapmask.ops import build_kernels, clib

    env = os.environ.get(clib.ENV_VAR)
    if env:
        yield Path(env)
        return
    missing = build_kernels.missing_tools()
    if missing:
        pytest.skip(f"cannot build liblapmask_kernels: {', '.join(missing)} not on PATH")
    if torch.cuda.is_available():
        # "on" (not "auto") so that a build/ configured CPU-only earlier is switched to CUDA for the GPU tests.
        path = build_kernels.build(build_kernels.DEFAULT_BUILD_DIR, cuda="on" if shutil.which("nvcc") else "auto")
    else:
        path = build_kernels.build(build_kernels.DEFAULT_BUILD_DIR / "pytest-cpu", cuda="off")
    os.environ[clib.ENV_VAR] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(clib.ENV_VAR, None)
