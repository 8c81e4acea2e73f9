"""The GRPO trainer: one step reads top to bottom.

    python train.py --max-steps 3 --output runs/try

train_step: the step's pairs -> judge prompts (both orders) -> rollout on the engine -> rewards ->
group-relative advantages -> loss and backward over micro-batches -> optimizer step -> engine refresh ->
metrics. Where the models live (one process, or ZeRO-3 shards under the deepspeed launcher) is the
backend's business (j1core/backend.py, j1core/zero.py); the step is the same for both.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import time
from pathlib import Path

import torch

from j1core.backend import LocalBackend, policy_tensors
from j1core.checkpoint import TRAINER_STATE, capture_rng, read_trainer_state, resolve_checkpoint, restore_rng
from j1core.config import TrainConfig
from j1core.data.fit import context_length, fit_pairs
from j1core.data.formats import parse_field_map
from j1core.data.pairs import PairStream, load_pairs, split_pairs
from j1core.engine.precision import rollout_dtype, train_dtype
from j1core.engine.rollout import RolloutEngine
from j1core.errors import UserError
from j1core.eval.during_training import HeldoutEval, next_best
from j1core.grpo import drop_equal_groups, group_advantages, logp_gap_stats, policy_loss, truncated_is_weights
from j1core.judge.rollout import generate_judgments, max_completion_tokens, pack_batch
from j1core.judge.step import build_prompts, score_step, step_metrics
from j1core.model import resolve_dtype
from j1core.resume_check import check_resume, guard_output, model_fingerprint
from j1core.rotation import restore_latest, sync_checkpoints
from j1core.runlog import MetricsLogger, plot_curves, progress_bar


class BadStepsError(RuntimeError):
    pass


def uses_deepspeed(cfg: TrainConfig) -> bool:
    return bool(cfg.zero_stage or cfg.deepspeed_config or cfg.local_rank >= 0)


def data_splits(cfg: TrainConfig) -> tuple[list, list]:
    """(train, held-out) pairs of the run's --data: builtin's fixed splits, or a user/benchmark file split by
    --heldout-fraction."""
    if cfg.data == "builtin":
        from j1core.data.builtin import builtin_pairs

        return builtin_pairs(split="train", seed=0), builtin_pairs(split="heldout", seed=0)
    if cfg.benchmark:
        from j1core.data.benchmarks import load_benchmark

        pairs = load_benchmark(cfg.benchmark, cfg.data)
    else:
        pairs = load_pairs(cfg.data, skip_invalid=cfg.skip_invalid, fields=parse_field_map(cfg.fields),
                           split=cfg.data_split)
    return split_pairs(pairs, cfg.heldout_fraction, seed=cfg.seed)


def load_training_pairs(cfg: TrainConfig):
    """The pairs training may see: builtin's train split, or a user/benchmark file minus its held-out part.
    With --flip-length only the built-in pairs whose length relation it can reverse: in any other pair the
    longer response would earn the consistency reward in both orders."""
    train, heldout = data_splits(cfg)
    if cfg.flip_length:
        from j1core.data.builtin import length_flipped

        train = [pair for pair in train if length_flipped(pair) is not None]
    if not train:
        raise UserError(f"{cfg.data}: --heldout-fraction {cfg.heldout_fraction} holds out all {len(heldout)} pairs; "
                        "nothing is left to train on")
    return train


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then constant or cosine decay to zero at max_steps (step counts from 0)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """GRPO over judge prompts. policy/tokenizer/reference/pairs: given objects instead of loading them
    (tests); backend: a j1core.backend.LocalBackend or j1core.zero.ZeroBackend (default: chosen from cfg)."""

    def __init__(self, cfg: TrainConfig, policy=None, tokenizer=None, reference=None, pairs=None, backend=None):
        self.cfg = cfg
        if backend is None and uses_deepspeed(cfg):
            from j1core.zero import ZeroBackend

            backend = ZeroBackend(cfg)
        self.backend = backend or LocalBackend(cfg)
        self.device, self.is_main = self.backend.device, self.backend.is_main
        # --dtype auto resolved once, here: the saved config, and so a resume, holds what the run trained in
        dtype, why = train_dtype(cfg.dtype, self.device)
        if not self.ranks_agree(dtype == "bf16"):
            dtype, why = "fp32", "the ranks' devices differ in bfloat16 support"
        self.cfg = cfg = dataclasses.replace(cfg, dtype=dtype)
        if self.is_main:
            print(f"j1: training in {dtype} ({why})", flush=True)
        guard_output(cfg, remove=self.is_main)  # before anything is loaded or written
        torch.manual_seed(cfg.seed)
        self.policy, self.tokenizer, self.reference = self.backend.load_models(policy, tokenizer, reference)
        self.optimizer = self.backend.optimizer
        self.autocast_dtype = resolve_dtype(cfg.dtype)
        # the starting weights, which resume compares; streamed a decoder layer at a time (ZeRO-3: never whole)
        self.model_fingerprint = model_fingerprint(policy_tensors(self.policy))
        if cfg.rollout_backend == "vllm":
            self.engine = self.vllm_rollout()
        else:
            self.engine = self.rollout_engine()
        self.max_completion_length = max_completion_tokens(cfg, self.tokenizer)
        self.context = context_length(self.policy)
        train_pairs = pairs if pairs is not None else load_training_pairs(cfg)
        # Refuse (or cut, --truncate) what does not fit the context, on token counts, before any model call.
        kv_budget = cfg.max_batch_tokens - cfg.group_size * self.max_completion_length  # one prompt's KV share
        if kv_budget < 1:
            raise UserError(f"--max-batch-tokens {cfg.max_batch_tokens} cannot hold one prompt's {cfg.group_size} "
                            f"samples of up to {self.max_completion_length} tokens; raise it")
        train_pairs = fit_pairs(train_pairs, self.tokenizer, cfg.format, cfg.prompt_style, self.context,
                                self.max_completion_length, cfg.truncate, cfg.skip_invalid, where=cfg.data,
                                kv_budget=kv_budget)[0]
        self.stream = PairStream(train_pairs, seed=cfg.seed)
        self.step, self.bad_steps_in_row, self.bad_steps_total = 0, 0, 0
        self.output = Path(cfg.output)
        self.stop_requested, self.stop_signal = False, None
        self.best, self.saved_at = None, None  # best held-out step {"metric", "value", "step"}; last step saved
        self.heldout = HeldoutEval(cfg, self.tokenizer, self.backend, self.output) if cfg.eval_every else None
        if cfg.resume:
            self.resume(Path(cfg.resume))
        self.logger = MetricsLogger(self.output, tensorboard=cfg.tensorboard, enabled=self.is_main)
        if self.is_main:
            self.logger.truncate_after(self.step)

    # ---- one step -------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, times = self.cfg, {}
        pairs = self.backend.shard(self.stream.take(cfg.pairs_per_step))
        prompts = build_prompts(pairs, cfg.format, self.tokenizer, cfg.prompt_style, cfg.flip_length)
        self.check_lengths(prompts)

        t = time.perf_counter()
        self.policy.eval()
        samples = generate_judgments(self.engine, self.tokenizer, prompts, cfg, step=self.step)
        times["rollout_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        texts = [[s.text for s in group] for group in samples]
        rewards = score_step(prompts, texts, cfg.reward, cfg.pairing, cfg.format_reward)
        flat_rewards = torch.tensor([r for group in rewards for r in group], dtype=torch.float32)
        advantages = self.advantages(flat_rewards)
        times["reward_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        batch = pack_batch(prompts, samples, self.tokenizer.pad_token_id)
        dropped = {}
        if cfg.drop_equal_groups:  # dynamic sampling: only groups with unequal rewards reach the loss
            batch, advantages, dropped["informative_groups"] = drop_equal_groups(batch, advantages, flat_rewards,
                                                                                 cfg.group_size)
        ref_logp = self.reference_logprobs(batch)
        times["reference_seconds"] = time.perf_counter() - t
        stats = {}
        for update in range(cfg.updates_per_batch):
            t = time.perf_counter()
            loss, stats = self.accumulate_gradients(batch, advantages, ref_logp, first=update == 0)
            times["loss_seconds"] = times.get("loss_seconds", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            stats.update(self.optimizer_step(loss))
            times["optimizer_seconds"] = times.get("optimizer_seconds", 0.0) + time.perf_counter() - t
        self.sync_engine()
        stats.update(logp_gap_stats(batch["old_logp"], batch["rollout_logp"], batch["loss_mask"]))

        rows, tokens = batch["loss_mask"].shape[0], int(batch["loss_mask"].sum())
        token_keys = tuple(k for k in stats if k not in ("loss", "grad_norm", "skipped", "bad_steps_total"))
        metrics = {"step": self.step + 1, "reward_mean": flat_rewards.mean().item(),
                   "reward_std": flat_rewards.std().item(), **step_metrics(prompts, texts), **stats,
                   "completion_length": sum(len(s.token_ids) for g in samples for s in g) / flat_rewards.numel(),
                   "lr": lr_at(cfg, self.step), **dropped, **times,
                   "tokens_per_second": tokens / max(sum(times.values()), 1e-9)}
        return self.backend.reduce_metrics(metrics, rows, tokens, token_keys)

    def check_lengths(self, prompts):
        """The exact lengths (fit_pairs checked estimates): never hand the model a sequence past its context."""
        for p in prompts:
            if self.context is not None and len(p.ids) + self.max_completion_length > self.context:
                raise UserError(f"pair {p.pair_id!r}: judge prompt of {len(p.ids)} tokens + "
                                f"{self.max_completion_length} completion tokens exceeds the model's context "
                                f"({self.context}); use --truncate or shorter texts")

    def advantages(self, rewards):
        """Group-relative advantages; --adv-scale batch divides by the std of the whole (all ranks') batch."""
        if self.cfg.adv_scale != "batch":
            return group_advantages(rewards, self.cfg.group_size, scale=self.cfg.adv_scale)
        return group_advantages(rewards, self.cfg.group_size, scale="none") / (self.backend.batch_std(rewards) + 1e-4)

    def sync_engine(self):
        """Hand the updated policy weights to the rollout engine (its copy, refreshed in place)."""
        if self.cfg.rollout_backend == "vllm":  # streamed into vLLM, one gathered layer at a time under ZeRO-3
            self.engine.load_weights(self.policy)
            return
        with self.backend.full_weights() as weights:
            self.engine.load_weights(weights)

    def rollout_engine(self, dtype: torch.dtype | None = None) -> RolloutEngine:
        """j1's engine over the policy's full weights, in `dtype` (None: --rollout-dtype resolved)."""
        dtype = dtype or self.engine_dtype()
        with self.backend.full_weights() as weights:
            return RolloutEngine(self.policy, self.tokenizer, max_batch_tokens=self.cfg.max_batch_tokens,
                                 device=self.device, state_dict=weights, dtype=dtype)

    def ranks_agree(self, flag: bool) -> bool:
        """Whether every rank holds the same flag. Collectives: every rank calls this, whatever its flag."""
        world = self.backend.all_sum(1.0)
        return world == 1 or self.backend.all_sum(float(flag)) in (0.0, world)

    def engine_dtype(self) -> torch.dtype:
        """--rollout-dtype resolved (j1core/engine/precision.py); every rank takes bfloat16 only if all chose it."""
        dtype, why = rollout_dtype(self.cfg.rollout_dtype, self.policy, self.device)
        if not self.ranks_agree(dtype == torch.bfloat16):
            dtype, why = next(self.policy.parameters()).dtype, "the ranks measured differently: the weights' dtype"
        if self.is_main:
            print(f"j1: rollout engine in {str(dtype).removeprefix('torch.')} ({why})", flush=True)
        return dtype

    def vllm_rollout(self):
        """vLLM in this process (j1core/engine/vllm_backend.py), built from --model, then given the policy's weights."""
        from j1core.engine.vllm_backend import VLLMRollout
        from j1core.model import resolve_model_path

        cfg = self.cfg
        engine = VLLMRollout(resolve_model_path(cfg.model, cfg.model_cache), self.policy, self.tokenizer,
                             max_batch_tokens=cfg.max_batch_tokens, dtype=cfg.dtype, device=self.device,
                             tensor_parallel=cfg.vllm_tensor_parallel, gpu_memory=cfg.vllm_gpu_memory,
                             sleep=cfg.vllm_sleep, seed=cfg.seed)
        engine.load_weights(self.policy)
        return engine

    # ---- log-probs and loss ---------------------------------------------------------------------------
    def micro_batches(self, batch):
        """Slices of the step's batch of whole groups (about micro_batch_size rows), each trimmed to its own
        longest sequence."""
        group = self.cfg.group_size
        size = max(group, self.cfg.micro_batch_size // group * group)
        for start in range(0, batch["input_ids"].shape[0], size):
            rows = slice(start, start + size)
            width = int(batch["attention_mask"][rows].sum(1).max())
            yield rows, {k: (v[rows, :width] if v.dim() == 2 else v[rows]).to(self.device) for k, v in batch.items()}

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.cfg.dtype == "bf16")

    def logprobs(self, model, mb, with_entropy=False):
        """Per-token log-probs; each group's prompt runs once and its G completions attend to its KV."""
        with self.autocast():
            return self.backend.logprobs(model, mb, self.cfg.temperature, with_entropy, self.cfg.group_size)

    @torch.no_grad()
    def reference_logprobs(self, batch):
        if self.cfg.beta == 0 or self.reference is None:
            return None
        out = torch.zeros_like(batch["rollout_logp"])
        for rows, mb in self.micro_batches(batch):
            out[rows, :mb["input_ids"].shape[1]] = self.logprobs(self.reference, mb).float().cpu()
        return out

    def accumulate_gradients(self, batch, advantages, ref_logp, first: bool = True):
        """Backward over micro-batches, each weighted so that the sum over all micro-batches (of all ranks)
        is the loss of the whole batch -> (that loss, this process's per-token stats). The first update's
        log-probs (the policy that sampled, as the trainer computes it) are kept as batch["old_logp"]: the old
        log-probs of later updates, and what --tis-cap weighs the sampler's log-probs against."""
        cfg = self.cfg
        self.policy.train()
        self.backend.zero_grad()
        n_tokens = batch["loss_mask"].sum().item()
        all_seqs, all_tokens = (self.backend.all_sum(x) for x in (batch["loss_mask"].shape[0], n_tokens))
        total_loss, sums = 0.0, {}
        if first:
            batch["old_logp"] = torch.zeros_like(batch["rollout_logp"])
        for rows, mb in self.micro_batches(batch):
            logp, entropy = self.logprobs(self.policy, mb, with_entropy=True)
            logp = logp.float()
            width = mb["input_ids"].shape[1]
            old = logp.detach() if first else mb["old_logp"]
            if first:
                batch["old_logp"][rows, :width] = old.cpu()
            tis = truncated_is_weights(old, mb["rollout_logp"], cfg.tis_cap) if cfg.tis_cap > 0 else None
            ref = ref_logp[rows, :width].to(self.device) if ref_logp is not None else None
            loss, st = policy_loss(logp, old, ref, advantages[rows].to(self.device), mb["loss_mask"].float(),
                                   loss_type=cfg.loss_type, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                   beta=cfg.beta, max_completion_length=self.max_completion_length,
                                   kl_times_ratio=cfg.kl_times_ratio, is_weights=tis)
            if tis is not None:
                st["tis_weight"] = (tis * mb["loss_mask"]).sum().item() / max(mb["loss_mask"].sum().item(), 1)
            mb_tokens = mb["loss_mask"].sum().item()
            mb_seqs = mb["input_ids"].shape[0]
            share = mb_tokens / all_tokens if cfg.loss_type in ("bnpo", "dapo") else mb_seqs / all_seqs
            self.backend.backward(loss * share)
            total_loss += loss.item() * share
            st["entropy"] = (entropy.float() * mb["loss_mask"]).sum().item() / max(mb_tokens, 1)
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v * mb_tokens
        stats = {k: v / max(n_tokens, 1) for k, v in sums.items()}
        stats["loss"] = self.backend.all_sum(total_loss)
        return stats["loss"], stats

    def optimizer_step(self, loss) -> dict:
        grad_norm, applied = self.backend.step(lr_at(self.cfg, self.step), loss)
        self.bad_steps_in_row = 0 if applied else self.bad_steps_in_row + 1
        self.bad_steps_total += not applied
        return {"grad_norm": grad_norm, "skipped": int(not applied), "bad_steps_total": self.bad_steps_total}

    # ---- loop, checkpoints, signals -------------------------------------------------------------------
    def train(self) -> Path:
        cfg = self.cfg
        previous = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = progress_bar(cfg.max_steps, self.step, "grpo", cfg.progress)
        try:
            while self.step < cfg.max_steps and not self.stop_requested:
                metrics = self.train_step()
                self.step += 1
                new_best = False
                if self.heldout is not None and self.heldout.due(self.step):
                    metrics.update(self.heldout.run(self.engine, self.step))
                    best, self.best = self.best, next_best(self.best, cfg.best_metric, metrics, self.step)
                    new_best = self.best is not best
                self.logger.log(self.step, metrics)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward_mean']:.2f}",
                                acc=f"{metrics['accuracy'] or 0:.2f}", flip=f"{metrics['flip_rate'] or 0:.2f}")
                if self.bad_steps_in_row >= cfg.max_bad_steps:
                    self.save()
                    raise BadStepsError(f"{self.bad_steps_in_row} steps in a row had a non-finite loss or "
                                        f"gradient; saved step {self.step} to {self.output / 'checkpoint'}")
                if new_best or (cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps):
                    self.save()
            if self.saved_at != self.step:
                self.save()
        finally:
            bar.close()
            self.logger.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        plot_curves(self.output / "metrics.jsonl", self.output / "curves.png")
        return self.output / "checkpoint"

    def request_stop(self, signum, frame):
        """SIGINT/SIGTERM: finish the step, save, and let the entry point exit with 128 + signum. A second SIGINT
        does not wait (the last saved checkpoint stays whole: saves swap it in atomically)."""
        if self.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop_requested, self.stop_signal = True, signum

    def state_dict(self) -> dict:
        """Everything besides weights and optimizer that a resumed run needs to continue exactly."""
        return {"step": self.step, "rng": capture_rng(), "stream": self.stream.state_dict(),
                "bad_steps_in_row": self.bad_steps_in_row, "bad_steps_total": self.bad_steps_total,
                "config": vars(self.cfg), "model_fingerprint": self.model_fingerprint, "best": self.best,
                "rollout_dtype_used": str(self.engine.decoder.dtype) if self.cfg.rollout_backend == "engine" else None}

    def load_state_dict(self, state: dict, where: str = TRAINER_STATE) -> None:
        for name in ("step", "bad_steps_in_row", "bad_steps_total"):
            value = state.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"{where}: field {name!r} is {value!r}, expected a whole number >= 0")
        if state["step"] >= self.cfg.max_steps:
            raise UserError(f"{where}: the checkpoint is at step {state['step']}, --max-steps is {self.cfg.max_steps}: "
                            "nothing left to train (raise --max-steps with --resume-override max_steps)")
        stream = state.get("stream")
        if not isinstance(stream, dict) or not {"seed", "epoch", "position", "num_pairs", "fingerprint"} <= set(stream):
            raise UserError(f"{where}: field 'stream' missing or incomplete")
        self.step = state["step"]
        try:
            self.stream.load_state_dict(stream)
        except UserError as err:
            raise UserError(f"{where}: field 'stream': {err}") from None
        self.bad_steps_in_row, self.bad_steps_total = state["bad_steps_in_row"], state["bad_steps_total"]
        self.best = state.get("best")
        # --rollout-dtype auto is measured once per run: a resumed run samples in what its first part chose
        used = {"torch.float32": torch.float32, "torch.bfloat16": torch.bfloat16}.get(state.get("rollout_dtype_used"))
        if self.cfg.rollout_dtype == "auto" and self.cfg.rollout_backend == "engine" and used not in (
                None, self.engine.decoder.dtype):
            self.engine = self.rollout_engine(used)
        restore_rng(state.get("rng"), where)

    def save(self):
        self.backend.save(self.output, self.tokenizer, self.state_dict())
        self.saved_at = self.step
        if self.is_main:  # best/ and checkpoint-step-N/ (j1core/rotation.py): files only, rank 0
            sync_checkpoints(self.output, self.step, self.cfg.keep_checkpoints, self.best and self.best["step"])

    def resume(self, run_dir: Path):
        """Continue run_dir's checkpoint, after checking that its settings and starting model are this run's."""
        if self.backend.world == 1:  # checkpoint/ gone: the newest complete checkpoint-step-N/ instead
            restore_latest(run_dir)
        found = resolve_checkpoint(run_dir / "checkpoint")
        if found is None:
            raise UserError(f"{run_dir}: no complete checkpoint to resume from (no {run_dir / 'checkpoint'})")
        check_resume(read_trainer_state(found), self.cfg, self.model_fingerprint, found / TRAINER_STATE)
        self.load_state_dict(self.backend.load(run_dir), found / TRAINER_STATE)
        self.sync_engine()
        if self.is_main and run_dir.resolve() == self.output.resolve():  # finish what a kill after a save left
            sync_checkpoints(self.output, self.step, self.cfg.keep_checkpoints, self.best and self.best["step"])
