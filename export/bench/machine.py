"""What a benchmark ran on: CPU model, GPU, library versions (recorded in every result JSON)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

# distribution names per library, first installed wins (GPU wheels are published under other names)
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_cu13", "tensorrt_cu12"),
    "numpy": ("numpy",),
    "onnx": ("onnx",),
    "torchvision": ("torchvision",),
    "cuda-python": ("cuda-python", "cuda-bindings"),
    "pycocotools": ("pycocotools",),
}


def library_version(name: str) -> str | None:
    """Installed version of ``name`` (see ``_DISTRIBUTIONS``), or None when it is not installed."""
    for dist in _DISTRIBUTIONS.get(name, (name,)):
        try:
            v = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return v if dist == name else f"{v} ({dist})"
    return None


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo; "Hardware"/"Model" on some ARM kernels)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in text.splitlines():
            k, sep, v = line.partition(":")
            if sep and k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or platform.machine() or "unknown"


def gpu_description(index: int = 0) -> dict[str, Any] | None:
    """Name, compute capability and memory of CUDA device ``index`` via torch (or cuda-python where torch has
    no CUDA), or None without a CUDA GPU."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available() or index >= torch.cuda.device_count():
        try:
            from export.trt_engine import gpu_info

            g = gpu_info(index)
        except Exception:  # noqa: BLE001 - no cuda-python or no GPU: the machine has no usable GPU
            return None
        return {"index": index, "name": g.name, "compute_capability": g.compute_capability, "memory_gb": None,
                "cuda_runtime": None, "cudnn": None}
    p = torch.cuda.get_device_properties(index)
    return {"index": index, "name": p.name, "compute_capability": f"{p.major}.{p.minor}",
            "memory_gb": round(p.total_memory / 2**30, 1), "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def machine_info(gpu_index: int = 0) -> dict[str, Any]:
    """The ``machine`` block of the result JSON."""
    from lapmask import __version__

    libs = {name: library_version(name) for name in _DISTRIBUTIONS}
    libs["lapmask"] = __version__
    try:
        load = [round(v, 2) for v in os.getloadavg()]  # a busy machine inflates CPU latencies: say so
    except OSError:
        load = None
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "load_average_at_start": load,
            "gpu": gpu_description(gpu_index),
            "platform": platform.platform(), "python": sys.version.split()[0], "libraries": libs,
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
                    if k in os.environ}}
