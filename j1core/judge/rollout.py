"""Sample judgments on the rollout engine, for training and evaluation, and pack the trainer's batch.

    python -m pytest tests/judge/test_rollout.py -q

sample_judgments(engine, tokenizer, prompt ids, fmt, SamplingParams, seeds) is the one sampler: the trainer
calls it through generate_judgments (G = group_size samples per prompt, seeds from run seed, step and pair)
and evaluation (j1core/eval/evaluate.py) calls it directly, so a forced verdict is drawn the same way in
both. pack_batch turns the trainer's samples into the padded batch the loss consumes.

Two ways to sample a pairwise judgment:
- free: the judge writes up to --max-new-tokens after the pre-opened "<think>", and the reward parses it;
- forced verdict (--forced-verdict, pairwise prompts only): the judge reasons for at most --max-think-tokens,
  the engine then feeds "</think>\\n<answer>[[" and samples the next token among "A" and "B" only (token ids:
  j1core/judge/tokens.py). The forced tokens are part of the sequence but masked out of the loss; the letter
  is trained like any sampled token. The sample keeps the engine's distribution over the two letters
  (choice_logprobs), which evaluation records as p_a.
  A small model that never writes the format on its own still gets a reward signal from its first step.
  With no reasoning (--max-think-tokens 0) the forced tokens are the same for all G samples, so the engine
  prefills them with the prompt and draws the letter from the prefill's logits, and the log-prob pass runs
  them once per group (pack_batch's prompt_lengths): each sample then costs one token.
Score formats always sample freely.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from j1core.data.pairs import stable_hash
from j1core.judge.prompts import render_answer
from j1core.judge.tokens import forced_suffix_ids, letter_ids


@dataclass
class JudgeSample:
    token_ids: list[int]   # completion tokens as fed to the model, forced ones included
    logprobs: list[float]  # sampling log-probs (0.0 for forced tokens)
    loss_mask: list[int]   # 1 for sampled tokens, 0 for forced ones
    text: str              # what the reward parses
    finish_reason: str = "length"  # how the sampled (free) part ended: "eos" | "length"
    choice_logprobs: list[float] | None = None  # forced verdict: log-softmax of the A and B logits at T = 1


@dataclass
class SamplingParams:
    """How to sample a prompt's judgments: n samples of at most max_new_tokens free tokens, or, with
    forced_verdict on a pairwise prompt, at most max_think_tokens of reasoning and then a forced verdict."""
    n: int = 1
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    forced_verdict: bool = False
    max_think_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    @classmethod
    def of(cls, cfg) -> SamplingParams:
        """The trainer's sampling settings (a TrainConfig: G = group_size samples per prompt)."""
        return cls(n=cfg.group_size, max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.min_new_tokens,
                   forced_verdict=cfg.forced_verdict, max_think_tokens=cfg.max_think_tokens,
                   temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)


def uses_forced_verdict(params, fmt: str) -> bool:
    """params: SamplingParams or a TrainConfig (both have forced_verdict)."""
    return bool(params.forced_verdict) and fmt == "pairwise"


def prompt_seeds(prompts, seed: int, step: int) -> list[int]:
    """One sampling seed per prompt from (run seed, step, pair id, slot): a prompt's samples then do not
    depend on the other prompts of the batch, nor on which rank of a sharded run judges it."""
    return [stable_hash(seed, step, p.pair_id, p.slot) % (1 << 63) for p in prompts]


def generate_judgments(engine, tokenizer, prompts, cfg, step: int) -> list[list[JudgeSample]]:
    """The trainer's rollout: cfg.group_size samples for every prompt, in prompt order. Forced and free
    prompts (a mixed batch) are sampled in one engine call each."""
    params, seeds = SamplingParams.of(cfg), prompt_seeds(prompts, cfg.seed, step)
    forced = [uses_forced_verdict(params, p.fmt) for p in prompts]
    out: list[list[JudgeSample] | None] = [None] * len(prompts)
    for want_forced in (True, False):
        idx = [i for i, f in enumerate(forced) if f == want_forced]
        if not idx:
            continue
        groups = sample_judgments(engine, tokenizer, [prompts[i].ids for i in idx], prompts[idx[0]].fmt, params,
                                  [seeds[i] for i in idx])
        for i, group in zip(idx, groups):
            out[i] = group
    return out


def sample_judgments(engine, tokenizer, prompt_ids_list: list[list[int]], fmt: str, params: SamplingParams,
                     seeds: list[int]) -> list[list[JudgeSample]]:
    """params.n judgments of every prompt (all of format `fmt`), one seed per prompt; forced when
    params.forced_verdict and the format is pairwise. Used by the trainer and by evaluation."""
    sampler = sample_forced if uses_forced_verdict(params, fmt) else sample_free
    return sampler(engine, tokenizer, prompt_ids_list, params, seeds)


def max_completion_tokens(cfg, tokenizer) -> int:
    """The longest completion a step can produce: dr_grpo's fixed normaliser."""
    free = cfg.max_new_tokens if cfg.format != "pairwise" or not cfg.forced_verdict else 0
    forced = 0
    if cfg.forced_verdict and cfg.format in ("pairwise", "mixed"):
        suffix = forced_suffix_ids(tokenizer)
        forced = cfg.max_think_tokens + len(suffix) + 1
    return max(free, forced)


def sampling_kwargs(params: SamplingParams, seeds: list[int]) -> dict:
    return {"n": params.n, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "seed": seeds}


def sample_free(engine, tokenizer, prompt_ids_list, params: SamplingParams, seeds) -> list[list[JudgeSample]]:
    groups = engine.generate(prompt_ids_list, max_new_tokens=params.max_new_tokens,
                             min_new_tokens=params.min_new_tokens, stop_token_ids=[tokenizer.eos_token_id],
                             **sampling_kwargs(params, seeds))
    return [[JudgeSample(c.token_ids, c.logprobs, [1] * len(c.token_ids),
                         tokenizer.decode(c.token_ids, skip_special_tokens=True), c.finish_reason) for c in group]
            for group in groups]


def sample_forced(engine, tokenizer, prompt_ids_list, params: SamplingParams, seeds) -> list[list[JudgeSample]]:
    """Reasoning of at most params.max_think_tokens, the forced suffix, then A or B (the engine's forced tail).
    The text is the decoded sampled reasoning followed by the canonical answer with the sampled letter."""
    suffix = forced_suffix_ids(tokenizer)
    choices = letter_ids(tokenizer)
    # Without reasoning every sample starts with the same forced tokens: prefill them with the prompt instead
    # of decoding them in each of the G rows; the letter is then drawn from the prefill's logits.
    fed = suffix if params.max_think_tokens == 0 else []
    groups = engine.generate([ids + fed for ids in prompt_ids_list], max_new_tokens=params.max_think_tokens,
                             stop_token_ids=[tokenizer.eos_token_id], forced_suffix=suffix[len(fed):],
                             choice_ids=choices, **sampling_kwargs(params, seeds))
    samples = []
    for group in groups:
        samples.append([])
        for c in group:
            token_ids, forced = fed + c.token_ids, [True] * len(fed) + c.forced
            think = [t for t, f in zip(token_ids[:-1], forced[:-1]) if not f]
            letter = tokenizer.decode(token_ids[-1:])
            text = tokenizer.decode(think, skip_special_tokens=True) + render_answer("pairwise", letter)
            samples[-1].append(JudgeSample(token_ids, [0.0] * len(fed) + c.logprobs, [0 if f else 1 for f in forced],
                                           text, c.finish_reason, c.choice_logprobs))
    return samples


def shared_untrained_prefix(group: list[JudgeSample]) -> int:
    """Leading completion tokens that every sample of the group has, all untrained (forced), keeping at least
    one token per sample: the log-prob pass runs them once with the prompt."""
    n = min(len(s.token_ids) for s in group) - 1
    for k in range(max(n, 0)):
        first = group[0].token_ids[k]
        if any(s.token_ids[k] != first or s.loss_mask[k] for s in group):
            return k
    return max(n, 0)


def pack_batch(prompts, samples, pad_id: int) -> dict:
    """Right-padded rows of prompt + completion, one per sample (a prompt's G samples adjacent): input_ids,
    attention_mask, loss_mask (1 on trained completion tokens), rollout_logp (the sampler's log-probs, aligned
    with input_ids) and prompt_lengths [B]: the prompt plus the untrained completion prefix its G samples share
    (the part the grouped log-prob pass runs once)."""
    rows = [(p.ids, s) for p, group in zip(prompts, samples) for s in group]
    per_group = [len(p.ids) + shared_untrained_prefix(group) for p, group in zip(prompts, samples)]
    shared = [n for n, group in zip(per_group, samples) for _ in group]
    width = max(len(ids) + len(s.token_ids) for ids, s in rows)
    batch = {"input_ids": torch.full((len(rows), width), pad_id, dtype=torch.long),
             "attention_mask": torch.zeros(len(rows), width, dtype=torch.long),
             "loss_mask": torch.zeros(len(rows), width, dtype=torch.long),
             "rollout_logp": torch.zeros(len(rows), width, dtype=torch.float32),
             "prompt_lengths": torch.tensor(shared, dtype=torch.long)}
    for r, (ids, s) in enumerate(rows):
        n, m = len(ids), len(s.token_ids)
        batch["input_ids"][r, :n + m] = torch.tensor(ids + s.token_ids)
        batch["attention_mask"][r, :n + m] = 1
        batch["loss_mask"][r, n:n + m] = torch.tensor(s.loss_mask)
        batch["rollout_logp"][r, n:n + m] = torch.tensor(s.logprobs, dtype=torch.float32)
    return batch
