"""Sample G judgments per prompt and pack them into the padded batch the loss consumes.

    python -m pytest tests/judge/test_rollout.py -q

Two ways to sample a pairwise judgment:
- free: the judge writes up to --max-new-tokens after the pre-opened "<think>", and the reward parses it;
- forced verdict (--forced-verdict, pairwise prompts only): the judge reasons for at most --max-think-tokens,
  the engine then feeds "</think>\\n<answer>[[" and samples the next token among "A" and "B" only. The forced
  tokens are part of the sequence but masked out of the loss; the letter is trained like any sampled token.
  A small model that never writes the format on its own still gets a reward signal from its first step.
  With no reasoning (--max-think-tokens 0) the forced tokens are the same for all G samples, so the engine
  prefills them with the prompt and draws the letter from the prefill's logits, and the log-prob pass runs
  them once per group (pack_batch's prompt_lengths): each sample then costs one token. The trainer then
  skips this module altogether by default (j1core/verdict_pass.py); this is its reference and the path for
  reasoning, KL and DeepSpeed.
Score formats always sample freely.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from j1core.data.pairs import stable_hash
from j1core.judge.prompts import answer_choices, forced_suffix, render_answer


@dataclass
class JudgeSample:
    token_ids: list[int]   # completion tokens as fed to the model, forced ones included
    logprobs: list[float]  # sampling log-probs (0.0 for forced tokens)
    loss_mask: list[int]   # 1 for sampled tokens, 0 for forced ones
    text: str              # what the reward parses


def uses_forced_verdict(cfg, fmt: str) -> bool:
    return bool(cfg.forced_verdict) and fmt == "pairwise"


def prompt_seeds(prompts, seed: int, step: int) -> list[int]:
    """One sampling seed per prompt from (run seed, step, pair id, slot): a prompt's samples then do not
    depend on the other prompts of the batch, nor on which rank of a sharded run judges it."""
    return [stable_hash(seed, step, p.pair_id, p.slot) % (1 << 63) for p in prompts]


def generate_judgments(engine, tokenizer, prompts, cfg, step: int) -> list[list[JudgeSample]]:
    """G samples for every prompt, in prompt order."""
    forced = [uses_forced_verdict(cfg, p.fmt) for p in prompts]
    out: list[list[JudgeSample] | None] = [None] * len(prompts)
    for want_forced in (True, False):
        idx = [i for i, f in enumerate(forced) if f == want_forced]
        if not idx:
            continue
        sampler = sample_forced if want_forced else sample_free
        chosen = [prompts[i] for i in idx]
        for i, group in zip(idx, sampler(engine, tokenizer, chosen, cfg, prompt_seeds(chosen, cfg.seed, step))):
            out[i] = group
    return out


def max_completion_tokens(cfg, tokenizer) -> int:
    """The longest completion a step can produce: dr_grpo's fixed normaliser."""
    free = cfg.max_new_tokens if cfg.format != "pairwise" or not cfg.forced_verdict else 0
    forced = 0
    if cfg.forced_verdict and cfg.format in ("pairwise", "mixed"):
        suffix = forced_suffix_ids(tokenizer)
        forced = cfg.max_think_tokens + len(suffix) + 1
    return max(free, forced)


def common_kwargs(cfg, seed):
    return {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k, "seed": seed}


def sample_free(engine, tokenizer, prompts, cfg, seed):
    groups = engine.generate([p.ids for p in prompts], n=cfg.group_size, max_new_tokens=cfg.max_new_tokens,
                             min_new_tokens=cfg.min_new_tokens, stop_token_ids=[tokenizer.eos_token_id],
                             **common_kwargs(cfg, seed))
    return [[JudgeSample(c.token_ids, c.logprobs, [1] * len(c.token_ids),
                         tokenizer.decode(c.token_ids, skip_special_tokens=True)) for c in group]
            for group in groups]


def forced_suffix_ids(tokenizer) -> list[int]:
    """Token ids of "</think>\\n<answer>[[", fed before a forced pairwise verdict."""
    return tokenizer(forced_suffix("pairwise"), add_special_tokens=False)["input_ids"]


def letter_ids(tokenizer) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(letter) for letter in answer_choices("pairwise")]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the tokenizer has no single tokens for the verdict letters; use free sampling")
    return ids


def sample_forced(engine, tokenizer, prompts, cfg, seed):
    suffix = forced_suffix_ids(tokenizer)
    choices = letter_ids(tokenizer)
    # Without reasoning every sample starts with the same forced tokens: prefill them with the prompt instead
    # of decoding them in each of the G rows; the letter is then drawn from the prefill's logits.
    fed = suffix if cfg.max_think_tokens == 0 else []
    groups = engine.generate([p.ids + fed for p in prompts], n=cfg.group_size, max_new_tokens=cfg.max_think_tokens,
                             stop_token_ids=[tokenizer.eos_token_id], forced_suffix=suffix[len(fed):],
                             choice_ids=choices, **common_kwargs(cfg, seed))
    samples = []
    for group in groups:
        samples.append([])
        for c in group:
            token_ids, forced = fed + c.token_ids, [True] * len(fed) + c.forced
            think = [t for t, f in zip(token_ids[:-1], forced[:-1]) if not f]
            letter = tokenizer.decode(token_ids[-1:])
            text = tokenizer.decode(think, skip_special_tokens=True) + render_answer("pairwise", letter)
            samples[-1].append(JudgeSample(token_ids, [0.0] * len(fed) + c.logprobs, [0 if f else 1 for f in forced],
                                           text))
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
