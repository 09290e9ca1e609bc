"""The Python API (tinyr1.api): the documented example twice in one interpreter on the tiny model, the process left
as it was (threads, environment, signal handlers), the CLI's error messages, a signal's clean stop, a cheap import."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import tinyr1
from tinyr1.infra.errors import TinyR1Error

from .conftest import ASSETS, REPO

TINY = str(ASSETS / "tiny-qwen2")
RECIPE = REPO / "recipes" / "smollm2-135m-instruct" / "grpo-arith-cpu.yaml"
TASK = {"dataset_name": "reasoning-gym:chain_sum", "dataset_options": {"min_terms": 2, "max_terms": 2}}
# The recipe, shrunk to one quick step of the tiny model; a random model earns no arithmetic reward, so the length
# reward gives the group different scores (tests/train_helpers.py).
FAST = {"model_name_or_path": TINY, "dataset_limit": 8, "num_generations": 4, "per_device_train_batch_size": 4,
        "max_completion_length": 8, "max_steps": 1, "save_steps": 1000, "sample_every": 1,
        "eval_before_after": False, "reward_funcs": ["tests.train_helpers:length_reward", "correctness"],
        "reward_weights": [1.0, 1.0]}


def process_state() -> dict:
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd)
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest's: setup, then call
    return {"threads": torch.get_num_threads(), "environ": environ, "wakeup_fd": fd,
            "handlers": {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}}


@pytest.fixture
def guarded_process():
    """Two torch threads and a SIGTERM handler of the test's own, so a call that leaves its settings behind shows."""
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    torch.set_num_threads(2)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield process_state()
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, handler)


def test_the_documented_example_runs_twice_and_leaves_the_process_as_it_was(guarded_process, tmp_path):
    # The second recipe sets an environment variable and a thread count: both must apply to its call only.
    with_env = tmp_path / "with-env.yaml"
    with_env.write_text(RECIPE.read_text() + "\nenv: {TINYR1_API_TEST: set-by-recipe}\nnum_threads: 1\n")
    for attempt, recipe in enumerate((RECIPE, with_env)):
        run = tinyr1.train(recipe, **FAST, output_dir=tmp_path / f"run{attempt}")
        assert (run.status, run.exit_code, run.steps) == ("completed", 0, 1)
        assert run.output_dir == tmp_path / f"run{attempt}" and (run.output_dir / "model.safetensors").is_file()
        assert [row["step"] for row in run.metrics if "loss" in row] == [1]
        assert "rewards/length_reward/mean" in run.metrics[0] and run.series("reward")[0] == [1]
        assert run.facts["num_threads"] == (2, 1)[attempt]  # torch's setting as found, then the recipe's
        assert run.facts["threads_reason"].startswith(("set by the caller with torch.set_num_threads",
                                                       "num_threads")[attempt])
        assert "train completed: 1 step in " in repr(run)
        base = tinyr1.evaluate(TINY, **TASK, limit=4, max_new_tokens=8)
        after = tinyr1.evaluate(run.model_path, **TASK, limit=4, max_new_tokens=8)
        for result in (base, after):
            assert result["n"] == 4 and 0 <= result["accuracy_strict"] <= 1 and len(result.samples) == 4
            assert result.output_dir is None and "accuracy_strict" in repr(result)
        assert after["model"] == run.model_path and {"question", "completion"} <= set(after.samples[0])
        assert process_state() == guarded_process, f"attempt {attempt} changed the process"
    assert "TINYR1_API_TEST" not in os.environ


def test_the_other_commands_return_readable_objects(guarded_process, tmp_path):
    rows = tinyr1.prepare("reasoning-gym:chain_sum", limit=3, output=tmp_path / "rows.jsonl")
    assert len(rows) == 3 and rows[0]["prompt"][0]["role"] == "system" and "3 rows" in repr(rows)
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 3
    cold = tinyr1.sft(model_name_or_path=TINY, dataset_name="reasoning-gym:chain_sum", dataset_format="reasoning",
                      dataset_limit=2, max_steps=1, max_length=128, lora_r=4, save_strategy="no",
                      output_dir=tmp_path / "cold")
    assert cold.status == "completed" and (cold.output_dir / "adapter_model.safetensors").is_file()
    evaluation = tinyr1.evaluate(cold, **TASK, limit=2, max_new_tokens=4, output_dir=tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == evaluation["n"] == 2
    comparison = tinyr1.compare(TINY, cold, prompt=["What is 2 + 3?", "What is 4 - 1?"], max_new_tokens=4)
    assert comparison.markdown.count("\n## ") == 2 and "What is 4 - 1?" in str(comparison)
    reply = tinyr1.generate(cold, "What is 2 + 3?", max_new_tokens=4)
    assert isinstance(reply, str)
    report = tinyr1.report(cold)
    assert report.markdown_path == cold.output_dir / "report.md" and "tinyr1 run report" in report.markdown
    assert process_state() == guarded_process


def interrupting_reward(completions, trainer_state=None, **kwargs):
    """A reward that sends this process SIGINT once in training (not in tinyr1's sample call, which passes no
    trainer_state), as a Ctrl-C or a notebook's interrupt during step 1 would."""
    if trainer_state is not None and not getattr(interrupting_reward, "sent", False):
        interrupting_reward.sent = True
        os.kill(os.getpid(), signal.SIGINT)
    return [float(len(c[-1]["content"])) for c in completions]


def test_a_first_ctrl_c_returns_an_interrupted_run(guarded_process, tmp_path):
    run = tinyr1.train(RECIPE, **{**FAST, "max_steps": 4, "reward_funcs": ["tests.test_api:interrupting_reward"],
                                  "reward_weights": [1.0]}, output_dir=tmp_path / "stopped")
    assert (run.status, run.exit_code) == ("interrupted", 130)  # the CLI's exit code for the same stop
    assert run.steps < 4 and any(run.output_dir.glob("checkpoint-*"))
    assert process_state() == guarded_process  # the run's SIGINT handler and wakeup socket are gone


@pytest.mark.parametrize(("fields", "flags", "said", "message"), [
    ({"learning_rat": 1e-5}, ["--learning_rat", "1e-5"], "tinyr1.train(): unknown key 'learning_rat'",
     "unknown key 'learning_rat'; did you mean 'learning_rate'?"),
    ({"max_steps": 0}, ["--max_steps", "0"], "tinyr1.train(max_steps=0)",
     "must be -1 (train for num_train_epochs) or at least 1"),
    ({"num_generations": "many"}, ["--num_generations", "many"], "tinyr1.train(num_generations='many')",
     "'many' is not a valid int"),
])
def test_bad_keywords_name_the_argument_and_the_cli_its_flag(capsys, tmp_path, fields, flags, said, message):
    from tinyr1.cli import main

    with pytest.raises(TinyR1Error) as raised:
        tinyr1.train(RECIPE, **fields, output_dir=tmp_path / "never")
    assert str(raised.value).startswith(said) and message in str(raised.value) and "command line" not in str(raised)
    assert main(["train", "--config", str(RECIPE), *flags, "--output_dir", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyr1 train: error: ") and ("--" + flags[0][2:]) in err and "tinyr1.train(" not in err
    assert not (tmp_path / "never").exists()


def test_a_failed_call_undoes_the_recipes_environment(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("env: {TINYR1_API_TEST: set-by-recipe}\nlearning_rat: 1.0e-5\n")
    with pytest.raises(TinyR1Error, match=r"typo.yaml: unknown key 'learning_rat'; did you mean 'learning_rate'"):
        tinyr1.sft(recipe)
    assert "TINYR1_API_TEST" not in os.environ


def test_bad_keywords_of_the_other_commands():
    with pytest.raises(TinyR1Error, match=r"tinyr1.evaluate\(\): unknown key 'limt'; did you mean 'limit'\?"):
        tinyr1.evaluate(TINY, limt=3)
    with pytest.raises(TinyR1Error, match=r"tinyr1.evaluate\(limit=0\): must be at least 1"):
        tinyr1.evaluate(TINY, limit=0)
    with pytest.raises(TinyR1Error, match=r"tinyr1.compare\(max_new_tokens=-1\): must be at least 1"):
        tinyr1.compare(TINY, TINY, max_new_tokens=-1)
    with pytest.raises(TinyR1Error, match=r"tinyr1.generate\(num_threads=0\): must be at least 1"):
        tinyr1.generate(TINY, "hi", num_threads=0)
    with pytest.raises(TinyR1Error, match=r"tinyr1.prepare\(split=\[\]\): expected one value, got a list"):
        tinyr1.prepare("reasoning-gym:chain_sum", split=[])
    assert issubclass(tinyr1.CollapseError, tinyr1.TinyR1Error) and tinyr1.OutOfMemoryError.exit_code == 4


def test_import_is_cheap_and_changes_nothing():
    code = ("import os, sys, signal, json; env = dict(os.environ); handler = signal.getsignal(signal.SIGINT)\n"
            "import tinyr1, tinyr1.cli\n"
            "from tinyr1 import train, evaluate, TinyR1Error\n"
            "assert dict(os.environ) == env and signal.getsignal(signal.SIGINT) is handler\n"
            "print(json.dumps({'heavy': sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules), "
            "'names': sorted(tinyr1.__all__)}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["heavy"] == []
    assert {"train", "sft", "evaluate", "compare", "report", "generate", "prepare", "configure_cpu",
            "TinyR1Error", "CollapseError", "OutOfMemoryError"} <= set(found["names"])
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        tinyr1.trian  # noqa: B018


def test_help_documents_tinyr1s_fields_and_points_to_trls():
    import pydoc

    text = pydoc.render_doc(tinyr1.train, renderer=pydoc.plaintext)
    assert "train(config=None, /, *, model=None, reward_funcs=None, dataset=None, **fields)" in \
        text.replace("config: 'str | Path | None' = None", "config=None")
    assert "max_prompt_tokens (default 256): drop prompts longer than this many tokens" in text
    assert "trl's GRPOConfig or ModelConfig (https://huggingface.co/docs/trl)" in text
    assert "num_threads (default None): torch's CPU threads for this call" in text  # the API's meaning, not the CLI's
    assert "dataset_format (default 'alpaca'): alpaca | reasoning | messages" in tinyr1.sft.__doc__
    assert "SFTConfig" in tinyr1.sft.__doc__ and "split (default test)" in tinyr1.evaluate.__doc__


def shown_work(completions, **kwargs):
    """A reward defined in the caller's code: 1.0 for a completion that writes an equals sign."""
    return [1.0 if "=" in c[-1]["content"] else float(len(c[-1]["content"]) % 3) for c in completions]


def test_train_takes_python_functions_rows_and_a_loaded_model(guarded_process, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(8)]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(TINY), AutoTokenizer.from_pretrained(TINY)
    before = process_state()  # loading a model here may set variables of its own (torch's compile cache)
    run = tinyr1.train(model=(model, tokenizer), reward_funcs=[shown_work, "correctness"], dataset=rows,
                       num_generations=4, per_device_train_batch_size=4, max_completion_length=8, max_steps=1,
                       save_steps=1000, sample_every=1, output_dir=tmp_path / "run")
    assert (run.status, run.steps) == ("completed", 1)
    assert "rewards/shown_work/mean" in run.metrics[0] and "rewards/correctness_reward_func/mean" in run.metrics[0]
    recorded = (run.output_dir / "config.yaml").read_text()
    assert "- tests.test_api:shown_work\n- correctness\n" in recorded  # importable again by name
    assert run.samples[0]["answer"] in {str(i + 1) for i in range(8)}
    assert process_state() == before


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reward_funcs": [lambda text: [0.0]]}, r"tinyr1.train\(reward_funcs=...\): <lambda>\(text\) cannot be called"),
    ({"reward_funcs": [42]}, r"tinyr1.train\(reward_funcs=...\): 42 is neither a function nor a reward name"),
    ({"dataset": [{"question": "1 + 1?"}]}, r"tinyr1.train\(dataset=...\)\[0\]: missing field answer"),
    ({"dataset": [{"question": "1 + 1?", "answer": "1 + 1\n= 2"}]}, r"\[0\]: answer has no '#### <gold>' line"),
    ({"dataset": [{"prompt": [{"role": "user", "content": "12?"}], "answer": {"gold": "12"}}]},
     r"tinyr1.train\(dataset=...\)\[0\]: answer must be text or a number \(the gold answer\), got dict"),
    ({"dataset": [{"question": "bad " + chr(0xD800), "answer": "2"}]}, r"\[0\]: holds text that is not valid Unicode"),
    ({"dataset": "rows"}, r"rows: no such file or folder"),
    ({"dataset": 7}, r"tinyr1.train\(dataset=...\): expected a list of rows"),
    ({"model": 42}, r"tinyr1.train\(model=...\): expected a model name or path, a transformers model"),
    ({"model": TINY, "model_name_or_path": TINY}, r"give model= or model_name_or_path=, not both"),
])
def test_bad_python_objects_name_the_argument_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(TinyR1Error, match=message):
        tinyr1.train(**{"model_name_or_path": TINY, **kwargs} if "model" not in kwargs else kwargs,
                     output_dir=tmp_path / "never", max_steps=1)
    assert not (tmp_path / "never").exists()


def test_train_picks_threads_as_the_cli_does_unless_the_caller_set_them(monkeypatch):
    """``tinyr1.train``'s threads (``api_process.run_threads``): the CLI's choice when nobody set a count, for the
    call only; a count set by ``torch.set_num_threads``, ``configure_cpu`` or ``num_threads`` is kept."""
    from tinyr1.api_process import call_scope, run_threads
    from tinyr1.infra import device
    from tinyr1.infra.threads import torch_start_threads, usable_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    found, earlier = torch.get_num_threads(), device.configured()  # an in-process CLI test may have configured it
    start = torch_start_threads()
    try:
        device.restore_configured(None)  # as a process starts: nothing configured
        torch.set_num_threads(start)  # as torch starts a process where nobody set OMP_NUM_THREADS
        with call_scope():
            picked = run_threads(None)
            assert picked.why.startswith(usable_cores().why)  # "all 2 physical cores[, less 1 that other work...]"
            assert device.configured() is picked and torch.get_num_threads() == int(picked)  # the governor's too
        assert device.configured() is None and torch.get_num_threads() == start  # put back after the call

        torch.set_num_threads(start + 1)  # the caller's own count
        with call_scope():
            kept = run_threads(None)
            assert int(kept) == start + 1 and kept.why.startswith("set by the caller with torch.set_num_threads")
        with call_scope():
            assert (int(run_threads(1)), run_threads(1).why) == (1, "num_threads")
        assert torch.get_num_threads() == start + 1

        configured = device.cpu_threads(1)  # what tinyr1.configure_cpu() sets, without its allocator setting
        with call_scope():
            assert run_threads(None) is configured
    finally:
        device.restore_configured(earlier)
        torch.set_num_threads(found)


def test_replaced_rewards_drop_the_recipes_weights_and_a_cold_start_not_trained_is_named(tmp_path, caplog,
                                                                                      monkeypatch):
    """docs/python-api.md's example: the recipe's three weights were for its three rewards, not for the two given;
    and the recipe's own model is a cold start this folder has not trained yet."""
    def shows_work(completions, **kwargs):
        return [1.0 if "=" in c[-1]["content"] else 0.0 for c in completions]

    fields = {k: v for k, v in FAST.items() if k not in ("reward_funcs", "reward_weights")}
    run = tinyr1.train(RECIPE, reward_funcs=[shows_work, "correctness"], **fields, output_dir=tmp_path / "run")
    assert run.status == "completed" and run.facts["global_step"] == 1
    assert "reward_weights [1.0, 1.0, 1.0] dropped: they were for the recipe's reward_funcs, which " \
           "tinyr1.train(reward_funcs=...) replaces; give reward_weights= to set them" in caplog.text
    assert "reward_weights: null" in (tmp_path / "run" / "config.yaml").read_text()

    monkeypatch.chdir(tmp_path)  # a folder where make demo / the cold start never ran
    with pytest.raises(TinyR1Error, match=r"model_name_or_path outputs/smollm2-135m-instruct-sft-arith-coldstart: "
                                          r"not trained yet; it is what tinyr1.sft\(\".*sft-arith-coldstart-cpu.yaml"
                                          r"\"\) writes: run that first, or give model= another model"):
        tinyr1.train(RECIPE, max_steps=1, output_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()
