"""A judge to call from Python: load a model once, then compare two responses or score one.

    python -c "from j1core import Judge; print(Judge.load('smollm2-135m-instruct').compare('2+2?', '4', '5'))"
    python -m pytest tests/judge/test_api.py -q

    judge = Judge.load("runs/j1/checkpoint")            # or a local HF directory, or smollm2-135m-instruct
    judge.compare(prompt, response_a, response_b)        # -> Comparison (both orders)
    Judge.load(model, format="pointwise").score(prompt, response)   # -> Score

compare judges the pair in both orders, (x, a, b) and (x, b, a), exactly as evaluation does: the prompts come
from j1core/judge/step.build_prompts, the outputs from the rollout engine through evaluation's sampler
(j1core/eval/evaluate.engine_judge, i.e. j1core/judge/rollout.sample_judgments), their parse from
j1core/judge/rewards, and the pair's reading from j1core/eval/verdicts.pair_verdict (SC@k per order with
samples > 1). compare_many / score_many send all their prompts to the engine in one call. A prompt is a
string or a list of chat messages (a multi-turn prompt, rendered as a transcript: j1core/data/messages.py).

Each item samples from its own seed, hashed from the judge's seed and the item's content, as evaluation seeds
each item from its key: an item gets the same judgment alone or in any batch.

Settings a checkpoint was trained with (format, prompt style, forced verdict, thinking budget; its
trainer_state.json) are the defaults of Judge.load; otherwise j1's training defaults: pairwise, compact
prompts, a forced verdict with no thinking. Decoding is greedy unless temperature > 0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from j1core.data.messages import check_prompt
from j1core.data.pairs import Pair, stable_hash
from j1core.eval.evaluate import engine_judge
from j1core.eval.verdicts import pair_verdict
from j1core.judge.prompts import check_format
from j1core.judge.step import build_prompts, judgment_record

TRAINED_SETTINGS = ("format", "prompt_style", "forced_verdict", "max_think_tokens")
DEFAULTS = {"format": "pairwise", "prompt_style": "compact", "forced_verdict": None, "max_think_tokens": 0}


@dataclass
class Comparison:
    """The judgment of one pair in both orders: order 0 shows response a first (as A), order 1 shows b first."""
    verdicts: list        # per order, the response preferred: "a" | "b" | "tie" | None (nothing parsed)
    agree: bool           # both orders name the same response
    preference: str       # "a" | "b" when both orders agree, "tie" when both tie, else "inconsistent"
    win_a: float          # P(a better) over both orders: mean p_a (forced), else the share of samples for a
    p_a: list | None      # forced verdict: per order, P(a better) from the verdict letters' probabilities
    texts: list           # per order, every sample's output (from the pre-opened "<think>")


@dataclass
class Score:
    """The pointwise judgment of one response."""
    score: float | None   # mean of the parsed 0-10 scores over the samples; None when none parsed
    scores: list          # per sample: the parsed score or None
    texts: list           # per sample: the output


def trained_settings(model_dir) -> dict:
    """The judge settings a j1 checkpoint was trained with (trainer_state.json), {} for any other model."""
    path = Path(model_dir) / "trainer_state.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text()).get("state", {}).get("config", {})
    found = {name: config[name] for name in TRAINED_SETTINGS if name in config}
    if found.get("format") == "mixed":  # a multitask judge: pairwise unless asked otherwise
        found["format"] = "pairwise"
    return found


class Judge:
    """A judge model on the rollout engine with fixed judging settings; see the module docstring."""

    def __init__(self, model, tokenizer, format: str = "pairwise", prompt_style: str = "compact",
                 forced_verdict: bool | None = None, max_think_tokens: int = 0, max_new_tokens: int = 512,
                 temperature: float = 0.0, top_p: float = 1.0, samples: int = 1, seed: int = 0,
                 max_batch_tokens: int = 65536, device=None, rollout_dtype: str = "model"):
        """forced_verdict None: on for the pairwise format, off for the others (only pairwise can force).
        rollout_dtype: what the engine judges in (j1core/engine/precision.py): model (the weights' dtype),
        auto (bf16 where this CPU measures it faster), fp32 or bf16."""
        from j1core.engine.precision import rollout_dtype as resolve_rollout_dtype
        from j1core.engine.rollout import RolloutEngine

        check_format(format)
        if forced_verdict is None:
            forced_verdict = format == "pairwise"
        if forced_verdict and format != "pairwise":
            raise ValueError(f"forced_verdict decodes a verdict right after the reasoning: format {format!r} "
                             "cannot force it; use format='pairwise' or forced_verdict=False")
        if samples < 1 or (samples > 1 and temperature == 0):
            raise ValueError(f"samples={samples}: need at least 1, and temperature > 0 for more than 1")
        self.format, self.prompt_style, self.samples, self.seed = format, prompt_style, samples, seed
        self.forced_verdict, self.max_think_tokens = forced_verdict, max_think_tokens
        self.tokenizer = tokenizer
        dtype = resolve_rollout_dtype(rollout_dtype, model, device or next(model.parameters()).device)[0]
        self.engine = RolloutEngine(model, tokenizer, max_batch_tokens=max_batch_tokens, device=device, dtype=dtype)
        self._sample = engine_judge(self.engine, tokenizer, format, forced_verdict, max_new_tokens,
                                    max_think_tokens, temperature, top_p)

    @classmethod
    def load(cls, model: str, format: str | None = None, prompt_style: str | None = None,
             forced_verdict: bool | None = None, max_think_tokens: int | None = None, device: str = "auto",
             dtype: str = "fp32", model_cache=None, **settings) -> Judge:
        """Load a local HF directory, a j1 checkpoint or the alias smollm2-135m-instruct. Settings left None
        come from the checkpoint's training (trained_settings), else DEFAULTS; `settings` are the other
        keyword arguments of Judge (max_new_tokens, temperature, top_p, samples, seed, max_batch_tokens,
        rollout_dtype)."""
        from j1core.model import load_model, pick_device, resolve_model_path

        given = {"format": format, "prompt_style": prompt_style, "forced_verdict": forced_verdict,
                 "max_think_tokens": max_think_tokens}
        trained = trained_settings(resolve_model_path(model, model_cache))
        chosen = {k: v if v is not None else trained.get(k, DEFAULTS[k]) for k, v in given.items()}
        if forced_verdict is None and chosen["format"] != "pairwise":
            chosen["forced_verdict"] = None  # a trained forced verdict applies to its pairwise prompts only
        device = str(pick_device(device))
        hf_model, tokenizer = load_model(model, dtype=dtype, device=device, cache_dir=model_cache)
        return cls(hf_model, tokenizer, device=device, **chosen, **settings)

    # ---------------------------------------------------------------- pairwise

    def compare(self, prompt, response_a: str, response_b: str) -> Comparison:
        """Which of two responses to `prompt` is better, judged in both orders."""
        return self.compare_many([(prompt, response_a, response_b)])[0]

    def compare_many(self, items) -> list[Comparison]:
        """compare over a list of (prompt, response_a, response_b), in one engine call."""
        if self.format == "pointwise":
            raise ValueError("a pointwise judge scores one response: use score / score_many, or load the judge "
                             "with a pairwise format")
        comparisons = []
        for records in self._judge([self._pair(item, 3) for item in items], slots=(0, 1)):
            verdict = pair_verdict(self.format, records)
            texts = [[r["text"] for r in records if r["order"] == order] for order in (0, 1)]
            comparisons.append(Comparison(verdict["verdicts"], verdict["agree"], verdict["preference"],
                                          verdict["win_a"], verdict.get("p_a"), texts))
        return comparisons

    # ---------------------------------------------------------------- pointwise

    def score(self, prompt, response: str) -> Score:
        """The 0-10 score of one response to `prompt` (format pointwise)."""
        return self.score_many([(prompt, response)])[0]

    def score_many(self, items) -> list[Score]:
        """score over a list of (prompt, response), in one engine call."""
        if self.format != "pointwise":
            raise ValueError(f"a {self.format} judge compares two responses: use compare / compare_many, or "
                             "load the judge with format='pointwise'")
        scores = []
        for records in self._judge([self._pair(item, 2) for item in items], slots=(0,)):
            parsed = [r["score"] for r in records]
            kept = [s for s in parsed if s is not None]
            scores.append(Score(sum(kept) / len(kept) if kept else None, parsed, [r["text"] for r in records]))
        return scores

    # ---------------------------------------------------------------- shared

    @staticmethod
    def _pair(item, size: int) -> Pair:
        """An item as a Pair, its id a hash of its content (the item's sampling seed comes from it).
        Pointwise items (prompt, response) judge the response as the pair's chosen one."""
        if not isinstance(item, (tuple, list)) or len(item) != size:
            raise ValueError(f"expected ({'prompt, response_a, response_b' if size == 3 else 'prompt, response'})"
                             f" items, got {item!r:.80}")
        prompt = check_prompt(item[0])
        responses = list(item[1:])
        for name, response in zip(("response_a", "response_b") if size == 3 else ("response",), responses):
            if not isinstance(response, str):
                raise ValueError(f"{name}: expected a string, got {type(response).__name__}")
        pair_id = f"{stable_hash(json.dumps([prompt, *responses], ensure_ascii=False)):016x}"
        return Pair(pair_id, prompt, responses[0], responses[-1], "api")

    def _judge(self, pairs, slots) -> list[list[dict]]:
        """Per pair, the judgment records (j1core/judge/step.judgment_record plus the sampler's output
        fields) of its prompts in `slots`, every sample."""
        if not pairs:
            return []
        items = [replace(it, gold=None) for it in build_prompts(pairs, self.format, self.tokenizer,
                                                               self.prompt_style) if it.slot in slots]
        per_pair = [[] for _ in pairs]
        for it, outputs in zip(items, self._sample(items, self.samples, self.seed)):
            per_pair[it.pair_index] += [{**judgment_record(it, s, out["text"]), **out}
                                        for s, out in enumerate(outputs)]
        return per_pair
