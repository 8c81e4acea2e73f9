"""Tests for j1core/threads.py: the wait policy reaches a fresh interpreter's OpenMP runtime, the user's wins."""
import os
import subprocess
import sys

from j1core import threads

PROBE = ("import os, sys; from j1core.threads import set_wait_policy; applied = set_wait_policy(); "
         "print(applied, os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def run_probe(**env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_policy_is_set_in_a_fresh_process():
    applied, policy, spin = run_probe()
    assert applied == "True"
    assert {"OMP_WAIT_POLICY": policy, "GOMP_SPINCOUNT": spin} == {
        "OMP_WAIT_POLICY": threads.WAIT_POLICY.get("OMP_WAIT_POLICY", "None"),
        "GOMP_SPINCOUNT": threads.WAIT_POLICY.get("GOMP_SPINCOUNT", "None")}


def test_the_users_own_setting_wins():
    assert run_probe(OMP_WAIT_POLICY="ACTIVE")[:2] == ["False", "ACTIVE"]
    assert run_probe(GOMP_SPINCOUNT="5")[::2] == ["False", "5"]


def test_too_late_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401  (loaded: its OpenMP runtime has read the environment already)

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert threads.set_wait_policy() is False
    assert "OMP_WAIT_POLICY" not in os.environ


def test_entry_points_set_it_before_importing_torch():
    for script in ("train.py", "generate.py"):
        text = open(os.path.join(os.path.dirname(__file__), "..", script)).read()
        assert text.index("set_wait_policy()") < text.index("from j1core.errors import")
