"""What tinyr1 deletes, through the real CLI on the tiny model: only the files it wrote, each listed by name (a
manifest in every checkpoint), never a folder wholesale. A user's file inside a checkpoint survives
``--overwrite_output_dir`` and ``save_total_limit``'s rotation, and is named in one line; another run's checkpoint
is never rotated away."""

import json
import shutil

from ..conftest import REPO
from .helpers import resume_args, steps, train_args


def _plant(run):
    """A user's note, a folder of theirs and a ``tinyr1 eval`` output, saved inside the run's checkpoints."""
    (run / "checkpoint-1" / "notes.txt").write_text("step 1 looked odd\n")
    (run / "checkpoint-2" / "mine").mkdir()
    (run / "checkpoint-2" / "mine" / "plot.csv").write_text("step,reward\n")
    return {run / "checkpoint-1" / "notes.txt": "step 1 looked odd\n",
            run / "checkpoint-2" / "mine" / "plot.csv": "step,reward\n"}


def test_overwrite_keeps_a_users_files_inside_checkpoints_and_names_them(cli, gsm8k_dir, tmp_path):
    run = tmp_path / "run"
    first = cli(*train_args(gsm8k_dir, run, "--max_steps", "2"), cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = _plant(run)
    evaluated = cli("eval", "--predictions", str(REPO / "tests/assets/predictions.jsonl"), "--output_dir",
                    str(run / "checkpoint-2" / "eval-mine"), cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = (run / "checkpoint-2" / "eval-mine" / "metrics.json").read_text()
    fresh = cli(*train_args(gsm8k_dir, run, "--max_steps", "1", "--overwrite_output_dir", "true"), cwd=REPO)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert all(path.read_text() == text for path, text in kept.items())
    assert (run / "checkpoint-2" / "eval-mine" / "metrics.json").read_text() == metrics
    # What the old run wrote into checkpoint-2 is gone, file by file; the user's folders stay where they were.
    assert sorted(p.name for p in (run / "checkpoint-2").iterdir()) == ["eval-mine", "mine"]
    said = [line for line in fresh.stdout.splitlines() if line.startswith("kept ")]
    assert len(said) == 1, fresh.stdout[-3000:]
    assert "checkpoint-1/notes.txt" in said[0] and "checkpoint-2/mine" in said[0] and "eval-mine" in said[0]
    assert steps(run) == [1] and (run / "checkpoint-1" / "trainer_state.json").is_file()


def test_rotation_on_resume_keeps_a_users_files_and_another_runs_checkpoint(cli, gsm8k_dir, tmp_path):
    run = tmp_path / "run"
    first = cli(*train_args(gsm8k_dir, run, "--max_steps", "3"), cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = _plant(run)
    planted = run / "checkpoint-27"
    shutil.copytree(run / "checkpoint-3", planted)  # another run's, copied in
    (planted / ".tinyr1-run-id").write_text("another-run")
    theirs = sorted(p.name for p in planted.iterdir())
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    resumed = cli(*resume_args(run, "--max_steps", "4", "--save_total_limit", "1"), cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert all(path.read_text() == text for path, text in kept.items())
    assert sorted(p.name for p in planted.iterdir()) == theirs  # never this run's to rotate
    assert sorted(p.name for p in (run / "checkpoint-1").iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in (run / "checkpoint-2").iterdir()) == ["mine"]
    assert not (run / "checkpoint-3").exists()  # nothing of the user's in it: removed whole, file by file
    assert (run / "checkpoint-4" / "trainer_state.json").is_file()
    said = [line for line in resumed.stdout.splitlines() if line.startswith("kept ")]
    assert said and "checkpoint-1/notes.txt" in said[0], resumed.stdout[-3000:]
