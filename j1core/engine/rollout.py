"""Batched rollout engine: n samples per prompt from one shared prefill and a preallocated KV cache.

    python -m pytest tests/engine/test_rollout.py tests/engine/test_sampling.py -q     (speed: python bench/rollout.py)

generate(prompts, n, ...) returns, for every prompt, n Completions (token ids, the log-prob of each sampled
token, why it stopped). How the work is shared:
- prompts are scheduled in waves so that the KV tokens of a wave, prompts x longest prompt + prompts x n x
  max_new_tokens, stay under `max_batch_tokens`; a prompt whose n samples alone do not fit raises ValueError.
- inside a wave, the tokens all prompts begin with (a template's opening) are prefilled once; adjacent prompts
  with a longer common prefix (the two orders of a judged pair) form a group whose prefix is prefilled once
  on top of it, then each prompt's remainder on top of that, in blocks of similar lengths
  (j1core/engine/schedule.py: how waves, groups and blocks are chosen).
- decoding runs all samples of a wave in lockstep. A prompt's KV is stored once and read by all its n
  samples (j1core/engine/attention.SharedPromptAttention); each sample caches only its own generated tokens.
  Finished samples are dropped from the batch and the generation cache (`regrow`) once enough of them have
  finished, so they stop costing compute; the generation cache grows GEN_BLOCK columns at a time.

Log-probs are of the temperature-scaled full distribution (before top-k / top-p and before the
min_new_tokens ban of stop tokens), which is what the trainer recomputes; with temperature 0 (greedy) they
are of the T = 1 distribution. A stop token (eos or stop_token_ids) is kept as the last token of its
completion with finish_reason "eos"; otherwise the completion has max_new_tokens tokens and "length".

Randomness: every sample (prompt i, sample j) draws its uniform numbers from its own stream, seeded by the
prompt's seed and j. `seed` is one int (prompt i then gets a seed mixed from it and i) or one int per prompt:
with per-prompt seeds a prompt's samples do not depend on which other prompts share the batch, so a pair
judged on one rank of a sharded run gets the same samples as in a single process.

Forced tail (constrained verdicts): with `forced_suffix` and `choice_ids`, a sample writes at most
max_new_tokens free tokens; at its cap, or where it samples a stop token (which is then dropped), the engine
feeds the suffix tokens (e.g. "</think>\n<answer>[[") and samples one last token among `choice_ids` only
(at temperature 0: the choice with the largest logit).
Completion.forced marks the fed tokens (log-prob 0.0); the choice's log-prob is of the full distribution,
as for every other sampled token. Completion.choice_logprobs is the distribution over the choices alone
(log-softmax of their logits at temperature 1, in choice_ids order), e.g. the probability of verdict A
against B that evaluation records. finish_reason then tells how the free part ended. With max_new_tokens 0
the suffix may be empty: the prompt already ends with it, and the choice comes from the prefill's logits
with no decode step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from j1core.engine.attention import BlockAttention, SharedPromptAttention, flash_attention_usable
from j1core.engine.decoder import CompactDecoder
from j1core.engine.kv_cache import CacheArena
from j1core.engine.sampling import choose_tokens
from j1core.engine.schedule import padding_chunks, plan_waves, prefix_groups, wave_prefix
from kernels.decode_attention import HEAD_DIMS as DECODE_HEAD_DIMS
from kernels.decode_attention import load as load_decode_kernel

COMPACT_FRACTION = 0.125  # compact the batch once this fraction of its rows has finished
GEN_BLOCK = 64  # the generation cache grows by this many columns at a time (decode reads all of them)


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "eos" | "length"
    forced: list[bool] = field(default_factory=list)  # True for tokens fed by a forced tail
    # Forced tail only: log-softmax over the choice ids' logits at temperature 1, in choice_ids order.
    choice_logprobs: list[float] | None = None


def mix_seed(a: int, b: int) -> int:
    """A well-spread 63-bit seed from two ints (a simple LCG-style mix)."""
    return (a * 6364136223846793005 + (b + 1) * 1442695040888963407) % (1 << 63)


def sample_uniforms(prompt_seeds: list[int], n: int, steps: int) -> torch.Tensor:
    """[prompts * n, steps] float64 uniforms; row (i, j) comes from its own generator, seeded by (seed_i, j)."""
    rows = [torch.rand(steps, dtype=torch.float64, generator=torch.Generator().manual_seed(mix_seed(s, j)))
            for s in prompt_seeds for j in range(n)]
    return torch.stack(rows)


def stop_ids_of(*sources) -> list[int]:
    """Union of eos ids (ints, lists or None) from the model config, generation config, tokenizer, caller."""
    ids: set[int] = set()
    for source in sources:
        if source is not None:
            ids.update([source] if isinstance(source, int) else list(source))
    return sorted(ids)


def check_generate_args(prompts, n, max_new_tokens, seed, forced_suffix, choice_ids) -> list[int]:
    """Clear errors for a generate call's arguments (the engine's and the vLLM backend's); -> one seed a prompt."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("rollout: prompts must be a non-empty list of non-empty token-id lists")
    tail = forced_suffix is not None or choice_ids is not None
    if tail and (forced_suffix is None or not choice_ids):
        raise ValueError("rollout: a forced tail needs both a forced_suffix and choice_ids")
    if tail and not forced_suffix and max_new_tokens > 0:
        raise ValueError("rollout: an empty forced_suffix needs max_new_tokens=0 (the prompt ends where the "
                         "choice is made)")
    if n < 1 or max_new_tokens < (0 if tail else 1):
        raise ValueError(f"rollout: n ({n}) and max_new_tokens ({max_new_tokens}) must be >= 1")
    seeds = seed if isinstance(seed, (list, tuple)) else [mix_seed(seed, i) for i in range(len(prompts))]
    if len(seeds) != len(prompts):
        raise ValueError(f"rollout: {len(seeds)} seeds for {len(prompts)} prompts")
    return list(seeds)


class RolloutEngine:
    """Owns a copy of the model's weights (see CompactDecoder). state_dict: full weights to use instead of
    model.state_dict(), e.g. gathered once under ZeRO-3 where the model's own parameters are partitioned.
    packed: weights in oneDNN's packed layout (None: wherever available, i.e. float32 on CPU, and bfloat16 on
    CPUs with its matrix instructions). dtype: what the engine's weights, KV and activations are kept in (None:
    the weights' own; j1core/engine/precision.rollout_dtype chooses one from a --rollout-dtype flag).
    decode_kernel: decode attention by kernels/decode_attention.cpp and RMSNorm by kernels/rms_norm.cpp (None: on
    CPU wherever they build; False: PyTorch ops)."""

    def __init__(self, model, tokenizer=None, max_batch_tokens: int = 65536, device=None, state_dict=None,
                 packed: bool | None = None, dtype: torch.dtype | None = None, decode_kernel: bool | None = None):
        weights = state_dict if state_dict is not None else dict(model.state_dict())
        self.decoder = CompactDecoder(model.config, weights, device=device, dtype=dtype, packed=packed)
        generation_config = getattr(model, "generation_config", None)
        self.eos_ids = stop_ids_of(model.config.eos_token_id, getattr(generation_config, "eos_token_id", None),
                                   getattr(tokenizer, "eos_token_id", None))
        self.max_batch_tokens = max_batch_tokens
        self.device = self.decoder.device
        # KV memory kept between calls on CPU (at most a wave's caches, bounded by max_batch_tokens; `release`).
        self.arena = CacheArena()
        self.use_flash = flash_attention_usable(self.device, self.decoder.dtype)
        # Decode attention as one C++ call per layer on CPU (kernels/decode_attention.py; None: PyTorch ops).
        usable = self.device.type == "cpu" and self.decoder.head_dim in DECODE_HEAD_DIMS and \
            self.decoder.dtype in (torch.float32, torch.bfloat16)
        self.decode_kernel = load_decode_kernel() if usable and decode_kernel is not False else None
        self.decoder.norm_kernel = self.decode_kernel  # its rms_norm too (kernels/rms_norm.cpp)
        if decode_kernel and self.decode_kernel is None:
            raise ValueError(f"rollout engine: decode_kernel=True needs a CPU engine in float32 or bfloat16 with "
                             f"head size in {DECODE_HEAD_DIMS} and kernels/decode_attention.cpp built (here "
                             f"{self.device}, {self.decoder.dtype}, head size {self.decoder.head_dim})")

    def load_weights(self, state_dict_or_model) -> None:
        """Copy new policy weights (a state dict with HF names, or a model) into the engine in place."""
        sd = state_dict_or_model
        if hasattr(sd, "state_dict") and not isinstance(sd, dict):
            sd = sd.state_dict()
        self.decoder.load_state_dict(sd)

    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 256, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int | list[int] = 0, stop_token_ids=None,
                 min_new_tokens: int = 0, forced_suffix: list[int] | None = None,
                 choice_ids: list[int] | None = None) -> list[list[Completion]]:
        prompt_seeds = check_generate_args(prompts, n, max_new_tokens, seed, forced_suffix, choice_ids)
        tail = None
        if forced_suffix is not None:
            tail = (torch.tensor(forced_suffix, dtype=torch.long, device=self.device),
                    torch.tensor(choice_ids, dtype=torch.long, device=self.device))
        steps = max_new_tokens + (len(forced_suffix) + 1 if tail else 0)
        stop_ids = torch.tensor(stop_ids_of(self.eos_ids, stop_token_ids),
                                dtype=torch.long, device=self.device)
        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "generator": None}
        results: list[list[Completion]] = []
        for wave in plan_waves([len(p) for p in prompts], n, steps, self.max_batch_tokens):
            uniforms = sample_uniforms([prompt_seeds[i] for i in wave], n, steps).to(self.device)
            results.extend(self.run_wave([prompts[i] for i in wave], n, max_new_tokens,
                                         min(min_new_tokens, max_new_tokens), stop_ids, sampling, uniforms, tail))
        if self.device.type != "cpu":
            self.release()  # the CUDA caching allocator has no fault cost: give the memory to the training pass
        return results

    def release(self) -> None:
        """Free the KV memory kept between calls (it is allocated again by the next call)."""
        self.arena = CacheArena()

    # ---- one wave ------------------------------------------------------------------------------------
    def prefill(self, prompts: list[list[int]]):
        """Prefill each prompt once; return (prompt cache, one row per prompt, first-token logits [P, V])."""
        dec, arena = self.decoder, self.arena
        width = max(len(p) for p in prompts)
        cache = dec.new_cache(len(prompts), width, arena, "prompt", zero=False)
        first_logits = [None] * len(prompts)
        common, wave_cache = wave_prefix(prompts), None  # prefilled once; every group's prefix is as long
        if common:
            wave_cache = dec.new_cache(1, common, arena, "wave", zero=False)
            self.run_block([prompts[0][:common]], wave_cache, 0, logits=False)
        for members, shared in prefix_groups(prompts):
            shared, prefix_cache = max(shared, common), wave_cache
            if shared > common:  # the group's own prefix on top of the wave's
                prefix_cache = dec.new_cache(1, shared, arena, "prefix", zero=False)
                if common:
                    prefix_cache.data[:, :, :, :, :common] = wave_cache.data
                self.run_block([prompts[members[0]][common:shared]], prefix_cache, common, logits=False)
            # The remainders in blocks of similar lengths: a block pads each row to its longest.
            for chunk in padding_chunks([len(prompts[i]) - shared for i in members]):
                rows = [members[j] for j in chunk]
                rests = [prompts[i][shared:] for i in rows]
                # Every column of the block and prefix caches is written (padding tokens included): no zeroing.
                block_cache = dec.new_cache(len(rows), shared + max(len(r) for r in rests), arena, "group",
                                            zero=False)
                if shared:
                    block_cache.data[:, :, :, :, :shared] = prefix_cache.data
                logits = self.run_block(rests, block_cache, shared, logits=True)
                for row, i in enumerate(rows):
                    length = len(prompts[i])
                    cache.data[:, :, i, :, :length] = block_cache.data[:, :, row, :, :length]
                    # Padding columns get probability 0 but their values still meet it in p @ V: keep them finite.
                    cache.data[:, :, i, :, length:] = 0
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
        windows, window_mask = self.decoder.layer_window, None
        for window in set(windows) - {None}:  # one window per model: its local layers share it
            window_mask = mask & (cols[None, :] > positions[0][:, None] - window)
        attention = BlockAttention(cache, start, mask, self.use_flash, windows, window_mask)
        last = torch.tensor([len(r) - 1 for r in rests], device=self.device) if logits else None
        return self.decoder.forward(tokens, positions, attention, last)

    def run_wave(self, prompts, n, max_new_tokens, min_new_tokens, stop_ids, sampling, uniforms,
                 tail=None) -> list[list[Completion]]:
        rows = len(prompts) * n
        steps = uniforms.shape[1]
        prompt_cache, first_logits = self.prefill(prompts)
        # Decode attends over the generation cache's whole width (j1core/engine/attention.py): it starts one
        # block wide, zeroed, and grows (a copy) when the next column would fall outside it.
        gen_cache = self.decoder.new_cache(rows, min(GEN_BLOCK, steps), self.arena, "gen")
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        cols = torch.arange(prompt_cache.max_len, device=self.device)
        prompt_bias = torch.zeros(len(prompts), 1, 1, cols.numel(), dtype=self.decoder.dtype, device=self.device)
        prompt_bias.masked_fill_((cols[None, :] >= lengths[:, None])[:, None, None, :], float("-inf"))
        prompt_lengths, lengths = lengths, lengths.repeat_interleave(n)
        out_tokens = torch.zeros(rows, steps, dtype=torch.long, device=self.device)
        out_logprobs = torch.zeros(rows, steps, dtype=torch.float32, device=self.device)
        out_forced = torch.zeros(rows, steps, dtype=torch.bool, device=self.device)
        out_choice = torch.zeros(rows, tail[1].numel() if tail else 0, dtype=torch.float32, device=self.device)
        out_len = torch.full((rows,), steps, dtype=torch.long, device=self.device)
        stopped = torch.zeros(rows, dtype=torch.bool, device=self.device)
        live = torch.arange(rows, device=self.device)  # slot (prompt * n + sample) of each batch row
        live_done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        # -1: free; k: next suffix token. With no free tokens every row starts in its tail.
        tail_pos = torch.full((rows,), -1 if max_new_tokens else 0, dtype=torch.long, device=self.device)
        logits = first_logits.repeat_interleave(n, dim=0)
        # [rows, V] float32 memory for the logits and the sampler's weights, the same pages every step.
        vocab = logits.shape[-1]
        logits_memory = self.arena.take("logits", rows * vocab, torch.float32, self.device)
        sample_memory = self.arena.take("sample", rows * vocab, torch.float32, self.device)
        for step in range(steps):
            banned = stop_ids if step < min_new_tokens else None
            tokens, logprobs = choose_tokens(logits, banned=banned, uniforms=uniforms[live, step],
                                             workspace=sample_memory[:live.numel() * vocab].view(-1, vocab),
                                             **sampling)
            if tail is None:
                hit_stop = torch.isin(tokens, stop_ids) & ~live_done
                finished, forced = hit_stop, None
            else:
                tokens, logprobs, forced, finished, hit_stop, tail_pos, choice_logp = self.tail_step(
                    logits, tokens, logprobs, tail_pos, live_done, step, max_new_tokens, stop_ids, sampling,
                    uniforms[live, step], tail)
                out_forced[live, step] = forced
                out_choice[live[finished]] = choice_logp[finished]
            out_tokens[live, step] = tokens
            out_logprobs[live, step] = logprobs
            out_len[live[finished]] = step + 1
            stopped[live[hit_stop]] = True
            live_done |= finished
            if step + 1 == steps or bool(live_done.all()):
                break
            keep = None
            if int(live_done.sum()) >= max(1, COMPACT_FRACTION * live.numel()):
                keep = (~live_done).nonzero().squeeze(1)
                live, tokens, lengths, live_done = live[keep], tokens[keep], lengths[keep], live_done[keep]
                tail_pos = tail_pos[keep]
            if keep is not None or step >= gen_cache.max_len:  # the step writes column `step`
                gen_cache.regrow(keep, min(steps, (step // GEN_BLOCK + 1) * GEN_BLOCK), filled=step)
            attention = SharedPromptAttention(prompt_cache, prompt_bias, gen_cache, step, live, n,
                                              self.decoder.layer_window, prompt_lengths, self.decode_kernel)
            logits = self.decoder.forward(tokens[:, None], (lengths + step)[:, None], attention,
                                          torch.zeros_like(tokens),
                                          logits_memory[:live.numel() * vocab].view(-1, vocab))
        return self.collect(out_tokens, out_logprobs, out_len, stopped, n, out_forced if tail else None,
                            out_choice if tail else None)

    @staticmethod
    def tail_step(logits, tokens, logprobs, tail_pos, done, step, max_new_tokens, stop_ids, sampling, uniforms,
                  tail):
        """Override the sampled tokens of rows in their forced tail: feed the suffix, then choose a letter.
        Also returns [B, C] log-softmax over the choices' T = 1 logits (set on the rows choosing this step)."""
        suffix, choices = tail
        free, choosing = tail_pos < 0, tail_pos == suffix.numel()
        choice_logp = torch.zeros(logits.shape[0], choices.numel(), dtype=torch.float32, device=logits.device)
        if bool(choosing.any()):
            chooser_logits = logits[choosing]
            picked, picked_logp = choose_tokens(chooser_logits, uniforms=uniforms[choosing], allowed_ids=choices,
                                                **sampling)
            tokens, logprobs = tokens.clone(), logprobs.clone()
            tokens[choosing], logprobs[choosing] = picked, picked_logp
            choice_logp[choosing] = torch.log_softmax(chooser_logits[:, choices].float(), dim=-1)
        hit_stop = free & torch.isin(tokens, stop_ids) & ~done
        begin = free & ~done & (hit_stop | (step >= max_new_tokens))
        pos = torch.where(begin, torch.zeros_like(tail_pos), tail_pos)
        forced = (pos >= 0) & (pos < suffix.numel()) & ~done
        if suffix.numel():
            tokens = torch.where(forced, suffix[pos.clamp(0, suffix.numel() - 1)], tokens)
        logprobs = torch.where(forced, torch.zeros_like(logprobs), logprobs)
        tail_pos = torch.where(forced, pos + 1, tail_pos)
        return tokens, logprobs, forced, choosing & ~done, hit_stop, tail_pos, choice_logp

    @staticmethod
    def collect(out_tokens, out_logprobs, out_len, stopped, n, out_forced=None,
                out_choice=None) -> list[list[Completion]]:
        tokens, logprobs, lens, eos = (out_tokens.tolist(), out_logprobs.tolist(), out_len.tolist(),
                                       stopped.tolist())
        forced = out_forced.tolist() if out_forced is not None else [[False] * len(t) for t in tokens]
        choice = out_choice.tolist() if out_choice is not None else [None] * len(tokens)
        flat = [Completion(tokens[r][:lens[r]], logprobs[r][:lens[r]], "eos" if eos[r] else "length",
                           forced[r][:lens[r]], choice[r]) for r in range(len(tokens))]
        return [flat[i:i + n] for i in range(0, len(flat), n)]
