"""Peak memory of one benchmark worker process (each backend runs in a fresh process, so peaks are its own).

* CPU: the high-water mark of the process's resident set (interpreter, libraries, model, activations), read
  after the timed runs and BEFORE the accuracy pass. On Linux it is ``VmHWM`` of /proc/self/status, not
  ``getrusage().ru_maxrss``: Linux carries ``ru_maxrss`` across fork + exec, so a worker started by a parent
  holding 900 MB reports >= 900 MB whatever it does (measured: 930 MB for every backend), whereas ``VmHWM``
  belongs to the new address space. ``ru_maxrss`` is the fallback where /proc is absent (macOS).
* GPU: device memory in use above the level measured right after the CUDA context was created
  (``cudaMemGetInfo``: the same method for every GPU backend, so rows compare), sampled after set-up and after
  every run. PyTorch's caching allocator, ONNX Runtime's arena and TensorRT's activation memory all keep their
  high-water allocation, so the sampled maximum is the peak. Other processes on the same GPU disturb it (the
  harness's own parent process is idle while a worker runs). Torch backends also report the exact tensor peak,
  ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = float(2**20)


def _proc_status_mb(key: str) -> float | None:
    """A ``kB`` field of /proc/self/status in MiB, None where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> tuple[float, str]:
    """(high-water resident set size of this process in MiB, how it was measured); see the module docstring."""
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM (/proc/self/status)"
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux KiB, macOS bytes
    return (r / MB if sys.platform == "darwin" else r / 1024.0), "getrusage ru_maxrss"


def current_rss_mb() -> float | None:
    """Current resident set size in MiB (/proc/self/status VmRSS), None where /proc is absent."""
    return _proc_status_mb("VmRSS")


def _cudart_used(index: int) -> Callable[[], int]:
    """A function returning the bytes in use on device ``index`` (cuda-python runtime; creates the context)."""
    from cuda.bindings import runtime as cudart

    def check(result: Any) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"CUDA runtime error {err}")
        return values

    check(cudart.cudaSetDevice(index))
    check(cudart.cudaFree(0))  # forces the primary context into existence before the baseline

    def used() -> int:
        free, total = check(cudart.cudaMemGetInfo())
        return int(total) - int(free)
    return used


def _torch_used(index: int) -> Callable[[], int]:
    import torch

    torch.cuda.set_device(index)
    torch.cuda.init()
    torch.empty(1, device=f"cuda:{index}")  # the context exists only after a first allocation
    torch.cuda.reset_peak_memory_stats(index)

    def used() -> int:
        free, total = torch.cuda.mem_get_info(index)
        return int(total) - int(free)
    return used


class GpuMemoryProbe:
    """Device-memory high-water mark of this process's backend (see the module docstring).

    Args:
        index: CUDA device index. via_torch: measure through torch (torch backends; avoids a second CUDA
            runtime binding) or cuda-python (ONNX Runtime, TensorRT workers, which do not import torch).
    Create it BEFORE the backend allocates anything: the constructor takes the baseline.
    """

    def __init__(self, index: int, via_torch: bool) -> None:
        self.index, self.via_torch = index, via_torch
        self.note: str | None = None
        self._used: Callable[[], int] | None = None
        try:
            self._used = _torch_used(index) if via_torch else _cudart_used(index)
        except Exception as e:  # noqa: BLE001 - memory is reported as unmeasured, never fails the benchmark
            self.note = (f"GPU memory not measured ({type(e).__name__}: {e}); "
                         + ("" if via_torch else "pip install cuda-python"))
        self.baseline = self._used() if self._used else 0
        self.high = self.baseline

    def sample(self) -> None:
        if self._used is not None:
            self.high = max(self.high, self._used())

    def result(self) -> dict[str, Any]:
        """``gpu_peak_mb`` (above the context baseline), the method, and the torch tensor peak where it applies."""
        if self._used is None:
            return {"gpu_peak_mb": None, "gpu_method": self.note}
        self.sample()
        out: dict[str, Any] = {"gpu_peak_mb": (self.high - self.baseline) / MB,
                               "gpu_method": "cudaMemGetInfo delta over the CUDA-context baseline, sampled per run",
                               "gpu_device_used_at_start_mb": self.baseline / MB}
        if self.via_torch:
            import torch

            out["torch_max_allocated_mb"] = torch.cuda.max_memory_allocated(self.index) / MB
        return out
