"""Batched rollout engine: n samples per prompt from one shared prefill and a preallocated KV cache.

    python -m pytest tests/test_rollout.py tests/test_sampling.py -q     (speed: python bench/rollout.py)

generate(prompts, n, ...) returns, for every prompt, n Completions (token ids, the log-prob of each sampled
token, why it stopped). How the work is shared:
- prompts are scheduled in waves so that the KV tokens of a wave, prompts x longest prompt + prompts x n x
  max_new_tokens, stay under `max_batch_tokens`; a prompt whose n samples alone do not fit raises ValueError.
- inside a wave, adjacent prompts with a long common token prefix (the two orders of a judged pair) form a
  group: the common prefix is prefilled once, then each prompt's remainder on top of it.
- decoding runs all samples of a wave in lockstep. A prompt's KV is stored once and read by all its n
  samples (j1core/attention.SharedPromptAttention); each sample caches only its own generated tokens.
  Finished samples are dropped from the batch and the generation cache (`compact`) once enough of them have
  finished, so they stop costing compute.

Log-probs are of the temperature-scaled full distribution (before top-k / top-p and before the
min_new_tokens ban of stop tokens), which is what the trainer recomputes; with temperature 0 (greedy) they
are of the T = 1 distribution. A stop token (eos or stop_token_ids) is kept as the last token of its
completion with finish_reason "eos"; otherwise the completion has max_new_tokens tokens and "length".
Sampling uses the engine's own torch.Generator seeded by `seed`: the same call gives the same samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from j1core.attention import BlockAttention, SharedPromptAttention, flash_attention_usable
from j1core.decoder import CompactDecoder
from j1core.sampling import choose_tokens

MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a separate prefill
COMPACT_FRACTION = 0.125  # compact the batch once this fraction of its rows has finished


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "eos" | "length"


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(prompts: list[list[int]], min_shared: int = MIN_SHARED_PREFIX) -> list[tuple[list[int], int]]:
    """Split prompt indices into runs of adjacent prompts and the token prefix each run shares.

    The shared length stops one token short of the shortest prompt, so every prompt keeps a remainder whose
    last position yields its first-token logits.
    """
    groups: list[tuple[list[int], int]] = []
    for i, prompt in enumerate(prompts):
        if groups:
            members, shared = groups[-1]
            first = prompts[members[0]]
            candidate = min(shared, common_prefix_len(first, prompt), len(prompt) - 1)
            if candidate >= min_shared:
                groups[-1] = (members + [i], candidate)
                continue
        groups.append(([i], len(prompt) - 1))
    return [(members, shared if len(members) > 1 else 0) for members, shared in groups]


def wave_kv_tokens(lengths: list[int], n: int, max_new_tokens: int) -> int:
    """KV tokens a wave holds: its prompt cache (prompts x longest prompt) and its samples' generations."""
    return len(lengths) * (max(lengths) + n * max_new_tokens)


def plan_waves(lengths: list[int], n: int, max_new_tokens: int, max_batch_tokens: int) -> list[list[int]]:
    """Consecutive prompt indices per wave, each wave's `wave_kv_tokens` <= max_batch_tokens."""
    waves: list[list[int]] = []
    current: list[int] = []
    for i, length in enumerate(lengths):
        alone = wave_kv_tokens([length], n, max_new_tokens)
        if alone > max_batch_tokens:
            raise ValueError(f"rollout: prompt {i} ({length} tokens) with n={n} samples of up to {max_new_tokens} "
                             f"new tokens needs {alone} KV tokens, more than max_batch_tokens={max_batch_tokens}; "
                             "raise max_batch_tokens or lower n / max_new_tokens")
        if current and wave_kv_tokens([lengths[j] for j in current] + [length], n,
                                      max_new_tokens) > max_batch_tokens:
            waves.append(current)
            current = []
        current.append(i)
    if current:
        waves.append(current)
    return waves


def stop_ids_of(*sources) -> list[int]:
    """Union of eos ids (ints, lists or None) from the model config, generation config, tokenizer, caller."""
    ids: set[int] = set()
    for source in sources:
        if source is not None:
            ids.update([source] if isinstance(source, int) else list(source))
    return sorted(ids)


class RolloutEngine:
    """Owns a copy of the model's weights (see CompactDecoder). state_dict: full weights to use instead of
    model.state_dict(), e.g. gathered once under ZeRO-3 where the model's own parameters are partitioned."""

    def __init__(self, model, tokenizer=None, max_batch_tokens: int = 65536, device=None, state_dict=None):
        weights = state_dict if state_dict is not None else dict(model.state_dict())
        self.decoder = CompactDecoder(model.config, weights, device=device)
        generation_config = getattr(model, "generation_config", None)
        self.eos_ids = stop_ids_of(model.config.eos_token_id, getattr(generation_config, "eos_token_id", None),
                                   getattr(tokenizer, "eos_token_id", None))
        self.max_batch_tokens = max_batch_tokens
        self.device = self.decoder.device
        self.use_flash = flash_attention_usable(self.device, self.decoder.dtype)

    def load_weights(self, state_dict_or_model) -> None:
        """Copy new policy weights (a state dict with HF names, or a model) into the engine in place."""
        sd = state_dict_or_model
        if hasattr(sd, "state_dict") and not isinstance(sd, dict):
            sd = sd.state_dict()
        self.decoder.load_state_dict(sd)

    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 256, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int = 0, stop_token_ids=None,
                 min_new_tokens: int = 0) -> list[list[Completion]]:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("rollout: prompts must be a non-empty list of non-empty token-id lists")
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"rollout: n ({n}) and max_new_tokens ({max_new_tokens}) must be >= 1")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        stop_ids = torch.tensor(stop_ids_of(self.eos_ids, stop_token_ids),
                                dtype=torch.long, device=self.device)
        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "generator": generator}
        results: list[list[Completion]] = []
        for wave in plan_waves([len(p) for p in prompts], n, max_new_tokens, self.max_batch_tokens):
            results.extend(self.run_wave([prompts[i] for i in wave], n, max_new_tokens,
                                         min(min_new_tokens, max_new_tokens), stop_ids, sampling))
        return results

    # ---- one wave ------------------------------------------------------------------------------------
    def prefill(self, prompts: list[list[int]]):
        """Prefill each prompt once; return (prompt cache, one row per prompt, first-token logits [P, V])."""
        dec = self.decoder
        cache = dec.new_cache(len(prompts), max(len(p) for p in prompts))
        first_logits = [None] * len(prompts)
        for members, shared in prefix_groups(prompts):
            rests = [prompts[i][shared:] for i in members]
            group_cache = dec.new_cache(len(members), shared + max(len(r) for r in rests))
            if shared:
                prefix_cache = dec.new_cache(1, shared)
                self.run_block([prompts[members[0]][:shared]], prefix_cache, 0, logits=False)
                group_cache.data[:, :, :, :, :shared] = prefix_cache.data
            logits = self.run_block(rests, group_cache, shared, logits=True)
            for row, i in enumerate(members):
                length = len(prompts[i])
                cache.data[:, :, i, :, :length] = group_cache.data[:, :, row, :, :length]
                first_logits[i] = logits[row]
        return cache, torch.stack(first_logits)

    def run_block(self, rests: list[list[int]], cache, start: int, logits: bool):
        """Forward right-padded token blocks that continue columns [0, start) of each cache row."""
        longest = max(len(r) for r in rests)
        tokens = torch.zeros(len(rests), longest, dtype=torch.long, device=self.device)
        for row, rest in enumerate(rests):
            tokens[row, :len(rest)] = torch.tensor(rest, dtype=torch.long)
        positions = torch.arange(start, start + longest, device=self.device).expand(len(rests), longest)
        # Causal: query at column start + s sees columns <= start + s. Padding sits after every real
        # token of its row, so real queries never see it.
        cols = torch.arange(start + longest, device=self.device)
        mask = (cols[None, :] <= positions[0][:, None]).expand(len(rests), 1, longest, start + longest)
        last = torch.tensor([len(r) - 1 for r in rests], device=self.device) if logits else None
        return self.decoder.forward(tokens, positions, BlockAttention(cache, start, mask, self.use_flash), last)

    def run_wave(self, prompts, n, max_new_tokens, min_new_tokens, stop_ids, sampling) -> list[list[Completion]]:
        rows = len(prompts) * n
        prompt_cache, first_logits = self.prefill(prompts)
        gen_cache = self.decoder.new_cache(rows, max_new_tokens)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        cols = torch.arange(prompt_cache.max_len, device=self.device)
        prompt_bias = torch.zeros(len(prompts), 1, 1, cols.numel(), dtype=self.decoder.dtype, device=self.device)
        prompt_bias.masked_fill_((cols[None, :] >= lengths[:, None])[:, None, None, :], float("-inf"))
        lengths = lengths.repeat_interleave(n)
        out_tokens = torch.zeros(rows, max_new_tokens, dtype=torch.long, device=self.device)
        out_logprobs = torch.zeros(rows, max_new_tokens, dtype=torch.float32, device=self.device)
        out_len = torch.full((rows,), max_new_tokens, dtype=torch.long, device=self.device)
        stopped = torch.zeros(rows, dtype=torch.bool, device=self.device)
        live = torch.arange(rows, device=self.device)  # slot (prompt * n + sample) of each batch row
        live_done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        logits = first_logits.repeat_interleave(n, dim=0)
        for step in range(max_new_tokens):
            banned = stop_ids if step < min_new_tokens else None
            tokens, logprobs = choose_tokens(logits, banned=banned, **sampling)
            out_tokens[live, step] = tokens
            out_logprobs[live, step] = logprobs
            hit_stop = torch.isin(tokens, stop_ids) & ~live_done
            out_len[live[hit_stop]] = step + 1
            stopped[live[hit_stop]] = True
            live_done |= hit_stop
            if step + 1 == max_new_tokens or bool(live_done.all()):
                break
            if int(live_done.sum()) >= max(1, COMPACT_FRACTION * live.numel()):
                keep = (~live_done).nonzero().squeeze(1)
                gen_cache.compact(keep)
                live, tokens, lengths, live_done = live[keep], tokens[keep], lengths[keep], live_done[keep]
            attention = SharedPromptAttention(prompt_cache, prompt_bias, gen_cache, step, live, n)
            logits = self.decoder.forward(tokens[:, None], (lengths + step)[:, None], attention,
                                          torch.zeros_like(tokens))
        return self.collect(out_tokens, out_logprobs, out_len, stopped, n)

    @staticmethod
    def collect(out_tokens, out_logprobs, out_len, stopped, n) -> list[list[Completion]]:
        tokens, logprobs, lens, eos = (out_tokens.tolist(), out_logprobs.tolist(), out_len.tolist(),
                                       stopped.tolist())
        flat = [Completion(tokens[r][:lens[r]], logprobs[r][:lens[r]], "eos" if eos[r] else "length")
                for r in range(len(tokens))]
        return [flat[i:i + n] for i in range(0, len(flat), n)]
