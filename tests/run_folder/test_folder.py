"""The run folder: what a claim accepts, what --overwrite_output_dir removes (only tinyr1's files), resume
checks, run.json, out of memory; and train's max_prompt_tokens filter."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tinyr1.infra.errors import TinyR1Error
from tinyr1.run_folder.checkpoints import stamp
from tinyr1.run_folder.folder import MARKER, RunDir
from tinyr1.run_folder.lock import LOCK

from ..conftest import ASSETS, REPO


def fake_run(folder):
    """What a finished run leaves, written through RunDir exactly as train/sft do."""
    run = RunDir.claim(folder, "train", resume=False, overwrite=False)
    stamp(folder / "checkpoint-1", run.run_id)  # what the run's callback does before the Trainer saves
    (folder / "checkpoint-1" / "trainer_state.json").write_text('{"global_step": 1}')
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    (folder / "README.md").write_text("model card written by the Trainer\n")
    run.write_run_json("completed", model="m")
    return run


def test_overwrite_removes_only_what_tinyr1_wrote(tmp_path):
    folder = tmp_path / "run"
    fake_run(folder)
    assert set(json.loads((folder / MARKER).read_text())["paths"]) == {"checkpoint-1", "metrics.jsonl",
                                                                       "README.md", "run.json"}
    (folder / "my-notes.txt").write_text("the user's own file, added later\n")
    (folder / "my-data").mkdir()
    (folder / "my-data" / "x.csv").write_text("1\n")
    with pytest.raises(TinyR1Error, match="already holds a tinyr1 train run"):
        RunDir.claim(folder, "train", resume=False, overwrite=False)
    RunDir.claim(folder, "train", resume=False, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK, MARKER, "my-data", "my-notes.txt"]
    assert (folder / "my-notes.txt").read_text() == "the user's own file, added later\n"
    # The fresh run's files are recorded, the user's never are: a second overwrite still spares them.
    again = RunDir.claim(folder, "train", resume=False, overwrite=True)
    (folder / "run.json").write_text("{}")
    again.record()
    RunDir.claim(folder, "train", resume=False, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK, MARKER, "my-data", "my-notes.txt"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_folder_is_refused_with_or_without_overwrite(tmp_path, overwrite):
    (tmp_path / "README.md").write_text("mine\n")
    (tmp_path / "run.json").write_text("{}")  # even a run.json of someone else's does not make it tinyr1's
    with pytest.raises(TinyR1Error, match="not empty and not a tinyr1 run"):
        RunDir.claim(tmp_path, "train", resume=False, overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "run.json"]


def test_a_claim_that_wrote_nothing_is_not_a_run(tmp_path):
    RunDir.claim(tmp_path / "r", "sft", resume=False, overwrite=False)  # e.g. stopped by bad data right after
    RunDir.claim(tmp_path / "r", "sft", resume=False, overwrite=False)


def test_resume_latest_and_run_json(tmp_path):
    folder = tmp_path / "run"
    fake_run(folder)
    run = RunDir.claim(folder, "train", resume=True, overwrite=False)
    with pytest.raises(TinyR1Error, match="no model weights"):
        run.resolve_resume("latest")
    (folder / "checkpoint-1" / "model.safetensors").write_bytes(
        (ASSETS / "tiny-qwen2" / "model.safetensors").read_bytes())
    assert run.resolve_resume("latest") == str(folder / "checkpoint-1")
    assert run.resolve_resume("false") is None
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "completed" and info["command"] == "train" and "versions" in info


def test_out_of_memory_is_exit_4_with_remedies(tmp_path):
    import torch

    from tinyr1.infra.errors import OutOfMemoryError
    from tinyr1.infra.out_of_memory import oom_remedies

    run = RunDir.claim(tmp_path / "r", "train", resume=False, overwrite=False)
    training = SimpleNamespace(per_device_train_batch_size=16, gradient_accumulation_steps=4,
                               max_completion_length=200, num_generations=16)
    with pytest.raises(OutOfMemoryError) as err:
        with run.training(global_step=lambda: 3, remedies=lambda: oom_remedies(training, SimpleNamespace(),
                                                                                "max_completion_length")):
            raise torch.OutOfMemoryError("CUDA out of memory")
    assert err.value.exit_code == 4 and "per_device_train_batch_size 16 -> 8" in str(err.value)
    assert "num_generations 16 -> 8" in str(err.value)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "out of memory"


def test_max_prompt_tokens_drops_long_prompts(tmp_path, caplog):
    from tinyr1.models.loading import load_tokenizer
    from tinyr1.training.data import build_dataset

    data = tmp_path / "rows.jsonl"
    rows = [{"prompt": [{"role": "user", "content": "What is 1 + 1?"}], "answer": "2"},
            {"prompt": [{"role": "system", "content": "long " * 2000}, {"role": "user", "content": "2+2?"}],
             "answer": "4"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = SimpleNamespace(dataset_name=str(data), dataset_split="train", dataset_limit=None, dataset_seed=0,
                             system_prompt="unused", skip_bad_rows=False, max_prompt_tokens=256,
                             dataset_options=None, curriculum=False, curriculum_levels=None)
    dataset = build_dataset(script, load_tokenizer(str(ASSETS / "tiny-qwen2")))
    assert len(dataset) == 1 and dataset[0]["answer"] == "2"
    assert "dropped 1 longer than max_prompt_tokens=256" in caplog.text


def test_a_run_from_before_the_marker_is_adopted_only_if_it_holds_nothing_else(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("metrics.jsonl", "config.yaml", "model.safetensors", "README.md"):
        (old / name).write_text("{}")
    (old / "run.json").write_text('{"status": "completed", "versions": {"tinyr1": "0.1.0"}}')
    (old / "checkpoint-2").mkdir()
    with pytest.raises(TinyR1Error, match="already holds a tinyr1 train run"):
        RunDir.claim(old, "train", resume=False, overwrite=False)
    RunDir.claim(old, "train", resume=False, overwrite=True)  # e.g. make demo into last month's outputs/demo
    assert sorted(p.name for p in old.iterdir()) == [LOCK, MARKER]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("run.json", "metrics.jsonl", "thesis.tex"):
        (mixed / name).write_text("{}")
    with pytest.raises(TinyR1Error, match="not empty and not a tinyr1 run"):
        RunDir.claim(mixed, "train", resume=False, overwrite=True)


HOLD_SCRIPT = """
import sys, time
from tinyr1.run_folder.lock import RunLock
RunLock.acquire(sys.argv[1], "train", "--output_dir")
print("held", flush=True)
time.sleep(60)
"""


def test_the_lock_refuses_a_second_process_naming_its_pid_and_dies_with_it(tmp_path):
    from tinyr1.run_folder.lock import holder

    folder = tmp_path / "run"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout.readline().strip() == "held"
        assert holder(folder) == proc.pid
        with pytest.raises(TinyR1Error, match=f"in use by tinyr1 train \\(PID {proc.pid}\\).*pick another"):
            RunDir.claim(folder, "train", resume=True, overwrite=True)
    finally:
        proc.kill()
        proc.wait()
    assert holder(folder) is None  # kill -9 leaves no stale lock
    RunDir.claim(folder, "train", resume=False, overwrite=False)


def test_a_running_run_json_whose_process_died_is_marked_killed(tmp_path):
    from tinyr1.run_folder.run_json import mark_if_killed

    run = fake_run(tmp_path / "run")
    run.write_run_json("running")
    assert mark_if_killed(run.path)["status"] == "killed"  # this process holds the lock: the writer is gone
    assert json.loads((run.path / "run.json").read_text())["status"] == "killed"
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "run.json").write_text('{"status": "running"}')  # not tinyr1's: never touched
    assert mark_if_killed(tmp_path / "user")["status"] == "running"
    assert (tmp_path / "user" / "run.json").read_text() == '{"status": "running"}'


def test_a_failed_run_json_write_keeps_the_previous_one_and_no_tmp(tmp_path, monkeypatch):
    import errno

    run = fake_run(tmp_path / "run")
    real_open = type(run.path).open

    def full(self, mode="r", *args, **kwargs):
        if self.name.startswith(".run.json.") and self.name.endswith(".tmp") and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(type(run.path), "open", full)
    with pytest.raises(TinyR1Error, match="the disk is full"):
        run.write_run_json("running")
    monkeypatch.undo()
    assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
    assert json.loads((run.path / "run.json").read_text())["status"] == "running"  # rewritten in place


def test_a_torn_last_line_is_cut_and_an_intact_file_left_alone(tmp_path):
    from tinyr1.infra.files import drop_torn_last_line

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert drop_torn_last_line(path) == 4 and path.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert drop_torn_last_line(path) == 0 and path.read_text() == '{"step": 1}\n{"step": 2}\n'
    path.write_text('{"st')
    assert drop_torn_last_line(path) == 4 and path.read_text() == ""


def test_one_ownership_rule_for_runs_evals_and_reports(tmp_path):
    from tinyr1.run_folder import ownership

    run = fake_run(tmp_path / "run")
    (run.path / "eval" / "after").mkdir(parents=True)
    (run.path / "eval" / "after" / "metrics.json").write_text("{}")
    (run.path / "report.md").write_text("anything")  # written after the claim, under a name tinyr1 writes
    (run.path / "notes.md").write_text("mine")
    assert ownership.is_ours(run.path / "eval" / "after" / "metrics.json")
    assert ownership.is_ours(run.path / "report.md")
    assert not ownership.is_ours(run.path / "notes.md")
    old = tmp_path / "old-eval"  # from before the marker: the file's own signature
    old.mkdir()
    (old / "metrics.json").write_text('{"versions": {"tinyr1": "0.1.0"}}')
    (old / "samples.jsonl").write_text("")
    (tmp_path / "theirs.md").write_text("# my report\n")
    assert ownership.is_ours(old / "samples.jsonl") and not ownership.is_ours(tmp_path / "theirs.md")


def test_stamping_a_checkpoint_folder_refuses_one_holding_files_of_another(tmp_path):
    from tinyr1.infra.errors import TinyR1Error
    from tinyr1.run_folder.checkpoints import STAMP, refuse_foreign_ahead, stamp

    ours, theirs, empty = tmp_path / "checkpoint-1", tmp_path / "checkpoint-2", tmp_path / "checkpoint-3"
    stamp(ours, "run-a")
    stamp(ours, "run-a")  # a redone save of the run's own folder
    theirs.mkdir()
    (theirs / "model.safetensors").write_text("mine")
    notes = tmp_path / "checkpoint-4"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    stamp(notes, "run-a")  # nothing there a save would write: the save goes beside it
    empty.mkdir()
    stamp(empty, "run-a")  # an empty folder holds nothing to overwrite
    with pytest.raises(TinyR1Error, match="checkpoint-2: not this run's checkpoint"):
        stamp(theirs, "run-a")
    assert sorted(p.name for p in theirs.iterdir()) == ["model.safetensors"]
    assert (notes / "notes.txt").read_text() == "mine"
    assert (ours / STAMP).read_text() == "run-a" and (empty / STAMP).read_text() == "run-a"
    refuse_foreign_ahead(tmp_path, "run-a", after_step=2)  # checkpoint-2 is behind the start: never saved again
    with pytest.raises(TinyR1Error, match="checkpoint-2"):
        refuse_foreign_ahead(tmp_path, "run-a", after_step=1)
    refuse_foreign_ahead(tmp_path, "run-a", after_step=0, max_steps=1)  # a run of one step never saves at 2
