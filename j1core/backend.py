"""Where the trainer's models live and how their gradients are applied: one process, plain PyTorch.

    python -m pytest tests/test_trainer.py -q

The trainer holds one backend object and calls it for everything that differs between one process and
ZeRO-3 (j1core/zero.ZeroBackend has the same methods): loading the models, the policy's full weights for the
rollout engine, the log-prob forward, backward, the optimizer step, sums across ranks, metric reduction and
the checkpoint files. Everything else in a step (rollout, rewards, advantages, loss) is the trainer's own.
"""
from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import torch

from j1core.checkpoint import load_checkpoint, save_checkpoint
from j1core.grpo import unbiased_std
from j1core.logprobs import enable_gradient_checkpointing, token_logprobs
from j1core.model import load_model, pick_device

CHECKPOINT = "checkpoint"


def freeze_embeddings(model) -> None:
    """Take the token embeddings (and an untied LM head) out of training. With tied embeddings the LM-head
    rows of the verdict letters set the judge's A-vs-B bias directly, and Adam moves them by about lr per
    coordinate every step however noisy their gradient: freezing them is one way to study that bias."""
    model.get_input_embeddings().weight.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(False)


def trained_parameters(model) -> list:
    """The parameters the optimizer updates (a checkpoint's optimizer state is saved in this order)."""
    return [p for p in model.parameters() if p.requires_grad]


def layer_groups(names: list[str]) -> list[list[str]]:
    """Parameter names in order, grouped by decoder layer ("...layers.<i>."); every other name alone."""
    groups: list[list[str]] = []
    keys: list[str] = []
    for name in names:
        match = re.search(r"(^|\.)layers\.\d+\.", name)
        key = name[:match.end()] if match else name
        if keys and keys[-1] == key:
            groups[-1].append(name)
        else:
            groups.append([name])
            keys.append(key)
    return groups


def policy_tensors(model):
    """(HF name, tensor) of every parameter, one decoder layer at a time; ZeRO-3 parameters (ds_id) are
    gathered per layer and copied, so the copy outlives the gather."""
    params = dict(model.named_parameters())
    for group in layer_groups(list(params)):
        tensors = [params[n] for n in group]
        zero = any(hasattr(p, "ds_id") for p in tensors)
        if zero:
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(tensors)
        with gather if zero else contextlib.nullcontext():
            for name, p in zip(group, tensors):
                yield name, p.detach().clone() if zero else p.detach()


class LocalBackend:
    """The policy (and the frozen reference with --beta > 0) on one device, torch AdamW, plain backward."""

    rank, world, is_main = 0, 1, True

    def __init__(self, cfg):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.policy = self.reference = self.optimizer = None

    def load_models(self, policy=None, tokenizer=None, reference=None):
        """(policy, tokenizer, reference): the given ones, or loaded from --model; builds the optimizer."""
        cfg = self.cfg
        if policy is None:
            policy, tokenizer = load_model(cfg.model, dtype="fp32", device=self.device, cache_dir=cfg.model_cache)
        if cfg.beta > 0 and reference is None:
            reference, _ = load_model(cfg.model, dtype="fp32", device=self.device, cache_dir=cfg.model_cache)
        if reference is not None:
            reference.requires_grad_(False).eval()
        if cfg.freeze_embeddings:
            freeze_embeddings(policy)
        if cfg.gradient_checkpointing:  # the policy only: the reference runs without gradients
            enable_gradient_checkpointing(policy)
        self.policy, self.reference = policy, reference
        # The fused kernel is several times faster than the per-tensor loop on CPU and GPU alike.
        self.optimizer = torch.optim.AdamW(trained_parameters(policy), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=True)
        return policy, tokenizer, reference

    def full_weights(self):
        """Context manager giving the policy's whole state dict (for the rollout engine's copy)."""
        return contextlib.nullcontext(dict(self.policy.state_dict()))

    def shard(self, pairs):
        """The pairs this process judges: all of them."""
        return pairs

    def logprobs(self, model, mb, temperature: float, with_entropy: bool, group_size: int):
        return token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"], temperature=temperature,
                              return_entropy=with_entropy, prompt_lengths=mb["prompt_lengths"],
                              group_size=group_size)

    def all_sum(self, value: float) -> float:
        return float(value)

    def batch_std(self, rewards: torch.Tensor) -> torch.Tensor:
        return unbiased_std(rewards)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss) -> None:
        loss.backward()

    def step(self, lr: float, loss: float) -> tuple[float, bool]:
        """Clip, then step unless the loss or the gradient norm is not finite -> (grad norm, applied)."""
        params = [p for p in self.policy.parameters() if p.grad is not None]
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self.zero_grad()
            return grad_norm, False
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        return grad_norm, True

    def reduce_metrics(self, metrics: dict, rows: int, tokens: int, token_keys) -> dict:
        return metrics

    def save(self, output: Path, tokenizer, state: dict) -> None:
        save_checkpoint(output / CHECKPOINT, self.policy, tokenizer, self.optimizer, state)

    def load(self, run_dir: Path) -> dict:
        """Restore the weights and optimizer of run_dir's checkpoint; return the trainer state saved with it."""
        return load_checkpoint(run_dir / CHECKPOINT, self.policy, self.optimizer)
