"""Side-by-side report table: values in percent and changes against the first run."""
import json

import pytest

from j1core.eval.compare import comparison_table, load_report


def write_report(path, accuracy, flip):
    path.mkdir()
    overall = {"accuracy": accuracy, "consistent_accuracy": accuracy / 2, "flip_rate": flip, "tie_rate": None}
    (path / "report.json").write_text(json.dumps({"overall": overall, "meta": {"pairs": 10}}))


def test_table_shows_deltas_against_the_first(tmp_path):
    write_report(tmp_path / "a", 0.5, 0.9)
    write_report(tmp_path / "b", 0.7, 0.3)
    table = comparison_table([load_report(tmp_path / "a"), load_report(tmp_path / "b")], ["base", "trained"])
    assert "| accuracy | 50.0 | 70.0 (+20.0) |" in table
    assert "| flip_rate | 90.0 | 30.0 (-60.0) |" in table
    assert "tie_rate" not in table  # None everywhere: left out


def test_missing_report_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate.py judge"):
        load_report(tmp_path)
