"""One-pass verdict steps: without reasoning, the policy pass is the rollout.

    python -m pytest tests/test_verdict_pass.py -q

With --forced-verdict --max-think-tokens 0 a prompt's G samples are G draws of one letter from one
distribution: the one at the last position of prompt + "</think>\\n<answer>[[". With --beta 0 and one update
per batch the policy that samples is the policy being trained (old log-probs equal the current ones), so the
rollout's forward and the policy pass's forward are the same computation. This module runs it once, with
autograd: the letters are drawn from its logits, with the engine's sampler and the engine's per-prompt random
streams, and the loss is taken from the same hidden states, so a step costs one forward and one backward of
its prompts and no rollout.

Memory: every micro-batch's activations stay alive until the step's one backward (rewards need both orders
and the batch std needs every prompt): the default step (SmolLM2-135M, 20 prompts, float32) peaks 1.5 GB
above the engine path, which frees each micro-batch's activations after its backward (bench/verdict_step.py).

The engine path (judge_rollout.generate_judgments, pack_batch, Trainer.accumulate_gradients) is the reference:
tests/test_verdict_pass.py checks that both give the same samples, loss and gradients.
"""
from __future__ import annotations

import torch

from j1core.engine.rollout import sample_uniforms
from j1core.engine.sampling import choose_tokens
from j1core.grpo import policy_loss
from j1core.judge.prompts import render_answer
from j1core.judge.rollout import JudgeSample, forced_suffix_ids, letter_ids, prompt_seeds
from j1core.logprobs import prompt_pass
from kernels import fused_linear_logprob


def one_pass_applies(cfg) -> bool:
    """Every sample is one letter after a fixed suffix, sampled by the policy being trained."""
    return (cfg.forced_verdict and cfg.format == "pairwise" and cfg.max_think_tokens == 0 and cfg.beta == 0
            and cfg.updates_per_batch == 1)


def verdict_rollout(model, tokenizer, prompts, cfg, step: int, device):
    """(last hidden state of every prompt + suffix [P, H], with autograd; G JudgeSamples per prompt)."""
    suffix = forced_suffix_ids(tokenizer)
    hidden = last_hidden_states(model, [p.ids + suffix for p in prompts], cfg.micro_batch_size // cfg.group_size,
                                device)
    choices = torch.tensor(letter_ids(tokenizer), device=device)
    head = model.get_output_embeddings()
    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden.detach(), head.weight, head.bias)
        uniforms = sample_uniforms(prompt_seeds(prompts, cfg.seed, step), cfg.group_size, 1)[:, 0].to(device)
        letters, logprobs = choose_tokens(logits.repeat_interleave(cfg.group_size, 0), cfg.temperature,
                                          cfg.top_k, cfg.top_p, None, uniforms=uniforms, allowed_ids=choices)
    letters, logprobs = letters.view(len(prompts), -1).tolist(), logprobs.view(len(prompts), -1).tolist()
    forced = [0] * len(suffix)
    samples = [[JudgeSample(suffix + [t], [0.0] * len(suffix) + [lp], forced + [1],
                            render_answer("pairwise", tokenizer.decode([t])))
                for t, lp in zip(row_letters, row_logprobs)]
               for row_letters, row_logprobs in zip(letters, logprobs)]
    return hidden, samples


def last_hidden_states(model, sequences: list[list[int]], per_pass: int, device) -> torch.Tensor:
    """Hidden state at the last token of every sequence [P, H], `per_pass` sequences per backbone pass
    (right-padded; their common prefix, the judge template, runs once per pass)."""
    out, per_pass = [], max(1, per_pass)
    for start in range(0, len(sequences), per_pass):
        chunk = sequences[start:start + per_pass]
        lengths = torch.tensor([len(s) for s in chunk], device=device)
        ids = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.long, device=device)
        for row, s in enumerate(chunk):
            ids[row, :len(s)] = torch.tensor(s, device=device)
        mask = (torch.arange(ids.shape[1], device=device) < lengths[:, None]).long()
        out.append(prompt_pass(model, ids, mask, lengths)[0])
    return torch.cat(out)


def verdict_loss(model, hidden, samples, advantages, cfg, max_completion_length: int):
    """The GRPO loss of one-letter samples from their prompts' hidden states -> (loss, stats)."""
    group = cfg.group_size
    letters = torch.tensor([s.token_ids[-1] for g in samples for s in g], device=hidden.device).view(-1, group)
    # A group holds at most two distinct letters: score each (prompt, letter) once, then spread to the samples.
    distinct = torch.stack([letters.min(1).values, letters.max(1).values], dim=1)  # [P, 2]
    head = model.get_output_embeddings()
    logp2, entropy2 = fused_linear_logprob(hidden.repeat_interleave(2, 0), head.weight, distinct.reshape(-1),
                                           cfg.temperature, bias=head.bias, return_entropy=True)
    which = (letters == distinct[:, 1:]).long()  # 0: the smaller id, 1: the larger
    logp = logp2.view(-1, 2).gather(1, which).reshape(-1, 1)
    entropy = entropy2.view(-1, 2)[:, 0].repeat_interleave(group)
    mask = torch.ones_like(logp)
    loss, stats = policy_loss(logp, logp.detach(), None, advantages.to(hidden.device), mask, loss_type=cfg.loss_type,
                              eps_low=cfg.eps_low, eps_high=cfg.eps_high, beta=0.0,
                              max_completion_length=max_completion_length)
    stats["entropy"] = entropy.mean().item()
    return loss, stats
