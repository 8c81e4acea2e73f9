"""Held-out evaluation inside training (j1core/eval/during_training.py): the metrics are generate.py judge's on
the same checkpoint, when it runs, which pairs it reads, how the best step is chosen, and rank 0's values
reaching every rank.

    python -m pytest tests/eval/test_during_training.py -q
"""
import argparse
import json
import math

import pytest

from j1core.config import TrainConfig, parse_config
from j1core.data.builtin import builtin_pairs
from j1core.data.pairs import Pair, save_pairs
from j1core.eval.during_training import (
    LOGGED,
    HeldoutEval,
    heldout_pairs,
    is_better,
    next_best,
    share_from_main,
)
from j1core.eval.evaluate import add_judge_args, read_judgments, run_judge
from j1core.model import tiny_model
from j1core.trainer import Trainer, load_training_pairs


def test_heldout_metrics_are_generate_judge_on_the_checkpoint(tmp_path):
    """After training, the last logged eval/* values equal `generate.py judge` run on the saved checkpoint
    with the run's settings, and the per-judgment verdicts are the same."""
    cfg = TrainConfig(max_steps=2, pairs_per_step=2, group_size=2, max_think_tokens=0, forced_verdict=True,
                      beta=0.0, lr=2e-2, warmup_steps=0, micro_batch_size=4, progress=False, eval_every=2,
                      eval_limit=12, output=str(tmp_path / "run"), dtype="fp32")
    policy, tokenizer = tiny_model("llama", seed=0, layers=1)
    trainer = Trainer(cfg, policy=policy, tokenizer=tokenizer, pairs=builtin_pairs("train")[:20])
    checkpoint = trainer.train()
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["step"] == 2

    parser = argparse.ArgumentParser()
    add_judge_args(parser)
    args = parser.parse_args(["--model", str(checkpoint), "--benchmark", "builtin", "--limit", "12", "--forced-verdict",
                              "--max-think-tokens", "0", "--device", "cpu", "--bootstrap", "0", "--no-progress",
                              "--out", str(tmp_path / "judge")])
    report = run_judge(args)
    for name in LOGGED:
        assert logged[f"eval/{name}"] == pytest.approx(report["overall"][name], abs=1e-12), name
    during = {r["key"]: r["winner"] for r in read_judgments(tmp_path / "run" / "eval" / "judgments-step-2.jsonl")}
    after = {r["key"]: r["winner"] for r in read_judgments(tmp_path / "judge" / "judgments.jsonl")}
    assert during == after and len(during) == 24


def test_due_every_n_steps_and_at_the_last():
    cfg = TrainConfig(eval_every=3, max_steps=7)
    assert [s for s in range(1, 8) if HeldoutEval.due(argparse.Namespace(cfg=cfg), s)] == [3, 6, 7]


def test_default_pairs_are_the_heldout_part_of_the_training_data(tmp_path):
    builtin = heldout_pairs(TrainConfig(eval_every=1, eval_limit=16))
    heldout_ids = {p.id for p in builtin_pairs("heldout")}
    assert len(builtin) == 16 and {p.id for p in builtin} <= heldout_ids
    assert [p.id for p in builtin] == [p.id for p in heldout_pairs(TrainConfig(eval_every=1, eval_limit=16))]

    path = tmp_path / "pairs.jsonl"
    save_pairs([Pair(f"p{i}", f"question {i}?", f"right {i}", f"wrong {i}", "test") for i in range(40)], path)
    cfg = TrainConfig(data=str(path), heldout_fraction=0.25, eval_every=1, eval_limit=64)
    held = heldout_pairs(cfg)
    assert len(held) == 10
    assert not {p.id for p in held} & {p.id for p in load_training_pairs(cfg)}

    other = tmp_path / "other.jsonl"
    save_pairs([Pair(f"o{i}", f"other {i}?", "yes", "no", "test") for i in range(5)], other)
    assert [p.id for p in heldout_pairs(TrainConfig(eval_every=1, eval_data=str(other)))] == [f"o{i}" for i in range(5)]
    with pytest.raises(ValueError, match="--heldout-fraction 0.0 holds no pairs out"):
        heldout_pairs(TrainConfig(data=str(path), heldout_fraction=0.0, eval_every=1))


def test_better_and_best():
    assert is_better("consistent_accuracy", 0.5, 0.4) and not is_better("consistent_accuracy", 0.4, 0.4)
    assert is_better("flip_rate", 0.3, 0.4) and not is_better("flip_rate", 0.5, 0.4)
    assert is_better("accuracy", 0.0, None) and not is_better("accuracy", None, None)
    best = next_best(None, "flip_rate", {"eval/flip_rate": 0.5}, 1)
    assert best == {"metric": "flip_rate", "value": 0.5, "step": 1}
    assert next_best(best, "flip_rate", {"eval/flip_rate": 0.5}, 2) is best  # a tie keeps the earlier step
    assert next_best(best, "flip_rate", {"eval/flip_rate": None}, 3) is best
    assert next_best(best, "flip_rate", {"eval/flip_rate": 0.25}, 4)["step"] == 4
    # a best of another metric (a resume with another --best-metric) does not count
    assert next_best(best, "accuracy", {"eval/accuracy": 0.1}, 5) == {"metric": "accuracy", "value": 0.1, "step": 5}
    assert next_best(best, "accuracy", {"eval/accuracy": None}, 5) is None


class FakeRank:
    """One rank of a 2-rank group whose all_sum adds the other rank's contributions (given in call order)."""

    def __init__(self, is_main, others):
        self.is_main, self.world, self.others, self.sent = is_main, 2, iter(others), []

    def all_sum(self, value):
        self.sent.append(value)
        return value + next(self.others)


def test_rank_zero_values_reach_every_rank():
    values = {"eval/accuracy": 0.625, "eval/flip_rate": None, "eval/consistent_accuracy": 0.1}
    main = FakeRank(True, [0.0, 0.0, 0.0])
    got_main = share_from_main(main, values)
    other = FakeRank(False, main.sent)
    got_other = share_from_main(other, {k: None for k in values})  # what rank 1 holds is ignored
    assert got_main == got_other == values
    assert other.sent == [0.0, 0.0, 0.0] and math.isnan(main.sent[2])  # sorted keys: flip_rate last


@pytest.mark.parametrize("argv, flag", [(["--eval-every", "-1"], "--eval-every"),
                                        (["--eval-every", "2", "--eval-limit", "0"], "--eval-limit"),
                                        (["--keep-checkpoints", "-2"], "--keep-checkpoints"),
                                        (["--eval-every", "2", "--best-metric", "loss"], "--best-metric"),
                                        (["--eval-data", "x.jsonl"], "--eval-every"),
                                        (["--eval-every", "1", "--eval-benchmark", "nope"], "--eval-benchmark"),
                                        (["--format", "pointwise", "--best-metric", "flip_rate"], "--best-metric")])
def test_bad_flags_name_the_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        parse_config(argv)
