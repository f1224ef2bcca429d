"""The benchmark run: settings, availability, data, artefacts, one worker per backend, the report document.

``run_benchmark(settings)`` returns the result document (schema ``SCHEMA``) and writes it with the Markdown
table and the plot (``export.bench.report``). Weights: a lapmask checkpoint gives latency AND mask AP; without
one the model is randomly initialised (seed 0), saved once so every backend runs the same weights, and the
table says "latency only".
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SCHEMA = "lapmask-bench/1"
BENCH_CONFIG_KEY = "model"  # a bench config JSON names the model to run; a model config never has this key


@dataclass
class BenchSettings:
    """Everything a run depends on (recorded in the JSON). ``config`` is a preset name or a model-config JSON."""

    config: str | None = None
    weights: str | None = None
    data: str | None = None
    backends: tuple[str, ...] = ("all",)
    runs: int = 100
    warmup: int = 10
    size: tuple[int, int] | None = None
    threads: int | None = None
    latency_images: int = 8
    eval_images: int | None = None
    synthetic_images: int = 32
    synthetic_size: int = 256
    gpu: int = 0
    timeout_s: float = 3600.0
    out: str = "bench_out"
    progress: bool = True
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """ValueError naming the bad setting and a valid value."""
        if self.runs < 1:
            raise ValueError(f"--runs {self.runs}: need at least 1 timed run (100 or more for a p99)")
        if self.warmup < 0:
            raise ValueError(f"--warmup {self.warmup}: must be >= 0")
        if self.latency_images < 1:
            raise ValueError(f"latency_images {self.latency_images}: must be >= 1")
        if self.eval_images is not None and self.eval_images < 1:
            raise ValueError(f"--eval-images {self.eval_images}: must be >= 1 (omit it to score the whole split)")
        if self.size is not None and min(self.size) < 32:
            raise ValueError(f"--size {self.size[0]}x{self.size[1]}: H and W must be >= 32")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads {self.threads}: must be >= 1")
        if self.gpu != 0:
            raise ValueError(f"gpu {self.gpu}: pick the GPU with CUDA_VISIBLE_DEVICES={self.gpu} instead (ONNX Runtime's "
                             "predictor has no device index, so every backend runs on the first visible GPU)")
        if self.synthetic_size < 64 or self.synthetic_images < 1:
            raise ValueError("synthetic images need size >= 64 and a count >= 1")


def load_bench_config(path: str | Path) -> dict[str, Any]:
    """A bench config (``benchmarks/configs/*.json``): ``{"model": PRESET, "backends": [...], "runs": N, ...}``
    with keys named like ``BenchSettings`` fields (``model`` = ``config``). Unknown keys are an error."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the bench config {p}: {e}") from e
    known = {f.name for f in fields(BenchSettings)} | {"model", "description"}
    bad = sorted(set(d) - known)
    if bad:
        raise ValueError(f"{p}: unknown bench config keys {bad}; known: {sorted(known)}")
    out = {k: v for k, v in d.items() if k not in ("model", "description")}
    out["config"] = d["model"]
    out.setdefault("name", p.stem)
    if out.get("size") is not None:
        out["size"] = tuple(out["size"])
    if "backends" in out:
        out["backends"] = tuple(out["backends"])
    out["extra"] = {"bench_config": str(p), "description": d.get("description")}
    return out


def is_bench_config(spec: str | None) -> bool:
    if not spec or not spec.endswith(".json") or not Path(spec).is_file():
        return False
    try:
        return BENCH_CONFIG_KEY in json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError):
        return False


def settings_with(base: BenchSettings, **overrides: Any) -> BenchSettings:
    """``base`` with the overrides that are not None (command-line flags over a bench config)."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _load_model(s: BenchSettings, artefacts: Path) -> tuple[Any, Any, str]:
    """(model on CPU, config, checkpoint path every worker loads)."""
    import torch

    from lapmask.config import load_config
    from lapmask.engine.checkpoint import load_model, save_checkpoint
    from lapmask.model.lapmask import build_model

    if s.weights:
        model, cfg = load_model(s.weights, s.config, "cpu")
        return model, cfg, str(Path(s.weights).resolve())
    cfg = load_config(s.config or "lite_R18")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = artefacts / f"random_init_{cfg.name}.pth"
    save_checkpoint(path, model.state_dict(), cfg)
    return model, cfg, str(path.resolve())


def _dataset(s: BenchSettings, out: Path):  # -> DatasetSpec
    from export.bench.dataset import resolve_data_dir, synthetic_dataset

    if s.data:
        return resolve_data_dir(s.data)
    return synthetic_dataset(out / "synthetic", s.synthetic_images, s.synthetic_size)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, desc="bench")

    def label(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_job(spec: Any, s: BenchSettings, checkpoint: str, artefact: str | None, latency_records: list[dict],
             eval_block: dict | None) -> dict[str, Any]:
    """The JSON a worker (``export.bench.runner``) reads."""
    return {"backend": spec.name, "weights": checkpoint, "config": s.config if s.weights else None,
            "artefact": artefact, "gpu": s.gpu,
            "threads": s.threads, "resize": s.size is None, "size": list(s.size) if s.size else None,
            "runs": s.runs, "warmup": s.warmup, "latency_records": latency_records, "eval": eval_block}


def _row(spec: Any, status: str, reason: str | None, **more: Any) -> dict[str, Any]:
    return {"backend": spec.name, "family": spec.family, "device": spec.device, "precision": spec.precision,
            "flavour": spec.flavour, "label": spec.label, "status": status, "reason": reason, **more}


def run_benchmark(s: BenchSettings) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run every selected backend; returns (the result document, the written files)."""
    from export.bench.artefacts import ArtefactBuilder
    from export.bench.backends import expand_selection, unavailable_reason
    from export.bench.dataset import class_mismatch, load_split
    from export.bench.machine import machine_info
    from export.bench.report import write_reports

    s.check()
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = expand_selection(list(s.backends))
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    machine = machine_info(s.gpu)
    reasons = {sp.name: unavailable_reason(sp, s.gpu) for sp in specs}
    model, cfg, checkpoint = _load_model(s, out / "artefacts")  # first: a bad --config fails before any work
    data = _dataset(s, out)
    records, names, ids = load_split(data, s.eval_images)
    if not s.weights:
        accuracy_note = "latency only: no --weights (random initialisation, seed 0), mask AP not measured"
    else:
        why = class_mismatch(cfg.class_names, cfg.category_ids, names, ids)
        accuracy_note = None if why is None else f"latency only: {why}"
    eval_block = None if accuracy_note else {"records": records, "ann_file": data.ann_file}
    d = cfg.input.size_divisibility
    fixed = None if s.size is None else (-(-s.size[0] // d) * d, -(-s.size[1] // d) * d)
    builder = ArtefactBuilder(model, cfg, out / "artefacts", fixed, s.gpu)
    del model
    jobs = {sp.name: make_job(sp, s, checkpoint, None, records[: s.latency_images], eval_block)
            for sp in specs if reasons[sp.name] is None}
    results = _measure(specs, reasons, jobs, builder, s, out)
    settings = {**{k: v for k, v in asdict(s).items() if k not in ("extra", "progress")}, **s.extra,
                "preset": cfg.name, "trained_weights": bool(s.weights), "dataset": data.to_dict(),
                "eval_images": len(records) if eval_block else 0,
                "latency_images": len(records[: s.latency_images]), "accuracy_note": accuracy_note,
                "input": (f"{s.size[0]}x{s.size[1]} (images resized to it; padded to {fixed[0]}x{fixed[1]})"
                          if fixed else f"official test-time resize (shortest edge {cfg.input.min_size_test}, "
                          f"longest <= {cfg.input.max_size_test}), padded to multiples of {d}"),
                "batch": 1, "k_pre": cfg.inference.k_pre, "max_dets": cfg.inference.max_per_img}
    doc = {"schema": SCHEMA, "created": started, "machine": machine, "settings": settings, "results": results}
    return doc, write_reports(doc, out)


def _measure(specs: list, reasons: dict[str, str | None], jobs: dict[str, dict], builder: Any, s: BenchSettings,
             out: Path) -> list[dict[str, Any]]:
    """Export what the runnable backends need, then one worker per backend, one after the other."""
    keys = sorted({sp.artefact for sp in specs if sp.name in jobs and sp.artefact})
    per_backend = {name: s.warmup + s.runs + len((job["eval"] or {}).get("records", [])) for name, job in jobs.items()}
    progress = _Progress(len(keys) + sum(per_backend.values()), s.progress)
    env = {"OMP_NUM_THREADS": str(s.threads)} if s.threads else None
    results = []
    try:
        for key in keys:
            progress.label(f"export {key}")
            builder.get(key)
            progress.update()
        builder.model = None  # every artefact exists: free the exporter's model and CUDA cache
        _release_parent_gpu()
        for sp in specs:
            if sp.name not in jobs:
                results.append(_row(sp, "skipped", reasons[sp.name]))
                continue
            art = builder.get(sp.artefact) if sp.artefact else None
            if art is not None and art.error:
                results.append(_row(sp, "failed", f"export failed: {art.error}", artefact=art.to_dict()))
                progress.update(per_backend[sp.name])
                continue
            done = 0

            def on_event(event: str, value: str, name: str = sp.name) -> None:
                nonlocal done
                if event == "phase":
                    progress.label(f"{name}: {value}")
                elif event == "tick":
                    done += 1
                    progress.update()
            t0 = time.perf_counter()
            job = {**jobs[sp.name], "artefact": str(art.path) if art else None}
            r = launch_worker(job, out / "logs", on_event, s.timeout_s, env)
            r["worker_wall_s"] = round(time.perf_counter() - t0, 2)
            progress.update(max(0, per_backend[sp.name] - done))
            results.append(_row(sp, r.pop("status"), r.pop("reason"), **r, artefact=art.to_dict() if art else None))
    finally:
        progress.close()
    return results


def launch_worker(job: dict, folder: Path, on_event: Any, timeout_s: float, env: dict | None) -> dict[str, Any]:
    from export.bench.runner import launch

    return launch(job, folder, on_event, timeout_s, env)


def _release_parent_gpu() -> None:
    """Give back the exporter's cached CUDA memory before the workers measure theirs."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()

