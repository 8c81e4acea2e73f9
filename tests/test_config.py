"""train.py flags: defaults, config files, precedence, validation, and the README's flag reference."""
import json
from pathlib import Path

import pytest

from j1core.config import TrainConfig, build_parser, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_dataclass():
    assert parse_config([]) == TrainConfig()


def test_flags_are_kebab_case_and_typed():
    cfg = parse_config(["--group-size", "6", "--lr", "3e-6", "--no-forced-verdict", "--format", "pointwise"])
    assert cfg.group_size == 6 and cfg.lr == 3e-6 and cfg.forced_verdict is False and cfg.format == "pointwise"


def test_command_line_beats_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"group-size": 8, "max_steps": 5}))
    cfg = parse_config(["--config", str(path), "--max-steps", "7"])
    assert cfg.group_size == 8 and cfg.max_steps == 7


def test_yaml_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("beta: 0.01\nformat: mixed\n")
    cfg = parse_config(["--config", str(path)])
    assert cfg.beta == 0.01 and cfg.format == "mixed"


def test_unknown_setting_in_file_names_it(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"group_sise": 8}))
    with pytest.raises(ValueError, match="group_sise"):
        parse_config(["--config", str(path)])


@pytest.mark.parametrize("argv, flag", [(["--format", "essay"], "--format"), (["--group-size", "1"], "--group-size"),
                                        (["--loss-type", "ppo"], "--loss-type")])
def test_bad_values_name_the_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        parse_config(argv)


def test_every_flag_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            assert f"`{action.option_strings[0]}" in readme, f"README misses {action.option_strings[0]}"


def test_rollout_backend_and_off_policy_flags():
    cfg = parse_config(["--tis-cap", "2", "--vllm-tensor-parallel", "2"])
    assert cfg.rollout_backend == "engine" and cfg.tis_cap == 2.0 and cfg.vllm_tensor_parallel == 2
    for bad in (["--rollout-backend", "sglang"], ["--tis-cap", "-1"], ["--vllm-gpu-memory", "0"]):
        with pytest.raises(ValueError, match="rollout-backend|tis-cap|vllm-gpu-memory"):
            parse_config(bad)
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ValueError, match="vllm is not installed"):
            parse_config(["--rollout-backend", "vllm"])
