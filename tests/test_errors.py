"""Tests for j1core/errors.py: a user error is one line and status 2, a bug keeps its traceback.

    python -m pytest tests/test_errors.py -q
"""
import pytest

from j1core.data.pairs import DataError
from j1core.errors import ArgumentParser, UserError, run_main


def fails_with(error):
    def main(argv):
        raise error
    return main


def test_a_user_error_is_one_line_and_status_2(capsys):
    assert run_main(fails_with(UserError("bad.jsonl:3: field 'chosen':\n missing")), []) == 2
    assert capsys.readouterr().err == "j1: error: bad.jsonl:3: field 'chosen': missing\n"


def test_a_data_error_is_a_user_error(capsys):
    assert run_main(fails_with(DataError("f.jsonl", 2, "chosen", "missing_field", "missing")), []) == 2
    assert capsys.readouterr().err == "j1: error: f.jsonl:2: field 'chosen': missing [missing_field]\n"


def test_a_missing_file_is_a_user_error(capsys):
    def main(argv):
        open("/nonexistent/j1/pairs.jsonl")
    assert run_main(main, []) == 2
    assert capsys.readouterr().err == "j1: error: /nonexistent/j1/pairs.jsonl: No such file or directory\n"


def test_debug_adds_the_traceback_and_is_taken_out_of_argv(capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        raise UserError("nope")
    assert run_main(main, ["--x", "--debug"]) == 2
    assert seen == [["--x"]] and "Traceback" in capsys.readouterr().err


def test_a_bug_is_not_hidden():
    with pytest.raises(ZeroDivisionError):
        run_main(fails_with(ZeroDivisionError("bug")), [])


def test_argparse_mistakes_are_user_errors():
    parser = ArgumentParser(prog="train.py")
    parser.add_argument("--n", type=int)
    with pytest.raises(UserError, match="train.py: argument --n: invalid int value: 'x'"):
        parser.parse_args(["--n", "x"])


def test_sigterm_outside_training_is_status_143(capsys):
    import os
    import signal

    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        return 0
    before = signal.getsignal(signal.SIGTERM)
    assert run_main(main, []) == 128 + signal.SIGTERM
    assert "j1: stopped by SIGTERM" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before
