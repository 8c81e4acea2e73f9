"""DeepSpeed ZeRO-3 as the trainer's backend: the policy sharded across ranks and machines.

    deepspeed --no_local_rank --num_gpus 2 train.py --zero-stage 3     (tests: pytest tests/test_zero.py)

ZeroBackend has the methods of j1core.backend.LocalBackend; the trainer's step is the same on both. What
each does here:
- load_models: the policy (and, with --beta > 0, the frozen reference) is built inside deepspeed.zero.Init
  (a live transformers HfDeepSpeedConfig makes from_pretrained do it), so no rank ever holds a full model while
  loading. The policy is wrapped in `LogprobModule`, whose forward is token_logprobs: that function reads the LM
  head weight outside the head's own forward, so the weight is registered as an external parameter of the
  wrapper and ZeRO-3 gathers it for the forward and again for the backward. The reference is a ZeRO-3
  inference engine (no optimizer), or a plain full copy on CPU with --ref-on-cpu. The optimizer is DeepSpeed's
  ZeRO-3 optimizer over torch AdamW (config `torch_adam`), so the update is the single-process arithmetic on
  each rank's partition; `gradient_clipping` = --max-grad-norm.
- full_weights: the parameters gathered (GatheredParameters) for the rollout engine's full copy, at start
  and once per step.
- shard: each rank judges a contiguous slice of the step's pairs (both orders and all G samples of a pair
  stay on one rank); --pairs-per-step must divide by the world size.
- all_sum / batch_std: the trainer weights micro-batches by their share of the global batch and divides
  --adv-scale batch advantages by the std of all ranks' rewards.
- backward: `managed_gradient_accumulation: false` with gradient_accumulation_steps 1, so engine.backward
  neither rescales nor steps; DeepSpeed averages the ranks' gradients at engine.step(), so each rank's loss is
  scaled by the world size and the average is the batch gradient.
- step: engine.step() with the step's learning rate in the base optimizer's param_groups. Non-finite
  gradients: DeepSpeed itself skips the update when the global gradient norm is inf or NaN (and zeroes the
  gradients); the trainer counts a bad step. Not covered: a non-finite loss whose gradients are finite.
- reduce_metrics: means weighted by each rank's samples or loss tokens, the reward std recomputed from the
  ranks' moments, timings as the maximum; only rank 0 logs and draws. flip_rate is weighted by samples, exact
  when both orders parse (forced verdicts), close otherwise.
- save/load: rank 0 writes the usual checkpoint directory, a plain HF model (weights consolidated from all
  ranks) loadable without DeepSpeed, with the trainer's JSON state; every rank writes its ZeRO partition of the
  fp32 master weights and AdamW state as safetensors + JSON under <output>/zero/step_N (no pickle). Resume
  restores those exactly and needs the same world size and a filesystem shared by all ranks.
Left out: --format mixed alternates formats by the pair's index within the rank's slice (the same as one
process when the slice size is even).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from j1core.backend import CHECKPOINT, freeze_embeddings, trained_parameters
from j1core.checkpoint import (
    TRAINER_STATE,
    capture_rng,
    read_trainer_state,
    resolve_checkpoint,
    save_checkpoint,
    to_json,
)
from j1core.errors import UserError
from j1core.logprobs import enable_gradient_checkpointing, token_logprobs
from j1core.model import attn_implementation, check_architecture, load_tokenizer, resolve_model_path

ZERO_DIR = "zero"
SAME_ON_ALL_RANKS = ("step", "lr", "grad_norm", "skipped", "bad_steps_total", "loss")


# ---- setup -----------------------------------------------------------------------------------------------
def init_distributed(cfg) -> tuple[int, int, torch.device]:
    """Join the process group (NCCL on GPUs, gloo on CPU); return (rank, world size, this rank's device)."""
    import deepspeed

    use_cuda = torch.cuda.is_available() and cfg.device != "cpu"
    local_rank = cfg.local_rank if cfg.local_rank >= 0 else int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    deepspeed.init_distributed(dist_backend="nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def deepspeed_config(cfg) -> dict:
    """The DeepSpeed config: the user's JSON (--deepspeed-config) or ZeRO --zero-stage (3 by default), plus the
    settings the trainer relies on (it owns micro-batching and gradient accumulation)."""
    if cfg.deepspeed_config:
        path = Path(cfg.deepspeed_config)
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(config, dict):
            raise UserError(f"{path}: a DeepSpeed config is one JSON object")
    else:
        config = {}
    zero = config.setdefault("zero_optimization", {})
    zero.setdefault("stage", cfg.zero_stage or 3)
    if zero["stage"] == 3:
        zero["overlap_comm"] = False  # DeepSpeed allows it with unmanaged accumulation only under stage 2
    config.setdefault("optimizer", {"type": "AdamW", "params": {
        "lr": cfg.lr, "weight_decay": cfg.weight_decay, "betas": [0.9, 0.999], "eps": 1e-8, "torch_adam": True}})
    config.setdefault("gradient_clipping", cfg.max_grad_norm)
    config.setdefault("steps_per_print", 2**31 - 1)
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1,
                  managed_gradient_accumulation=False)
    config.pop("train_batch_size", None)
    return config


def inference_config(config: dict) -> dict:
    """The reference model's ZeRO-3 config: the same sharding, no optimizer."""
    return {"zero_optimization": {"stage": 3, "overlap_comm": False}, "train_micro_batch_size_per_gpu": 1,
            "steps_per_print": config["steps_per_print"], "bf16": config.get("bf16", {"enabled": False}),
            "fp16": config.get("fp16", {"enabled": False})}


def load_causal_lm(cfg, device):
    """from_pretrained without .to(): under a live HfDeepSpeedConfig it builds the model inside zero.Init."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(cfg.model, cfg.model_cache), dtype=torch.float32,
        attn_implementation=attn_implementation(device), local_files_only=True)
    check_architecture(model.config)
    return model


class LogprobModule(torch.nn.Module):
    """token_logprobs of a causal LM as one module forward, so ZeRO-3 gathers the LM head it reads directly."""

    def __init__(self, model):
        super().__init__()
        import deepspeed

        self.model = model
        head = model.get_output_embeddings()
        for param in (head.weight, head.bias):
            if param is not None:
                deepspeed.zero.register_external_parameter(self, param)

    def forward(self, input_ids, attention_mask, loss_mask, temperature=1.0, return_entropy=False,
                prompt_lengths=None, group_size=1):
        return token_logprobs(self.model, input_ids, attention_mask, loss_mask, temperature=temperature,
                              return_entropy=return_entropy, prompt_lengths=prompt_lengths, group_size=group_size)


# ---- the backend -----------------------------------------------------------------------------------------
class ZeroBackend:
    """The trainer's backend under the deepspeed launcher: the methods of j1core.backend.LocalBackend, sharded."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.rank, self.world, self.device = init_distributed(cfg)
        self.is_main = self.rank == 0
        if cfg.pairs_per_step % self.world:
            raise UserError(f"--pairs-per-step {cfg.pairs_per_step} does not divide by the {self.world} ranks: "
                             "each rank judges an equal, contiguous slice of the step's pairs")
        self.ds_config = deepspeed_config(cfg)
        self.policy = self.reference = self.optimizer = self.ds = self.ref_ds = None

    def load_models(self, policy=None, tokenizer=None, reference=None):
        import deepspeed
        from transformers.integrations import HfDeepSpeedConfig

        if policy is not None or reference is not None:
            raise UserError("under DeepSpeed the models are built from --model inside zero.Init")
        cfg = self.cfg
        if tokenizer is None:
            tokenizer = load_tokenizer(cfg.model, cfg.model_cache)
        if cfg.beta > 0 and cfg.ref_on_cpu:  # loaded before zero.Init is switched on: a full copy per rank
            reference = load_causal_lm(cfg, "cpu").requires_grad_(False).eval()
        self.hf_ds_config = HfDeepSpeedConfig(self.ds_config)  # must stay alive while models are loaded
        policy = load_causal_lm(cfg, self.device)
        if cfg.freeze_embeddings:
            freeze_embeddings(policy)
        if cfg.gradient_checkpointing:  # the policy only: the reference runs without gradients
            enable_gradient_checkpointing(policy)
        module = LogprobModule(policy)
        self.ds, *_ = deepspeed.initialize(model=module, model_parameters=trained_parameters(module),
                                           config=self.ds_config)
        if cfg.beta > 0 and not cfg.ref_on_cpu:
            reference = load_causal_lm(cfg, self.device).requires_grad_(False).eval()
            self.ref_ds, *_ = deepspeed.initialize(model=LogprobModule(reference),
                                                   config=inference_config(self.ds_config))
        self.policy, self.reference, self.optimizer = policy, reference, self.ds.optimizer
        return policy, tokenizer, reference

    def gathered(self):
        """Context manager: every policy parameter whole on every rank while it is open."""
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.policy.parameters()))

    @contextlib.contextmanager
    def full_weights(self):
        with self.gathered():
            yield self.policy.state_dict()

    def shard(self, pairs):
        """This rank's contiguous slice of the step's pairs (both orders and all samples of a pair stay together)."""
        size = len(pairs) // self.world
        return pairs[self.rank * size:(self.rank + 1) * size]

    def logprobs(self, model, mb, temperature: float, with_entropy: bool, group_size: int):
        if model is self.reference and self.ref_ds is None:  # --ref-on-cpu
            mb = {k: v.cpu() for k, v in mb.items()}
            return token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"],
                                  temperature=temperature, prompt_lengths=mb["prompt_lengths"],
                                  group_size=group_size)
        engine = self.ds if model is self.policy else self.ref_ds
        return engine(mb["input_ids"], mb["attention_mask"], mb["loss_mask"], temperature=temperature,
                      return_entropy=with_entropy, prompt_lengths=mb["prompt_lengths"], group_size=group_size)

    def comm_device(self):
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def all_sum(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.comm_device())
        dist.all_reduce(t)
        return t.item()

    def batch_std(self, rewards: torch.Tensor) -> float:
        """Unbiased std of all ranks' rewards, from their counts, sums and sums of squares."""
        n, total, squares = (self.all_sum(float(x)) for x in (rewards.numel(), rewards.sum(), (rewards ** 2).sum()))
        return math.sqrt(max(squares - total * total / n, 0.0) / (n - 1)) if n > 1 else 0.0

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss) -> None:
        # The trainer weights each micro-batch by its share of the global batch; DeepSpeed averages the ranks'
        # gradients at step(), so each rank's part is scaled by the world size to make that average a sum.
        self.ds.backward(loss * self.world, scale_wrt_gas=False)

    def step(self, lr: float, loss: float) -> tuple[float, bool]:
        for group in self.optimizer.optimizer.param_groups:
            group["lr"] = lr
        self.ds.step()
        return float(self.ds.get_global_grad_norm()), bool(self.ds.was_step_applied())

    def reduce_metrics(self, local: dict, rows: int, tokens: int, token_keys) -> dict:
        """One step's metrics over all ranks: see pack_metrics for the rules."""
        keys = sorted(local)
        packed = pack_metrics(local, keys, token_keys, rows, tokens)
        sums = torch.tensor(packed["sum"], dtype=torch.float64, device=self.comm_device())
        maxes = torch.tensor(packed["max"], dtype=torch.float64, device=self.comm_device())
        dist.all_reduce(sums)
        dist.all_reduce(maxes, op=dist.ReduceOp.MAX)
        return unpack_metrics(local, keys, sums.tolist(), maxes.tolist())

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save(self, output: Path, tokenizer, state: dict) -> None:
        """Every rank its ZeRO partition under output/zero/step_N; rank 0 the consolidated HF checkpoint."""
        zero_dir = output / ZERO_DIR / f"step_{state['step']:08d}"
        write_zero_shard(zero_dir, self.rank, self.world, self.optimizer)
        dist.barrier()
        full = self.ds._zero3_consolidated_16bit_state_dict()  # collective; the full weights on rank 0
        if self.is_main:
            state = {**state, "world_size": self.world, "zero_dir": str(zero_dir.relative_to(output))}
            weights = {k.removeprefix("model."): v for k, v in full.items()}
            save_checkpoint(output / CHECKPOINT, ConsolidatedModel(self.policy, weights), tokenizer, None, state)
            for old in (output / ZERO_DIR).iterdir():
                if old != zero_dir:
                    shutil.rmtree(old, ignore_errors=True)
        dist.barrier()

    def load(self, run_dir: Path) -> dict:
        """Restore this rank's partition; return the trainer state with this rank's RNG state in it."""
        found = resolve_checkpoint(run_dir / CHECKPOINT)
        if found is None:
            raise FileNotFoundError(f"{run_dir / CHECKPOINT}: no complete checkpoint to resume from")
        state = read_trainer_state(found)
        if state.get("world_size") != self.world:
            raise UserError(f"{found / TRAINER_STATE}: field 'world_size' is {state.get('world_size')!r}; "
                             f"resuming the ZeRO partitions needs the same number of ranks ({self.world})")
        rng = read_zero_shard(run_dir / state["zero_dir"], self.rank, self.world, self.optimizer)
        return {**state, "rng": rng}


class ConsolidatedModel:
    """What save_checkpoint needs of a model, writing the weights gathered from all ranks."""

    def __init__(self, model, state_dict):
        self.model, self.state_dict = model, state_dict

    def save_pretrained(self, path, **kwargs):
        self.model.save_pretrained(path, state_dict=self.state_dict, **kwargs)


# ---- metric reduction ------------------------------------------------------------------------------------
def pack_metrics(local: dict, keys, token_keys, rows: int, tokens: int) -> dict:
    """Per key: weighted sums (value * weight, weight) for all-reduce SUM, and values for all-reduce MAX.

    Rules: SAME_ON_ALL_RANKS keys are taken as they are; *_seconds are the slowest rank's; tokens_per_second is
    all tokens over the slowest rank's time; loss statistics are means over loss tokens; reward_std comes from
    the ranks' first and second moments; every other number is a mean over samples. None counts as no value.
    """
    sums, maxes = [float(rows), float(tokens)], [sum(v for k, v in local.items() if k.endswith("_seconds"))]
    for key in keys:
        value, weight = local[key], float(tokens if key in token_keys else rows)
        if value is None or key in SAME_ON_ALL_RANKS:
            value, weight = 0.0, 0.0
        elif key == "reward_std":  # E[x^2] of the rank's rewards, from its unbiased std and mean
            value = ((rows - 1) * value ** 2 + rows * local["reward_mean"] ** 2) / rows
        sums += [float(value) * weight, weight]
        maxes.append(float(value) if key.endswith(("_seconds", "_max")) else 0.0)
    return {"sum": sums, "max": maxes}


def unpack_metrics(local: dict, keys, sums, maxes) -> dict:
    all_rows, all_tokens, slowest = sums[0], sums[1], maxes[0]
    out = {}
    for i, key in enumerate(keys):
        weighted, weight = sums[2 + 2 * i], sums[3 + 2 * i]
        if key in SAME_ON_ALL_RANKS:
            out[key] = local[key]
        elif key.endswith(("_seconds", "_max")):
            out[key] = maxes[1 + i]
        elif key == "tokens_per_second":
            out[key] = all_tokens / max(slowest, 1e-9)
        else:
            out[key] = weighted / weight if weight else None
    if "reward_std" in out and out["reward_std"] is not None:
        second, mean = out["reward_std"], out["reward_mean"]
        out["reward_std"] = max(0.0, (second - mean ** 2) * all_rows / max(all_rows - 1, 1)) ** 0.5
    return out


# ---- ZeRO partitions on disk (safetensors + JSON) --------------------------------------------------------
def shard_paths(zero_dir: Path, rank: int) -> tuple[Path, Path]:
    return zero_dir / f"rank_{rank:05d}.safetensors", zero_dir / f"rank_{rank:05d}.json"


def write_zero_shard(zero_dir: Path, rank: int, world: int, zero_optimizer) -> None:
    """This rank's fp32 master partition and AdamW state, from the ZeRO-3 optimizer's own state_dict."""
    from deepspeed.checkpoint.constants import FP32_FLAT_GROUPS, OPTIMIZER_STATE_DICT

    sd = zero_optimizer.state_dict()
    tensors = {f"fp32.{i}": t.detach().cpu().contiguous() for i, t in enumerate(sd[FP32_FLAT_GROUPS])}
    plain = {}
    for index, param_state in sd[OPTIMIZER_STATE_DICT]["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    meta = {"rank": rank, "world_size": world, "fp32_groups": len(sd[FP32_FLAT_GROUPS]),
            "param_groups": sd[OPTIMIZER_STATE_DICT]["param_groups"], "plain_state": plain,
            "overflow": bool(sd["overflow"]), "dynamic_loss_scale": bool(sd["dynamic_loss_scale"]),
            "rng": capture_rng()}
    tensor_path, json_path = shard_paths(zero_dir, rank)
    zero_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, tensor_path)
    json_path.write_text(to_json(meta, "ZeRO shard state"))


def read_zero_shard(zero_dir: Path, rank: int, world: int, zero_optimizer) -> dict:
    """Load this rank's partition into the ZeRO-3 optimizer (masters, AdamW state, model partition); return
    the rank's saved RNG state."""
    from deepspeed.checkpoint.constants import FP32_FLAT_GROUPS, LOSS_SCALER, OPTIMIZER_STATE_DICT

    tensor_path, json_path = shard_paths(zero_dir, rank)
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: this rank's ZeRO partition is missing")
    meta = json.loads(json_path.read_text())
    if meta["world_size"] != world:
        raise UserError(f"{json_path}: field 'world_size' is {meta['world_size']}, this run has {world} ranks")
    tensors = load_file(tensor_path)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value  # load_state_dict moves it to the partition
    for index, values in meta["plain_state"].items():
        state.setdefault(int(index), {}).update(values)
    for group in meta["param_groups"]:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    sd = {LOSS_SCALER: zero_optimizer.loss_scaler, "dynamic_loss_scale": meta["dynamic_loss_scale"],
          "overflow": meta["overflow"],
          OPTIMIZER_STATE_DICT: {"state": state, "param_groups": meta["param_groups"]},
          FP32_FLAT_GROUPS: [tensors[f"fp32.{i}"] for i in range(meta["fp32_groups"])]}
    shards = [None] * world
    shards[rank] = sd
    zero_optimizer.load_state_dict(shards, load_optimizer_states=True, load_from_fp32_weights=True)
    return meta["rng"]
