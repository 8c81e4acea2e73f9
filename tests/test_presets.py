"""The presets in configs/: every one loads, every key is a known setting, every line says where its value
comes from, cpu-demo is the default run, and the paper's preset trains on a tiny model.

    python -m pytest tests/test_presets.py -q
"""
import dataclasses
import re
from pathlib import Path

import pytest

from j1core.config import TrainConfig, parse_config, read_config_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
RUN_PLACE = {"output", "progress", "resume", "model_cache", "device", "tensorboard", "zero_stage",
             "deepspeed_config", "ref_on_cpu", "local_rank", "save_every", "max_bad_steps", "benchmark",
             "skip_invalid", "heldout_fraction", "data", "fields", "data_split", "freeze_embeddings",
             "kl_times_ratio", "eval_every", "eval_data", "eval_benchmark", "eval_limit", "best_metric",
             "keep_checkpoints", "truncate", "resume_override", "overwrite", "rollout_backend", "vllm_tensor_parallel",
             "vllm_gpu_memory", "vllm_sleep"}


def test_the_four_presets_are_there():
    assert {p.name for p in PRESETS} >= {"j1-llama-8b.yaml", "j1-llama-70b.yaml", "j1-qwen3-32b-multitask.yaml",
                                         "cpu-demo.yaml"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_each_preset_loads_with_known_keys_and_typed_values(path):
    values = read_config_file(path)
    cfg = TrainConfig(**values)  # unknown keys raise in read_config_file; bad choices in __post_init__
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        expected = type(defaults[key])
        if defaults[key] is not None:  # e.g. lr: 1e-6 without a dot would be read as a string by YAML 1.1
            assert isinstance(value, expected) or (expected is float and isinstance(value, int)), (key, value)
    assert cfg.format in ("pairwise", "mixed")


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_setting_line_says_where_it_comes_from(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            assert re.search(r"#\s*(paper|not stated|same as|8B preset|unused|not in the paper)", line), \
                f"{path.name}:{number}: {line}"


def test_cpu_demo_is_the_default_run():
    values = read_config_file(CONFIGS / "cpu-demo.yaml")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert values == {k: v for k, v in defaults.items() if k not in RUN_PLACE}


def test_paper_presets_follow_the_recipe():
    eight = read_config_file(CONFIGS / "j1-llama-8b.yaml")
    assert (eight["group_size"], eight["temperature"], eight["lr"], eight["beta"]) == (5, 1.0, 1e-6, 0.01)
    assert eight["forced_verdict"] is False and eight["pairing"] == "index" and eight["reward"] == "consistent"
    assert read_config_file(CONFIGS / "j1-llama-70b.yaml")["beta"] == 0.0
    assert read_config_file(CONFIGS / "j1-qwen3-32b-multitask.yaml")["format"] == "mixed"


# The CPU form of each paper preset (docs/reproducing.md): the preset as written on a tiny random model of its
# family, with the batch and the thought shrunk. At its own size a step is GPU work (docs/reproducing.md).
CPU_FLAGS = ["--max-steps", "2", "--pairs-per-step", "2", "--max-new-tokens", "64", "--dtype", "fp32"]


@pytest.mark.parametrize("name,family", [("j1-llama-8b.yaml", "llama3.1"), ("j1-llama-70b.yaml", "llama3.1"),
                                         ("j1-qwen3-32b-multitask.yaml", "qwen3")])
def test_a_paper_preset_trains_two_steps_on_a_tiny_model(tmp_path, name, family, monkeypatch):
    """The preset as written, on a tiny random model of the paper's family, with the batch and the thought
    shrunk to CPU size (CPU_FLAGS)."""
    import j1core.trainer
    from j1core.model import tiny_model
    from j1core.trainer import Trainer

    texts = []
    build = j1core.trainer.build_prompts

    def spy(pairs, fmt, tokenizer, style="compact", flip_length=False):
        prompts = build(pairs, fmt, tokenizer, style, flip_length)
        texts.extend(tokenizer.decode(p.ids) for p in prompts)
        return prompts

    monkeypatch.setattr(j1core.trainer, "build_prompts", spy)

    model, tokenizer = tiny_model(family)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    cfg = parse_config(["--config", str(CONFIGS / name), "--model", str(tmp_path / "model"), *CPU_FLAGS,
                        "--output", str(tmp_path / "run"), "--no-progress"])
    assert cfg.prompt_style == "paper" and cfg.group_size == 5 and cfg.max_new_tokens == 64
    Trainer(cfg).train()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert texts and all("act as an impartial judge" in t for t in texts)  # the paper's prompts were trained on
