"""TRL's GRPOTrainer side of bench/grpo_step.py: the same GRPO steps, timed per phase by wrapping its methods.

    python bench/grpo_step.py          (runs this side in its own process; not meant to be run alone)

What each phase covers (TRL 1.16 with transformers' Trainer loop, HF generate, no vLLM unless asked):
- rollout:   GRPOTrainer._generate: tokenizing the prompts, model.generate for all G samples, decoding.
- reference: _get_per_token_logps_and_entropies called with the reference model (no grad, micro-batches of
             per_device_train_batch_size rows).
- policy:    forward + backward: training_step minus its _prepare_inputs (so only compute_loss + backward),
             summed over the gradient-accumulation micro-batches of the step.
- optimizer: gradient clipping (_clip_grad_norm) + optimizer.step (between the pre/post optimizer callbacks).
- step:      wall time between consecutive on_step_end callbacks (the first step from on_step_begin), so it
             also holds data loading, rewards, advantages, scheduler, logging bookkeeping.

Variants (bench/grpo_step.py's sides):
- "trl": TRL's defaults for this shape on CPU: HF generate (its fastest generation option that runs on CPU:
  vLLM colocate needs vLLM in the same environment and a GPU build, and transformers' continuous batching is
  the "trl-cb" variant), per_device_train_batch_size = --micro-batch completions with gradient accumulation
  over the rest of the prompts x G completions (TRL counts batch sizes in completions), one generation per step.
- "trl-skip-prompt": the same, with the fused LM head scoring only the completion positions. TRL does that on
  Triton devices only (trl.trainer.utils.add_fused_lm_head: `compact = _use_triton(device)`); on CPU it scores
  every prompt position too. This variant forces `compact` on, which is what TRL would do on a GPU.
- "trl-cb": use_transformers_continuous_batching=True (transformers' generate_batch); opt-in.
"""
from __future__ import annotations

import time
from collections import defaultdict

import torch
from transformers import TrainerCallback

from j1core.judge.rewards import correctness

PHASES = ("rollout", "reference", "policy", "optimizer")


def judge_correctness_reward(prompts, completions, gold, **_):
    """j1's per-order correctness reward (1 when the parsed verdict matches gold), as a TRL reward function."""
    return [correctness("pairwise", text, g) for text, g in zip(completions, gold)]


class StepClock(TrainerCallback):
    """Collects one record per optimizer step: wall time and the phase seconds the trainer accumulated."""

    def __init__(self, trainer_ref):
        self.trainer_ref, self.records, self.last_end, self.opt_start = trainer_ref, [], None, None

    def on_step_begin(self, args, state, control, **kw):
        if self.last_end is None:
            self.last_end = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kw):
        self.opt_start = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kw):
        self.trainer_ref[0].phase["optimizer"] += time.perf_counter() - self.opt_start

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        trainer = self.trainer_ref[0]
        record = {f"{k}_seconds": trainer.phase[k] for k in PHASES}
        record["policy_seconds"] = trainer.phase["train_step"] - trainer.phase["prepare_inputs"]
        record["step_seconds"] = now - self.last_end
        record["completion_tokens"] = trainer.phase["completion_tokens"]
        self.records.append(record)
        print(f"[trl] step {len(self.records)}: {record['step_seconds']:.1f} s", flush=True)
        trainer.phase = defaultdict(float)
        self.last_end = now


def timed_trainer_class():
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        phase: dict

        def _generate(self, prompts):
            t = time.perf_counter()
            out = super()._generate(prompts)
            self.phase["rollout"] += time.perf_counter() - t
            self.phase["completion_tokens"] += sum(len(ids) for ids in out[1])
            return out

        def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
            t = time.perf_counter()
            out = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
            if model is self.ref_model:
                self.phase["reference"] += time.perf_counter() - t
            return out

        def _prepare_inputs(self, generation_batch):
            t = time.perf_counter()
            out = super()._prepare_inputs(generation_batch)
            self.phase["prepare_inputs"] += time.perf_counter() - t
            return out

        def training_step(self, model, inputs, num_items_in_batch):
            t = time.perf_counter()
            out = super().training_step(model, inputs, num_items_in_batch)
            self.phase["train_step"] += time.perf_counter() - t
            return out

        def _clip_grad_norm(self, model):
            t = time.perf_counter()
            out = super()._clip_grad_norm(model)
            self.phase["optimizer"] += time.perf_counter() - t
            return out

    return TimedGRPOTrainer


def force_prompt_skipping():
    """Make TRL's fused LM head score completion positions only, as it does on Triton devices."""
    import trl.trainer.utils as trl_utils

    trl_utils._use_triton = lambda device: True  # read only by add_fused_lm_head's `compact`


def run_trl(model_dir, prompt_texts, prompt_ids, golds, args, output_dir, use_vllm=False, variant="trl") -> dict:
    """Train warmup + steps optimizer steps of prompts x G completions; return the per-step records."""
    from datasets import Dataset
    from trl import GRPOConfig

    if variant == "trl-skip-prompt":
        force_prompt_skipping()
    exact = getattr(args, "min_new_tokens", args.new_tokens)

    rows = args.prompts * args.G
    micro = min(args.micro_batch, rows)
    if rows % micro:
        raise ValueError(f"--micro-batch {micro} must divide prompts x G = {rows}")
    on_cpu = args.device == "cpu"
    config = GRPOConfig(
        output_dir=str(output_dir), report_to="none", save_strategy="no", logging_strategy="no",
        disable_tqdm=True, use_cpu=on_cpu, bf16=getattr(args, "dtype", "fp32") == "bf16", fp16=False,
        use_vllm=use_vllm,
        **({"vllm_mode": "colocate"} if use_vllm else {}),
        per_device_train_batch_size=micro, gradient_accumulation_steps=rows // micro,
        steps_per_generation=rows // micro, num_generations=args.G, num_iterations=1,
        max_completion_length=args.new_tokens, generation_kwargs={"min_new_tokens": exact} if exact else None,
        use_transformers_continuous_batching=variant == "trl-cb",
        temperature=1.0, top_p=1.0, top_k=0, beta=args.beta, learning_rate=1e-5, lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=1.0, gradient_checkpointing=False, max_steps=args.warmup + args.steps,
        dataloader_num_workers=0, seed=args.seed, log_completions=False,
        model_init_kwargs={"dtype": torch.float32})
    dataset = Dataset.from_dict({"prompt": prompt_texts, "gold": golds})
    trainer_ref = [None]
    clock = StepClock(trainer_ref)
    trainer = timed_trainer_class()(model=str(model_dir), reward_funcs=judge_correctness_reward, args=config,
                                    train_dataset=dataset, callbacks=[clock])
    trainer.phase = defaultdict(float)
    trainer_ref[0] = trainer
    check_same_ids(trainer.processing_class, prompt_texts, prompt_ids)
    trainer.train()
    return {"records": clock.records, "threads": torch.get_num_threads()}


def check_same_ids(tokenizer, prompt_texts, prompt_ids):
    """TRL tokenizes a plain-string prompt with tokenizer(text=[...]); it must give j1's ids for each prompt."""
    for text, ids in zip(prompt_texts, prompt_ids, strict=True):
        if tokenizer(text=[text])["input_ids"][0] != ids:
            raise RuntimeError("TRL would tokenize a judge prompt differently from j1; the comparison is off")
