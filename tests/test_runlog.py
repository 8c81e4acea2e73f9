"""Tests of j1core/runlog.py: the JSONL step log, resuming, TensorBoard, and the curves PNG.

    python -m pytest tests/test_runlog.py -q
"""
import importlib.util
import json

import pytest
import torch

from j1core.runlog import MetricsLogger, plot_curves, read_lines


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_log_is_one_flushed_line(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log(1, {"reward_mean": torch.tensor(0.5), "kl": 0.01})
    # readable before close: every line is flushed
    assert lines(tmp_path / "metrics.jsonl") == [{"step": 1, "reward_mean": 0.5, "kl": 0.01}]
    logger.log(2, {"reward_mean": float("nan")})
    logger.close()
    assert lines(tmp_path / "metrics.jsonl")[1] == {"step": 2, "reward_mean": None}


def test_resume_appends_and_truncates_redone_steps(tmp_path):
    first = MetricsLogger(tmp_path)
    for step in range(1, 6):
        first.log(step, {"reward_mean": step / 10})
    first.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "rew')  # a write torn by a kill

    resumed = MetricsLogger(tmp_path)
    resumed.truncate_after(3)
    resumed.log(4, {"reward_mean": 0.99})
    resumed.close()
    assert [(r["step"], r["reward_mean"]) for r in lines(tmp_path / "metrics.jsonl")] == \
        [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.99)]


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_lines(path)


def test_disabled_logger_writes_nothing(tmp_path):
    logger = MetricsLogger(tmp_path / "out", enabled=False)
    logger.log(1, {"kl": 0.1})
    logger.truncate_after(0)
    logger.close()
    assert not (tmp_path / "out").exists()


def test_tensorboard_events_or_one_warning(tmp_path, capsys):
    logger = MetricsLogger(tmp_path, tensorboard=True)
    logger.log(1, {"kl": 0.1, "note": "text is skipped"})
    logger.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    if importlib.util.find_spec("tensorboard") is not None:
        assert events and events[0].stat().st_size > 0
    else:
        assert not events
        assert capsys.readouterr().err.count("warning: TensorBoard") == 1
    assert lines(tmp_path / "metrics.jsonl") == [{"step": 1, "kl": 0.1, "note": "text is skipped"}]


def test_plot_curves_draws_present_keys_only(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(4):
        logger.log(step, {"reward_mean": step / 4, "kl": step / 100, "flip_rate": 0.5})
    logger.close()
    out = tmp_path / "plots" / "curves.png"
    drawn = plot_curves(tmp_path / "metrics.jsonl", out)
    assert drawn == ["reward_mean", "flip_rate", "kl"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_held_out_values_are_drawn_over_their_training_curves(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(1, 5):
        held_out = {"eval/consistent_accuracy": step / 8, "eval/accuracy": 0.5} if step % 2 == 0 else {}
        logger.log(step, {"consistent_accuracy": step / 10, **held_out})
    logger.close()
    drawn = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert drawn == ["consistent_accuracy", "eval/consistent_accuracy", "eval/accuracy"]
