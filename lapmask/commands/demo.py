"""``lapmask demo [--out lapmask_demo] [--minutes 15] [--device cpu]``: the README's first command.

Generates the synthetic shapes dataset (unless already there), trains a small preset (``--config``, default
``tiny_R18``) for a fixed wall-clock budget, evaluates COCO mask AP on the val split, and writes overlays of a few
val images, a loss/AP plot and a summary -- no downloads, CPU only by default.

Time budget (``--minutes``, whole command): data generation and an estimate of the final evaluation are taken off
first; training gets the rest. The evaluation estimate is re-measured by each mid-training evaluation. The
learning-rate schedule is defined on that time: linear warm-up over the first iterations, then x0.1 when 75 % and
again when 90 % of the training time is used (the same shape as the official multi-step schedule; a config with
``solver.lr_scheduler "WarmupLinearLR"`` decays linearly to 0 at the end of the time instead). Two quick
evaluations on a val subset during training give the AP curve.
CPU placement (``placement``): the cores not busy with other processes (``lapmask.engine.cpu_threads``) train as
data-parallel processes of one thread each (Gloo, ``lapmask.engine.distributed.launch_local``); with one process
the thread count is re-checked every 30 s.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lapmask.commands.common import add_debug

# Final evaluation time = margin x seconds per val image x images + fixed costs (COCO scoring, overlays, plot).
# Before training, the seconds per image come from the untrained model, whose post-processing sees few
# candidates: a trained one takes far longer (measured, 200 val images: 21 s estimated, 43 s of inference and
# 6 s of scoring, overlays and plot). Each mid-training evaluation re-measures it on the model being trained;
# the margin then covers the model getting slower still as it trains (more candidates: 0.100 s per image at 2/3
# of the training, 0.115 at the end) and noise. Fixed costs measured on the 2-core CPU for a trained tiny_R18
# (2 processes): COCO scoring 3.3 s, overlays 1.3 s, plot 4.7 s. With 1.15 and 6 s one 15-minute demo ended at
# 15.4 minutes (final phase 48 s against 30 s planned; 17 s of it not explained by those parts).
UNTRAINED_EVAL_MARGIN = 2.2
TRAINED_EVAL_MARGIN = 1.5
FINAL_EVAL_FIXED_S = 15.0

# The demo trains with the preset's own recipe (tiny_R18 = lite_R18's: AdamW 1e-3, batch 8, sizes 192-256,
# trainable BN; lapmask/config.py ``_tiny_r18`` and ``_lite`` give the measurements behind both). Only the
# schedule differs: it is defined on wall-clock time (module docstring). The flags below override the preset's.


def use_amp(flag: bool | None, device) -> bool:
    """``--amp``/``--no-amp`` as given; by default on where mixed precision is native (CUDA, or a CPU whose
    oneDNN runs bfloat16; measured here: network forward + backward 1.6x faster, whole training step 1.26x,
    loss curve unchanged -- see ``trainer.amp_dtype``)."""
    from lapmask.engine.trainer import native_amp

    return flag if flag is not None else native_amp(device)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lapmask_demo", help="output folder (default ./lapmask_demo)")
    p.add_argument("--minutes", type=float, default=15.0, help="total time budget in minutes (default 15)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--config", default="tiny_R18", help="preset or .json config (default tiny_R18)")
    p.add_argument("--train", type=int, default=600, help="synthetic training images (default 600)")
    p.add_argument("--val", type=int, default=200, help="synthetic validation images (default 200)")
    p.add_argument("--size", type=int, default=256, help="synthetic image side (default 256)")
    p.add_argument("--batch-size", type=int, default=None, help="images per iteration (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: the preset's)")
    p.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up (default: the preset's)")
    p.add_argument("--train-sizes", type=int, nargs="+", default=None,
                   help="training short-side choices (default: the preset's)")
    p.add_argument("--optimizer", default=None, choices=["SGD", "ADAMW"],
                   help="default: the preset's (lite: ADAMW, lr 1e-3); SGD needs about --lr 0.02")
    p.add_argument("--num-workers", type=int, default=None, help="data-loader workers per process (default: 1 "
                   "with one process, 0 with several: loading inline is faster on a small CPU)")
    amp = p.add_mutually_exclusive_group()
    amp.add_argument("--amp", dest="amp", action="store_true", default=None,
                     help="mixed precision (default: on wherever it is native: float16 on CUDA, bfloat16 on a CPU "
                     "with AVX512-BF16/AMX)")
    amp.add_argument("--no-amp", dest="amp", action="store_false", help="train in float32")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process (default: the cores "
                   "not busy with other processes, as processes of one thread each; see --processes)")
    p.add_argument("--processes", type=int, default=None, help="data-parallel training processes on the CPU "
                   "(default: one per free core, each with at least 4 images of the batch)")
    p.add_argument("--eval-points", type=int, default=2, help="quick evaluations during training (AP curve)")
    p.add_argument("--vis", type=int, default=6, help="val images to draw overlays for (default 6)")
    p.add_argument("--vis-score", type=float, default=0.3, help="draw instances scoring at least this (default 0.3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug(p)


def demo_config(args: argparse.Namespace):
    """The preset, with any recipe flags given (sizes, batch, lr, warm-up, optimizer) and no iteration schedule
    (the demo's schedule is on wall-clock time); the architecture is untouched."""
    from lapmask.config import load_config

    cfg = load_config(args.config)
    sizes = tuple(args.train_sizes) if args.train_sizes else cfg.input.min_size_train
    inp = dataclasses.replace(cfg.input, min_size_train=sizes,
                              max_size_train=max(cfg.input.max_size_train, max(sizes)))
    s = cfg.solver
    sol = dataclasses.replace(s, ims_per_batch=args.batch_size or s.ims_per_batch,
                              base_lr=args.lr if args.lr is not None else s.base_lr,
                              warmup_iters=args.warmup_iters if args.warmup_iters is not None else s.warmup_iters,
                              optimizer=args.optimizer or s.optimizer, steps=(), max_iter=10**9)
    return cfg.replace(input=inp, solver=sol)


def _eval_seconds_per_image(model, cfg, split) -> float:
    """Time the predictor on two val images (the first call warms up)."""
    from lapmask.data.coco import read_image_bgr
    from lapmask.engine.inference_loop import load_split_records
    from lapmask.inference import Predictor

    recs, _, _ = load_split_records(split, 3)
    pred = Predictor(model, cfg)
    imgs = [read_image_bgr(r["file_name"], r["height"], r["width"]) for r in recs]
    pred(imgs[0])
    t = time.perf_counter()
    for im in imgs[1:]:
        pred(im)
    model.train()
    return (time.perf_counter() - t) / max(len(imgs) - 1, 1)


class _MidEval:
    """Callback: quick evaluations on a val subset at evenly spaced fractions of the training time.

    Every rank decides together (an all-reduce of "my clock passed the mark"), since the evaluation is sharded
    over the processes. After each, ``on_eval(seconds_per_image)`` hears how fast the current model evaluates
    (all ranks get rank 0's figure).
    """

    def __init__(self, points: int, budget_s: float, max_images: int,
                 on_eval: Callable[[float], None] | None = None) -> None:
        self.marks = [budget_s * (k + 1) / (points + 1) for k in range(points)]
        self.max_images = max_images
        self.on_eval = on_eval

    def __call__(self, trainer) -> None:
        from lapmask.engine import distributed as du

        if not self.marks or not du.any_flag(trainer.train_seconds() >= self.marks[0]):
            return
        self.marks.pop(0)
        keep = trainer.opts.eval_max_images
        trainer.opts.eval_max_images = self.max_images
        metrics = trainer.evaluate()
        trainer.opts.eval_max_images = keep
        inf = metrics["inference"] if metrics else None
        per_img = du.broadcast_object(inf["seconds"] / max(inf["num_images"], 1) if inf else None)
        if self.on_eval is not None and per_img:
            self.on_eval(per_img)


def plot_curves(metrics_jsonl: Path, ap_points: list[tuple[int, float]], out_png: Path) -> None:
    """Loss curves (left axis) and mask AP (right axis) against iterations (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lapmask.engine.progress import read_jsonl

    rows = [r for r in read_jsonl(metrics_jsonl) if "loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, style in (("loss", "-"), ("loss_ins", "--"), ("loss_cate", ":")):
        ax.plot([r["iteration"] for r in rows], [r[key] for r in rows], style, label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ap_points:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in ap_points], [100 * p[1] for p in ap_points], "o-", color="tab:red", label="mask AP")
        ax2.set_ylabel("mask AP (val)")
        ax2.set_ylim(0, 100)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper center")
    ax.set_title("lapmask demo: training loss and validation mask AP")
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def save_overlays(model, cfg, split, out_dir: Path, n: int, min_score: float = 0.3) -> list[Path]:
    """Overlays of the first ``n`` val images (instances scoring >= ``min_score``)."""
    from lapmask.data.coco import read_image_bgr
    from lapmask.engine.inference_loop import load_split_records
    from lapmask.inference import Predictor
    from lapmask.visualize import overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    pred = Predictor(model, cfg)
    paths = []
    for rec in load_split_records(split, n)[0]:
        bgr = read_image_bgr(rec["file_name"], rec["height"], rec["width"])
        res = pred(bgr)
        keep = res["scores"] >= min_score
        p = out_dir / f"{Path(rec['file_name']).stem}.png"
        overlay(bgr, {k: v[keep] for k, v in res.items()}, cfg.class_names).save(p)
        paths.append(p)
    return paths


def placement(args: argparse.Namespace, device) -> tuple[int, int]:
    """(processes, torch threads per process) for the demo.

    On a CPU the free cores (``cpu_threads.auto_threads``) run as data-parallel processes of one thread each
    rather than as threads of one process: the many small ops of the heads parallelise poorly over threads
    (measured on the 2-core CPU, candidate lite model, batch 8: 2 threads 0.79 s per iteration, 2 processes x 1
    thread 0.70 s). Each process keeps at least 4 images of the batch (BatchNorm statistics). ``--threads`` alone
    means one process with that many threads; ``--processes`` sets the count; CUDA uses one process.
    """
    from lapmask.engine.cpu_threads import auto_threads

    if device.type != "cpu":
        return 1, args.threads or 1
    batch = args.batch_size or demo_config(args).solver.ims_per_batch
    if args.threads and not args.processes:
        return 1, args.threads  # threads asked for: one process with that many
    free = auto_threads()
    procs = args.processes or max(1, min(free, batch // 4))
    if batch % procs:
        raise ValueError(f"--processes {procs} must divide the batch size {batch}")
    return procs, args.threads or max(1, free // procs)


def run(args: argparse.Namespace) -> int:
    from lapmask.data.synth import ensure_synthetic
    from lapmask.engine import distributed as du
    from lapmask.engine import machine_speed

    t_start = time.time()  # wall clock: shared with the training processes
    if args.minutes <= 0:
        raise ValueError("--minutes must be positive")
    device = du.resolve_device(args.device)
    procs, threads = placement(args, device)
    out = Path(args.out)
    how = f"{procs} processes x {threads} thread{'s' * (threads > 1)}" if procs > 1 else f"{threads} threads"
    _say(f"lapmask demo: {args.minutes:g} min budget on {device} ({how}) -> {out}")
    # The AP a time budget reaches depends on the CPU's speed, which drifts: the summary records it.
    speed = machine_speed.cpu_speed(procs * threads) if device.type == "cpu" else {}
    ensure_synthetic(out / "data", args.train, args.val, args.size, args.seed, workers=procs * threads)
    t_data = time.time() - t_start
    _say(f"data: {args.train} train + {args.val} val synthetic images in {out / 'data'} ({t_data:.0f} s)")
    du.launch_local(train_evaluate_report, procs, (args, t_start, t_data, threads, speed), device=str(device))
    return 0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_evaluate_report(info, args: argparse.Namespace, t_start: float, t_data: float, threads: int,
                          speed: dict[str, float]) -> None:
    """One process of the demo (rank ``info.rank`` of ``info.world_size``): train on the time budget, evaluate
    (sharded), and on rank 0 write the overlays, the plot and the summary."""
    import torch

    from lapmask.data.coco import CocoInstanceDataset
    from lapmask.engine import distributed as du
    from lapmask.engine.cpu_threads import ThreadGovernor
    from lapmask.engine.evaluator import format_table, to_json_safe
    from lapmask.engine.inference_loop import SplitPaths, evaluate_predictor
    from lapmask.engine.trainer import Trainer, TrainingInterrupted, TrainOptions, amp_dtype
    from lapmask.inference import Predictor

    torch.set_num_threads(threads)
    main, world, device = info.is_main, info.world_size, info.device
    say = _say if main else (lambda m: None)
    out = Path(args.out)
    cfg = demo_config(args)
    val_split = SplitPaths.from_data_dir(out / "data", "val")
    dataset = CocoInstanceDataset.from_config(cfg, out / "data" / "annotations" / "instances_train.json",
                                              out / "data" / "train", is_train=True)
    budget = 60.0 * args.minutes
    batch = cfg.solver.ims_per_batch
    workers = args.num_workers if args.num_workers is not None else (1 if world == 1 else 0)
    opts = TrainOptions(out_dir=out / "train", max_iter=10**9, ims_per_batch=batch, amp=use_amp(args.amp, device),
                        num_workers=workers, seed=args.seed, checkpoint_period=0, log_period=10,
                        progress=not args.no_progress and main, keep_checkpoints=1, time_budget_s=1.0)
    trainer = Trainer(cfg, dataset, opts, info, val_split)
    # The final evaluation's time comes off the budget first: estimated now from an untrained model (whose
    # post-processing sees few candidates), then re-measured by each mid-training evaluation.
    per_img = max(du.all_gather_object(_eval_seconds_per_image(trainer.model, cfg, val_split))) / world
    t_train0 = time.time() - t_start

    def train_budget(per_image_s: float, margin: float) -> float:
        return budget - t_train0 - (margin * per_image_s * (args.val + args.vis * world) + FINAL_EVAL_FIXED_S)

    trainer.opts.time_budget_s = train_s = train_budget(per_img, UNTRAINED_EVAL_MARGIN)
    if train_s < 5:
        raise ValueError(f"--minutes {args.minutes:g} leaves no training time after data generation "
                         f"({t_data:.0f} s) and evaluation (~{budget - t_train0 - train_s:.0f} s); give more "
                         "minutes or fewer --val")

    def re_plan(per_image_s: float) -> None:  # every rank gets the same figure: the budgets stay equal
        trainer.opts.time_budget_s = max(train_budget(per_image_s, TRAINED_EVAL_MARGIN), trainer.train_seconds() + 1)

    if args.eval_points > 0:
        trainer.callbacks.append(_MidEval(args.eval_points, train_s, min(50, args.val), re_plan))
    if device.type == "cpu" and world == 1 and not args.threads:
        trainer.callbacks.append(ThreadGovernor(say=say))
    precision = f"mixed precision {str(amp_dtype(device)).split('.')[1]}" if trainer.amp else "float32"
    say(f"training {cfg.name} for {train_s / 60:.1f} min (batch {batch}, {cfg.solver.optimizer} lr "
        f"{cfg.solver.base_lr:g}, {precision}, sizes {list(cfg.input.min_size_train)}); "
        f"final evaluation ~{budget - t_train0 - train_s:.0f} s")
    try:
        result = trainer.train()
    except TrainingInterrupted as e:  # Ctrl-C: every process stopped at the same iteration and rank 0 saved
        say(f"stopped at iteration {e.iteration} ({e.reason}); checkpoint {e.checkpoint}")
        raise

    t_eval = time.time()
    pred = Predictor(trainer.model, cfg)
    metrics = evaluate_predictor(pred, val_split, cfg.category_ids, cfg.class_names,
                                 out_dir=out / "eval" if main else None, progress=not args.no_progress and main,
                                 distributed=info.distributed)
    if not main:
        return
    vis = save_overlays(trainer.model, cfg, val_split, out / "vis", args.vis, args.vis_score)
    ap_points = [(h["iteration"], h["metrics"]["segm"]["AP"]) for h in result.history]
    ap_points.append((result.iterations, metrics["segm"]["AP"]))
    plot_curves(out / "train" / "metrics.jsonl", ap_points, out / "training_curves.png")
    t_eval = time.time() - t_eval

    summary = {
        "config": cfg.name, "device": str(device), "processes": world, "threads": torch.get_num_threads(),
        "cpu_matmul_gflops": speed,
        "minutes_budget": args.minutes, "minutes_total": (time.time() - t_start) / 60.0,
        "data_seconds": t_data, "train_seconds": result.seconds, "eval_seconds": t_eval,
        "iterations": result.iterations, "batch_size": batch, "amp": trainer.amp,
        "train_images_per_s": result.images_per_s, "eval_images_per_s": metrics["inference"]["images_per_s"],
        "segm": metrics["segm"], "bbox": metrics["bbox"], "per_class": metrics["per_class"],
        "weights": str(result.final_checkpoint),
    }
    (out / "summary.json").write_text(json.dumps(to_json_safe(summary), indent=2))
    print(format_table(metrics))
    print(f"| run | value |\n|---|---|\n| iterations | {result.iterations} (batch {batch}) |\n"
          f"| training | {result.seconds / 60:.1f} min, {result.images_per_s:.2f} images/s |\n"
          f"| evaluation | {args.val} images, {metrics['inference']['images_per_s']:.2f} images/s |\n"
          f"| total | {summary['minutes_total']:.1f} min (budget {args.minutes:g}) |")
    print(f"\nweights {result.final_checkpoint}\noverlays {out / 'vis'} ({len(vis)} images)\n"
          f"curves {out / 'training_curves.png'}\nmetrics {out / 'eval' / 'metrics.json'}, {out / 'summary.json'}")
    print(f"next: lapmask predict {vis[0].parent.parent / 'data' / 'val' / '000001.png' if vis else 'IMAGE'} "
          f"--weights {result.final_checkpoint} --out {out / 'predict'}", flush=True)
