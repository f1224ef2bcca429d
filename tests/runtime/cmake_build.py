"""Configure and build runtime/ with CMake from tests (skip with a reason when the toolchain is missing)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME_SRC = REPO / "runtime"
TRT_HEADERS = REPO / ".third_party" / "tensorrt"


def require_toolchain() -> None:
    """pytest.skip unless cmake and a C++ compiler are on PATH."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not found on PATH (apt-get install cmake)")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler on PATH (apt-get install g++)")


def build_dir(tmp_factory: pytest.TempPathFactory, name: str) -> Path:
    """$LAPMASK_RUNTIME_BUILD_DIR/<name> (kept between sessions: incremental rebuilds) or a fresh temp folder."""
    base = os.environ.get("LAPMASK_RUNTIME_BUILD_DIR")
    if base:
        p = Path(base) / name
        p.mkdir(parents=True, exist_ok=True)
        return p
    return tmp_factory.mktemp(name)


def cmake_build(build: Path, options: list[str], timeout: float = 900.0) -> float:
    """Configure runtime/ into ``build`` with ``options`` and build it with 2 jobs; returns the seconds it took.

    Fails the test with the end of the log when configuring or compiling fails.
    """
    t0 = time.time()
    for cmd in (["cmake", "-S", str(RUNTIME_SRC), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", *options],
                ["cmake", "--build", str(build), "-j2"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed (rc {r.returncode}):\n{(r.stdout + r.stderr)[-4000:]}")
    return time.time() - t0


def trt_options() -> list[str]:
    """Point the build at TensorRT headers exported into .third_party/ (compile check) when they are there."""
    root = os.environ.get("TensorRT_ROOT") or (str(TRT_HEADERS) if (TRT_HEADERS / "include").is_dir() else "")
    return [f"-DTensorRT_ROOT={root}"] if root else []


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run a built binary, capturing text output."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
