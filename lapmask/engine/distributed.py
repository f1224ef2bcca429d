"""Distributed-training helpers (detectron2 ``comm`` in spirit): torchrun init, rank-0 gating, reductions.

``torchrun --nproc_per_node N -m lapmask train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
``init_from_env`` reads them and starts the process group: NCCL when the training device is a GPU, Gloo on CPU.
Without those variables (or WORLD_SIZE=1) nothing is initialised and every helper degrades to the
single-process answer, so the trainer code is the same either way.
"""
from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node) and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> "cuda" when available, else "cpu"; a bare "cuda" is kept (the rank picks its index)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu")
    return dev


def init_from_env(device: str | torch.device | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Start the process group from torchrun's environment (no-op for a single process).

    The backend is NCCL when ``device`` resolves to CUDA and Gloo otherwise. With CUDA each process uses GPU
    ``LOCAL_RANK``. Returns the DistInfo (``initialised_here`` tells ``cleanup`` whether to destroy the group).
    """
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dev.type == "cuda":
        if torch.cuda.device_count() <= local:
            raise ValueError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are visible; run "
                             "torchrun with --nproc_per_node <= the number of GPUs")
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistInfo(device=dev)
    if is_initialized():
        return DistInfo(get_rank(), get_world_size(), local, dev, False)
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(f"WORLD_SIZE={world} but {var} is not set; launch with torchrun (it sets both)")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local, dev, True)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if ``init_from_env`` created it."""
    if info.initialised_here and is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise all processes (no-op alone). NCCL needs the current device set, which init did."""
    if get_world_size() > 1:
        dist.barrier()


def _reduce_device() -> torch.device:
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over all processes (for logging only; gradients are averaged by DDP)."""
    if get_world_size() <= 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def any_flag(flag: bool) -> bool:
    """True on every rank if any rank passed True (e.g. "stop requested": all ranks stop at the same step)."""
    if get_world_size() <= 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def any_flags(flags: list[bool]) -> list[bool]:
    """Element-wise ``any_flag`` of several flags in one all-reduce."""
    if get_world_size() <= 1:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def all_gather_object(obj: Any) -> list[Any]:
    """List of ``obj`` from every rank (rank order); ``[obj]`` alone."""
    if get_world_size() <= 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank."""
    if get_world_size() <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a local process group)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _record(error_dir: str, rank: int) -> Path:
    """Where ``_local_entry`` records how process ``rank`` ended, when it ended by an exception."""
    return Path(error_dir, f"rank{rank}.txt")


def _local_entry(rank: int, fn: Any, world: int, port: int, device: str, args: tuple, error_dir: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    info = init_from_env(device)
    try:
        fn(info, *args)
    except BaseException as e:
        # Written before this process exits (so before its peers see the broken connection and fail in turn):
        # the earliest record is the cause, whichever process the parent happens to notice first.
        kind = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        _record(error_dir, rank).write_text(f"{time.time()!r} {kind}\n{type(e).__name__}: {e}")
        raise
    finally:
        # Free what ``fn`` left in reference cycles (the demo's trainer: its callbacks refer back to it) while
        # the group still exists, not at some later collection or at exit. Without this, a rank of the demo
        # aborted at the end in 3 of 15 runs ("terminate called without an active exception", SIGABRT, from
        # the DDP model freed late, we believe); with it, 0 of 12.
        gc.collect()
        cleanup(info)


def _first_error(error_dir: str, nprocs: int) -> tuple[int, str, str] | None:
    """(rank, "failed" | "interrupted", "Type: message") of the earliest exception that ``_local_entry``
    recorded, or None."""
    records = []
    for rank in range(nprocs):
        f = _record(error_dir, rank)
        if f.is_file():
            head, _, what = f.read_text().partition("\n")
            when, kind = head.split()
            records.append((float(when), rank, kind, what.strip() or "?"))
    return min(records)[1:] if records else None


def _signal_deaths(processes: list, error_dir: str) -> list[tuple[int, str]]:
    """(rank, signal name) of the processes that died of a signal other than SIGTERM and left no record: a native
    crash or a kill (out of memory). No Python code ran for them, so they are the cause whenever they happen;
    SIGTERM is how torch ends the others after a failure."""
    import signal

    deaths = []
    for rank, proc in enumerate(processes):
        code = proc.exitcode
        if code is not None and code < 0 and -code != signal.SIGTERM and not _record(error_dir, rank).is_file():
            try:
                deaths.append((rank, signal.Signals(-code).name))
            except ValueError:
                deaths.append((rank, f"signal {-code}"))
    return deaths


class _ParentSigint:
    """While the processes run, Ctrl-C reaches them too (one process group): they stop after the iteration
    (the first press) or at once (the second) and save a checkpoint either way. This process waits for them
    instead of exiting at once (its end would kill them mid-save); a third press stops it anyway."""

    PRESSES_TO_EXIT = 3

    def __init__(self) -> None:
        self.presses = 0
        self.old: Any = None

    def __enter__(self) -> "_ParentSigint":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.presses += 1
        if self.presses >= self.PRESSES_TO_EXIT:
            raise KeyboardInterrupt(f"Ctrl-C pressed {self.presses} times: stopping without waiting for the "
                                    "processes")


def launch_local(fn: Any, nprocs: int, args: tuple = (), device: str = "cpu") -> None:
    """Run ``fn(info, *args)`` in ``nprocs`` fresh processes of this machine joined in one process group, as
    ``torchrun --nproc_per_node nprocs`` would (``fn`` must be a module-level function; its return value is
    dropped). One process: ``fn`` runs here, with no group. Raises RuntimeError naming the process that failed
    first and why: its exception, or the signal it died of (the others then fail on the broken group; their
    errors are not the cause); or KeyboardInterrupt when the first was interrupted (Ctrl-C: ``_ParentSigint``)."""
    if nprocs <= 1:
        fn(DistInfo(device=resolve_device(device)), *args)
        return
    import torch.multiprocessing as mp

    cause: Exception | None = None  # the failing process's traceback is in its message (--debug shows it)
    with tempfile.TemporaryDirectory(prefix="lapmask_ranks_") as error_dir, _ParentSigint():
        ctx = mp.start_processes(_local_entry, args=(fn, nprocs, free_port(), device, args, error_dir),
                                 nprocs=nprocs, join=False, start_method="spawn")
        try:
            while not ctx.join(grace_period=10.0):  # after a failure the others get 10 s to fail on their own
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            cause = e
        deaths = _signal_deaths(ctx.processes, error_dir)
        # torch's wrapper exits 0 on KeyboardInterrupt: only the record tells an interruption
        first = (deaths[0][0], "failed", f"ended by signal {deaths[0][1]} (a crash in native code, or killed: out "
                 "of memory?)") if deaths else _first_error(error_dir, nprocs)
    if first is None and cause is not None:
        first = (cause.error_index, "failed", str(cause).strip().splitlines()[-1])
    if first is None:
        return
    rank, kind, what = first
    if kind == "interrupted":
        raise KeyboardInterrupt(what) from cause
    raise RuntimeError(f"training process {rank} of {nprocs} failed: {what} (--debug for the traceback)") from cause
