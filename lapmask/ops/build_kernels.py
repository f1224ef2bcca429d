"""Build ``liblapmask_kernels`` (trt_plugins/kernels) with CMake so users never have to call CMake themselves.

    python -m lapmask.ops.build_kernels                 # Release build into <repo>/build, CUDA when nvcc is found
    python -m lapmask.ops.build_kernels --cuda off      # CPU only (fast)
    python -m lapmask.ops.build_kernels --clean --cuda on --archs 80;90

Needs a source checkout (the top-level CMakeLists.txt), cmake >= 3.18 and a C++17 compiler; nvcc adds the CUDA
kernels. The library lands in ``<build-dir>/lib/``, where ``lapmask.ops.clib`` looks for it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = REPO_ROOT / "build"


class BuildError(RuntimeError):
    """The kernels could not be configured or compiled; the message says why and what to install."""


def _library_filename() -> str:
    if sys.platform == "win32":
        return "lapmask_kernels.dll"
    return "liblapmask_kernels.dylib" if sys.platform == "darwin" else "liblapmask_kernels.so"


def missing_tools() -> list[str]:
    """Tools the CPU build needs that are not on PATH (empty when a build can be attempted)."""
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c):
        missing.append("a C++ compiler (g++ or clang++)")
    return missing


def _run(cmd: list[str], verbose: bool) -> None:
    if verbose:
        print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, check=False, stdout=None if verbose else subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "" if verbose else "\n" + "\n".join((proc.stdout or "").splitlines()[-40:])
        raise BuildError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}{tail}")


def build(build_dir: str | Path | None = None, cuda: str = "auto", build_type: str = "Release",
          jobs: int | None = None, clean: bool = False, archs: str | None = None, verbose: bool = False) -> Path:
    """Configure (if needed) and build the kernels library; returns its path.

    Args:
        build_dir: CMake binary dir (default ``<repo>/build``).
        cuda: "auto" (CUDA when CMake finds nvcc), "on" or "off".
        archs: CMAKE_CUDA_ARCHITECTURES, e.g. "80;90" (default 75;80;86;89;90).
        clean: delete the build dir first (needed to switch options that CMake caches).
    """
    if cuda not in ("auto", "on", "off"):
        raise ValueError(f"cuda must be 'auto', 'on' or 'off', got {cuda!r}")
    if not (REPO_ROOT / "CMakeLists.txt").is_file():
        raise BuildError(f"no CMakeLists.txt at {REPO_ROOT}: building the kernels needs a source checkout of lapmask")
    missing = missing_tools()
    if missing:
        raise BuildError(f"cannot build liblapmask_kernels: {', '.join(missing)} not found on PATH "
                         "(e.g. `apt-get install cmake g++` or `pip install cmake`)")
    bdir = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    if clean and bdir.exists():
        shutil.rmtree(bdir)
    cfg = ["cmake", "-S", str(REPO_ROOT), "-B", str(bdir), f"-DCMAKE_BUILD_TYPE={build_type}"]
    if cuda != "auto":
        cfg.append(f"-DLAPMASK_BUILD_CUDA={'ON' if cuda == 'on' else 'OFF'}")
    if archs:
        cfg.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    t0 = time.perf_counter()
    # Re-configure only when asked for something specific or never configured: CMake re-runs itself when its
    # inputs change, and skipping the CUDA compiler probe keeps incremental builds at ~1 s.
    if not (bdir / "CMakeCache.txt").is_file() or cuda != "auto" or archs or build_type != "Release":
        _run(cfg, verbose)
    _run(["cmake", "--build", str(bdir), "--target", "lapmask_kernels", "-j", str(jobs or os.cpu_count() or 1)],
         verbose)
    lib = bdir / "lib" / _library_filename()
    if not lib.is_file():
        raise BuildError(f"the build finished but {lib} does not exist")
    if verbose:
        print(f"built {lib} ({lib.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
    return lib


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lapmask.ops.build_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=str(DEFAULT_BUILD_DIR), help="CMake build folder (default: %(default)s)")
    ap.add_argument("--cuda", choices=("auto", "on", "off"), default="auto", help="compile the CUDA kernels")
    ap.add_argument("--archs", default=None, help="CUDA architectures, e.g. '80;90' (default 75;80;86;89;90)")
    ap.add_argument("--build-type", default="Release", choices=("Release", "RelWithDebInfo", "Debug"))
    ap.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: all cores)")
    ap.add_argument("--clean", action="store_true", help="delete the build folder first")
    ap.add_argument("--quiet", action="store_true", help="only print the result")
    args = ap.parse_args(argv)
    try:
        lib = build(args.build_dir, args.cuda, args.build_type, args.jobs, args.clean, args.archs,
                    verbose=not args.quiet)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"liblapmask_kernels ready: {lib}\nnext: python -c \"from lapmask.ops import clib; print(clib.build_info())\"")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
