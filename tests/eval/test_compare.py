"""Side-by-side report table: values in percent and changes against the first run."""
import json

import pytest

from j1core.eval.compare import comparison_table, load_report


def write_report(path, accuracy, flip, length_bias=None):
    path.mkdir()
    overall = {"accuracy": accuracy, "consistent_accuracy": accuracy / 2, "flip_rate": flip, "tie_rate": None}
    report = {"overall": overall, "meta": {"pairs": 10}}
    if length_bias is not None:
        report["length_bias"] = length_bias
    (path / "report.json").write_text(json.dumps(report))


def test_table_shows_deltas_against_the_first(tmp_path):
    write_report(tmp_path / "a", 0.5, 0.9)
    write_report(tmp_path / "b", 0.7, 0.3)
    table = comparison_table([load_report(tmp_path / "a"), load_report(tmp_path / "b")], ["base", "trained"])
    assert "| accuracy | 50.0 | 70.0 (+20.0) |" in table
    assert "| flip_rate | 90.0 | 30.0 (-60.0) |" in table
    assert "tie_rate" not in table  # None everywhere: left out
    assert "length_bias" not in table  # reports from before it was measured


def test_length_bias_row_in_points(tmp_path):
    write_report(tmp_path / "a", 0.5, 0.9, length_bias=-0.01)
    write_report(tmp_path / "b", 0.7, 0.3, length_bias=0.58)
    table = comparison_table([load_report(tmp_path / "a"), load_report(tmp_path / "b")], ["base", "trained"])
    assert "| length_bias | -1.0 | +58.0 (+59.0) |" in table


def test_missing_report_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate.py judge"):
        load_report(tmp_path)
