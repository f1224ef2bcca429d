"""The demo's thread count: /proc/stat parsing, CPUs busy elsewhere, and the governor's decisions."""
from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from lapmask.engine import cpu_threads as ct

STAT = """cpu  100 5 50 1000 20 3 2 1 7 0
cpu0 50 2 25 500 10 1 1 0 7 0
intr 12345
"""


def test_read_proc_stat_by_hand():
    busy, total = ct.read_proc_stat(STAT)
    assert busy == 100 + 5 + 50 + 3 + 2 + 1  # user nice system irq softirq steal (guest is inside user)
    assert total == busy + 1000 + 20  # + idle + iowait
    assert ct.read_proc_stat("cpu  1 2 3 4") == (6, 10)  # old kernels: four fields
    with pytest.raises(ValueError, match="cpu"):
        ct.read_proc_stat("intr 1\n")


def test_cpus_busy_elsewhere_by_hand():
    # 2 CPUs, 100 jiffies/s, 1 s: 200 jiffies elapsed, 150 busy, of which 0.5 s (50 jiffies) are ours
    assert ct.cpus_busy_elsewhere((0, 0), (150, 200), 3.0, 3.5, 100, 2) == pytest.approx(1.0)
    assert ct.cpus_busy_elsewhere((0, 0), (40, 200), 0.0, 0.5, 100, 2) == 0.0  # clamped (rounding of ticks)
    assert ct.cpus_busy_elsewhere((5, 9), (5, 9), 0.0, 0.0, 100, 2) == 0.0  # no time elapsed


@pytest.mark.skipif(ct.cpu_sample() is None, reason="no /proc/stat on this platform")
def test_busy_child_process_is_seen():
    """A child spinning on one CPU counts as one CPU busy elsewhere; this process's own work does not."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        a = ct.cpu_sample()
        t = time.perf_counter()
        while time.perf_counter() - t < 1.0:  # this process busy too: must not count
            pass
        b = ct.cpu_sample()
    finally:
        child.kill()
        child.wait()
    others = ct.busy_between(a, b)
    assert 0.6 <= others < 1.6, others


def test_threads_for_and_governor(monkeypatch):
    monkeypatch.setattr(ct.os, "cpu_count", lambda: 4)
    assert [ct.threads_for(x) for x in (0.0, 0.4, 1.2, 2.6, 9.0, -1.0)] == [4, 4, 3, 1, 1, 4]
    samples = iter([((0, 0), 0.0), ((300, 400), 1.0), ((400, 800), 2.0)])  # others: 2 CPUs, then 0
    monkeypatch.setattr(ct, "cpu_sample", lambda: next(samples))
    monkeypatch.setattr(ct.os, "sysconf", lambda name: 100)
    said: list[str] = []
    gov = ct.ThreadGovernor(period_s=30.0, say=said.append)
    clock = {"s": 10.0}
    trainer = SimpleNamespace(iter=7, train_seconds=lambda: clock["s"])
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        gov(trainer)  # before the first period: no check (the samples are untouched)
        assert said == []
        clock["s"] = 31.0
        gov(trainer)
        assert torch.get_num_threads() == 2 and said == ["[iteration 7] load changed: 4 -> 2 threads"]
        clock["s"] = 62.0
        gov(trainer)
        assert torch.get_num_threads() == 4 and said[-1] == "[iteration 7] load changed: 2 -> 4 threads"
    finally:
        torch.set_num_threads(old)
