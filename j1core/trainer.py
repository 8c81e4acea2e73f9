"""The GRPO trainer: one step reads top to bottom, rollout -> reward -> advantage -> loss -> step -> log -> save.

    python train.py --max-steps 3 --output runs/try

Single process by default; under the deepspeed launcher the policy is wrapped by j1core.zero (ZeRO-3).
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import torch

from j1core.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from j1core.config import TrainConfig
from j1core.data.pairs import PairStream, load_pairs, split_pairs
from j1core.engine.rollout import RolloutEngine
from j1core.grpo import group_advantages, policy_loss
from j1core.judge.rollout import generate_judgments, max_completion_tokens, pack_batch
from j1core.judge.step import build_prompts, score_step, step_metrics
from j1core.logprobs import token_logprobs
from j1core.model import load_model, pick_device, resolve_dtype
from j1core.runlog import MetricsLogger, plot_curves, progress_bar
from j1core.verdict_pass import one_pass_applies, verdict_loss, verdict_rollout


class BadStepsError(RuntimeError):
    pass



def load_training_pairs(cfg: TrainConfig):
    """The pairs training may see: builtin's train split, or a user/benchmark file minus its held-out part."""
    if cfg.data == "builtin":
        from j1core.data.builtin import builtin_pairs

        return builtin_pairs(split="train", seed=0)
    if cfg.benchmark:
        from j1core.data.benchmarks import load_benchmark

        pairs = load_benchmark(cfg.benchmark, cfg.data)
    else:
        pairs = load_pairs(cfg.data, skip_invalid=cfg.skip_invalid)
    return split_pairs(pairs, cfg.heldout_fraction, seed=cfg.seed)[0]


def freeze_embeddings(model) -> None:
    """Take the token embeddings (and an untied LM head) out of training. Why one would: with tied embeddings
    the LM-head rows of the verdict letters set the judge's A-vs-B bias directly, and Adam moves them by about
    lr per coordinate every step however noisy their gradient (in our runs freezing them did not remove the
    final bias; README, training section)."""
    model.get_input_embeddings().weight.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(False)


def trained_parameters(model) -> list:
    """The parameters the optimizer updates (a checkpoint's optimizer state is saved in this order)."""
    return [p for p in model.parameters() if p.requires_grad]


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then constant or cosine decay to zero at max_steps (step counts from 0)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    supports_one_pass = True  # one-letter verdicts sampled by the policy pass itself (off under DeepSpeed)

    def __init__(self, cfg: TrainConfig, policy=None, tokenizer=None, reference=None, pairs=None):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.is_main = True
        torch.manual_seed(cfg.seed)
        self.policy, self.tokenizer, self.reference = self.build_models(policy, tokenizer, reference)
        self.autocast_dtype = resolve_dtype(cfg.dtype)
        # One-letter verdicts without reasoning: the policy pass samples them itself (j1core/verdict_pass.py).
        self.one_pass = cfg.one_pass and self.supports_one_pass and one_pass_applies(cfg)
        self.engine = None if self.one_pass else self.build_engine()
        train_pairs = pairs if pairs is not None else load_training_pairs(cfg)
        self.stream = PairStream(train_pairs, seed=cfg.seed)
        self.optimizer = self.build_optimizer()
        self.max_completion_length = max_completion_tokens(cfg, self.tokenizer)
        self.step, self.bad_steps_in_row, self.bad_steps_total = 0, 0, 0
        self.output = Path(cfg.output)
        self.stop_requested = False
        if cfg.resume:
            self.resume(Path(cfg.resume))
        self.logger = MetricsLogger(self.output, tensorboard=cfg.tensorboard, enabled=self.is_main)
        if self.is_main:
            self.logger.truncate_after(self.step)

    # ---- construction (overridden by j1core.zero) ----------------------------------------------
    def build_models(self, policy, tokenizer, reference):
        cfg = self.cfg
        if policy is None:
            policy, tokenizer = load_model(cfg.model, dtype="fp32", device=self.device, cache_dir=cfg.model_cache)
        if cfg.beta > 0 and reference is None:
            reference, _ = load_model(cfg.model, dtype="fp32", device=self.device, cache_dir=cfg.model_cache)
        if reference is not None:
            reference.requires_grad_(False).eval()
        if cfg.freeze_embeddings:
            freeze_embeddings(policy)
        return policy, tokenizer, reference

    def build_engine(self):
        return RolloutEngine(self.policy, self.tokenizer, max_batch_tokens=self.cfg.max_batch_tokens)

    def build_optimizer(self):
        # The fused kernel is several times faster than the per-tensor loop on CPU and GPU alike.
        return torch.optim.AdamW(trained_parameters(self.policy), lr=self.cfg.lr,
                                 weight_decay=self.cfg.weight_decay, fused=True)

    def local_share(self, pairs):
        """The pairs this process judges (all of them; a rank's slice under DeepSpeed)."""
        return pairs

    def advantages(self, rewards):
        return group_advantages(rewards, self.cfg.group_size, scale=self.cfg.adv_scale)

    def backward(self, loss):
        loss.backward()

    def sync_engine(self):
        """Hand the updated policy weights to the rollout engine (a copy, refreshed in place)."""
        if self.engine is not None:
            self.engine.load_weights(self.policy)

    # ---- one step -------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, times = self.cfg, {}
        pairs = self.local_share(self.stream.take(cfg.pairs_per_step))
        prompts = build_prompts(pairs, cfg.format, self.tokenizer)

        t = time.perf_counter()
        if self.one_pass:  # the rollout is the policy pass's forward, kept for the backward below
            self.policy.train()
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                hidden, samples = verdict_rollout(self.policy, self.tokenizer, prompts, cfg, self.step, self.device)
        else:
            self.policy.eval()
            samples = generate_judgments(self.engine, self.tokenizer, prompts, cfg, step=self.step)
        times["rollout_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        texts = [[s.text for s in group] for group in samples]
        rewards = score_step(prompts, texts, cfg.reward, cfg.pairing, cfg.format_reward)
        flat_rewards = torch.tensor([r for group in rewards for r in group], dtype=torch.float32)
        advantages = self.advantages(flat_rewards)
        times["reward_seconds"] = time.perf_counter() - t

        if self.one_pass:
            stats, n_new = self.one_pass_update(hidden, samples, advantages, times)
        else:
            stats, n_new = self.engine_update(prompts, samples, advantages, times)

        total = sum(times.values())
        return {"step": self.step + 1, "reward_mean": flat_rewards.mean().item(),
                "reward_std": flat_rewards.std().item(), **step_metrics(prompts, texts), **stats,
                "completion_length": sum(len(s.token_ids) for g in samples for s in g) / flat_rewards.numel(),
                "lr": lr_at(cfg, self.step), **times, "tokens_per_second": n_new / max(total, 1e-9)}

    def one_pass_update(self, hidden, samples, advantages, times):
        """Backward from the hidden states the rollout kept, then the optimizer step -> (stats, trained tokens)."""
        t = time.perf_counter()
        with self.autocast():
            loss, stats = verdict_loss(self.policy, hidden, samples, advantages, self.cfg, self.max_completion_length)
        self.backward(loss)
        stats["loss"] = loss.item()
        times["loss_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        stats.update(self.optimizer_step(stats["loss"]))
        times["optimizer_seconds"] = time.perf_counter() - t
        return stats, len(advantages)

    def engine_update(self, prompts, samples, advantages, times):
        """Loss and optimizer steps over the engine's samples -> (stats, trained tokens)."""
        t = time.perf_counter()
        batch = pack_batch(prompts, samples, self.tokenizer.pad_token_id)
        ref_logp = self.reference_logprobs(batch)
        times["reference_seconds"] = time.perf_counter() - t
        stats = {}
        for _ in range(self.cfg.updates_per_batch):
            t = time.perf_counter()
            loss, stats = self.accumulate_gradients(batch, advantages, ref_logp)
            times["loss_seconds"] = times.get("loss_seconds", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            stats.update(self.optimizer_step(loss))
            times["optimizer_seconds"] = times.get("optimizer_seconds", 0.0) + time.perf_counter() - t
        self.sync_engine()
        return stats, int(batch["loss_mask"].sum())

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
            return token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"],
                                  temperature=self.cfg.temperature, return_entropy=with_entropy,
                                  prompt_lengths=mb["prompt_lengths"], group_size=self.cfg.group_size)

    @torch.no_grad()
    def reference_logprobs(self, batch):
        if self.cfg.beta == 0 or self.reference is None:
            return None
        out = torch.zeros_like(batch["rollout_logp"])
        for rows, mb in self.micro_batches(batch):
            out[rows, :mb["input_ids"].shape[1]] = self.logprobs(self.reference, mb).float().cpu()
        return out

    def accumulate_gradients(self, batch, advantages, ref_logp):
        """Backward over micro-batches, each weighted so the sum equals the loss of the whole batch."""
        cfg = self.cfg
        self.policy.train()
        self.optimizer.zero_grad(set_to_none=True)
        n_seqs, n_tokens = batch["loss_mask"].shape[0], batch["loss_mask"].sum().item()
        total_loss, sums = 0.0, {}
        for rows, mb in self.micro_batches(batch):
            logp, entropy = self.logprobs(self.policy, mb, with_entropy=True)
            logp = logp.float()
            width = mb["input_ids"].shape[1]
            old = logp.detach() if cfg.updates_per_batch == 1 else mb["rollout_logp"]
            ref = ref_logp[rows, :width].to(self.device) if ref_logp is not None else None
            loss, st = policy_loss(logp, old, ref, advantages[rows].to(self.device), mb["loss_mask"].float(),
                                   loss_type=cfg.loss_type, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                   beta=cfg.beta, max_completion_length=self.max_completion_length,
                                   kl_times_ratio=cfg.kl_times_ratio)
            mb_tokens = mb["loss_mask"].sum().item()
            mb_seqs = mb["input_ids"].shape[0]
            share = mb_tokens / n_tokens if cfg.loss_type in ("bnpo", "dapo") else mb_seqs / n_seqs
            self.backward(loss * share)
            total_loss += loss.item() * share
            st["entropy"] = (entropy.float() * mb["loss_mask"]).sum().item() / max(mb_tokens, 1)
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v * mb_tokens
        stats = {k: v / max(n_tokens, 1) for k, v in sums.items()}
        stats["loss"] = total_loss
        return total_loss, stats

    def optimizer_step(self, loss) -> dict:
        cfg = self.cfg
        params = [p for p in self.policy.parameters() if p.grad is not None]
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_steps_in_row += 1
            self.bad_steps_total += 1
            return {"grad_norm": grad_norm, "skipped": 1, "bad_steps_total": self.bad_steps_total}
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, self.step)
        self.optimizer.step()
        self.bad_steps_in_row = 0
        return {"grad_norm": grad_norm, "skipped": 0, "bad_steps_total": self.bad_steps_total}

    # ---- loop, checkpoints, signals -------------------------------------------------------------------
    def train(self) -> Path:
        cfg = self.cfg
        previous = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = progress_bar(cfg.max_steps, self.step, "grpo", cfg.progress)
        try:
            while self.step < cfg.max_steps and not self.stop_requested:
                metrics = self.train_step()
                self.step += 1
                self.logger.log(self.step, metrics)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward_mean']:.2f}",
                                acc=f"{metrics['accuracy'] or 0:.2f}", flip=f"{metrics['flip_rate'] or 0:.2f}")
                if self.bad_steps_in_row >= cfg.max_bad_steps:
                    self.save()
                    raise BadStepsError(f"{self.bad_steps_in_row} steps in a row had a non-finite loss or "
                                        f"gradient; saved step {self.step} to {self.output / 'checkpoint'}")
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                    self.save()
            self.save()
        finally:
            bar.close()
            self.logger.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        plot_curves(self.output / "metrics.jsonl", self.output / "curves.png")
        return self.output / "checkpoint"

    def request_stop(self, signum, frame):
        self.stop_requested = True

    def save(self):
        state = {"step": self.step, "rng": capture_rng(), "stream": self.stream.state_dict(),
                 "bad_steps_in_row": self.bad_steps_in_row, "bad_steps_total": self.bad_steps_total,
                 "config": vars(self.cfg)}
        save_checkpoint(self.output / "checkpoint", self.policy, self.tokenizer, self.optimizer, state)

    def resume(self, run_dir: Path):
        state = load_checkpoint(run_dir / "checkpoint", self.policy, self.optimizer)
        self.step = state["step"]
        self.stream.load_state_dict(state["stream"])
        self.bad_steps_in_row, self.bad_steps_total = state["bad_steps_in_row"], state["bad_steps_total"]
        restore_rng(state["rng"])
        self.sync_engine()

