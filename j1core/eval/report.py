"""The report of a judge run: metrics over its judgments (report.json) and their markdown tables (report.md).

    python -m pytest tests/eval/test_evaluate.py

build_report computes everything from the judgments file's records (j1core/eval/metrics.py), so a resumed
or extended run reports exactly what its file holds; render_markdown only lays those numbers out, in
percent (the `percent` of every j1 table, j1core/eval/compare.py included).
"""
from __future__ import annotations

import json
from pathlib import Path

from j1core.eval.metrics import HEADLINE, METRICS, compute_report, length_relation


def build_report(records, pairs, fmt: str, seed: int, bootstrap: int, meta: dict) -> dict:
    """Metrics over the judgments of `pairs` (a bigger file from an earlier run may hold more)."""
    wanted = {p.id for p in pairs}
    mine = [r for r in records if r["pair_id"] in wanted]
    relation = {p.id: length_relation(p.chosen, p.rejected) for p in pairs}
    metrics = compute_report(mine, fmt, seed=seed, bootstrap=bootstrap, relation=relation)
    length_capped = sum(r.get("finish_reason") == "length" for r in mine)
    meta = {**meta, "pairs": len(wanted), "judgments": len(mine),
            "length_capped_rate": length_capped / max(len(mine), 1)}
    return {"meta": meta, **metrics, **benchmark_scores(meta.get("benchmark"), metrics)}


def benchmark_scores(benchmark, metrics) -> dict:
    """A benchmark's own aggregate of the per-category accuracies: RewardBench's sections and score
    (j1core/data/rewardbench.py), PPE's human-preference and correctness numbers (j1core/data/ppe.py)."""
    accuracy = {name: summary["accuracy"] for name, summary in metrics.get("by_category", {}).items()}
    if benchmark == "rewardbench":
        from j1core.data.rewardbench import section_scores

        return {"rewardbench": section_scores(accuracy)}
    if benchmark == "ppe":
        from j1core.data.ppe import ppe_scores

        return {"ppe": ppe_scores(accuracy)}
    return {}


def percent(value) -> str:
    """A rate as a percentage with one decimal; "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def metrics_table(title: str, summaries: dict, names) -> list[str]:
    lines = [f"### {title}", "", "| | pairs | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for label, summary in summaries.items():
        lines.append(f"| {label} | {summary['pairs']} | " + " | ".join(percent(summary[n]) for n in names) + " |")
    return lines + [""]


def headline_table(title: str, summary: dict) -> list[str]:
    lines = [f"## {title}", "", "| metric | % | 95% CI |", "|---|---|---|"]
    for name in METRICS:
        ci = summary.get("ci95", {}).get(name)
        interval = f"[{percent(ci[0])}, {percent(ci[1])}]" if ci else ""
        lines.append(f"| {name} | {percent(summary[name])} | {interval} |")
    lines.append(f"| flip_pairs (flip-rate denominator) | {summary['flip_pairs']} | |")
    return lines + [""]


def render_markdown(report: dict) -> str:
    meta = report["meta"]
    k = report["samples"]
    lines = [f"# Judge report: {meta['benchmark']}" + (f" ({meta['subset']})" if meta.get("subset") else ""), "",
             f"model `{meta['model']}`, format `{report['format']}`, {meta['pairs']} pairs, {meta['judgments']} "
             f"judgments, k={k}, temperature {meta['temperature']}, forced verdict {meta['forced_verdict']}"
             + (f" (think {meta['max_think_tokens']} tokens)" if meta["forced_verdict"] else
                f", max {meta['max_new_tokens']} new tokens (capped: {percent(meta['length_capped_rate'])}%)"),
             f"wall time {meta['wall_s']:.0f} s, seed {meta['seed']}.", "",
             ("accuracy scores one seeded random order per pair; consistent_accuracy needs both orders right; "
              "flip_rate is over pairs with a strict verdict in both orders (definitions: "
              "j1core/eval/metrics.py)."), ""]
    lines += headline_table("Overall" + (f" (single sample, mean over {k} samples)" if k > 1 else ""),
                            report["overall"])
    lines += benchmark_table(report)
    names = [n for n in METRICS if report["overall"][n] is not None]
    lines += group_sections(report, "", "", names)
    lines += length_section(report, names)
    for key, title in (("sc_at_k", f"SC@{k} (majority vote per order)"),
                       ("mean_score_at_k", f"Mean-Score@{k} (mean score per response)")):
        if key in report:
            lines += headline_table(title, report[key])
            lines += group_sections(report, f"{key}_", f"{title}, ", names)
    return "\n".join(lines) + "\n"


def length_section(report: dict, names) -> list[str]:
    """Does the judge go by length? The metrics by which response is the longer, and their gap."""
    if not report.get("by_length"):
        return []
    bias = report.get("length_bias")
    gap = "" if bias is None else (f"length_bias {100 * bias:+.1f} points: accuracy_both_orders with the chosen "
                                   "response the longer minus with it the shorter (0: length is no cue to this "
                                   "judge; +100: it always picks the longer).")
    return metrics_table("By length (characters)", report["by_length"], names) + ([gap, ""] if gap else [])


def benchmark_table(report: dict) -> list[str]:
    """RewardBench's sections and score, or PPE's two numbers, when the report has them (accuracy)."""
    if "rewardbench" in report:
        rb = report["rewardbench"]
        rows = list(rb["sections"].items()) + [("score (mean of the sections)", rb["score"])]
        title = "RewardBench (accuracy; sections weighted as RewardBench does)"
    elif "ppe" in report:
        ppe = report["ppe"]
        rows = [("human_preference", ppe["human_preference"]), ("correctness (mean of the sets)", ppe["correctness"])]
        rows += [(f"correctness/{name}", acc) for name, acc in ppe["correctness_sets"].items()]
        title = "PPE (accuracy)"
    else:
        return []
    return [f"## {title}", "", "| | % |", "|---|---|"] + [f"| {name} | {percent(v)} |" for name, v in rows] + [""]


def group_sections(report: dict, prefix: str, title: str, names) -> list[str]:
    lines = []
    for group, label in (("by_category", "by category"), ("by_level", "by level")):
        if f"{prefix}{group}" in report:
            lines += metrics_table((title + label).capitalize(), report[f"{prefix}{group}"], names)
    return lines


def write_report(report: dict, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))


def headline_line(report: dict) -> str:
    o = report["overall"]
    return ", ".join(f"{name} {percent(o[name])}%" for name in HEADLINE + ("unparseable_rate",))
