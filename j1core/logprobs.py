"""Trainer log-probs: per-token log p(token | prefix) of completion tokens, via the backbone and kernels/.

    python -m pytest tests/test_logprobs.py -q

Rows are right-padded (prompt, completion, pad). The backbone runs once to hidden states; only positions whose
NEXT token is a completion token (loss_mask == 1) go through fused_linear_logprob with the LM head, so the
N x V logits of the full forward never exist. The head must be a plain linear layer (tied to the embeddings or
not, with or without bias): true of every family j1 runs (llama, mistral, qwen2, qwen3, gemma3_text; the
backbone applies Gemma's embedding scale and final norm itself). Final logit soft-capping (Gemma-2) is
refused rather than left out.

Grouped path (prompt_lengths given, group_size > 1): GRPO repeats each prompt group_size times in consecutive
rows. Each prompt then runs once (right-padded, its KV kept with autograd), and the G completions of its group
attend to that KV repeated G times, so prompt tokens cost one forward and one backward per group; gradients
from the G completions add up through the repeat. Same outputs as the plain path.
The prompts themselves share the judge template: a prefix common to all prompts of the micro-batch runs once
too (prompt_pass). With one-token completions (verdicts without reasoning) no completion pass runs at all:
the prompt's last hidden state predicts the token.

Sliding windows (Mistral, Gemma-3's local layers, Qwen with use_sliding_window): the plain path gives HF the
right-padded rows, and HF's windowed mask counts columns, which are positions there. The grouped path's
passes put completions after the longest prompt's width, so a shorter prompt's completions sit at columns
past their positions: a window would count the padding between. The grouped path therefore runs only while
no window is reached (prompt width + completion width <= window; its caches are then plain, uncropped), and
batches that reach one take the plain path (same values; only the prompt's sharing is lost).
"""
from __future__ import annotations

import contextlib
import functools
import inspect

import torch
import torch.utils.checkpoint
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from j1core.engine.decoder import sliding_window
from j1core.engine.schedule import MIN_SHARED_PREFIX  # a shorter common prefix is not worth its own pass
from kernels import fused_linear_logprob


def token_logprobs(model, input_ids, attention_mask, loss_mask, temperature=1.0, return_entropy=False,
                   impl="auto", prompt_lengths=None, group_size=1):
    """logp[B, L] float32 with logp[b, t] = log softmax(logits[b, t-1] / T)[input_ids[b, t]] where
    loss_mask[b, t] == 1 and 0 elsewhere; with return_entropy also entropy[B, L] of that distribution.

    prompt_lengths (LongTensor [B]) with group_size > 1 selects the grouped path: rows g*G .. g*G+G-1 share
    their first prompt_lengths tokens, and loss_mask is 0 on every prompt position.

    Gradient checkpointing (enable_gradient_checkpointing(model)) applies to both paths, with the same values
    and gradients: see checkpointed_layers."""
    if input_ids.shape != attention_mask.shape or input_ids.shape != loss_mask.shape:
        raise ValueError(f"token_logprobs: input_ids {tuple(input_ids.shape)}, attention_mask "
                         f"{tuple(attention_mask.shape)} and loss_mask {tuple(loss_mask.shape)} must match")
    if loss_mask[:, 0].any():
        raise ValueError("token_logprobs: loss_mask[:, 0] must be 0 (the first token has no prefix to score)")
    if getattr(model.config, "final_logit_softcapping", None) is not None:
        raise ValueError(f"token_logprobs: {model.config.model_type} soft-caps its logits "
                         f"(final_logit_softcapping={model.config.final_logit_softcapping}); the LM head here is a "
                         f"plain linear layer")
    if prompt_lengths is not None and group_size > 1:
        check_groups(input_ids, attention_mask, loss_mask, prompt_lengths, group_size)
    if prompt_lengths is not None and group_size > 1 and not window_reached(model.config, attention_mask,
                                                                            prompt_lengths):
        with checkpointed_layers(model):
            hidden, targets = grouped_scored_hidden(model, input_ids, attention_mask, loss_mask,
                                                    prompt_lengths.to(input_ids.device), group_size)
        scored = loss_mask.bool()
    else:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with checkpointed_layers(model):
            full = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids, use_cache=False).last_hidden_state
        shifted = loss_mask[:, 1:].bool()  # position t-1 predicts token t
        hidden, targets = full[:, :-1][shifted], input_ids[:, 1:][shifted]
        scored = torch.cat([shifted.new_zeros(shifted.shape[0], 1), shifted], dim=1)
    head = model.get_output_embeddings()
    out = fused_linear_logprob(hidden, head.weight, targets, temperature, bias=head.bias,
                               return_entropy=return_entropy, impl=impl)
    outs = out if return_entropy else (out,)
    placed = tuple(values.new_zeros(scored.shape).masked_scatter(scored, values) for values in outs)
    return placed if return_entropy else placed[0]


def window_reached(config, attention_mask, prompt_lengths) -> bool:
    """Whether the grouped path's columns (longest prompt, then longest completion) pass a sliding window."""
    window = sliding_window(config)
    if window is None:
        return False
    completions = attention_mask.long().sum(1) - prompt_lengths.to(attention_mask.device)
    return int(prompt_lengths.max()) + int(completions.max()) > window


def grouped_scored_hidden(model, input_ids, attention_mask, loss_mask, prompt_lengths, group_size):
    """(hidden[N, H], targets[N]) for the N scored tokens in row-major order of loss_mask, with each
    prompt's backbone pass shared by its group."""
    rows, width = input_ids.shape
    row_lengths = attention_mask.long().sum(1)
    prompt_width = int(prompt_lengths.max())
    firsts = torch.arange(0, rows, group_size, device=input_ids.device)

    # 1. unique prompts, right-padded to prompt_width, KV kept with autograd
    prompt_mask = (torch.arange(prompt_width, device=input_ids.device) < prompt_lengths[firsts, None]).long()
    prompt_ids = input_ids[firsts, :prompt_width] * prompt_mask
    last_prompt_hidden, prompt_cache = prompt_pass(model, prompt_ids, prompt_mask, prompt_lengths[firsts])

    # 2. completions, right-padded to completion_width, attending to their prompt's KV repeated group_size times
    completion_width = max(1, int((row_lengths - prompt_lengths).max()))
    columns = prompt_lengths[:, None] + torch.arange(completion_width, device=input_ids.device)
    inside = columns < width
    columns = columns.clamp(max=width - 1)
    completion_ids = input_ids.gather(1, columns) * inside
    predictors = last_prompt_hidden.repeat_interleave(group_size, 0)[:, None]
    if completion_width > 1:  # one-token completions are all predicted by the prompt's last hidden
        completion_mask = attention_mask.long().gather(1, columns) * inside
        cache = repeated_cache(prompt_cache, group_size)
        completion_hidden = model.base_model(
            input_ids=completion_ids, attention_mask=torch.cat([prompt_mask.repeat_interleave(group_size, 0),
                                                                completion_mask], dim=1),
            position_ids=columns, use_cache=True, **cache_kwarg(model, cache)).last_hidden_state
        # 3. completion token j is predicted by the prompt's last hidden (j = 0) or completion hidden j - 1
        predictors = torch.cat([predictors, completion_hidden[:, :-1]], dim=1)
    scored = loss_mask.long().gather(1, columns).bool() & inside.bool()
    return predictors[scored], completion_ids[scored]


def prompt_pass(model, prompt_ids, prompt_mask, prompt_lengths):
    """(hidden state of each prompt's last token [P, H], KV cache of the prompts [P, ..., W, ...]).

    Judge prompts share a long template (system prompt, instructions): the prefix common to all prompts runs
    once, as one row, and the rest of each prompt attends to its KV repeated P times. Gradients from every
    prompt add up through the repeat, so values and gradients are those of P separate passes."""
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    common = common_prefix_length(prompt_ids, prompt_lengths)
    rows = torch.arange(prompt_ids.shape[0], device=prompt_ids.device)
    if prompt_ids.shape[0] < 2 or common < MIN_SHARED_PREFIX:
        out = model.base_model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                               use_cache=True, **cache_kwarg(model, DynamicCache()))
        return out.last_hidden_state[rows, prompt_lengths - 1], output_cache(out)
    prefix = model.base_model(input_ids=prompt_ids[:1, :common], position_ids=positions[:1, :common],
                              use_cache=True, **cache_kwarg(model, DynamicCache()))
    cache = repeated_cache(output_cache(prefix), prompt_ids.shape[0])
    rest = model.base_model(input_ids=prompt_ids[:, common:], attention_mask=prompt_mask,
                            position_ids=positions[:, common:], use_cache=True, **cache_kwarg(model, cache))
    return rest.last_hidden_state[rows, prompt_lengths - 1 - common], output_cache(rest)


def cache_kwarg(model, cache) -> dict:
    """The KV cache as the base model's forward names it: `cache`, or `past_key_values` in the transformers
    releases before the rename (5.19, which vLLM 0.32 pins, is one)."""
    params = inspect.signature(model.base_model.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def output_cache(out):
    """The KV cache of a base model's output, under either name (cache_kwarg)."""
    return out.cache if "cache" in out else out.past_key_values


def common_prefix_length(prompt_ids, prompt_lengths) -> int:
    """Leading columns on which all prompts agree, leaving every prompt at least one token of its own (the
    prompt's last hidden state comes from the second pass)."""
    differs = (prompt_ids != prompt_ids[:1]).any(0).nonzero()
    first_difference = int(differs[0]) if len(differs) else prompt_ids.shape[1]
    return min(first_difference, int(prompt_lengths.min()) - 1)


def repeated_cache(cache, repeats):
    """A new DynamicCache whose layers hold the given cache's keys / values repeated along the batch, keeping
    autograd (the given cache is left as it is). Plain layers, never cropped to a sliding window: the grouped
    path runs only where no window is reached (window_reached)."""
    layers = [(layer.keys.repeat_interleave(repeats, 0), layer.values.repeat_interleave(repeats, 0))
              for layer in cache.layers]
    return DynamicCache(ddp_cache_data=layers)


def check_groups(input_ids, attention_mask, loss_mask, prompt_lengths, group_size):
    """Clear errors for batches that do not have the grouped layout."""
    rows, width = input_ids.shape
    prompt_lengths = prompt_lengths.to(input_ids.device)
    if prompt_lengths.shape != (rows,) or prompt_lengths.dtype.is_floating_point:
        raise ValueError(f"token_logprobs: prompt_lengths {tuple(prompt_lengths.shape)} {prompt_lengths.dtype} "
                         f"must be integer [B] with B={rows}")
    if rows % group_size:
        raise ValueError(f"token_logprobs: batch of {rows} rows is not a whole number of groups of "
                         f"group_size={group_size}")
    row_lengths = attention_mask.long().sum(1)
    if not ((prompt_lengths >= 1) & (prompt_lengths <= row_lengths)).all():
        bad = int(((prompt_lengths < 1) | (prompt_lengths > row_lengths)).nonzero()[0])
        raise ValueError(f"token_logprobs: prompt_lengths[{bad}]={int(prompt_lengths[bad])} must lie in "
                         f"[1, {int(row_lengths[bad])}] (the row's attended length)")
    columns = torch.arange(width, device=input_ids.device)
    in_prompt = columns < prompt_lengths[:, None]
    if (loss_mask.bool() & (in_prompt | ~attention_mask.bool())).any():
        bad = int((loss_mask.bool() & (in_prompt | ~attention_mask.bool())).any(1).nonzero()[0])
        raise ValueError(f"token_logprobs: loss_mask row {bad} scores a prompt or padding position; the grouped "
                         f"path scores completion tokens only")
    grouped_lengths = prompt_lengths.view(-1, group_size)
    prompts = (input_ids * in_prompt).view(-1, group_size, width)
    same = (grouped_lengths == grouped_lengths[:, :1]).all(1) & (prompts == prompts[:, :1]).all(2).all(1)
    if not same.all():
        bad = int((~same).nonzero()[0])
        raise ValueError(f"token_logprobs: rows {bad * group_size}..{bad * group_size + group_size - 1} "
                         f"(group {bad}) do not share the same prompt_lengths and prompt tokens")


# ---- gradient checkpointing ------------------------------------------------------------------------------
def enable_gradient_checkpointing(model) -> None:
    """Checkpoint every decoder layer of the model in token_logprobs' training passes (non-reentrant): each
    layer keeps only its inputs, and its activations are recomputed in the backward. The switch is HF's own
    (the layers' `gradient_checkpointing` flag, so a model on which gradient_checkpointing_enable() was called
    is checkpointed the same way); token_logprobs then runs the checkpoint itself (checkpointed_layers),
    because HF's drops the KV cache that the grouped path needs."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # HF 5.x; the older name is deprecated
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


@contextlib.contextmanager
def checkpointed_layers(model):
    """While open, each decoder layer of the model whose gradient checkpointing is on (HF's flag) runs in
    torch.utils.checkpoint (non-reentrant) with its KV cache kept. HF's own checkpointing sets cache=None
    inside the layer, because replaying a layer that writes the cache would write it twice; here the layer
    sees the cache through a ReplayCache: its forward writes the real cache (the keys / values the next pass
    attends to, with autograd, as without checkpointing), and the recompute in backward only rebuilds the
    same keys / values from the past it kept. So the grouped path checkpoints its prompt pass (each prompt's
    KV produced once and kept for its completions; in backward each prompt layer is recomputed once, its
    gradient summing the prompt's own and all G completions' shares), its shared-prefix pass and its
    completion pass; the plain path checkpoints its one pass. Kept per layer until backward: the layer's
    input hidden states, plus the past KV it attended to (kept by the grouped path without checkpointing
    too). Values and gradients equal those of the pass without checkpointing.

    Outside a training pass with gradients (eval mode, no_grad: reference log-probs) layers run as they are."""
    flagged = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    layers = [m for m in flagged if isinstance(m, GradientCheckpointingLayer)]
    others = [m for m in flagged if not isinstance(m, GradientCheckpointingLayer)]
    own = [layer.__dict__.get("forward") for layer in layers]  # a forward set on the instance (hooks) stays
    for layer in layers:
        layer.forward = functools.partial(checkpointed_forward, layer, layer.forward)
        # Off while open: the checkpoint is checkpointed_forward's. (Transformers before the cache rename, e.g.
        # 5.19, checkpoint in the layer's __call__, outside any forward set on the instance.)
        layer.gradient_checkpointing = False
    for module in others:  # the backbone's flag would turn use_cache off (merge_with_config_defaults)
        module.gradient_checkpointing = False
    try:
        yield
    finally:
        for module in others + layers:
            module.gradient_checkpointing = True
        for layer, forward in zip(layers, own, strict=True):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


CACHE_KWARGS = ("cache", "past_key_values")  # the decoder layers' name for the cache (older HF: the second)


def checkpointed_forward(layer, forward, *args, **kwargs):
    """layer's forward(*args, **kwargs) in a non-reentrant checkpoint with a ReplayCache (see
    checkpointed_layers); a plain call outside training with gradients."""
    if not (layer.training and torch.is_grad_enabled()):
        return forward(*args, **kwargs)
    caches = []
    for name in CACHE_KWARGS:
        if kwargs.get(name) is not None:
            kwargs[name] = ReplayCache(kwargs[name])
            caches.append(kwargs[name])

    def run(*args):
        # Off during the call (HF's wrapper of forward would checkpoint again, dropping the cache), then as it was.
        flag, layer.gradient_checkpointing = layer.gradient_checkpointing, False
        try:
            return forward(*args, **kwargs)
        finally:
            layer.gradient_checkpointing = flag

    out = torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)
    for cache in caches:
        cache.cache = None  # written; the recompute reads only the past it kept
    return out


class ReplayCache:
    """A model's DynamicCache as one checkpointed decoder layer sees it. The layer's forward calls update
    once: the layer's past keys / values are kept, then the real cache is updated (which returns past + new,
    concatenated along the sequence). The recompute in backward calls update again with the recomputed new
    keys / values: it returns the kept past + those (the same values and shapes, by the same op) and writes
    nothing."""

    def __init__(self, cache):
        self.cache, self.past = cache, {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if layer_idx in self.past:  # the recompute in backward
            past_keys, past_values = self.past[layer_idx]
            return torch.cat([past_keys, key_states], dim=-2), torch.cat([past_values, value_states], dim=-2)
        if self.cache is None:
            raise RuntimeError("ReplayCache: a layer index that the checkpointed forward did not update")
        layers = self.cache.layers
        layer = layers[layer_idx] if layer_idx < len(layers) else None
        if layer is not None and layer.is_initialized:
            self.past[layer_idx] = (layer.keys, layer.values)
        else:  # DynamicLayer.update concatenates an empty tensor with the first keys / values
            self.past[layer_idx] = (key_states.new_empty(0), value_states.new_empty(0))
        out = self.cache.update(key_states, value_states, layer_idx, *args, **kwargs)
        written = self.cache.layers[layer_idx]
        if type(written) is not DynamicLayer or getattr(self.cache, "offloading", False):
            raise NotImplementedError(f"token_logprobs' gradient checkpointing replays plain DynamicLayer caches "
                                      f"only, not {type(written).__name__} (sliding-window or offloaded caches)")
        return out
