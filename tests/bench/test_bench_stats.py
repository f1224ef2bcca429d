"""Percentile math of the benchmark against numpy, and the p99 rule."""
from __future__ import annotations

import math

import numpy as np
import pytest

from export.bench.stats import P99_MIN_RUNS, percentile, summarize, throughput

QS = (0, 1, 25, 50, 90, 95, 99, 100)


@pytest.mark.parametrize("values", [
    [5.0],
    [1.0, 2.0],
    [3.0, 1.0, 2.0, 4.0],
    [7.0, 7.0, 7.0, 1.0, 7.0],  # ties
    list(np.random.default_rng(0).exponential(10.0, 37)),  # skewed, like latencies
    list(np.random.default_rng(1).normal(100.0, 5.0, 250)),
])
def test_percentile_matches_numpy(values):
    for q in QS:
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-12)


def test_percentile_known_values():
    # positions (n - 1) q / 100 on [1, 2, 3, 4]: p50 at 1.5 -> 2.5; p90 at 2.7 -> 3.7; p0 / p100 the extremes
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([4, 1, 3, 2], 90) == pytest.approx(3.7)
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, math.nan], 50)


def test_summary_against_numpy_and_ordering():
    x = np.random.default_rng(2).gamma(2.0, 30.0, 120)
    s = summarize(list(x))
    assert s["n"] == 120
    assert s["mean"] == pytest.approx(x.mean()) and s["std"] == pytest.approx(x.std())
    for k, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert s[k] == pytest.approx(np.percentile(x, q))
    assert s["min"] == x.min() and s["max"] == x.max()
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]


def test_p99_only_from_100_runs():
    x = list(np.random.default_rng(3).uniform(1, 2, P99_MIN_RUNS))
    assert P99_MIN_RUNS == 100
    assert summarize(x[:99])["p99"] is None
    assert summarize(x[:99])["p95"] is not None
    assert summarize(x)["p99"] == pytest.approx(np.percentile(x, 99))
    with pytest.raises(ValueError, match="--runs"):
        summarize([])


def test_throughput():
    assert throughput(250.0) == pytest.approx(4.0)
    assert math.isinf(throughput(0.0))
