"""A quick measure of the CPU's speed, recorded beside time-budgeted results (the demo's summary).

Why: the same 2-core machine kind ran this project's training step at very different speeds, even within one
session (matrix products on 2 threads: 107 GFLOPS in float32 and 320 in bfloat16 at the start of a session, 196
and 419 three hours later; lite_R18's training step 1.39 s and 0.82 s). A mask AP reached in a fixed
number of minutes means little without the speed of the machine that reached it.
"""
from __future__ import annotations

import time

import torch


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 0.25) -> float:
    """GFLOPS of ``size`` x ``size`` matrix products in ``dtype`` on the current torch threads.

    Runs for about ``seconds`` after one warm-up product; 2 * size^3 floating-point operations per product.
    """
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return 2.0 * size**3 * n / elapsed / 1e9


def cpu_speed(threads: int, bf16: bool | None = None) -> dict[str, float]:
    """``{"float32": GFLOPS, "bfloat16": GFLOPS}`` of this CPU now on ``threads`` threads (restored afterwards).

    ``bf16``: also measure bfloat16; None = where the CPU runs it natively (``trainer.native_amp``).
    """
    from lapmask.engine.trainer import native_amp

    if bf16 is None:
        bf16 = native_amp(torch.device("cpu"))
    keep = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dtypes = [torch.float32] + [torch.bfloat16] * bool(bf16)
        return {str(d).split(".")[1]: round(matmul_gflops(d), 1) for d in dtypes}
    finally:
        torch.set_num_threads(keep)
