"""j1: train LLM judges with reinforcement learning (GRPO), the J1 recipe.

`from j1core import Judge` (j1core/judge/api.py) is imported on first use, so `import j1core` stays light.
"""


def __getattr__(name):
    if name == "Judge":
        from j1core.judge.api import Judge

        return Judge
    raise AttributeError(f"module 'j1core' has no attribute {name!r}")


__all__ = ["Judge"]
