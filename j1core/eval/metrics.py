"""Judge metrics from per-judgment records: accuracy, position consistency, flip rate, SC@k, Mean-Score@k.

    python -m pytest tests/eval/test_metrics.py tests/judge/test_step.py

The one metrics module of j1: evaluation reports (compute_report) and the trainer's per-step metrics
(step_summary, through j1core/judge/step.step_metrics) both read the same per-sample values (sample_values).
Pure functions over plain dicts (the lines of judgments.jsonl, or j1core/judge/step.judgment_record's),
no model. One record is one judge output:
    pair_id, category, sample (0..k-1), parsed (bool), winner ("A"|"B"|"tie"|None, from rewards.judged_winner),
    score_a, score_b, score (floats|None), format (the judge format; step_summary reads it), and either
    order 0|1 (pairwise formats; order 0 shows the chosen response as A) or
    response "chosen"|"rejected" (pointwise: each response judged alone, order None).

Definitions (all over pairs, so a bootstrap over pairs gives their intervals):
- A judge's answer in one order becomes a *preference* between the pair's responses: "chosen", "rejected",
  "tie" (equal scores) or None (unparseable). Only "chosen" is correct; ties and None count as wrong.
- accuracy: one order per pair, drawn from (seed, pair_id) alone, as PPE and RewardBench score a single
  order; accuracy_order0 / accuracy_order1: per order; accuracy_both_orders: mean of the two.
- consistent_accuracy: right in both orders (JudgeBench as scored in J1).
- flip_rate: among pairs whose two orders both give a strict preference (chosen or rejected; not a tie,
  not unparseable), the fraction whose preferred response differs between the orders. `flip_pairs` is that
  denominator; with no such pair the rate is None. An always-"A" judge flips on every pair.
- unparseable_rate: fraction of judge outputs that did not parse (per pair, then averaged). tie_rate: fraction
  of judgments (one per pair and order; pointwise: one per pair) whose scores are equal.
- With k samples, the single-sample metrics above are averaged over the k sample indices (sample i of order
  0 goes with sample i of order 1; pointwise: sample i of the chosen response with sample i of the rejected).
- SC@k: per order, the majority verdict over the k samples' winners. Unparseable samples do not vote; ties
  ("tie" winners) do vote; if no verdict has a strict majority of the cast votes over each other verdict
  (e.g. 2 A vs 2 B) the order's verdict is "tie"; with no parseable sample it is None.
- Mean-Score@k (score formats and pointwise): average each response's score over the parseable samples,
  then the higher mean wins ("tie" if equal, None if a response has no parsed score). Pointwise gets
  Mean-Score@k only: its samples carry scores, not verdicts.
- Pointwise has no order: accuracy is per pair, consistent_accuracy equals accuracy (no position to be
  inconsistent about), and the per-order accuracies and flip rate are None.
- by_length (when the responses' lengths are given): the metrics over the pairs whose chosen response is the
  longer, the shorter, or as long (in characters); length_bias is accuracy_both_orders of "chosen longer"
  minus that of "chosen shorter": about 0 for a judge that ignores length, +1 for one that always picks the
  longer response, -1 for one that picks the shorter.
- Training steps (step_summary) pool the single-sample values over every (pair, sample) of the batch
  instead of averaging per pair, score no seeded order (accuracy is the mean of both orders), and may mix
  formats; its docstring lists where its conventions differ.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict

import numpy as np

POINTWISE = "pointwise"
SCORE_FORMATS = ("pairwise_scores", "scores_verdict", "pointwise")
HEADLINE = ("accuracy", "consistent_accuracy", "flip_rate")


def random_order(seed: int, pair_id: str) -> int:
    """The order scored for `accuracy`: a seeded coin per pair, independent of which other pairs are run."""
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[0] & 1


def preference(winner, order) -> str | None:
    """Which response a pairwise verdict prefers: order 0 shows chosen as A, order 1 shows it as B."""
    if winner in (None, "tie"):
        return winner
    chosen_letter = "A" if order == 0 else "B"
    return "chosen" if winner == chosen_letter else "rejected"


def score_preference(score_chosen, score_rejected) -> str | None:
    if score_chosen is None or score_rejected is None:
        return None
    if score_chosen == score_rejected:
        return "tie"
    return "chosen" if score_chosen > score_rejected else "rejected"


def majority_vote(winners) -> str | None:
    """SC@k verdict: most common parsed winner; no strict winner -> "tie"; nothing parsed -> None."""
    votes = Counter(w for w in winners if w is not None)
    if not votes:
        return None
    (top, top_count), *rest = votes.most_common()
    return "tie" if rest and rest[0][1] == top_count else top


def mean_score(scores) -> float | None:
    parsed = [s for s in scores if s is not None and not math.isnan(s)]
    return sum(parsed) / len(parsed) if parsed else None


def group_by_pair(records):
    """pair_id -> {"category", "format", "slots": {order or response: [record by sample index]}}, in
    first-seen order."""
    pairs = {}
    for r in records:
        entry = pairs.setdefault(r["pair_id"], {"category": r.get("category"), "format": r.get("format"),
                                                "slots": defaultdict(dict)})
        slot = r["order"] if r.get("order") is not None else r["response"]
        entry["slots"][slot][r["sample"]] = r
    for entry in pairs.values():
        entry["slots"] = {slot: [by_sample[i] for i in sorted(by_sample)] for slot, by_sample in
                          entry["slots"].items()}
    return pairs


def _pairwise_prefs(slots, aggregate):
    """Preference per order for one pair, or None when an order is missing."""
    if set(slots) != {0, 1}:
        raise ValueError(f"pairwise pair needs judgments in orders 0 and 1, got {sorted(slots)}")
    return [aggregate(slots[order], order) for order in (0, 1)]


def _sample_pref(sample):
    return lambda recs, order: preference(recs[sample]["winner"], order) if sample < len(recs) else None


def _sc_pref(recs, order):
    return preference(majority_vote([r["winner"] for r in recs]), order)


def _mean_score_pref(recs, order):
    mean_a = mean_score([r.get("score_a") for r in recs])
    mean_b = mean_score([r.get("score_b") for r in recs])
    return score_preference(mean_a, mean_b) if order == 0 else score_preference(mean_b, mean_a)


def pair_values(pref0, pref1, scored_order):
    """Per-pair indicators for the pairwise metrics; flip is NaN when it does not apply to the pair."""
    right0, right1 = float(pref0 == "chosen"), float(pref1 == "chosen")
    strict = pref0 in ("chosen", "rejected") and pref1 in ("chosen", "rejected")
    return {"accuracy": (right0, right1)[scored_order], "accuracy_order0": right0, "accuracy_order1": right1,
            "accuracy_both_orders": (right0 + right1) / 2, "consistent_accuracy": right0 * right1,
            "flip_rate": float(pref0 != pref1) if strict else math.nan,
            "tie_rate": (float(pref0 == "tie") + float(pref1 == "tie")) / 2}


def pointwise_values(pref):
    right = float(pref == "chosen")
    return {"accuracy": right, "accuracy_order0": math.nan, "accuracy_order1": math.nan,
            "accuracy_both_orders": right, "consistent_accuracy": right, "flip_rate": math.nan,
            "tie_rate": float(pref == "tie")}


def _unparsed_fraction(slots):
    recs = [r for slot_recs in slots.values() for r in slot_recs]
    return sum(not r["parsed"] for r in recs) / len(recs)


def sample_values(slots, fmt, scored_order=0):
    """Single-sample metric values of one pair, one dict per sample index: sample i of order 0 with sample i
    of order 1 (pointwise: sample i of the chosen response with sample i of the rejected one)."""
    k = max(len(recs) for recs in slots.values())
    if fmt == POINTWISE:
        chosen, rejected = slots.get("chosen", []), slots.get("rejected", [])
        return [pointwise_values(score_preference(chosen[i].get("score") if i < len(chosen) else None,
                                                  rejected[i].get("score") if i < len(rejected) else None))
                for i in range(k)]
    return [pair_values(*_pairwise_prefs(slots, _sample_pref(i)), scored_order) for i in range(k)]


def per_pair_table(pairs, fmt, seed, mode="sample"):
    """One row of metric values per pair. mode: "sample" (mean over sample indices), "sc", "mean_score"."""
    rows = []
    for pair_id, entry in pairs.items():
        slots = entry["slots"]
        order = random_order(seed, pair_id)
        if mode == "mean_score" and fmt == POINTWISE:
            values = [pointwise_values(score_preference(
                mean_score([r.get("score") for r in slots.get("chosen", [])]),
                mean_score([r.get("score") for r in slots.get("rejected", [])])))]
        elif mode == "sample" or fmt == POINTWISE:  # pointwise samples carry scores, not votes
            values = sample_values(slots, fmt, order)
        else:
            aggregate = _sc_pref if mode == "sc" else _mean_score_pref
            values = [pair_values(*_pairwise_prefs(slots, aggregate), order)]
        row = {name: _nanmean([v[name] for v in values]) for name in values[0]}
        row["unparseable_rate"] = _unparsed_fraction(slots)
        rows.append({"pair_id": pair_id, "category": entry["category"], **row})
    return rows


def _nanmean(xs):
    kept = [x for x in xs if not math.isnan(x)]
    return sum(kept) / len(kept) if kept else math.nan


METRICS = ("accuracy", "accuracy_order0", "accuracy_order1", "accuracy_both_orders", "consistent_accuracy",
           "flip_rate", "unparseable_rate", "tie_rate")


def summarize(rows, fmt, bootstrap=0, seed=0, names=METRICS):
    """Mean of each metric over pairs (NaN rows skipped; None if no row applies), with `flip_pairs`, `pairs`,
    and 95% percentile bootstrap intervals (resampling pairs) for the headline metrics when bootstrap > 0."""
    out = {"pairs": len(rows)}
    for name in names:
        values = np.array([r[name] for r in rows], dtype=float)
        kept = values[~np.isnan(values)]
        out[name] = float(kept.mean()) if len(kept) else None
    flips = np.array([r["flip_rate"] for r in rows], dtype=float)
    out["flip_pairs"] = int((~np.isnan(flips)).sum())
    if fmt not in SCORE_FORMATS:
        out["tie_rate"] = None
    if bootstrap and rows:
        out["ci95"] = {name: bootstrap_interval([r[name] for r in rows], bootstrap, seed)
                       for name in HEADLINE if name in names}
    return out


def bootstrap_interval(values, n_resamples=1000, seed=0, level=0.95):
    """Percentile interval of the mean of per-pair values (NaN = pair not in the denominator), resampling
    pairs with replacement. Returns [lo, hi] or None when no pair has a value."""
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    if not present.any():
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    counts = present[idx].sum(axis=1)
    sums = np.where(present, values, 0.0)[idx].sum(axis=1)
    means = sums[counts > 0] / counts[counts > 0]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def category_of(row) -> str:
    return row["category"] if row["category"] is not None else "(none)"


def level_of(row) -> str | None:
    """The part after the last "/" of a category (RM-Bench "chat/hard" -> "hard"), or None."""
    category = row["category"] or ""
    return category.rsplit("/", 1)[1] if "/" in category else None


def by_group(rows, fmt, key=category_of):
    groups = defaultdict(list)
    for r in rows:
        if key(r) is not None:
            groups[key(r)].append(r)
    return {name: summarize(groups[name], fmt) for name in sorted(groups)}


def group_tables(rows, fmt, prefix=""):
    """by_category, plus by_level when categories are "<domain>/<level>" (RM-Bench easy/normal/hard)."""
    tables = {f"{prefix}by_category": by_group(rows, fmt)}
    levels = by_group(rows, fmt, level_of)
    if levels:
        tables[f"{prefix}by_level"] = levels
    return tables


def step_summary(records) -> dict:
    """A training step's metrics, pooled over every (pair, sample index) of a batch whose pairs may mix
    formats (each record carries its "format"): the single-sample values of `sample_values`, not averaged
    per pair first, and no seeded order:
    accuracy_order0 / accuracy_order1 (a pointwise pair counts its pair accuracy for both), accuracy (the
    mean of the two), consistent_accuracy, flip_rate (over sample pairs with a strict preference in both
    orders; None without one), unparseable_rate and tie_rate per judgment (a pointwise tie is one per pair of
    judgments; a pairwise verdict is never a tie)."""
    right0, right1, both, flips, ties = [], [], [], [], 0.0
    for entry in group_by_pair(records).values():
        fmt = entry["format"]
        for v in sample_values(entry["slots"], fmt):
            pointwise = fmt == POINTWISE
            right0.append(v["accuracy"] if pointwise else v["accuracy_order0"])
            right1.append(v["accuracy"] if pointwise else v["accuracy_order1"])
            both.append(v["consistent_accuracy"])
            if not math.isnan(v["flip_rate"]):
                flips.append(v["flip_rate"])
            ties += v["tie_rate"] * (1 if pointwise else 2)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    judgments = max(len(records), 1)
    return {"accuracy_order0": mean(right0), "accuracy_order1": mean(right1), "accuracy": mean(right0 + right1),
            "consistent_accuracy": mean(both), "flip_rate": mean(flips),
            "unparseable_rate": sum(not r["parsed"] for r in records) / judgments, "tie_rate": ties / judgments}


LONGER, SHORTER, SAME = "chosen longer", "chosen shorter", "same length"


def length_relation(chosen: str, rejected: str) -> str:
    return LONGER if len(chosen) > len(rejected) else SHORTER if len(chosen) < len(rejected) else SAME


def length_tables(rows, fmt, relation: dict) -> dict:
    """by_length and length_bias (module docstring); relation maps pair_id -> length_relation(...)."""
    by_length = by_group(rows, fmt, key=lambda r: relation.get(r["pair_id"]))
    longer, shorter = by_length.get(LONGER), by_length.get(SHORTER)
    bias = None if longer is None or shorter is None else \
        longer["accuracy_both_orders"] - shorter["accuracy_both_orders"]
    return {"by_length": by_length, "length_bias": bias}


def compute_report(records, fmt, seed=0, bootstrap=1000, relation=None):
    """All metrics for one evaluation: overall (with intervals), per category, SC@k and Mean-Score@k, and by
    length when `relation` (pair_id -> length_relation of its responses) is given."""
    pairs = group_by_pair(records)
    samples = max((len(recs) for e in pairs.values() for recs in e["slots"].values()), default=0)
    rows = per_pair_table(pairs, fmt, seed, "sample")
    report = {"format": fmt, "samples": samples, "overall": summarize(rows, fmt, bootstrap, seed),
              **group_tables(rows, fmt)}
    if relation is not None:
        report.update(length_tables(rows, fmt, relation))
    if samples > 1 and fmt != POINTWISE:
        sc_rows = per_pair_table(pairs, fmt, seed, "sc")
        report["sc_at_k"] = summarize(sc_rows, fmt, bootstrap, seed)
        report.update(group_tables(sc_rows, fmt, "sc_at_k_"))
    if fmt in SCORE_FORMATS:
        ms_rows = per_pair_table(pairs, fmt, seed, "mean_score")
        report["mean_score_at_k"] = summarize(ms_rows, fmt, bootstrap, seed)
        report.update(group_tables(ms_rows, fmt, "mean_score_at_k_"))
    return report
