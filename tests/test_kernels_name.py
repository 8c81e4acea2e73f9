"""Our top-level package `kernels` must not be taken by transformers for Hugging Face's `kernels`.

    python -m pytest tests/test_kernels_name.py -q

transformers' is_kernels_available() finds any importable `kernels`, reads its version (distribution metadata,
else it imports the module and reads __version__) and uses the hub-kernel integration only for versions in
[KERNELS_MIN_VERSION, KERNELS_MAX_VERSION). The check runs in a fresh interpreter so that the probe (cached
with lru_cache) really sees our package first, then loads tiny models from a config and from a saved directory.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.version import Version

import kernels

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import sys, tempfile
import torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.utils import import_utils
from transformers.integrations import hub_kernels
from j1core.model import tiny_model

assert import_utils.is_kernels_available() is False, "transformers took j1's kernels for Hugging Face's"
ours = sys.modules.get("kernels")
assert ours is None or hasattr(ours, "fused_linear_logprob"), "an unexpected `kernels` package was imported"
assert not hasattr(hub_kernels, "get_kernel_hub"), "hub kernel helpers were imported from our package"
model, tokenizer = tiny_model("llama", seed=0)
ids = torch.tensor([[1, 2, 3, 4]])
with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    loaded = AutoModelForCausalLM.from_pretrained(tmp, local_files_only=True)
assert not loaded.use_kernels
with torch.no_grad():
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
import kernels
assert kernels.__file__.startswith(sys.argv[1]), kernels.__file__
print("ok", ours is not None)
"""


def test_transformers_does_not_take_our_kernels_package():
    result = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("ok"), result.stdout[-2000:]


def test_our_version_is_outside_the_hub_kernels_range():
    """Installed (pip install -e .), the probe reads the j1 distribution's version; uninstalled, __version__."""
    from transformers.utils.import_utils import KERNELS_MAX_VERSION, KERNELS_MIN_VERSION

    project_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert kernels.__version__ == project_version
    assert not Version(KERNELS_MIN_VERSION) <= Version(project_version) < Version(KERNELS_MAX_VERSION)
