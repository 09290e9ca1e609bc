"""The CPU fast path's version gate (tinyr1.cpu.touchpoints): versions faked newer and older take the plain path and
say why in one line; the verified versions take the fast path; ``--cpu_fast_path true`` forces it with a warning."""

import json
import sys
import textwrap

import pytest
import torch
from trl import GRPOTrainer

import tinyr1
from tinyr1.commands import train
from tinyr1.cpu import touchpoints
from tinyr1.cpu.decode_loop import decode_loop, on_cpu

from ..commands.test_train import TINY, base_args
from ..conftest import REPO
from .test_decode_loop import tiny_qwen2
from .test_trainer import make_trainer, padded_batch


def forget() -> None:
    for cached in (touchpoints.fast_path_check, touchpoints.announce):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def fresh_gate():
    """Each test decides and announces afresh, and leaves no decision about faked versions behind."""
    forget()
    yield
    forget()


def fake(monkeypatch, package: str, found: str) -> None:
    """``package`` reports ``found``; the other gated packages report the pinned row's versions, so a test reads the
    same in every verified environment (make test, make test-latest)."""
    for other in ("trl", "transformers", "torch"):
        version = found if other == package else touchpoints.VERIFIED_ROWS[0].versions[other]
        if other == package or not getattr(sys.modules[other], "_tinyr1_faked", False):
            # sys.modules' entry, not the name imported above: importing trl replaces transformers' lazy module
            monkeypatch.setattr(sys.modules[other], "__version__", version)
            monkeypatch.setattr(sys.modules[other], "_tinyr1_faked", True, raising=False)


def decide(tmp_path, **config):
    """tinyr1's GRPOTrainer on the tiny model with ``config``: its fast-path decision as run.json records it."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import tinyr1

    model = AutoModelForCausalLM.from_pretrained(TINY)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    args = tinyr1.GRPOConfig(output_dir=str(tmp_path / "decide"), per_device_train_batch_size=4, num_generations=4,
                             max_completion_length=4, report_to="none", **config)
    return tinyr1.GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                              args=args, train_dataset=Dataset.from_list([{"prompt": "hi"}] * 4),
                              processing_class=tokenizer)


def test_the_installed_versions_are_a_verified_row():
    # The gate is only as good as this: the environment the equivalence tests run in is one of the verified rows
    # (make test: the pins; make test-latest: the newest releases pip resolves). A new release outside every row
    # fails here, naming it, before a user meets it.
    found = {p: touchpoints.installed_version(p) for p in ("trl", "transformers", "torch", "accelerate")}
    assert touchpoints.matching_row(found) is not None, f"{found} is no row of touchpoints.VERIFIED_ROWS"
    for part in touchpoints.PARTS:
        check = touchpoints.fast_path_check(part)
        assert check.allowed and check.line.startswith(f"CPU fast path ({part}) on: "), check.line
    assert touchpoints.changed_signatures() == []


def test_every_touchpoint_names_a_gated_package_or_says_why_not():
    packages = {t.package for t in touchpoints.TOUCHPOINTS}
    assert packages == {"trl", "transformers", "torch", "accelerate"}
    for point in touchpoints.TOUCHPOINTS:
        versions = {row.versions[point.package] for row in touchpoints.VERIFIED_ROWS}
        assert point.used_in.startswith("tinyr1.") and point.verified.split(" ", 1)[1].split(" / ") == \
            sorted(versions)
        assert point.package in touchpoints.PARTS["training"] or "not gated" in point.what


@pytest.mark.parametrize(("package", "found"), [("trl", "1.17.0"), ("trl", "1.15.2"), ("transformers", "5.24.0"),
                                                ("transformers", "4.57.1"), ("torch", "2.14.0+cpu"),
                                                ("torch", "2.12.1")])
def test_a_newer_or_older_version_takes_the_plain_path_and_says_why(monkeypatch, caplog, tmp_path, package, found):
    fake(monkeypatch, package, found)
    check = touchpoints.fast_path_check("training")
    assert not check.allowed
    assert check.line.startswith("CPU fast path (training) off: found trl ") and f"{package} {found}" in check.line
    assert "verified on trl 1.16.*, transformers 5.23.*, torch 2.13.* or trl 1.16.*, transformers 5.25.*, torch " \
        "2.14.*" in check.line
    assert "cpu_fast_path=True forces it" in check.line and "\n" not in check.line
    # the decode loop of eval and compare uses nothing of trl: only transformers and torch gate it
    assert touchpoints.fast_path_check("generation").allowed == (package == "trl")

    caplog.clear()
    trainer = decide(tmp_path)
    assert not trainer.uses_fast_path()
    printed = [line for line in caplog.messages if "fast path" in line]
    assert printed == [check.line.replace("cpu_fast_path=True", "GRPOConfig(cpu_fast_path=True)")]
    assert trainer.facts["cpu_fast_path"] == {"setting": "auto", "used": False, "reason": check.reason}


def test_a_patch_release_or_local_build_of_a_verified_minor_passes(monkeypatch):
    fake(monkeypatch, "trl", "1.16.3")
    fake(monkeypatch, "torch", "2.13.1+cu128")
    assert touchpoints.fast_path_check("training").allowed


def test_a_renamed_parameter_of_an_overridden_trl_method_takes_the_plain_path(monkeypatch):
    def renamed(self, prompt_ids, images, multimodal_fields, n_generations, has_tool_images=False):
        raise AssertionError("never called")

    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", renamed)
    check = touchpoints.fast_path_check("training")
    assert not check.allowed
    assert "GRPOTrainer._generate_single_turn's parameters changed (lost num_generations, gained n_generations)" \
        in check.reason and "trl 1.16.0" in check.reason


def test_the_verified_versions_take_the_fast_path_and_false_turns_it_off(caplog, tmp_path):
    trainer = decide(tmp_path)
    assert trainer.uses_fast_path() and isinstance(trainer, GRPOTrainer)
    assert "trainer: CPU fast path (tinyr1.cpu.fast_path; cpu_fast_path false for trl's own)" in caplog.messages
    assert trainer.facts["cpu_fast_path"]["setting"] == "auto" and trainer.facts["cpu_fast_path"]["used"]
    assert decide(tmp_path, cpu_fast_path=True).uses_fast_path()  # forcing inside the gate changes nothing
    off = decide(tmp_path, cpu_fast_path=False)
    assert not off.uses_fast_path()
    assert off.facts["cpu_fast_path"] == {"setting": "false", "used": False, "reason": "cpu_fast_path false"}


def test_activation_checkpointing_keeps_trls_step_and_says_why(caplog, tmp_path):
    trainer = decide(tmp_path, activation_checkpointing=True)
    assert not trainer.uses_fast_path()
    assert "trainer: trl's own GRPOTrainer step, not the CPU fast path: activation checkpointing is on" in \
        caplog.text
    assert "GRPOConfig(gradient_checkpointing=False) takes the fast path" in caplog.text  # the one field to change
    assert trainer.facts["cpu_fast_path"]["reason"].startswith("activation checkpointing is on")


def test_forcing_outside_the_gate_takes_the_fast_path_with_a_warning(monkeypatch, caplog, tmp_path):
    fake(monkeypatch, "trl", "1.17.0")
    caplog.clear()
    trainer = decide(tmp_path, cpu_fast_path=True)
    printed = [line for line in caplog.messages if "fast path" in line]
    assert len(printed) == 1
    assert printed[0].startswith("warning: CPU fast path forced by GRPOConfig(cpu_fast_path=True)")
    assert "found trl 1.17.0" in printed[0] and "verified on trl 1.16.*" in printed[0]
    assert trainer.uses_fast_path() and trainer.facts["cpu_fast_path"]["used"]


def test_the_trainer_outside_the_gate_runs_trls_own_code_unless_forced(monkeypatch, tmp_path, caplog):
    fake(monkeypatch, "transformers", "5.24.0")
    fast = make_trainer(tinyr1.GRPOTrainer, tmp_path)
    forced = make_trainer(tinyr1.GRPOTrainer, tmp_path / "forced", cpu_fast_path=True)
    assert not fast.uses_fast_path() and forced.uses_fast_path()
    assert caplog.text.count("CPU fast path (training) off: found") == 1  # announced once
    ids, mask = padded_batch(fast.processing_class)
    calls = []
    real = GRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", spy)
    with torch.no_grad():
        fast._get_per_token_logps_and_entropies(fast.model, ids, mask, 8, batch_size=6, compute_entropy=True)
        assert len(calls) == 1 and calls[0][1] == {"batch_size": 6, "compute_entropy": True}  # passed as trl gave
        forced._get_per_token_logps_and_entropies(forced.model, ids, mask, 8, batch_size=6, compute_entropy=True)
    assert len(calls) == 1  # the forced trainer computed it on the fast path


def test_the_decode_loop_of_eval_follows_the_gate_and_says_why_once(monkeypatch, caplog):
    model = tiny_qwen2()
    fake(monkeypatch, "trl", "1.17.0")  # the decode loop uses nothing of trl
    assert on_cpu(model) == {"custom_generate": decode_loop} and caplog.messages == []
    forget()
    fake(monkeypatch, "torch", "2.14.0")
    assert on_cpu(model) == {} and on_cpu(model) == {}
    assert caplog.messages == ["CPU fast path (generation) off: found transformers 5.23.0, torch 2.14.0; verified on "
                       "transformers 5.23.*, torch 2.13.* or transformers 5.25.*, torch 2.14.*. Generation uses "
                       "generate's own loop (slower, the same tokens)"]


@pytest.mark.parametrize(("given", "expected"), [([], None), (["--cpu_fast_path", "true"], True),
                                                 (["--cpu_fast_path", "false"], False)])
def test_cpu_fast_path_has_three_states_on_the_command_line(given, expected):
    assert train.parse_args(given, check_setup=False).args.cpu_fast_path is expected


@pytest.mark.parametrize(("text", "expected"), [("cpu_fast_path: true\n", True), ("cpu_fast_path: false\n", False),
                                                ("cpu_fast_path:\n", None)])
def test_cpu_fast_path_has_three_states_in_a_recipe(tmp_path, text, expected):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    assert train.parse_args(["--config", str(recipe)], check_setup=False).args.cpu_fast_path is expected


def shim(tmp_path, trl_version: str) -> dict:
    """Environment for a CLI run that sees ``trl.__version__ == trl_version`` (a sitecustomize set before tinyr1)."""
    folder = tmp_path / "shim"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""\
        import trl
        trl.__version__ = {trl_version!r}
        """))
    return {"PYTHONPATH": f"{folder}:{REPO / 'src'}"}


@pytest.mark.slow
def test_train_with_a_newer_trl_completes_on_plain_trl_and_says_why(cli, gsm8k_dir, tmp_path):
    env = shim(tmp_path, "1.17.0")
    out = tmp_path / "run"
    result = cli(*base_args(gsm8k_dir, out, "--max_steps", "1", "--save_strategy", "no"), cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    gate = [line for line in result.stdout.splitlines() if "CPU fast path" in line]
    found = ", ".join(f"{p} {touchpoints.installed_version(p)}" for p in ("transformers", "torch"))
    assert gate == [f"CPU fast path (training) off: found trl 1.17.0, {found}; verified on "
                    f"{touchpoints.verified_text(('trl', 'transformers', 'torch'))}. Training uses trl's own "
                    "GRPOTrainer (slower, the same step); --cpu_fast_path true forces it"]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 1 and run["trainer"] == "GRPOTrainer"
    assert run["cpu_fast_path"]["setting"] == "auto" and not run["cpu_fast_path"]["used"]
    assert "trl 1.17.0" in run["cpu_fast_path"]["reason"]

    forced_out = tmp_path / "forced"
    forced = cli(*base_args(gsm8k_dir, forced_out, "--max_steps", "1", "--save_strategy", "no", "--cpu_fast_path",
                            "true"), cwd=REPO, env=env)
    assert forced.returncode == 0, forced.stderr[-2000:]
    gate = [line for line in forced.stdout.splitlines() if "CPU fast path" in line]
    assert len(gate) == 1 and gate[0].startswith("warning: CPU fast path forced by --cpu_fast_path true, unverified")
    assert "found trl 1.17.0" in gate[0] and "verified on trl 1.16.*" in gate[0]
    run = json.loads((forced_out / "run.json").read_text())
    assert run["cpu_fast_path"]["setting"] == "true" and run["cpu_fast_path"]["used"]


def test_sampling_options_are_refused_outside_the_verified_trl(monkeypatch):
    from types import SimpleNamespace

    from tinyr1.infra.errors import TinyR1Error
    from tinyr1.training.sampling import check_sampling_options

    settings = SimpleNamespace(dynamic_sampling=True, curriculum=False)
    assert touchpoints.fast_path_check("sampling").allowed
    check_sampling_options(settings, 1, [])  # verified: accepted
    forget()
    fake(monkeypatch, "trl", "1.17.0")
    with pytest.raises(TinyR1Error, match=r"dynamic_sampling/curriculum: found trl 1\.17\.0; verified on trl 1\.16"):
        check_sampling_options(settings, 1, [])
    forget()
    monkeypatch.setitem(touchpoints.SAMPLING_OVERRIDDEN, "_generate_and_score_completions", ("self", "batch"))
    fake(monkeypatch, "trl", "1.16.0")
    assert "parameters changed" in touchpoints.fast_path_check("sampling").reason
