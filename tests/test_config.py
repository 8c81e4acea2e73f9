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
                                        (["--loss-type", "ppo"], "--loss-type"),
                                        (["--flip-length", "--data", "pairs.jsonl"], "--flip-length"),
                                        (["--flip-length", "--format", "pointwise"], "--flip-length")])
def test_bad_values_name_the_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        parse_config(argv)


def test_every_flag_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            assert f"`{action.option_strings[0]}" in readme, f"README misses {action.option_strings[0]}"


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads `1e-5` as a string: a float setting takes a numeric string (issue 23, case 14)."""
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-5\nbeta: '0.5'\n")
    cfg = parse_config(["--config", str(path)])
    assert cfg.lr == 1e-5 and cfg.beta == 0.5


@pytest.mark.parametrize("values, match", [({"group_size": "four"}, "key 'group_size': expected an integer"),
                                           ({"group_size": 2.5}, "key 'group_size': expected an integer"),
                                           ({"max_steps": None}, "key 'max_steps': expected an integer, got null"),
                                           ({"model": [1, 2]}, "key 'model': expected a string"),
                                           ({"progress": "no"}, "key 'progress': expected true or false"),
                                           ({"save_every": True}, "key 'save_every': expected an integer"),
                                           ({"lr": "fast"}, "key 'lr': expected a number"),
                                           ({"top_p": 2}, "key 'top_p': must be <= 1.0"),
                                           ({"resume_override": "lr"}, "key 'resume_override': expected a list")])
def test_config_values_are_checked_by_type_and_range(tmp_path, values, match):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=f"c.json: {match}"):
        parse_config(["--config", str(path)])


def test_broken_config_files_name_file_and_line(tmp_path):
    broken = tmp_path / "c.json"
    broken.write_text('{\n"lr": 1e-5,\n')
    with pytest.raises(ValueError, match="c.json:3: not valid JSON"):
        parse_config(["--config", str(broken)])
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 1\nbeta: [\n")
    with pytest.raises(ValueError, match="c.yaml:3: not valid YAML"):
        parse_config(["--config", str(yaml_file)])


def test_a_resume_override_list_in_a_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("resume_override: [lr, seed]\n")
    assert parse_config(["--config", str(path)]).resume_override == ("lr", "seed")
    assert parse_config(["--resume-override", "lr", "--resume-override", "seed"]).resume_override == ("lr", "seed")


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
