"""Tests for bench/vllm_env.py: how the benches' vLLM environment is installed (no pip is run).

    python -m pytest tests/bench/test_vllm_env.py -q
"""
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import vllm_env  # noqa: E402


def fake_pip(monkeypatch, statuses):
    """Replace subprocess.run with a recorder answering the given exit statuses in turn."""
    calls, answers = [], iter(statuses)

    def run(cmd, check):
        calls.append(cmd)
        return SimpleNamespace(returncode=next(answers))

    monkeypatch.setattr(vllm_env.subprocess, "run", run)
    return calls


def test_pip_install_uses_the_configured_indexes_alone_when_they_serve(monkeypatch):
    calls = fake_pip(monkeypatch, [0])
    assert vllm_env.pip_install(Path("venv/bin/python")) == 0
    assert len(calls) == 1
    assert calls[0][:4] == ["venv/bin/python", "-m", "pip", "install"]
    assert vllm_env.VLLM_REQUIREMENT in calls[0] and "--extra-index-url" not in calls[0]


@pytest.mark.parametrize("second", [0, 3])
def test_pip_install_adds_the_torch_cpu_index_only_after_a_failure(monkeypatch, second):
    calls = fake_pip(monkeypatch, [1, second])
    assert vllm_env.pip_install(Path("venv/bin/python")) == second
    assert len(calls) == 2
    assert "--extra-index-url" not in calls[0]
    assert calls[1] == calls[0] + ["--extra-index-url", vllm_env.TORCH_CPU_INDEX]


@pytest.mark.parametrize("flags, dtype", [(["avx2", "avx512f", "avx512_bf16"], "bfloat16"),
                                          (["avx2", "amx_bf16", "amx_tile"], "bfloat16"),
                                          (["avx2", "avx512f", "avx512_vnni"], "float32"),
                                          ([], "float32")])
def test_best_dtype_is_bfloat16_only_with_bf16_matrix_instructions(flags, dtype):
    assert vllm_env.best_dtype(flags) == dtype


def test_drop_broken_extras_uninstalls_only_installed_packages_that_fail_to_import(monkeypatch):
    installed, broken, calls = {"torchvision", "torchaudio"}, {"torchvision"}, []

    def run(cmd, check, capture_output=False):
        calls.append(cmd)
        if cmd[1] == "-c":  # the probe, run as it is with the import faked: 3 when installed and broken
            name = cmd[2].split("import ", 2)[2].split()[0]
            return SimpleNamespace(returncode=3 if name in installed and name in broken else 0)
        return SimpleNamespace(returncode=0)  # pip uninstall

    monkeypatch.setattr(vllm_env.subprocess, "run", run)
    assert vllm_env.drop_broken_extras(Path("venv/bin/python")) == ["torchvision"]
    uninstalls = [c for c in calls if c[1:4] == ["-m", "pip", "uninstall"]]
    assert uninstalls == [["venv/bin/python", "-m", "pip", "uninstall", "--quiet", "--yes", "torchvision"]]
    assert sum(c[1] == "-c" for c in calls) == len(vllm_env.EXTRAS)  # one probe each


@pytest.mark.parametrize("body, code", [("pass", 0), ("raise ModuleNotFoundError(name='{name}')", 0),
                                        ("raise ModuleNotFoundError(name='torch._C')", 3),
                                        ("raise RuntimeError('operator torchvision::nms does not exist')", 3)])
def test_drop_broken_extras_probe_tells_absent_and_importable_from_broken(tmp_path, monkeypatch, body, code):
    """The probe itself, run by this interpreter against a fake package standing in for torchvision."""
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text(body.format(name="torchvision") + "\n")
    real_run, codes = vllm_env.subprocess.run, []

    def run(cmd, check, capture_output=False):
        if cmd[1] != "-c" or "torchvision" not in cmd[2]:
            return SimpleNamespace(returncode=0)  # other packages, pip: not run
        done = real_run([sys.executable, "-c", cmd[2]], check=False, capture_output=True,
                        env={**os.environ, "PYTHONPATH": str(tmp_path)})
        codes.append(done.returncode)
        return done

    monkeypatch.setattr(vllm_env.subprocess, "run", run)
    removed = vllm_env.drop_broken_extras(Path("venv/bin/python"))
    assert codes == [code] and (removed == ["torchvision"]) == (code == 3)
