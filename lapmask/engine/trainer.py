"""The training loop (detectron2 ``SimpleTrainer``/``AMPTrainer`` + ``DefaultTrainer`` hooks, spec 5).

One iteration: take this rank's share of the batch, pad it to the BATCH canvas (max h/w rounded up to 32, spec
1.1 / 5.3a), build targets against that canvas, forward (autocast when ``amp``: float16 on CUDA, bfloat16 on a
CPU with native bf16), LapMask losses in float32 (spec 5.3), backward (GradScaler for float16), element-wise
gradient clamp (spec 5.4), optimiser step, lr-scheduler step.
With DistributedDataParallel every rank normalises its own losses (per-GPU focal normaliser, no cross-GPU
averaging) and DDP averages the gradients, which is what detectron2 does.

Exact resume: a checkpoint holds model, optimizer, scheduler, grad scaler, iteration, RNG states and the sampler
position (= iteration; the training stream is a pure function of seed/iteration/rank, see ``lapmask.data.collate``)
so N iterations straight and N/2 + resume + N/2 give identical weights on CPU.

Stopping: SIGINT/SIGTERM ask to stop after the current iteration (all ranks agree through an all-reduce); a
second Ctrl-C stops at once. Either way the last consistent state is saved before ``TrainingInterrupted`` is
raised. An exception raised by a callback or the data loader (e.g. KeyboardInterrupt) is handled the same way.
"""
from __future__ import annotations

import functools
import inspect
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lapmask.config import LapMaskConfig
from lapmask.engine import distributed as du
from lapmask.engine.checkpoint import check_state_dict, load_checkpoint, save_checkpoint
from lapmask.engine.optim import (WarmupLinearLR, build_lr_scheduler, build_optimizer, clamp_gradients,
                                  optimizer_parameters)
from lapmask.engine.progress import MetricsLog, ProgressBar

LAST_CHECKPOINT = "last_checkpoint"  # text file naming the newest resumable checkpoint (detectron2 convention)
LOSS_KEYS = ("loss_ins", "loss_cate")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C, SIGTERM or an exception); ``checkpoint`` is the saved state."""

    def __init__(self, iteration: int, checkpoint: Path | None, reason: str) -> None:
        super().__init__(f"training interrupted at iteration {iteration} ({reason})")
        self.iteration, self.checkpoint, self.reason = iteration, checkpoint, reason


@dataclass
class TrainOptions:
    """Run options (the config's solver section supplies the defaults marked None)."""

    out_dir: Path
    max_iter: int | None = None
    ims_per_batch: int | None = None  # over all ranks (detectron2 IMS_PER_BATCH)
    num_workers: int = 2
    seed: int = 0
    amp: bool | None = None  # None: on for CUDA (float16), off on CPU (True there: bfloat16, see amp_dtype)
    checkpoint_period: int | None = None
    eval_period: int = 0  # 0: no evaluation during training
    eval_max_images: int | None = None
    log_period: int = 20
    resume: bool = False
    backbone_weights: str | None = None
    init_weights: str | None = None  # a lapmask checkpoint to start from (weights only)
    time_budget_s: float | None = None  # stop when this much training time is used
    time_steps: tuple[float, ...] = (0.75, 0.9)  # lr steps at these fractions of time_budget_s
    keep_checkpoints: int = 3  # periodic checkpoints kept (0: keep all)
    aspect_ratio_grouping: bool = True
    progress: bool = True


@dataclass
class TrainResult:
    iterations: int
    seconds: float
    images_per_s: float
    final_checkpoint: Path | None
    best_ap: float | None = None
    best_iteration: int | None = None
    last_metrics: dict | None = None
    history: list[dict] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_batch(batch: Sequence[dict], model: nn.Module, cfg: LapMaskConfig, device: torch.device
                  ) -> tuple[Tensor, list[list[dict]]]:
    """Normalise + pad a list of dataset items to the batch canvas and build their targets against it.

    Returns:
        images (Tensor[B, 3, H, W] on ``device``, H/W = max size rounded up to 32), targets[b][level].
    """
    from lapmask.model.preprocess import normalize_and_pad
    from lapmask.model.targets import build_targets

    if not batch:
        raise ValueError("empty training batch (every image failed to load?)")
    core = model.module if hasattr(model, "module") else model
    x, _ = normalize_and_pad([b["image"] for b in batch], core.pixel_mean, core.pixel_std,
                             cfg.input.size_divisibility)
    canvas = (int(x.shape[-2]), int(x.shape[-1]))
    targets = [build_targets({k: v.to(device) for k, v in b["instances"].items()}, canvas, cfg) for b in batch]
    return x, targets


def native_amp(device: torch.device) -> bool:
    """True where mixed precision runs natively: CUDA, or a CPU whose oneDNN has bfloat16 kernels."""
    return device.type == "cuda" or (device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype for ``device``: float16 on CUDA (with a GradScaler), bfloat16 on CPU.

    bfloat16 keeps float32's exponent range, so no loss scaling is needed. On CPU it is only offered where oneDNN
    runs bf16 natively (AVX512-BF16 or AMX); elsewhere it would be emulated and slower than float32. Measured on
    the 2-core AMD EPYC (AVX512-BF16), lite_R18 forward + backward, batch 8 at 224 px: 0.70 s float32, 0.45 s bf16.
    """
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu":
        if not native_amp(device):
            raise ValueError("mixed precision on CPU (bfloat16) needs a CPU with native bf16 (AVX512-BF16 or AMX); "
                             "this one has none: train in float32 (leave --amp off)")
        return torch.bfloat16
    raise ValueError(f"mixed precision is not supported on {device.type!r}; use cuda or cpu")


def compute_losses(model: nn.Module, batch: Sequence[dict], cfg: LapMaskConfig, device: torch.device,
                   amp: bool = False) -> dict[str, Tensor]:
    """Forward one (per-rank) batch and return ``{"loss_ins", "loss_cate"}`` (spec 5.3).

    The network runs under autocast (``amp_dtype``) when ``amp``; the losses are computed in float32 (dice sums
    over whole stride-4 maps and the deformable sampling coordinates are precision-sensitive, spec 10.11).
    """
    from lapmask.model.loss import lapmask_loss

    x, targets = prepare_batch(batch, model, cfg, device)
    with torch.autocast(device_type=device.type, dtype=amp_dtype(device) if amp else torch.float32, enabled=amp):
        out = model(x)
    if amp:
        out = {k: [t.float() for t in v] for k, v in out.items()}
    return lapmask_loss(out, targets, cfg)


class Trainer:
    """Trains a LapMask model on a dataset (items as ``lapmask.data.CocoInstanceDataset`` yields them).

    Args:
        cfg: model + solver config.
        train_dataset: map-style dataset accepting ``(index, seed)`` keys, with ``aspect_groups()``.
        opts: TrainOptions.
        info: process placement from ``distributed.init_from_env`` (default: single process on CPU).
        val_split: ``inference_loop.SplitPaths`` scored every ``eval_period`` iterations (optional).
        callbacks: ``fn(trainer)`` called after every iteration (tests, the demo's plots).
    """

    def __init__(self, cfg: LapMaskConfig, train_dataset: Any, opts: TrainOptions,
                 info: du.DistInfo | None = None, val_split: Any = None,
                 callbacks: Sequence[Callable[[Trainer], None]] = ()) -> None:
        from lapmask.model.lapmask import build_model

        self.cfg, self.opts, self.dataset, self.val_split = cfg, opts, train_dataset, val_split
        self.info = info or du.DistInfo()
        self.device = self.info.device
        self.callbacks = list(callbacks)
        self.out_dir = Path(opts.out_dir)
        s = cfg.solver
        self.max_iter = int(opts.max_iter if opts.max_iter is not None else s.max_iter)
        self.ims_per_batch = int(opts.ims_per_batch or s.ims_per_batch)
        if self.ims_per_batch % self.info.world_size:
            raise ValueError(f"batch size {self.ims_per_batch} is not divisible by the {self.info.world_size} "
                             "processes; pass --batch-size as a multiple of the number of GPUs")
        self.checkpoint_period = int(opts.checkpoint_period if opts.checkpoint_period is not None
                                     else s.checkpoint_period)
        self.amp = (self.device.type == "cuda") if opts.amp is None else bool(opts.amp)
        if self.amp:
            amp_dtype(self.device)  # a clear error now, not at the first iteration

        seed_all(opts.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        self.model = build_model(cfg).to(self.device)
        self.backbone_report = None
        if opts.backbone_weights:
            from lapmask.model.backbone.pretrained import load_backbone_weights

            self.backbone_report = load_backbone_weights(self.model.backbone, opts.backbone_weights, cfg)
        if opts.init_weights:
            ck = load_checkpoint(opts.init_weights)
            check_state_dict(self.model, ck["model"], f"--weights {opts.init_weights}")
            self.model.load_state_dict(ck["model"])
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_lr_scheduler(self.optimizer, cfg, self.max_iter)
        # Loss scaling is for float16 only (CUDA); bfloat16 on CPU has float32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
        self.iter = 0
        self.best_ap: float | None = None
        self.best_iteration: int | None = None
        self.history: list[dict] = []
        self._time_offset = 0.0  # training seconds used before a resume (time-budget runs)
        self._time_steps_done = 0  # lr steps placed by the time budget so far
        if opts.resume:
            self._resume()
        self.ddp = self.model
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # FrozenBN statistics and pixel mean/std are constants: no buffer broadcast needed each forward.
            sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(
                nn.parallel.DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False})
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, **sync)
        self._stop_reason: str | None = None
        self._critical = False
        self._window: list[dict[str, float]] = []
        self._last_eval_iter: int | None = None
        self._metrics_log: MetricsLog | None = None
        self.last_values: dict[str, float] = {}  # losses and timings of the latest iteration (callbacks read it)

    # ------------------------------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything besides the weights that an exact resume needs."""
        return {
            "iteration": self.iter, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state(),
            "sampler": {"seed": self.opts.seed, "start_iter": self.iter, "ims_per_batch": self.ims_per_batch,
                        "world_size": self.info.world_size},
            "trainer": {"best_ap": self.best_ap, "best_iteration": self.best_iteration, "max_iter": self.max_iter,
                        "train_seconds": self.train_seconds(), "time_steps_done": self._time_steps_done},
        }

    def save(self, name: str, update_last: bool = True) -> Path | None:
        """Write ``out_dir/name`` atomically (rank 0) and point ``last_checkpoint`` at it."""
        if not self.info.is_main:
            return None
        path = save_checkpoint(self.out_dir / name, self.model.state_dict(), self.cfg, self.checkpoint_state())
        if update_last:
            tmp = self.out_dir / (LAST_CHECKPOINT + ".tmp")
            tmp.write_text(name + "\n")
            tmp.replace(self.out_dir / LAST_CHECKPOINT)
        return path

    def _prune(self) -> None:
        keep = self.opts.keep_checkpoints
        if not self.info.is_main or keep <= 0:
            return
        periodic = sorted(self.out_dir.glob("model_[0-9]*.pth"))
        for p in periodic[:-keep]:
            p.unlink(missing_ok=True)

    def _resume(self) -> None:
        pointer = self.out_dir / LAST_CHECKPOINT
        if not pointer.is_file():
            raise FileNotFoundError(f"--resume: no {pointer}; nothing to resume in {self.out_dir} (drop --resume "
                                    "to start a new run)")
        path = self.out_dir / pointer.read_text().strip()
        ck = load_checkpoint(path)
        if "optimizer" not in ck or "iteration" not in ck:
            raise ValueError(f"{path} is a weights-only checkpoint; --resume needs a training checkpoint")
        check_state_dict(self.model, ck["model"], f"checkpoint {path}")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        self.iter = int(ck["iteration"])
        smp = ck.get("sampler", {})
        if (smp.get("ims_per_batch"), smp.get("world_size"), smp.get("seed")) != (
                self.ims_per_batch, self.info.world_size, self.opts.seed):
            import warnings

            warnings.warn(f"resuming with batch {self.ims_per_batch} x {self.info.world_size} processes, seed "
                          f"{self.opts.seed}, but the checkpoint was written with batch {smp.get('ims_per_batch')} x "
                          f"{smp.get('world_size')}, seed {smp.get('seed')}: the data order will differ from an "
                          "uninterrupted run", stacklevel=2)
        tr = ck.get("trainer", {})
        self.best_ap, self.best_iteration = tr.get("best_ap"), tr.get("best_iteration")
        self._time_offset = float(tr.get("train_seconds", 0.0))
        self._time_steps_done = int(tr.get("time_steps_done", 0))
        set_rng_state(ck["rng"])

    # ------------------------------------------------------------------------------------------ one step
    def forward_backward(self, batch: Sequence[dict]) -> dict[str, float]:
        """Losses and gradients of this rank's batch (DDP averages the gradients over ranks)."""
        self.ddp.train()
        losses = compute_losses(self.ddp, batch, self.cfg, self.device, self.amp)
        total = losses["loss_ins"] + losses["loss_cate"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became infinite or NaN at iteration {self.iter}: "
                                     f"{ {k: float(v.detach()) for k, v in losses.items()} }; lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        return {k: float(v.detach()) for k, v in losses.items()} | {"loss": float(total.detach())}

    def optimizer_step(self) -> None:
        """Clamp gradients by value (after unscaling), step optimizer and scheduler; uninterruptible."""
        self._critical = True
        try:
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
            clamp_gradients(optimizer_parameters(self.optimizer), self.cfg.solver.clip_value)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.iter += 1
        finally:
            self._critical = False

    # ------------------------------------------------------------------------------------------ loop
    def train_seconds(self) -> float:
        return self._time_offset + (time.perf_counter() - self._t_start if hasattr(self, "_t_start") else 0.0)

    def train(self) -> TrainResult:
        """Run until max_iter (or the time budget); returns a summary. Raises TrainingInterrupted on a stop."""
        from lapmask.data.collate import build_train_loader

        self.out_dir.mkdir(parents=True, exist_ok=True)
        main = self.info.is_main
        log = self._metrics_log = MetricsLog(self.out_dir, enabled=main,
                                             resume_from=self.iter if self.opts.resume else None)
        loader = build_train_loader(self.dataset, self.ims_per_batch, self.opts.num_workers, self.opts.seed,
                                    distributed=self.info.distributed, start_iter=self.iter,
                                    aspect_ratio_grouping=self.opts.aspect_ratio_grouping,
                                    size_per_batch=self.cfg.input.size_per_batch)
        loader.worker_init_fn = functools.partial(_worker_ignore_signals, loader.worker_init_fn)
        bar = ProgressBar(self.max_iter, self.iter, enabled=main and self.opts.progress)
        self._start_iter = start_iter = self.iter
        self._t_start = time.perf_counter()
        self._step_seconds = 0.0
        old_handlers = self._install_signal_handlers()
        data_iter = iter(loader)
        try:
            while self.iter < self.max_iter:
                t0 = time.perf_counter()
                batch = next(data_iter)
                t1 = time.perf_counter()
                values = self.forward_backward(batch)
                self.optimizer_step()
                dt = time.perf_counter() - t0
                self._step_seconds += dt
                values.update(data_time_s=t1 - t0, time_per_iter_s=dt)
                self._window.append(values)
                self.last_values = values
                self._after_step(log, bar)
                for cb in self.callbacks:
                    cb(self)
                stop, out_of_time = du.any_flags([self._stop_reason is not None, self._out_of_time()])
                if stop:
                    raise KeyboardInterrupt(self._stop_reason or "stop requested on another rank")
                if out_of_time:
                    break  # the time budget is a normal end
        except KeyboardInterrupt as e:
            bar.close()
            reason = self._stop_reason or "KeyboardInterrupt"
            ck = self.save(f"model_{self.iter:07d}.pth")
            if self._stop_reason is not None:  # every rank stopped at the same iteration: wait for the save
                du.barrier()
            raise TrainingInterrupted(self.iter, ck, reason) from e
        finally:
            bar.close()
            self._restore_signal_handlers(old_handlers)
            del data_iter
        if self._window:
            self._log(log)
        if self.opts.eval_period > 0 and self.val_split is not None and self._last_eval_iter != self.iter:
            self.evaluate(log)
        last_ckpt = self.save("model_final.pth")
        du.barrier()
        secs = self._step_seconds
        n = (self.iter - start_iter) * self.ims_per_batch
        return TrainResult(self.iter, time.perf_counter() - self._t_start, n / secs if secs > 0 else 0.0,
                           last_ckpt, self.best_ap, self.best_iteration,
                           self.history[-1]["metrics"] if self.history else None, self.history)

    def _out_of_time(self) -> bool:
        b = self.opts.time_budget_s
        return b is not None and self.train_seconds() >= b

    def _after_step(self, log: MetricsLog, bar: ProgressBar) -> None:
        self._time_schedule(bar)
        recent = self._window[-20:]
        bar.update(1, loss=_mean(recent, "loss"), ins=_mean(recent, "loss_ins"), cate=_mean(recent, "loss_cate"),
                   lr=self.optimizer.param_groups[0]["lr"])
        if self.iter % self.opts.log_period == 0 or self.iter == 1:
            self._log(log)
        if self.checkpoint_period > 0 and self.iter % self.checkpoint_period == 0 and self.iter < self.max_iter:
            self.save(f"model_{self.iter:07d}.pth")
            self._prune()
        if self.opts.eval_period > 0 and self.val_split is not None and self.iter % self.opts.eval_period == 0:
            self.evaluate(log)

    def _time_schedule(self, bar: ProgressBar) -> None:
        """Time-budget runs: the expected number of iterations (progress bar total) follows the measured speed.
        WarmupMultiStepLR: lr steps when the used fraction of the budget crosses ``time_steps``.
        WarmupLinearLR: the line ends at the expected last iteration (re-estimated every iteration)."""
        budget = self.opts.time_budget_s
        if budget is None:
            return
        used = self.train_seconds()
        per_iter = (used - self._time_offset) / max(self.iter - self._start_iter, 1)
        est = min(self.max_iter, self.iter + int(max(budget - used, 0.0) / max(per_iter, 1e-6)))  # last iteration
        bar.set_total(max(est, self.iter + 1))
        if isinstance(self.scheduler, WarmupLinearLR):
            # every rank must use the same lr: the ranks' estimates are averaged
            self.scheduler.set_schedule(round(du.all_reduce_mean({"est": est})["est"]), ())
            return
        # any rank past a mark steps every rank (each rank has its own clock; the lr must stay identical)
        done = sum(du.any_flags([used >= t * budget for t in self.opts.time_steps]))
        if done > self._time_steps_done:
            new = [self.iter] * (done - self._time_steps_done)
            self.scheduler.set_schedule(self.max_iter, sorted(list(self.scheduler.steps) + new))
            self._time_steps_done = done

    def _log(self, log: MetricsLog) -> None:
        win = self._window
        if not win:
            return
        vals = {k: _mean(win, k) for k in win[0]}
        vals = du.all_reduce_mean(vals)
        rec = {"iteration": self.iter, "elapsed_s": round(self.train_seconds(), 3),
               "lr": self.optimizer.param_groups[0]["lr"], **vals,
               "images_per_s": self.ims_per_batch / vals["time_per_iter_s"] if vals["time_per_iter_s"] > 0 else 0.0}
        log.write(rec)
        self._window = []

    def evaluate(self, log: MetricsLog | None = None) -> dict | None:
        """Score the current weights on ``val_split`` (all ranks take part); keeps ``model_best.pth``.

        The metrics go to ``log`` (default: the running training log) and to ``history``."""
        log = log or self._metrics_log
        from lapmask.engine.inference_loop import evaluate_predictor
        from lapmask.inference import Predictor

        pred = Predictor(self.model, self.cfg, resize=True)
        metrics = evaluate_predictor(pred, self.val_split, self.cfg.category_ids, self.cfg.class_names,
                                     out_dir=None, max_images=self.opts.eval_max_images, progress=self.opts.progress,
                                     distributed=self.info.distributed)
        self.model.train()
        self._last_eval_iter = self.iter
        if metrics is not None:
            ap = metrics["segm"]["AP"]
            self.history.append({"iteration": self.iter, "metrics": metrics})
            if log is not None:
                log.write({"iteration": self.iter, "elapsed_s": round(self.train_seconds(), 3),
                           "segm": metrics["segm"], "bbox": {"AP": metrics["bbox"]["AP"]}})
            if not math.isnan(ap) and (self.best_ap is None or ap > self.best_ap):
                self.best_ap, self.best_iteration = ap, self.iter
                save_checkpoint(self.out_dir / "model_best.pth", self.model.state_dict(), self.cfg,
                                {"iteration": self.iter, "metrics": {"segm": metrics["segm"]}})
        self.best_ap, self.best_iteration = du.broadcast_object((self.best_ap, self.best_iteration))
        return metrics

    # ------------------------------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> dict | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return old

    def _restore_signal_handlers(self, old: dict | None) -> None:
        for sig, h in (old or {}).items():
            signal.signal(sig, h)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop_reason is None or self._critical:
            self._stop_reason = self._stop_reason or name
            if self.info.is_main:
                print(f"\n{name}: stopping after this iteration and saving a checkpoint "
                      "(press Ctrl-C again to stop now)", flush=True)
            return
        raise KeyboardInterrupt(name)


def _worker_ignore_signals(init_fn: Callable[[int], None] | None, worker_id: int) -> None:
    """DataLoader workers ignore SIGINT: Ctrl-C reaches the whole process group, and a worker that dies of it
    would make the main process fail before it can save. SIGTERM keeps its default: it is how the main process
    (and multiprocessing at interpreter exit) stops workers -- ignoring it left exit hanging in a join forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if init_fn is not None:
        init_fn(worker_id)


def _mean(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(sum(vals) / len(vals)) if vals else math.nan


def find_last_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` names in ``out_dir``, if any."""
    p = Path(out_dir) / LAST_CHECKPOINT
    return Path(out_dir) / p.read_text().strip() if p.is_file() else None
