"""Latency statistics: percentiles (numpy's default "linear" rule, written out so it is checkable) and summaries.

Pure Python (no numpy, no torch): the benchmark worker of a torch-free backend imports it before its memory is
measured.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

P99_MIN_RUNS = 100  # below 100 samples the 99th percentile is just the maximum (or an interpolation to it)
SUMMARY_KEYS = ("mean", "std", "p50", "p90", "p95", "p99", "min", "max")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between closest ranks.

    Same definition as ``numpy.percentile(values, q)`` (method "linear", Hyndman & Fan type 7): the sorted
    samples sit at positions 0..n-1 and position (n - 1) * q / 100 is interpolated.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} must lie in [0, 100]")
    s = sorted(float(v) for v in values)
    if not s:
        raise ValueError("percentile of an empty sample")
    if any(math.isnan(v) for v in s):
        raise ValueError("percentile of a sample containing NaN")
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(values: Sequence[float], p99_min_runs: int = P99_MIN_RUNS) -> dict[str, float | int | None]:
    """mean, std (population), p50, p90, p95, p99, min, max and n of a latency sample (any unit).

    ``p99`` is None when fewer than ``p99_min_runs`` samples exist: with N < 100 it would only restate the
    largest sample or two, and a table should not suggest a tail measurement that was not made.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("cannot summarise an empty sample; run at least one timed iteration (--runs >= 1)")
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs))
    return {"n": len(xs), "mean": mean, "std": std, "p50": percentile(xs, 50), "p90": percentile(xs, 90),
            "p95": percentile(xs, 95), "p99": percentile(xs, 99) if len(xs) >= p99_min_runs else None,
            "min": min(xs), "max": max(xs)}


def throughput(mean_ms: float) -> float:
    """Images per second of a sequential batch-1 loop whose mean end-to-end latency is ``mean_ms``."""
    return 1000.0 / mean_ms if mean_ms > 0 else math.inf
