"""Training metrics: one JSON line per step in metrics.jsonl (optionally TensorBoard), and a PNG of the curves.

    python -m pytest tests/test_runlog.py -q

Each line is flushed as it is written, so a run killed at any point keeps every finished step. A resumed run
calls truncate_after(step) with its checkpoint's step, dropping the lines of steps that will be redone.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from j1core.errors import UserError

METRICS_FILE = "metrics.jsonl"
CURVES = (("reward_mean", "reward"), ("consistent_accuracy", "consistent accuracy"),
          ("flip_rate", "verdict flip rate"), ("kl", "KL to reference"), ("eval/accuracy", "held-out accuracy"))
# Held-out evaluation (j1core/eval/during_training.py) drawn over the training curve of the same metric.
OVERLAYS = {"consistent_accuracy": "eval/consistent_accuracy", "flip_rate": "eval/flip_rate"}


class MetricsLogger:
    """Append-only step log: `.log(step, {"reward_mean": ...})` -> one line {"step": step, ...}."""

    def __init__(self, output_dir, tensorboard: bool = False, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS_FILE
        self.file = None
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a")  # noqa: SIM115  (held open for the run; closed in close())
        if tensorboard:
            self.writer = tensorboard_writer(self.path.parent / "tensorboard")

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: plain(v) for k, v in values.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, int(step))
            self.writer.flush()

    def truncate_after(self, step: int) -> None:
        """Drop lines whose step is greater than `step` (and a torn last line), for resuming."""
        if not self.enabled:
            return
        self.file.close()
        kept = [line for line in read_lines(self.path) if line["step"] <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(line) + "\n" for line in kept))
        os.replace(tmp, self.path)
        self.file = open(self.path, "a")  # noqa: SIM115  (held open for the run; closed in close())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def plain(value):
    """JSON-able scalar: tensors and numpy numbers via .item(); NaN/inf become None (strict JSON)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def tensorboard_writer(log_dir: Path):
    try:
        import tensorboard  # noqa: F401  (SummaryWriter imports without it but cannot write)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        print(f"warning: TensorBoard logging is off ({err}); metrics still go to {METRICS_FILE}",
              file=sys.stderr)
        return None
    return SummaryWriter(log_dir=str(log_dir))


def read_lines(path) -> list[dict]:
    """All complete records of a metrics file; a torn final line (a killed write) is skipped."""
    records = []
    lines = Path(path).read_text(encoding="utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise UserError(f"{path}:{number}: not a JSON line ({err})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise UserError(f"{path}:{number}: field 'step' is missing or not a whole number")
        records.append(record)
    return records


def plot_curves(metrics_jsonl, out_png) -> list[str]:
    """Plot reward, consistent accuracy, flip rate, KL and held-out accuracy against step, with the held-out
    values over their training curves; returns the keys that were drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_lines(metrics_jsonl)

    def present(key):
        return key is not None and any(r.get(key) is not None for r in records)

    panels = [(title, [k for k in (key, OVERLAYS.get(key)) if present(k)]) for key, title in CURVES]
    panels = [(title, keys) for title, keys in panels if keys]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            label = "held-out" if key.startswith("eval/") else "training"
            ax.plot([s for s, _ in points], [v for _, v in points], marker="." if len(points) < 50 else None,
                    label=label)
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no curves logged", ha="center", va="center")
        axes[0][0].set_axis_off()
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return [key for _, keys in panels for key in keys]


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True, unit: str = "it"):
    """A tqdm bar on stderr (a no-op object when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)
