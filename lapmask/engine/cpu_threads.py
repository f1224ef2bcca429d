"""How many torch CPU threads to use on a machine that other processes may share (the demo's default).

OpenMP threads that share a core with another busy process wait for it at every barrier: measured on the shared
2-core CPU (lite head, 192 px, batch 8), idle machine 2 threads 12.4 images/s vs 1 thread 7.3; with one core busy
elsewhere 2 threads 3.9 images/s vs 1 thread 7.2. So the thread count is the CPUs minus those busy elsewhere.

"Busy elsewhere" is measured over a short window from ``/proc/stat`` (all CPU time) minus this process's own CPU
time (``os.times``), so it reflects the machine now. The 1-minute load average, the fallback where ``/proc/stat``
does not exist, still remembers a ``pip install`` that ended seconds ago (the demo used to start on 1 thread).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

PROC_STAT = Path("/proc/stat")


def read_proc_stat(text: str) -> tuple[int, int]:
    """``(busy, total)`` jiffies summed over all CPUs from the text of ``/proc/stat`` (its ``cpu`` line).

    busy = user + nice + system + irq + softirq + steal; total = busy + idle + iowait (guest time is already
    inside user/nice)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            v += [0] * (8 - len(v))
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            busy = user + nice + system + irq + softirq + steal
            return busy, busy + idle + iowait
    raise ValueError("no 'cpu ' line in /proc/stat text")


def cpus_busy_elsewhere(stat0: tuple[int, int], stat1: tuple[int, int], self_s0: float, self_s1: float,
                        clk_tck: int, cpus: int) -> float:
    """CPUs kept busy by other processes between two samples.

    Args:
        stat0, stat1: ``read_proc_stat`` before / after (jiffies, all CPUs).
        self_s0, self_s1: this process's user + system seconds (all its threads) before / after.
        clk_tck: jiffies per second; cpus: CPUs counted in ``/proc/stat``.
    """
    elapsed_per_cpu = (stat1[1] - stat0[1]) / cpus
    if elapsed_per_cpu <= 0:
        return 0.0
    others = (stat1[0] - stat0[0]) - (self_s1 - self_s0) * clk_tck
    return max(others / elapsed_per_cpu, 0.0)


Sample = tuple[tuple[int, int], float]  # (read_proc_stat, own user + system seconds)


def cpu_sample() -> Sample | None:
    """The machine's and this process's CPU time now; None where ``/proc/stat`` cannot be read."""
    try:
        stat = read_proc_stat(PROC_STAT.read_text())
    except (OSError, ValueError):
        return None
    t = os.times()
    return stat, t.user + t.system


def busy_between(a: Sample, b: Sample) -> float:
    """CPUs busy with other processes between two ``cpu_sample`` results."""
    return cpus_busy_elsewhere(a[0], b[0], a[1], b[1], os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1)


def threads_for(others: float) -> int:
    """The CPUs not busy elsewhere, at least 1."""
    cpus = os.cpu_count() or 1
    return max(1, min(cpus, cpus - round(max(others, 0.0))))


def _load_average_others(current: int) -> float:
    try:
        return os.getloadavg()[0] - current  # our own ``current`` threads are in the load average
    except OSError:  # not available on this platform
        return 0.0


def auto_threads(window_s: float = 0.5) -> int:
    """Threads for a process about to start: the CPUs minus those busy elsewhere over the next ``window_s``."""
    a = cpu_sample()
    if a is None:
        return threads_for(_load_average_others(0))
    time.sleep(window_s)
    b = cpu_sample()
    return threads_for(busy_between(a, b) if b is not None else _load_average_others(0))


class ThreadGovernor:
    """Trainer callback: every ``period_s`` of training, re-pick the thread count from the CPU time other
    processes used since the last check (no waiting: the window is the period itself)."""

    def __init__(self, period_s: float = 30.0, say: Callable[[str], None] | None = None) -> None:
        self.period_s, self.next_s, self.say = period_s, period_s, say
        self.last = cpu_sample()

    def __call__(self, trainer) -> None:
        import torch

        if trainer.train_seconds() < self.next_s:
            return
        self.next_s = trainer.train_seconds() + self.period_s
        cur = torch.get_num_threads()
        now = cpu_sample()
        others = busy_between(self.last, now) if self.last and now else _load_average_others(cur)
        self.last = now
        want = threads_for(others)
        if want != cur:
            torch.set_num_threads(want)
            if self.say:
                self.say(f"[iteration {trainer.iter}] load changed: {cur} -> {want} threads")
