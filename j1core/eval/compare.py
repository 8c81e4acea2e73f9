"""Print judge reports side by side: base vs trained, consistency vs correctness reward, ...

    python -m j1core.eval.compare runs/demo/eval-base runs/demo/eval-trained --names base trained

Each argument is an output directory of `generate.py judge` (its report.json); the table shows the headline
metrics of each, in percent, and the change of every column against the first; length_bias (accuracy with the
chosen response the longer minus with it the shorter, in points) where the reports have it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from j1core.eval.metrics import METRICS
from j1core.eval.report import percent


def load_report(run_dir) -> dict:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no report; run `python generate.py judge ... --out {run_dir}` first")
    return json.loads(path.read_text())


def delta(value, base) -> str:
    return "" if value is None or base is None else f" ({100 * (value - base):+.1f})"


def comparison_table(reports: list[dict], names: list[str]) -> str:
    overall = [r["overall"] for r in reports]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in METRICS:
        if all(o.get(metric) is None for o in overall):
            continue
        cells = [percent(o.get(metric)) + (delta(o.get(metric), overall[0].get(metric)) if i else "")
                 for i, o in enumerate(overall)]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    if all(r.get("length_bias") is not None for r in reports):
        bias = [100 * r["length_bias"] for r in reports]
        lines.append("| length_bias | " + " | ".join(f"{b:+.1f}" + (f" ({b - bias[0]:+.1f})" if i else "")
                                                    for i, b in enumerate(bias)) + " |")
    lines.append("| pairs | " + " | ".join(str(r["meta"]["pairs"]) for r in reports) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Compare judge reports side by side.")
    parser.add_argument("runs", nargs="+", help="output directories of generate.py judge")
    parser.add_argument("--names", nargs="+", help="column names (default: the directory names)")
    args = parser.parse_args(argv)
    names = args.names or [Path(r).name for r in args.runs]
    if len(names) != len(args.runs):
        parser.error(f"--names gives {len(names)} names for {len(args.runs)} runs")
    print(comparison_table([load_report(r) for r in args.runs], names))


if __name__ == "__main__":
    main()
