"""One backend, one fresh process: ``python -m export.bench.runner JOB.json`` (started by ``launch``).

A fresh process per backend makes its peak memory its own (``export.bench.memory``) and keeps one backend's
threads, CUDA context and allocator caches from touching the next. The worker:

1. loads the latency images (outside any timing; with ``size`` they are resized to exactly H x W first),
2. opens the backend (``backends.open_stages``; set-up time is reported, not timed per image),
3. runs ``warmup`` untimed images, then ``runs`` timed ones, cycling through the images; each run times
   pre-processing, inference (synchronised) and post-processing with ``time.perf_counter`` (garbage
   collection paused during the timed loop, as ``timeit`` does),
4. records peak memory, THEN (if asked) scores mask AP on the evaluation images through the same stages,
5. writes its result JSON. Progress goes to stdout as ``@@lapmask-bench <event> <n>`` lines for the parent's
   progress bar; everything else the libraries print goes to the log (stderr).
"""
from __future__ import annotations

import gc
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "@@lapmask-bench"


def _emit(event: str, value: Any = "") -> None:
    print(f"{MARKER} {event} {value}", flush=True)


def _timed_runs(stages: Any, images: list, runs: int, warmup: int) -> tuple[dict[str, list[float]], list[int]]:
    """Warm-up, then ``runs`` timed images. Returns per-stage times (ms) and detections per run."""
    probe = stages.gpu_probe
    _emit("phase", "warmup")
    for i in range(warmup):
        stages(images[i % len(images)])
        if probe is not None:
            probe.sample()
        _emit("tick", 1)
    times: dict[str, list[float]] = {"pre": [], "infer": [], "post": [], "total": []}
    dets: list[int] = []
    _emit("phase", "timed")
    gc.collect()
    gc.disable()
    try:
        for i in range(runs):
            bgr = images[i % len(images)]
            ori_hw = (int(bgr.shape[0]), int(bgr.shape[1]))
            t0 = time.perf_counter()
            image, size, hw = stages.pre(bgr)
            t1 = time.perf_counter()
            outputs = stages.infer(image, size)
            t2 = time.perf_counter()
            result = stages.post(outputs, hw, ori_hw)
            t3 = time.perf_counter()
            for k, (a, b) in (("pre", (t0, t1)), ("infer", (t1, t2)), ("post", (t2, t3)), ("total", (t0, t3))):
                times[k].append((b - a) * 1000.0)
            dets.append(len(result["scores"]))
            if probe is not None:
                probe.sample()  # outside the timed region
            _emit("tick", 1)
    finally:
        gc.enable()
    return times, dets


def run_job(job: dict) -> dict[str, Any]:
    """Measure one backend as ``job`` describes (see ``export.bench.harness.make_job``)."""
    from export.bench.backends import get_backend, open_stages
    from export.bench.dataset import load_bgr, mask_ap
    from export.bench.memory import current_rss_mb, peak_rss_mb
    from export.bench.stats import summarize, throughput
    from lapmask.preprocess import resize_bgr

    spec = get_backend(job["backend"])
    rss_start = current_rss_mb()
    size = tuple(job["size"]) if job.get("size") else None
    images = [load_bgr(r) for r in job["latency_records"]]
    if size is not None:
        images = [resize_bgr(im, size) for im in images]
    _emit("phase", "setup")
    t0 = time.perf_counter()
    stages = open_stages(spec, job)
    setup_s = time.perf_counter() - t0
    try:
        times, dets = _timed_runs(stages, images, int(job["runs"]), int(job["warmup"]))
        peak, method = peak_rss_mb()
        memory: dict[str, Any] = {"cpu_peak_rss_mb": peak, "cpu_method": method, "cpu_rss_at_start_mb": rss_start,
                                  "torch_loaded": "torch" in sys.modules}  # torch-free runtimes must stay so
        if stages.gpu_probe is not None:
            memory.update(stages.gpu_probe.result())
        accuracy = None
        if job.get("eval"):
            _emit("phase", "eval")
            ev = job["eval"]
            predict = (stages if size is None else
                       (lambda bgr: stages(resize_bgr(bgr, size), (int(bgr.shape[0]), int(bgr.shape[1])))))
            accuracy = mask_ap(predict, ev["records"], ev["ann_file"], stages.category_ids,
                               tick=lambda: _emit("tick", 1))
    finally:
        stages.close()
    latency = summarize(times["total"])
    return {"status": "ok", "reason": None, "setup_s": setup_s, "latency_ms": latency,
            "throughput_ips": throughput(float(latency["mean"])),
            "stages_ms": {k: summarize(times[k]) for k in ("pre", "infer", "post")},
            "samples_ms": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
            "detections_mean": sum(dets) / len(dets), "memory": memory, "accuracy": accuracy,
            "input_hw": [int(images[0].shape[0]), int(images[0].shape[1])] if size else None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m export.bench.runner JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = run_job(job)
    except Exception as e:  # noqa: BLE001 - reported as a failed row with the reason
        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
    Path(job["result"]).write_text(json.dumps(result, allow_nan=False, default=str))
    return 0 if result["status"] == "ok" else 1


# ---- parent side ----

def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launch(job: dict, folder: Path, on_event: Callable[[str, str], None] = lambda e, v: None,
           timeout_s: float = 3600.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh Python process; returns its result dict (a ``failed`` one when it crashed or
    timed out, with the tail of its log). ``on_event(event, value)`` receives the progress lines."""
    folder.mkdir(parents=True, exist_ok=True)
    job_path, log_path = folder / f"{job['backend']}.job.json", folder / f"{job['backend']}.log"
    job = {**job, "result": str(folder / f"{job['backend']}.result.json")}
    Path(job["result"]).unlink(missing_ok=True)
    job_path.write_text(json.dumps(job, indent=1))
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the export and lapmask packages
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH")) if p)
    lines: queue.Queue[str | None] = queue.Queue()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "export.bench.runner", str(job_path)], stdout=subprocess.PIPE,
                                stderr=log, text=True, env=child_env)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)
        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        timed_out = False
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                proc.kill()
                break
            if line is None:
                break
            if line.startswith(MARKER):
                _, event, value = (line.rstrip("\n").split(" ", 2) + ["", ""])[:3]
                on_event(event, value)
            else:
                log.write(line)  # stray stdout of a library
        proc.wait()
    if timed_out:
        return {"status": "failed", "reason": f"timed out after {timeout_s:.0f} s (log: {log_path})"}
    try:
        return json.loads(Path(job["result"]).read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "failed", "reason": f"worker exited with code {proc.returncode} without a result; "
                                              f"log {log_path}:\n{_tail(log_path)}"}


if __name__ == "__main__":
    sys.exit(main())
