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

from j1core.data.formats import parse_field_map
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
    fields: str | None = None
    data_split: str | None = None
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
    drop_equal_groups: bool = False
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
    # validation and checkpoints to choose from
    eval_every: int = 0
    eval_data: str | None = None
    eval_benchmark: str | None = None
    eval_limit: int = 64
    best_metric: str = "consistent_accuracy"
    keep_checkpoints: int = 0

    def __post_init__(self):
        choices = {"format": JUDGE_FORMATS, "reward": ("consistent", "correct"), "pairing": ("expected", "index"),
                   "lr_schedule": ("constant", "cosine"), "loss_type": ("grpo", "bnpo", "dapo", "dr_grpo"),
                   "adv_scale": ("group", "batch", "none"), "dtype": ("fp32", "bf16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')}: {getattr(self, name)!r} is not one of {allowed}")
        parse_field_map(self.fields)  # a bad --fields spec stops here, naming the flag
        if (self.fields or self.data_split) and (self.benchmark or self.data == "builtin"):
            raise ValueError("--fields and --data-split read a pairs file given as --data, not builtin or --benchmark")
        if self.group_size < 2:
            raise ValueError("--group-size must be at least 2: GRPO compares samples within a group")
        if self.drop_equal_groups and (self.zero_stage or self.deepspeed_config):
            raise ValueError("--drop-equal-groups: not with DeepSpeed (ranks would run different numbers of "
                             "micro-batches)")
        for name in ("pairs_per_step", "max_new_tokens", "max_steps", "micro_batch_size", "updates_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        check_validation(self)


def check_validation(cfg) -> None:
    """The flags of held-out evaluation and kept checkpoints (j1core/eval/during_training.py, j1core/rotation.py)."""
    from j1core.data.benchmarks import BENCHMARKS
    from j1core.eval.during_training import BEST_METRICS, ORDER_METRICS

    for name in ("eval_every", "keep_checkpoints"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 (off) or more")
    if cfg.eval_limit < 1:
        raise ValueError("--eval-limit must be at least 1")
    sources = BENCHMARKS + ("builtin", "jsonl")
    if cfg.eval_benchmark is not None and cfg.eval_benchmark not in sources:
        raise ValueError(f"--eval-benchmark: {cfg.eval_benchmark!r} is not one of {sources}")
    if cfg.eval_benchmark == "jsonl" and not cfg.eval_data:
        raise ValueError("--eval-benchmark jsonl needs --eval-data FILE (a pairs file)")
    if (cfg.eval_data or cfg.eval_benchmark) and not cfg.eval_every:
        raise ValueError("--eval-data / --eval-benchmark need --eval-every N (N > 0) to be used")
    if cfg.best_metric not in BEST_METRICS:
        raise ValueError(f"--best-metric: {cfg.best_metric!r} is not one of {BEST_METRICS}")
    if cfg.format == "pointwise" and cfg.best_metric in ORDER_METRICS:
        raise ValueError(f"--best-metric {cfg.best_metric} has no value for a pointwise judge (no orders)")


HELP = {
    "model": "local HF directory, or the alias smollm2-135m-instruct (bundled GGUF, cached as safetensors)",
    "model_cache": "where the dequantized bundled model is cached (default $J1_CACHE or ~/.cache/j1)",
    "device": "cpu, cuda, cuda:N or auto (cuda when available)",
    "dtype": "fp32, or bf16 (autocast with float32 master weights)",
    "data": "'builtin' (j1's own generated pairs), a pairs file (JSONL, JSON, Parquet) or saved HF dataset "
            "directory, or a benchmark path with --benchmark",
    "benchmark": "read --data through a benchmark adapter (judgebench, llmbar, rmbench, autoj, pandalm, gsm8k, "
                 "rewardbench, ppe, followbench)",
    "fields": "map other column names of --data to pair fields, e.g. prompt=question,chosen=response_a,"
              "rejected=response_b",
    "data_split": "the split of a saved DatasetDict directory given as --data (default: train, or its only split)",
    "skip_invalid": "count and skip invalid pair records instead of stopping at the first",
    "heldout_fraction": "fraction of a user dataset held out from training (builtin data has a fixed split)",
    "format": "judge format: pairwise | pairwise_scores | scores_verdict | pointwise | mixed (pairwise + pointwise)",
    "prompt_style": "judge prompt wording: compact (j1's), paper (the J1 paper's verbatim prompts), paper_plan "
                    "(plan, execute, then verdict: the paper's ablation prompt, reconstructed), or a template "
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
    "updates_per_batch": "optimizer updates per rollout batch (>1 uses the rollout log-probs as old)",
    "kl_times_ratio": "multiply the KL term by the importance ratio (as some TRL versions do)",
    "drop_equal_groups": "drop groups whose rewards are all equal before the loss (DAPO's dynamic sampling); "
                         "the loss is then the mean over the groups that carry signal",
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
    "eval_every": "judge held-out pairs every N steps and at the last (both orders, greedy; eval/* in metrics.jsonl; "
                  "0 = off)",
    "eval_data": "held-out pairs file for --eval-every (default: the held-out part of --data)",
    "eval_benchmark": "read the held-out pairs through a benchmark adapter or builtin (--eval-data: its path)",
    "eval_limit": "held-out pairs judged at each evaluation (a seeded sample, the same every time)",
    "best_metric": "held-out metric that picks best/: consistent_accuracy, accuracy, accuracy_both_orders, "
                   "accuracy_order0/1 (higher is better), flip_rate, unparseable_rate (lower is better)",
    "keep_checkpoints": "also keep the last K saves as checkpoint-step-N/ (0 = off; checkpoint/ is the latest)",
}

GROUPS = {
    "model": ("model", "model_cache", "device", "dtype"),
    "data": ("data", "benchmark", "fields", "data_split", "skip_invalid", "heldout_fraction"),
    "judge format and reward": ("format", "prompt_style", "reward", "pairing", "format_reward", "forced_verdict",
                                "max_think_tokens"),
    "rollout": ("pairs_per_step", "group_size", "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k",
                "max_batch_tokens"),
    "optimisation": ("max_steps", "lr", "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm",
                     "freeze_embeddings", "micro_batch_size", "gradient_checkpointing"),
    "GRPO": ("loss_type", "beta", "eps_low", "eps_high", "adv_scale", "updates_per_batch", "kl_times_ratio",
             "drop_equal_groups"),
    "output": ("output", "save_every", "resume", "tensorboard", "max_bad_steps", "progress", "seed"),
    "distributed": ("zero_stage", "deepspeed_config", "ref_on_cpu", "local_rank"),
    "validation and checkpoints": ("eval_every", "eval_data", "eval_benchmark", "eval_limit", "best_metric",
                                   "keep_checkpoints"),
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
