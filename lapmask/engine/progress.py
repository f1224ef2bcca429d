"""Training progress: a tqdm bar (iteration, ETA, losses, lr) and metric logs (``metrics.jsonl`` + ``metrics.csv``).

Both are rank-0 only in distributed runs (the trainer passes ``enabled=False`` elsewhere). On resume the logs are
kept and rows at or after the resume iteration are dropped first, so a resumed run's logs read like one run.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

# CSV columns: training rows fill the first group, evaluation rows the second (same file, blank cells elsewhere).
CSV_COLUMNS = ("iteration", "elapsed_s", "lr", "loss", "loss_ins", "loss_cate", "time_per_iter_s", "data_time_s",
               "images_per_s", "segm_AP", "segm_AP50", "segm_AP75", "segm_APs", "segm_APm", "segm_APl", "bbox_AP")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLog:
    """Append-only JSONL + CSV metric log in ``out_dir``.

    Args:
        out_dir: folder for ``metrics.jsonl`` and ``metrics.csv``.
        enabled: False makes every call a no-op (non-main ranks).
        resume_from: when resuming at this iteration, rows with ``iteration >= resume_from`` are removed.
    """

    def __init__(self, out_dir: str | Path, enabled: bool = True, resume_from: int | None = None) -> None:
        self.enabled = enabled
        self.jsonl = Path(out_dir) / "metrics.jsonl"
        self.csv = Path(out_dir) / "metrics.csv"
        if not enabled:
            return
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            for p in (self.jsonl, self.csv):
                p.unlink(missing_ok=True)
        else:
            self._truncate(resume_from)
        if not self.csv.exists():
            with self.csv.open("w", newline="") as f:
                csv.writer(f).writerow(CSV_COLUMNS)

    def _truncate(self, it: int) -> None:
        if self.jsonl.exists():
            keep = [ln for ln in self.jsonl.read_text().splitlines() if ln.strip() and
                    json.loads(ln).get("iteration", -1) < it]
            _atomic_write(self.jsonl, "".join(ln + "\n" for ln in keep))
        if self.csv.exists():
            rows = list(csv.reader(self.csv.open(newline="")))
            if rows and tuple(rows[0]) == CSV_COLUMNS:
                body = [r for r in rows[1:] if r and r[0] and int(float(r[0])) < it]
                tmp = self.csv.with_name(self.csv.name + ".tmp")
                with tmp.open("w", newline="") as f:
                    csv.writer(f).writerows([list(CSV_COLUMNS)] + body)
                os.replace(tmp, self.csv)
            else:  # another format: start over
                self.csv.unlink()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (``iteration`` required); nested dicts go to JSONL as they are and to the CSV as
        ``<key>_<subkey>`` columns when those exist."""
        if not self.enabled:
            return
        rec = {k: _clean(v) if not isinstance(v, dict) else {a: _clean(b) for a, b in v.items()}
               for k, v in record.items()}
        with self.jsonl.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        flat: dict[str, Any] = {}
        for k, v in rec.items():
            if isinstance(v, dict):
                flat.update({f"{k}_{a}": b for a, b in v.items()})
            else:
                flat[k] = v
        with self.csv.open("a", newline="") as f:
            csv.writer(f).writerow(["" if flat.get(c) is None else flat[c] for c in CSV_COLUMNS])


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (for plots and tests)."""
    p = Path(path)
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.exists() else []


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ProgressBar:
    """tqdm bar over iterations with losses and lr in the postfix; tqdm computes rate and ETA.

    ``enabled=False`` (non-main ranks, ``--no-progress``) prints nothing. When stderr is not a terminal the
    bar refreshes at most every ``mininterval`` seconds, which keeps log files readable.
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train",
                 mininterval: float | None = None) -> None:
        self.enabled = enabled
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty()
            self._bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, unit="it",
                             mininterval=mininterval if mininterval is not None else (0.5 if tty else 30.0),
                             smoothing=0.1)

    def update(self, n: int = 1, **postfix: float) -> None:
        if self._bar is None:
            return
        if postfix:
            self._bar.set_postfix({k: (f"{v:.3g}" if k == "lr" else f"{v:.4f}") for k, v in postfix.items()},
                                  refresh=False)
        self._bar.update(n)

    def set_total(self, total: int) -> None:
        """Change the expected number of iterations (time-budget runs re-estimate it)."""
        if self._bar is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def write(self, msg: str) -> None:
        """Print a line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(msg)
        elif self.enabled:
            print(msg, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
