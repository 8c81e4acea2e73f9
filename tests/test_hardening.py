"""The entry points under bad input: one line `j1: error: ...`, exit status 2, nothing lost (issue 23's cases).

    python -m pytest tests/test_hardening.py -q

train.py and generate.py run in-process through main(argv) on a tiny saved model; one test sends a real
SIGTERM to a real `python train.py` to see the status a scheduler sees.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import generate
import train
from j1core.data.builtin import builtin_pairs
from j1core.model import tiny_model
from j1core.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tokenizer = tiny_model("llama", seed=0, layers=1)
    path = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def finished_run(model_dir, tmp_path_factory):
    """A one-step run of the tiny model (flags: tiny_flags with --max-steps 1); tests copy it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "1")) == 0
    return run


def copy_of(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def tiny_flags(model_dir, out, *extra):
    return ["--model", str(model_dir), "--device", "cpu", "--output", str(out), "--max-steps", "2",
            "--pairs-per-step", "1", "--group-size", "2", "--max-think-tokens", "2", "--max-new-tokens", "4",
            "--micro-batch-size", "4", "--dtype", "fp32", "--no-progress", *map(str, extra)]


def pairs_file(path, n=6):
    rows = [p.to_dict() for p in builtin_pairs("train")[:n]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("j1: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


# ---- 1, 12, 13, 14: flags and configs ---------------------------------------------------------------------

@pytest.mark.parametrize("argv, names", [
    (["--temperature", "0"], "--temperature"), (["--temperature", "-1"], "--temperature"),
    (["--top-p", "0"], "--top-p"), (["--top-p", "5"], "--top-p"), (["--top-k", "-5"], "--top-k"),
    (["--eps-low", "-5"], "--eps-low"), (["--eps-high", "-1"], "--eps-high"),
    (["--warmup-steps", "-2"], "--warmup-steps"), (["--save-every", "-1"], "--save-every"),
    (["--beta", "-1"], "--beta"), (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--max-bad-steps", "0"], "--max-bad-steps"), (["--group-size", "2.5"], "--group-size"),
    (["--format", "essay"], "--format"), (["--nope"], "--nope")])
def test_bad_train_flags_are_one_line_and_status_2(argv, names, capsys):
    assert train.main(argv) == 2
    assert names in one_error_line(capsys)


@pytest.mark.parametrize("text, key", [("group_size: four\n", "group_size"), ("group_size: 2.5\n", "group_size"),
                                       ("max_steps: null\n", "max_steps"), ("model: [1, 2]\n", "model"),
                                       ("skip_invalid: 'no'\n", "skip_invalid"), ("save_every: true\n", "save_every"),
                                       ("lr: [\n", "c.yaml:")])
def test_bad_config_files_name_the_key(tmp_path, text, key, capsys):
    (tmp_path / "c.yaml").write_text(text)
    assert train.main(["--config", str(tmp_path / "c.yaml")]) == 2
    assert key in one_error_line(capsys)


def test_debug_shows_the_traceback(capsys):
    assert train.main(["--lr", "-1", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "j1: error: --lr" in err


@pytest.mark.parametrize("extra, flag", [(["--temperature", "-1"], "--temperature"), (["--top-p", "0"], "--top-p"),
                                         (["--max-new-tokens", "0"], "--max-new-tokens"),
                                         (["--chunk-size", "0"], "--chunk-size"), (["--samples", "0"], "--samples"),
                                         (["--dtype", "fp8"], "--dtype")])
def test_bad_judge_flags_are_one_line(tmp_path, extra, flag, capsys):
    argv = ["judge", "--model", "m", "--benchmark", "builtin", "--out", str(tmp_path / "o"), *extra]
    assert generate.main(argv) == 2
    assert flag in one_error_line(capsys)


# ---- 2, 4, 9: data files through the entry points -----------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b'{"id": 1}\n', b'{"id": "a", "prompt": "\xff"}\n'])
def test_train_on_an_unusable_file_names_it(model_dir, tmp_path, content, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(content)
    assert train.main(tiny_flags(model_dir, tmp_path / "run", "--data", data)) == 2
    assert str(data) in one_error_line(capsys)


def test_heldout_fraction_one_leaves_nothing_and_says_so(model_dir, tmp_path, capsys):
    data = pairs_file(tmp_path / "pairs.jsonl")
    assert train.main(tiny_flags(model_dir, tmp_path / "run", "--data", data, "--heldout-fraction", "1.0")) == 2
    assert "holds out all 6 pairs" in one_error_line(capsys)


def test_judge_on_a_broken_benchmark_file_names_it(model_dir, tmp_path, capsys):
    data = tmp_path / "LLMBar_Natural.json"
    data.write_text('{"input": "x"}')  # an object, not a list
    argv = ["judge", "--model", str(model_dir), "--benchmark", "llmbar", "--data", str(data), "--device", "cpu",
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert generate.main(argv) == 2
    assert f"{data}:1: field '(file)'" in one_error_line(capsys)


# ---- 22: pickled weights ------------------------------------------------------------------------------------

def test_a_pytorch_model_bin_is_refused_unread(tmp_path, model_dir, capsys):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((model_dir / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle: any read of it would fail differently")
    assert train.main(tiny_flags(folder, tmp_path / "run")) == 2
    line = one_error_line(capsys)
    assert "pytorch_model.bin" in line and "save_pretrained" in line and "safe_serialization=True" in line


# ---- 15, 19: stops and overwrites ---------------------------------------------------------------------------

def test_sigterm_saves_says_how_to_resume_and_exits_143(model_dir, tmp_path, monkeypatch, capsys):
    original = Trainer.train_step

    def step_then_sigterm(self):
        out = original(self)
        os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler: finish this step, save, stop
        return out

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    run = tmp_path / "run"
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "5")) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after step 1" in err and f"--resume {run}" in err
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert state["step"] == 1
    monkeypatch.setattr(Trainer, "train_step", original)
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "5", "--resume", run)) == 0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_a_finished_run_is_not_overwritten(model_dir, finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path)
    before = (run / "metrics.jsonl").read_text()
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "1", "--seed", "3")) == 2
    line = one_error_line(capsys)
    assert "already holds a run" in line and f"--resume {run}" in line and "--overwrite" in line
    assert (run / "metrics.jsonl").read_text() == before
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "1", "--seed", "3", "--overwrite")) == 0
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert state["config"]["seed"] == 3 and len((run / "metrics.jsonl").read_text().splitlines()) == 1


# ---- 18: resume with other settings ---------------------------------------------------------------------------

def test_resume_with_other_settings_is_refused_unless_overridden(model_dir, finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path)
    flags = tiny_flags(model_dir, run, "--max-steps", "2", "--resume", run)
    assert train.main([*flags, "--group-size", "4", "--lr", "1e-4"]) == 2
    line = one_error_line(capsys)
    assert "group_size: 2 -> 4" in line and "lr: 1.5e-05 -> 0.0001" in line and "max_steps: 1 -> 2" in line
    assert train.main([*flags, "--resume-override", "max_steps"]) == 0


def test_resume_from_another_model_of_the_same_shape_is_refused(model_dir, finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path)
    other = tmp_path / "other"
    model, tokenizer = tiny_model("llama", seed=1, layers=1)
    model.save_pretrained(other)
    tokenizer.save_pretrained(other)
    assert train.main(tiny_flags(other, run, "--max-steps", "2", "--resume", run,
                                 "--resume-override", "max_steps")) == 2
    assert "model: weights" in one_error_line(capsys)
    # the same model under another spelling of its path is the same model
    assert train.main(tiny_flags(f"{model_dir}/", run, "--max-steps", "2", "--resume", run,
                                 "--resume-override", "max_steps")) == 0


def test_a_real_sigterm_gives_status_143(model_dir, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "train.py", *tiny_flags(model_dir, run, "--max-steps", "1000")],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
            assert proc.poll() is None and time.time() < deadline, "train.py did not start training"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and (run / "checkpoint" / "COMPLETE").is_file()


# ---- 7, 16, 17: too-long pairs and damaged checkpoints through train.py ----------------------------------------

@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory):
    model, tokenizer = tiny_model("llama", seed=0, layers=1, max_position_embeddings=320)
    path = tmp_path_factory.mktemp("short-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_pair_longer_than_the_context_is_refused_dropped_or_cut(short_model_dir, tmp_path, capsys):
    data = pairs_file(tmp_path / "pairs.jsonl", n=6)
    long = {"id": "long", "prompt": "q", "chosen": "yes " * 2000, "rejected": "no", "source": "t"}
    with open(data, "a") as handle:
        handle.write(json.dumps(long) + "\n")
    flags = tiny_flags(short_model_dir, tmp_path / "run", "--data", data, "--max-steps", "1",
                       "--heldout-fraction", "0")
    assert train.main(flags) == 2
    assert "pair 'long' does not fit the model" in one_error_line(capsys)
    with pytest.warns(UserWarning, match="too_long=1"):
        assert train.main([*flags, "--skip-invalid"]) == 0
    assert train.main([*flags, "--truncate", "--overwrite"]) == 0


def test_a_damaged_checkpoint_is_refused_by_name_on_resume_and_as_a_model(model_dir, finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path)
    weights = run / "checkpoint" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4096:] = bytes(4096)  # zeros over the last weights
    weights.write_bytes(bytes(data))
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "2", "--resume", run,
                                 "--resume-override", "max_steps")) == 2
    assert f"{weights}: does not match its checksum" in one_error_line(capsys)
    assert train.main(tiny_flags(run / "checkpoint", tmp_path / "run2")) == 2
    assert f"{weights}: does not match its checksum" in one_error_line(capsys)


@pytest.mark.parametrize("step, match", [(-3, "field 'step' is -3"), (99, "at step 99, --max-steps is 2")])
def test_a_checkpoint_step_out_of_range_is_refused(model_dir, finished_run, tmp_path, step, match, capsys):
    run = copy_of(finished_run, tmp_path)
    state_file = run / "checkpoint" / "trainer_state.json"
    saved = json.loads(state_file.read_text())
    saved["state"]["step"] = step
    state_file.write_text(json.dumps(saved))
    (run / "checkpoint" / "checksums.json").unlink()  # an edit the checksums would catch first
    assert train.main(tiny_flags(model_dir, run, "--max-steps", "2", "--resume", run,
                                 "--resume-override", "max_steps")) == 2
    assert match in one_error_line(capsys)


def test_a_kv_budget_too_small_for_one_prompt_names_the_flag(model_dir, tmp_path, capsys):
    assert train.main(tiny_flags(model_dir, tmp_path / "run", "--max-batch-tokens", "8")) == 2
    assert "--max-batch-tokens 8 cannot hold" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()
