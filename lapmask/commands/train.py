"""``lapmask train --config C --data DIR --out OUT [...]`` (multi-GPU: ``torchrun --nproc_per_node N -m lapmask train``).

DIR is a COCO-format folder: ``annotations/instances_train.json`` + ``train/`` (and ``instances_val.json`` +
``val/`` for ``--eval-period``), the layout ``lapmask data synth`` writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from lapmask.commands.common import add_config, add_debug


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p, required=True)
    p.add_argument("--data", required=True, help="COCO-format folder (annotations/instances_{train,val}.json, "
                   "train/, val/)")
    p.add_argument("--out", default=None, help="output folder (default: output/<config name>)")
    p.add_argument("--max-iter", type=int, default=None, help="iterations (default: the config's solver.max_iter)")
    p.add_argument("--batch-size", type=int, default=None, help="images per iteration over all processes "
                   "(default: solver.ims_per_batch)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: solver.base_lr)")
    p.add_argument("--steps", type=int, nargs="*", default=None, help="lr decay iterations (default: solver.steps)")
    p.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up length (default: solver's)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    amp = p.add_mutually_exclusive_group()
    amp.add_argument("--amp", dest="amp", action="store_true", default=None, help="mixed precision: float16 "
                     "on CUDA (the default there), bfloat16 on a CPU with native bf16 (AVX512-BF16/AMX)")
    amp.add_argument("--no-amp", dest="amp", action="store_false", help="float32 training (the default on CPU)")
    p.add_argument("--backbone-weights", default=None, help="ImageNet-pretrained backbone (MSRA .pkl, torchvision "
                   ".pth or detectron2-format .pth)")
    p.add_argument("--weights", default=None, help="start from a lapmask checkpoint's weights (fine-tuning)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/last_checkpoint")
    p.add_argument("--eval-period", type=int, default=0, help="evaluate on the val split every N iterations and "
                   "keep model_best.pth (0: off)")
    p.add_argument("--eval-max-images", type=int, default=None, help="evaluate on the first N val images only")
    p.add_argument("--checkpoint-period", type=int, default=None, help="default: solver.checkpoint_period")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="periodic checkpoints to keep (0: all)")
    p.add_argument("--log-period", type=int, default=20, help="iterations between metric log rows")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop after this many minutes of training "
                   "(lr steps at 75%% and 90%% of the budget)")
    p.add_argument("--num-workers", type=int, default=2, help="data-loader workers per process")
    p.add_argument("--seed", type=int, default=0, help="initialisation, shuffling and augmentation seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--adopt-dataset-classes", action="store_true", help="train on the dataset's categories "
                   "(sets num_classes, class_names, category_ids from it) instead of the config's")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    add_debug(p)


def solver_overrides(cfg, args: argparse.Namespace):
    """The config with ``--lr``, ``--steps``, ``--warmup-iters``, ``--max-iter`` and ``--batch-size`` applied."""
    s = cfg.solver
    changes = {k: v for k, v in (("base_lr", args.lr), ("warmup_iters", args.warmup_iters),
                                 ("max_iter", args.max_iter), ("ims_per_batch", args.batch_size)) if v is not None}
    if args.steps is not None:
        changes["steps"] = tuple(args.steps)
    return cfg.replace(solver=dataclasses.replace(s, **changes)) if changes else cfg


def adopt_classes(cfg, names: tuple[str, ...], ids: tuple[int, ...]):
    """The config with the dataset's categories (a new classifier size)."""
    head = dataclasses.replace(cfg.head, num_classes=len(names))
    return cfg.replace(head=head, class_names=tuple(names), category_ids=tuple(ids))


def run(args: argparse.Namespace) -> int:
    import torch

    from lapmask.config import load_config
    from lapmask.data.coco import CocoInstanceDataset, check_categories
    from lapmask.engine import distributed as du
    from lapmask.engine.evaluator import format_table
    from lapmask.engine.inference_loop import SplitPaths
    from lapmask.engine.trainer import Trainer, TrainingInterrupted, TrainOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = solver_overrides(load_config(args.config), args)
    train_split = SplitPaths.from_data_dir(args.data, "train")
    val_split = SplitPaths.from_data_dir(args.data, "val") if args.eval_period > 0 else None
    info = du.init_from_env(args.device)
    try:
        dataset = CocoInstanceDataset.from_config(cfg, train_split.ann_file, train_split.image_root, is_train=True)
        if args.adopt_dataset_classes:
            cfg = adopt_classes(cfg, dataset.class_names, dataset.category_ids)
        else:
            try:
                check_categories(dataset, cfg.class_names, cfg.category_ids)
            except ValueError as e:
                raise ValueError(f"{e}; or pass --adopt-dataset-classes to train on the dataset's categories") from e
        out = Path(args.out or Path("output") / cfg.name)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        opts = TrainOptions(out_dir=out, num_workers=args.num_workers, seed=args.seed, amp=args.amp,
                            checkpoint_period=args.checkpoint_period, eval_period=args.eval_period,
                            eval_max_images=args.eval_max_images, log_period=args.log_period, resume=args.resume,
                            backbone_weights=args.backbone_weights, init_weights=args.weights,
                            time_budget_s=None if args.time_budget_min is None else 60.0 * args.time_budget_min,
                            keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress)
        trainer = Trainer(cfg, dataset, opts, info, val_split)
        if info.is_main:
            where = f"{info.world_size} processes on {info.device.type}" if info.distributed else str(info.device)
            print(f"training {cfg.name} on {len(dataset)} images ({where}, batch {trainer.ims_per_batch}, "
                  f"amp {'on' if trainer.amp else 'off'}) from iteration {trainer.iter} to {trainer.max_iter} "
                  f"-> {out}", file=sys.stderr)
            if trainer.backbone_report:
                r = trainer.backbone_report
                print(f"backbone weights: {len(r['loaded'])} tensors loaded ({r['format']}); "
                      f"{len(r['missing'])} missing; {' '.join(r.get('notes', []))}", file=sys.stderr)
        try:
            result = trainer.train()
        except TrainingInterrupted as e:
            if info.is_main:
                print(f"stopped at iteration {e.iteration} ({e.reason}); checkpoint {e.checkpoint}. Continue with "
                      f"the same command plus --resume.", file=sys.stderr)
            return 130
        if info.is_main:
            print(f"done: {result.iterations} iterations, {result.images_per_s:.2f} images/s; final weights "
                  f"{result.final_checkpoint}")
            if result.last_metrics:
                print(format_table(result.last_metrics))
                print(f"best mask AP {100 * result.best_ap:.1f} at iteration {result.best_iteration} "
                      f"({out / 'model_best.pth'})")
        return 0
    finally:
        du.cleanup(info)
