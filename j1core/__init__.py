"""j1: train LLM judges with reinforcement learning (GRPO), the J1 recipe."""
