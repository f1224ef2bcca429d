"""End-to-end: ``lapmask bench`` on the CPU backends (pytorch, torchscript, ort) with the shipped smoke config.

One real run (session fixture ``smoke_run``): lite_R18 with random weights, 64x64 input, 2 warm-up + 3 timed runs
per backend, each backend in its own worker process. CUDA / TensorRT rows must come back as skipped with a reason
on a machine without them.
"""
from __future__ import annotations

import math

import pytest
from PIL import Image

from export.bench.backends import expand_selection, unavailable_reason

CPU_BACKENDS = ("pytorch-cpu", "torchscript-cpu", "ort-cpu")
SELECTED = [s.name for s in expand_selection(["pytorch", "torchscript", "ort"])]
ROW_KEYS = ("backend", "family", "device", "precision", "flavour", "status", "reason")
OK_KEYS = ("latency_ms", "stages_ms", "throughput_ips", "memory", "accuracy", "setup_s", "samples_ms",
           "detections_mean")


def _rows(doc: dict) -> dict[str, dict]:
    return {r["backend"]: r for r in doc["results"]}


def test_run_succeeds_and_writes_files(smoke_run):
    assert smoke_run["rc"] == 0, smoke_run["markdown"]
    out = smoke_run["out"]
    for name in ("bench.json", "bench.md", "latency_vs_ap.png"):
        assert (out / name).is_file(), name


def test_json_schema(smoke_run):
    doc = smoke_run["doc"]
    assert doc["schema"] == "lapmask-bench/1"
    m = doc["machine"]
    assert m["cpu"] and m["cpu"] != "unknown" and m["cpu_count"] >= 1
    for lib in ("torch", "onnxruntime", "tensorrt", "numpy"):
        assert lib in m["libraries"]
    assert m["libraries"]["torch"] and m["libraries"]["numpy"] and m["libraries"]["onnxruntime"]
    s = doc["settings"]
    assert (s["runs"], s["warmup"], s["size"], s["threads"]) == (3, 2, [64, 64], 1)
    assert s["preset"] == "lite_R18" and s["trained_weights"] is False
    assert "latency only" in s["accuracy_note"]
    assert [r["backend"] for r in doc["results"]] == SELECTED  # one row per selected backend, registry order
    for r in doc["results"]:
        for k in ROW_KEYS:
            assert k in r, (r["backend"], k)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backend_latencies(smoke_run, name):
    r = _rows(smoke_run["doc"])[name]
    assert r["status"] == "ok", r["reason"]
    for k in OK_KEYS:
        assert k in r
    lat = r["latency_ms"]
    assert lat["n"] == 3 and lat["p99"] is None  # p99 only from 100 runs
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert r["throughput_ips"] == pytest.approx(1000.0 / lat["mean"])
    for stage in ("pre", "infer", "post"):
        st = r["stages_ms"][stage]
        assert 0 < st["min"] <= st["p50"] <= st["max"], stage
    # the three stages partition the end-to-end time of every run
    samples = r["samples_ms"]
    for i in range(3):
        parts = samples["pre"][i] + samples["infer"][i] + samples["post"][i]
        assert parts == pytest.approx(samples["total"][i], abs=1e-3)
    assert r["stages_ms"]["infer"]["mean"] > r["stages_ms"]["pre"]["mean"]  # the network dominates
    mem = r["memory"]
    assert 0 < mem["cpu_rss_at_start_mb"] < mem["cpu_peak_rss_mb"] < 64_000
    assert r["accuracy"] is None  # random weights: latency only
    if r["artefact"] is not None:
        assert r["artefact"]["bytes"] > 1_000_000 and r["artefact"]["error"] is None


def test_worker_memory_is_its_own(smoke_run):
    """Each worker reports its own peak (not the parent's), and the ONNX Runtime worker never loads torch."""
    rows = _rows(smoke_run["doc"])
    ort, eager = rows["ort-cpu"]["memory"], rows["pytorch-cpu"]["memory"]
    assert ort["torch_loaded"] is False and eager["torch_loaded"] is True
    assert ort["cpu_peak_rss_mb"] != eager["cpu_peak_rss_mb"]


def test_unavailable_backends_are_skipped_with_reason(smoke_run):
    rows = _rows(smoke_run["doc"])
    gpu_rows = [n for n in SELECTED if n not in CPU_BACKENDS]
    assert gpu_rows
    for n in gpu_rows:
        spec = next(s for s in expand_selection([n]))
        reason = unavailable_reason(spec)
        if reason is None:
            assert rows[n]["status"] in ("ok", "failed")
        else:
            assert rows[n]["status"] == "skipped" and rows[n]["reason"] == reason and len(reason) > 10


def test_markdown_table(smoke_run):
    md = smoke_run["markdown"]
    lines = md.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("| backend |"))
    cols = [c.strip() for c in lines[header].strip("|").split("|")]
    assert lines[header + 1].startswith("|---")
    body = []
    for ln in lines[header + 2:]:
        if not ln.startswith("|"):
            break
        body.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
    assert [row[0] for row in body] == SELECTED
    assert all(len(row) == len(cols) for row in body)
    rows = _rows(smoke_run["doc"])
    for row in body:
        r = rows[row[0]]
        status = row[cols.index("status")]
        if r["status"] == "skipped":
            assert status.startswith("skipped: ") and r["reason"].split()[0] in status
        else:
            assert status == "ok"
            for c in ("mean ms", "p50 ms", "p90 ms", "min ms", "max ms", "img/s", "infer ms"):
                assert float(row[cols.index(c)]) > 0, c
            assert row[cols.index("p99 ms")] == "-" and row[cols.index("mask AP")] == "-"
            assert float(row[cols.index("p50 ms")]) == pytest.approx(r["latency_ms"]["p50"], rel=0.01, abs=0.01)
    assert "latency only" in md.lower()


def test_plot(smoke_run):
    png = smoke_run["out"] / "latency_vs_ap.png"
    assert png.stat().st_size > 5_000
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG" and im.width >= 400 and im.height >= 300
        extrema = im.convert("L").getextrema()
        assert extrema[0] < extrema[1]  # not a blank canvas


def test_artefacts_and_logs(smoke_run):
    out = smoke_run["out"]
    assert (out / "artefacts" / "model_standard_fp32.onnx").is_file()
    assert (out / "artefacts" / "model_cpu.ts.pt").is_file()
    for n in CPU_BACKENDS:
        assert (out / "logs" / f"{n}.result.json").is_file()
    assert not math.isnan(smoke_run["doc"]["results"][0]["latency_ms"]["mean"])
