"""Held-out evaluation while training: every --eval-every steps, the judge being trained is judged on a fixed
set of held-out pairs, both orders, greedy, and a best step is tracked by one of those metrics.

    python train.py --max-steps 4 --eval-every 2 --eval-limit 16 --keep-checkpoints 2 --output runs/val
    python -m pytest tests/eval/test_during_training.py -q

It is `generate.py judge` run inside the trainer: the same prompts (j1core/judge/step.build_prompts, the run's
format and --prompt-style), the same judge (j1core/eval/evaluate.engine_judge on the trainer's rollout engine,
which already holds the current weights; greedy; the run's --forced-verdict, --max-think-tokens and
--max-new-tokens) and the same records and metrics (judgment_record, j1core/eval/metrics.compute_report), so a
logged `eval/consistent_accuracy` is what `generate.py judge --limit N` on the saved checkpoint reports.
`--format mixed` is evaluated in the pairwise format.

The pairs (default): the held-out part of the training data (the built-in held-out split for --data builtin, the
--heldout-fraction part of a pairs file otherwise), or --eval-data FILE / --eval-benchmark NAME; a seeded sample
of --eval-limit of them, chosen once. Each evaluation also writes its judgments to
<output>/eval/judgments-step-N.jsonl.

Under ZeRO-3 rank 0 judges alone (every rank's engine holds the full weights, and judging needs no
collective); the metrics are then sent to every rank with one all_sum per value, so that every rank takes the
same best-checkpoint decision and joins the same collective save.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from j1core.errors import UserError
from j1core.eval.evaluate import engine_judge, judge_items, limit_pairs, load_eval_pairs, read_judgments
from j1core.eval.metrics import compute_report

PREFIX = "eval/"
LOGGED = ("accuracy", "accuracy_both_orders", "accuracy_order0", "accuracy_order1", "consistent_accuracy",
          "flip_rate", "unparseable_rate")
LOWER_IS_BETTER = ("flip_rate", "unparseable_rate")
BEST_METRICS = LOGGED
ORDER_METRICS = ("accuracy_order0", "accuracy_order1", "flip_rate")  # None for pointwise judges


def eval_format(fmt: str) -> str:
    return "pairwise" if fmt == "mixed" else fmt


def heldout_pairs(cfg):
    """The pairs to evaluate on (see the module docstring): a seeded sample of --eval-limit of them."""
    if cfg.eval_data or cfg.eval_benchmark:
        benchmark = cfg.eval_benchmark or "jsonl"
        return load_eval_pairs(benchmark, cfg.eval_data, limit=cfg.eval_limit, seed=cfg.seed)
    if cfg.data == "builtin":
        return load_eval_pairs("builtin", limit=cfg.eval_limit, seed=cfg.seed)
    from j1core.trainer import data_splits  # the trainer imports this module

    heldout = data_splits(cfg)[1]
    if not heldout:
        raise UserError(f"--eval-every: --data {cfg.data} with --heldout-fraction {cfg.heldout_fraction} holds "
                         "no pairs out; give --eval-data FILE or a larger --heldout-fraction")
    return limit_pairs(heldout, cfg.eval_limit, cfg.seed)


class HeldoutEval:
    """Judges the held-out prompts with the trainer's engine; `due(step)` says when, `run(engine, step)` does it
    and returns {"eval/<metric>": value, ..., "eval/wall_seconds": s} on every rank."""

    def __init__(self, cfg, tokenizer, backend, output: Path):
        from j1core.judge.step import build_prompts

        self.cfg, self.tokenizer, self.backend = cfg, tokenizer, backend
        self.fmt = eval_format(cfg.format)
        self.forced = cfg.forced_verdict and self.fmt == "pairwise"
        self.pairs = heldout_pairs(cfg)
        self.items = build_prompts(self.pairs, self.fmt, tokenizer, cfg.prompt_style)
        self.dir = Path(output) / "eval"

    def due(self, step: int) -> bool:
        every = self.cfg.eval_every
        return every > 0 and (step % every == 0 or step == self.cfg.max_steps)

    def judge(self, engine, step: int) -> dict:
        """This process judges every held-out prompt once (greedy) -> the overall metrics of compute_report."""
        cfg = self.cfg
        judge = engine_judge(engine, self.tokenizer, self.fmt, self.forced, cfg.max_new_tokens,
                             cfg.max_think_tokens, temperature=0.0, top_p=1.0)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"judgments-step-{step}.jsonl"
        path.unlink(missing_ok=True)  # a redone step (after a resume) is judged again, not skipped
        judge_items(self.items, judge, self.fmt, path, samples=1, chunk_size=len(self.items), seed=cfg.seed,
                    progress=False)
        return compute_report(read_judgments(path), self.fmt, seed=cfg.seed, bootstrap=0)["overall"]

    def run(self, engine, step: int) -> dict:
        started = time.perf_counter()
        overall = self.judge(engine, step) if self.backend.is_main else {}
        values = {PREFIX + name: overall.get(name) for name in LOGGED}
        if self.backend.world > 1:
            values = share_from_main(self.backend, values)
        values[PREFIX + "wall_seconds"] = time.perf_counter() - started
        return values


def share_from_main(backend, values: dict) -> dict:
    """Rank 0's values on every rank: each rank adds its value (rank 0) or zero (the others) in one all_sum per
    key, in the same key order on every rank. None travels as NaN."""
    out = {}
    for key in sorted(values):
        mine = values[key] if backend.is_main else 0.0
        total = backend.all_sum(math.nan if mine is None else float(mine))
        out[key] = None if math.isnan(total) else total
    return out


def is_better(metric: str, value, best_value) -> bool:
    """Strictly better (a tie keeps the earlier step); flip_rate and unparseable_rate: lower is better."""
    if value is None:
        return False
    if best_value is None:
        return True
    return value < best_value if metric in LOWER_IS_BETTER else value > best_value


def next_best(best: dict | None, metric: str, metrics: dict, step: int) -> dict | None:
    """The best so far after this step's metrics: {"metric", "value", "step"}, a new dict when this step is
    better, else `best` itself. A best recorded for another metric (a resumed run with another --best-metric)
    does not count."""
    if best is not None and best.get("metric") != metric:
        best = None
    value = metrics.get(PREFIX + metric)
    if is_better(metric, value, None if best is None else best["value"]):
        return {"metric": metric, "value": value, "step": step}
    return best
