"""Judge metrics on scripted judges (no model) and hand-computed SC@k / Mean-Score@k cases.

    python -m pytest tests/eval/test_metrics.py
"""
import math

import numpy as np
import pytest

from j1core.eval.metrics import (
    LONGER,
    SAME,
    SHORTER,
    bootstrap_interval,
    compute_report,
    length_relation,
    majority_vote,
    mean_score,
    preference,
    random_order,
)

PAIR_IDS = [f"p{i}" for i in range(40)]


def scripted(judge, ids=PAIR_IDS, samples=1, fmt="pairwise"):
    """Records of a judge given as judge(order, sample) -> winner; gold is A in order 0, B in order 1."""
    records = []
    for pid in ids:
        for order in (0, 1):
            for s in range(samples):
                winner = judge(order, s)
                records.append({"pair_id": pid, "category": "odd" if int(pid[1:]) % 2 else "even", "order": order,
                                "sample": s, "winner": winner, "parsed": winner is not None})
    return records


def test_always_a_is_never_consistent_and_always_flips():
    report = compute_report(scripted(lambda order, s: "A"), "pairwise", seed=3, bootstrap=200)
    overall = report["overall"]
    assert overall["accuracy_order0"] == 1.0 and overall["accuracy_order1"] == 0.0
    assert overall["consistent_accuracy"] == 0.0
    assert overall["flip_rate"] == 1.0 and overall["flip_pairs"] == len(PAIR_IDS)
    # single-order accuracy is right exactly on the pairs whose drawn order is 0
    expected = sum(random_order(3, pid) == 0 for pid in PAIR_IDS) / len(PAIR_IDS)
    assert overall["accuracy"] == pytest.approx(expected)
    assert overall["ci95"]["consistent_accuracy"] == [0.0, 0.0]
    assert overall["unparseable_rate"] == 0.0 and overall["tie_rate"] is None


def test_always_right_judge():
    report = compute_report(scripted(lambda order, s: "AB"[order]), "pairwise", bootstrap=100)
    overall = report["overall"]
    for name in ("accuracy", "accuracy_order0", "accuracy_order1", "consistent_accuracy"):
        assert overall[name] == 1.0
    assert overall["flip_rate"] == 0.0 and overall["ci95"]["flip_rate"] == [0.0, 0.0]
    assert set(report["by_category"]) == {"even", "odd"}
    assert report["by_category"]["odd"]["pairs"] == len(PAIR_IDS) // 2
    assert report["by_category"]["odd"]["consistent_accuracy"] == 1.0


def test_never_parsing_judge():
    report = compute_report(scripted(lambda order, s: None), "pairwise", bootstrap=100)
    overall = report["overall"]
    assert overall["unparseable_rate"] == 1.0
    assert overall["accuracy"] == 0.0 and overall["consistent_accuracy"] == 0.0
    assert overall["flip_rate"] is None and overall["flip_pairs"] == 0
    assert overall["ci95"]["flip_rate"] is None


def test_preference_maps_letters_to_responses():
    assert preference("A", 0) == "chosen" and preference("B", 0) == "rejected"
    assert preference("A", 1) == "rejected" and preference("B", 1) == "chosen"
    assert preference("tie", 1) == "tie" and preference(None, 0) is None


def test_majority_vote_rules():
    assert majority_vote(["A", "A", "B"]) == "A"
    assert majority_vote(["A", None, None]) == "A"       # unparseable samples do not vote
    assert majority_vote(["A", "B", None]) == "tie"      # no strict majority
    assert majority_vote(["tie", "tie", "B"]) == "tie"   # ties vote
    assert majority_vote([None, None]) is None


def test_sc_at_k_hand_case():
    # order 0 (gold A): A, A, B -> majority A, right; order 1 (gold B): A, unparsed, B -> 1 vs 1 -> tie, wrong
    winners = {0: ["A", "A", "B"], 1: ["A", None, "B"]}
    report = compute_report(scripted(lambda order, s: winners[order][s], ids=["p1"], samples=3), "pairwise",
                            bootstrap=0)
    sc = report["sc_at_k"]
    assert sc["accuracy_order0"] == 1.0 and sc["accuracy_order1"] == 0.0 and sc["consistent_accuracy"] == 0.0
    assert sc["flip_rate"] is None  # order 1 has no strict preference
    # single-sample metrics average over sample indices: sample 0 = (A, A), 1 = (A, None), 2 = (B, B)
    overall = report["overall"]
    assert overall["accuracy_order0"] == pytest.approx(2 / 3)
    assert overall["accuracy_order1"] == pytest.approx(1 / 3)
    assert overall["consistent_accuracy"] == 0.0
    assert overall["flip_rate"] == 1.0  # samples 0 and 2 flip; sample 1 is not strict
    assert overall["unparseable_rate"] == pytest.approx(1 / 6)
    assert "mean_score_at_k" not in report  # verdict-only format


def test_mean_score_at_k_pairwise_scores_hand_case():
    # order 0: chosen is A; scores (8, 5), (4, 6) -> means 6 vs 5.5 -> chosen wins
    # order 1: chosen is B; scores (7, 7), unparsed -> means 7 vs 7 -> tie (wrong)
    scores = {0: [(8, 5), (4, 6)], 1: [(7, 7), (None, None)]}
    records = []
    for order in (0, 1):
        for s, (a, b) in enumerate(scores[order]):
            winner = None if a is None else ("A" if a > b else "B" if b > a else "tie")
            records.append({"pair_id": "p", "category": None, "order": order, "sample": s, "winner": winner,
                            "parsed": a is not None, "score_a": a, "score_b": b})
    report = compute_report(records, "pairwise_scores", bootstrap=0)
    ms = report["mean_score_at_k"]
    assert ms["accuracy_order0"] == 1.0 and ms["accuracy_order1"] == 0.0
    assert ms["tie_rate"] == 0.5 and ms["flip_rate"] is None
    # per-sample: sample 0 = (A right, tie), sample 1 = (B wrong, unparsed)
    assert report["overall"]["accuracy_order0"] == 0.5
    assert report["overall"]["tie_rate"] == 0.25
    assert report["sc_at_k"]["accuracy_order0"] == 0.0  # votes A vs B: no majority -> tie


def test_mean_score_at_k_pointwise_hand_case():
    chosen, rejected = [6, None, 9], [7, 8, 7]  # means 7.5 vs 7.33 -> chosen
    records = [{"pair_id": "p", "category": "c", "order": None, "response": resp, "sample": s, "score": score,
                "winner": None, "parsed": score is not None}
               for resp, scores in (("chosen", chosen), ("rejected", rejected)) for s, score in enumerate(scores)]
    report = compute_report(records, "pointwise", bootstrap=0)
    assert report["mean_score_at_k"]["accuracy"] == 1.0
    # per sample index: 6 < 7 wrong, None unparsed, 9 > 7 right
    overall = report["overall"]
    assert overall["accuracy"] == pytest.approx(1 / 3)
    assert overall["consistent_accuracy"] == overall["accuracy"]
    assert overall["accuracy_order0"] is None and overall["flip_rate"] is None
    assert overall["unparseable_rate"] == pytest.approx(1 / 6)
    assert "sc_at_k" not in report


def test_mean_score_skips_unparsed():
    assert mean_score([None, 2.0, 4.0]) == 3.0
    assert mean_score([None, float("nan")]) is None


def test_random_order_is_per_pair_and_balanced():
    orders = [random_order(0, pid) for pid in map(str, range(2000))]
    assert orders == [random_order(0, pid) for pid in map(str, range(2000))]
    assert 0.45 < sum(orders) / len(orders) < 0.55
    assert orders != [random_order(1, pid) for pid in map(str, range(2000))]


def reference_bootstrap(values, n_resamples, seed, level=0.95):
    """Plain loop version of bootstrap_interval (same random draws)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    means = []
    for row in idx:
        kept = [values[i] for i in row if not math.isnan(values[i])]
        if kept:
            means.append(sum(kept) / len(kept))
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


@pytest.mark.parametrize("seed", range(4))
def test_bootstrap_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    values = rng.integers(0, 2, size=30).astype(float)
    values[rng.random(30) < 0.3] = math.nan
    fast = bootstrap_interval(values, 300, seed)
    assert fast == pytest.approx(reference_bootstrap(list(values), 300, seed))
    kept = values[~np.isnan(values)]
    assert fast[0] <= kept.mean() <= fast[1]
    assert bootstrap_interval(values, 300, seed) == fast  # seeded


def test_levels_group_rmbench_style_categories():
    records = scripted(lambda order, s: "AB"[order], ids=["p0", "p1", "p2"])
    for r, category in zip(records, ["chat/easy"] * 2 + ["code/easy"] * 2 + ["chat/hard"] * 2):
        r["category"] = category
    report = compute_report(records, "pairwise", bootstrap=0)
    assert set(report["by_category"]) == {"chat/easy", "code/easy", "chat/hard"}
    assert {level: t["pairs"] for level, t in report["by_level"].items()} == {"easy": 2, "hard": 1}


def test_length_tables_tell_a_length_judge_from_a_right_one():
    # chosen is the longer response in the odd pairs, the shorter in the even ones; p0's are as long
    texts = {pid: ("x" * (3 + i % 2 * 5), "y" * (3 + (i + 1) % 2 * 5 * (i > 0))) for i, pid in enumerate(PAIR_IDS)}
    relation = {pid: length_relation(*texts[pid]) for pid in PAIR_IDS}
    assert relation["p0"] == SAME and relation["p2"] == SHORTER and relation["p3"] == LONGER

    def longer_judge(pid):  # picks the longer response, "A" on equal lengths
        return lambda order, s: "A" if relation[pid] == SAME else "AB"[order] if relation[pid] == LONGER \
            else "BA"[order]

    records = [r for pid in PAIR_IDS for r in scripted(longer_judge(pid), ids=[pid])]
    report = compute_report(records, "pairwise", bootstrap=0, relation=relation)
    assert report["length_bias"] == 1.0
    assert report["by_length"][LONGER]["consistent_accuracy"] == 1.0
    assert report["by_length"][SHORTER]["accuracy_both_orders"] == 0.0
    assert report["by_length"][SAME]["pairs"] == 1 and report["by_length"][SAME]["flip_rate"] == 1.0
    right = compute_report(scripted(lambda order, s: "AB"[order]), "pairwise", bootstrap=0, relation=relation)
    assert right["length_bias"] == 0.0
    assert "by_length" not in compute_report(records, "pairwise", bootstrap=0)
